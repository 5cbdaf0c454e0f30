"""Replicas that dask's Active Memory Manager leaves alone.

The memory manager's `ReduceReplicas` policy drops extra copies of a result
within seconds, which would undo `Client.replicate`. `protect_replicas` runs
on the scheduler and swaps that policy for one that skips protected keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from distributed.active_memory_manager import ReduceReplicas

from .compat import ReduceReplicasExcept


def protect_replicas(dask_scheduler: Any, keys: Iterable[Any]) -> None:
    """Keep every replica of `keys` (runs on the scheduler)."""
    amm = dask_scheduler.extensions.get("amm")
    if amm is None:
        return
    policy = next((p for p in amm.policies if isinstance(p, ReduceReplicasExcept)), None)
    if policy is None:
        for old in [p for p in amm.policies if type(p) is ReduceReplicas]:
            amm.policies.discard(old)
        policy = ReduceReplicasExcept()
        amm.add_policy(policy)
    policy.protected.update(keys)
