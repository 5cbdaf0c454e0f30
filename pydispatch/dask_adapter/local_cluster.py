"""The embedded cluster: a dask scheduler and worker processes on 127.0.0.1."""

from __future__ import annotations

import logging
from typing import Any

from distributed import LocalCluster, Security


def start_local_cluster(
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    *,
    secure: bool = False,
    **options: Any,
) -> tuple[LocalCluster, Security | None]:
    """Start the cluster; with `secure`, it speaks only TLS, with throwaway certificates.

    Returns the cluster and the `Security` a client needs to reach it.
    """
    for name, value in (("n_workers", n_workers), ("threads_per_worker", threads_per_worker)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ValueError(f"{name} must be an int >= 1 or None, got {value!r}")
    security = Security.temporary() if secure else options.pop("security", None)
    if security is not None:
        options.setdefault("protocol", "tls://")
    options.setdefault("dashboard_address", "127.0.0.1:0")
    preload = options.pop("preload", None) or []
    options["preload"] = [*([preload] if isinstance(preload, str) else preload), __name__]
    cluster = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=threads_per_worker,
        processes=True,
        host="127.0.0.1",
        scheduler_port=0,
        security=security,
        **options,
    )
    return cluster, security


class _QuietComputeFailed(logging.Filter):
    """Drops dask's "Compute Failed" worker log: pydispatch reports each failure itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Compute Failed")


def dask_setup(worker: Any) -> None:
    """Preload hook dask calls in each worker of the embedded cluster, as it starts.

    The embedded cluster's workers share the terminal of `pydispatch run` (or of
    the program that made the cluster), where pydispatch reports each failed
    node with its traceback; dask's own log of the same failure would repeat it.
    Workers of other clusters keep dask's log.
    """
    logger = logging.getLogger("distributed.worker")
    if not any(isinstance(f, _QuietComputeFailed) for f in logger.filters):
        logger.addFilter(_QuietComputeFailed())
