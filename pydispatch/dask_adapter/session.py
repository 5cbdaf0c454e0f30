"""A session with a dask scheduler: the `distributed.Client` pydispatch talks through.

pydispatch opens its own client (and closes it) when given an address, a cluster
object or a scheduler file; it borrows a `distributed.Client` the user passes in,
and never closes that one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import distributed

from ..address import Address
from .compat import LateCancelTolerantClient
from .connection import check_seconds, check_tls_config, connect_error, is_tls_mismatch
from .connection import normalize_address as normalize_address

SchedulerTarget = str | Address | distributed.Client | Any
"""What a session can be opened on: an address, a `distributed.Client`, or a cluster."""


class Session:
    """One connection to a dask scheduler, owned (opened here) or borrowed (the user's)."""

    def __init__(self, dask: distributed.Client, *, owned: bool, address: str):
        self.dask = dask
        self.owned = owned
        self.address = address

    @classmethod
    def open(
        cls,
        target: SchedulerTarget | None = None,
        *,
        scheduler_file: str | os.PathLike[str] | None = None,
        security: Any = None,
        connect_timeout: float = 10.0,
        name: str | None = None,
    ) -> Session:
        """A session on `target` (address, client or cluster) or on `scheduler_file`."""
        check_seconds("connect_timeout", connect_timeout)
        if isinstance(target, distributed.Client):
            if scheduler_file is not None or security is not None:
                raise ValueError(
                    "a distributed.Client brings its own scheduler and security; "
                    "do not also pass scheduler_file= or security="
                )
            return cls(
                target, owned=False, address=str(target.scheduler_info(n_workers=0)["address"])
            )
        options: dict[str, Any] = {"set_as_default": False, "name": name}
        if scheduler_file is not None:
            if target is not None:
                raise ValueError(
                    f"give a scheduler address or client ({target!r}) or scheduler_file= "
                    f"({str(scheduler_file)!r}), not both"
                )
            path = os.fspath(scheduler_file)
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"scheduler file {path!r} does not exist; start the scheduler with "
                    f"`dask scheduler --scheduler-file {path}` first, or check the path"
                )
            address = f"scheduler file {path}"
            options["scheduler_file"] = path
        else:
            address, security = _address_and_security(target, security)
            check_tls_config(address, security)
            options["address"] = address
        try:
            dask = LateCancelTolerantClient(timeout=connect_timeout, security=security, **options)
        except (OSError, TimeoutError, ValueError) as err:
            if isinstance(err, ValueError) and not is_tls_mismatch(address, err):
                raise
            raise connect_error(address, connect_timeout, err) from None
        if scheduler_file is not None:
            address = str(dask.scheduler_info(n_workers=0)["address"])
        return cls(dask, owned=True, address=address)

    @property
    def status(self) -> str:
        """The dask client's status: "running", "connecting", "closing", "closed"."""
        return str(self.dask.status)

    def expect_cancel_echo(self, keys: Iterable[str]) -> None:
        """Tell the client to ignore the scheduler's coming confirmation of our cancel."""
        if isinstance(self.dask, LateCancelTolerantClient):
            self.dask.expect_cancel_echo(keys)

    def close(self) -> None:
        """Close the dask client if this session opened it; a borrowed one stays open."""
        if self.owned and self.dask.status not in ("closing", "closed"):
            self.dask.close()


def _address_and_security(target: SchedulerTarget | None, security: Any) -> tuple[str, Any]:
    """The scheduler address of `target` (an address or a cluster), and the security to use."""
    if target is None:
        target = "127.0.0.1:8786"
    if not isinstance(target, (str, Address)):
        address = getattr(target, "scheduler_address", None)
        if not isinstance(address, str):
            raise TypeError(
                "connect to a scheduler address ('tcp://host:8786'), a distributed.Client, "
                "a dask cluster object (anything with .scheduler_address, e.g. LocalCluster, "
                f"SLURMCluster) or scheduler_file=PATH; got {target!r} ({type(target).__name__})"
            )
        if security is None:
            security = getattr(target, "security", None)
        return normalize_address(address), security
    address = normalize_address(target)
    if security is not None and address.startswith("tcp://"):
        address = "tls://" + address[len("tcp://") :]
    return address, security
