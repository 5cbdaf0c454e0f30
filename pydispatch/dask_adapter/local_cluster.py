"""The embedded cluster: a dask scheduler and worker processes on 127.0.0.1."""

from __future__ import annotations

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
