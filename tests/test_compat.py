"""Every dask internal pydispatch uses (all in `dask_adapter.compat`), checked against dask.

Each test fails loudly when a dask release changes the internal it covers.
"""

from __future__ import annotations

import operator

import distributed
from conftest import Cluster

from pydispatch.dask_adapter.compat import task_prefix_durations


def test_task_prefix_durations_reads_the_schedulers_mean_durations(dask_cluster: Cluster) -> None:
    with distributed.Client(dask_cluster.address, timeout=10, set_as_default=False) as client:
        futures = [client.submit(operator.add, i, 1, key=f"compatprobe-{i:032x}") for i in range(5)]
        assert client.gather(futures) == [1, 2, 3, 4, 5]
        means = task_prefix_durations(client, ["compatprobe", "never-seen-prefix"])
        assert set(means) == {"compatprobe"}
        assert isinstance(means["compatprobe"], float) and 0 <= means["compatprobe"] < 1
