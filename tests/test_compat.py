"""One test per dask internal that pydispatch uses (all in pydispatch/dask_adapter/compat.py).

When a dask release changes one of them, the test of that internal fails here, by
name, before anything else does.
"""

from __future__ import annotations

import inspect
import operator

import distributed
import pytest
from distributed.active_memory_manager import ReduceReplicas

from pydispatch.dask_adapter import compat
from pydispatch.dask_adapter.compat import task_prefix_durations


def test_client_handles_cancelled_keys_with_the_method_we_override():
    handler = distributed.Client._handle_cancelled_keys
    assert list(inspect.signature(handler).parameters) == ["self", "keys", "reason", "msg"]
    source = inspect.getsource(distributed.Client.__init__)
    assert '"cancelled-keys": self._handle_cancelled_keys' in source


def test_client_keeps_its_loop_under_the_mangled_name(dask_cluster):
    with distributed.Client(dask_cluster.address, set_as_default=False) as client:
        assert client._Client__loop is not None  # type: ignore[attr-defined]


def test_the_late_echoes_of_our_cancel_are_ignored_for_a_while(dask_cluster):
    with compat.LateCancelTolerantClient(dask_cluster.address, set_as_default=False) as client:
        now = [100.0]
        client.clock = lambda: now[0]
        future = client.submit(operator.add, 1, 2, key="compat-echo")
        assert future.result(timeout=30) == 3
        client.expect_cancel_echo(["compat-echo"])
        client._handle_cancelled_keys(["compat-echo"], reason="echo")
        client._handle_cancelled_keys(["compat-echo"], reason="second echo")
        assert future.status == "finished"  # both echoes were swallowed
        now[0] += client.echo_window
        client._handle_cancelled_keys(["compat-echo"], reason="real")
        assert future.status == "cancelled"


def test_a_cancelled_future_keeps_its_reason(dask_cluster):
    with distributed.Client(dask_cluster.address, set_as_default=False) as client:
        future = client.submit(operator.add, 2, 2, key="compat-reason")
        future.result(timeout=30)
        client.cancel([future], reason="because-of-a-test")
        assert compat.cancel_reason(future) == "because-of-a-test"


def test_the_memory_manager_policy_reads_what_we_rely_on():
    run = inspect.getsource(ReduceReplicas.run)
    assert "self.manager.scheduler" in run and "yield" in run
    source = inspect.getsource(distributed.active_memory_manager)
    assert "class Suggestion" in source and "ts:" in source


def test_dask_has_a_registry_of_transports():
    compat.check_transport("tcp")
    compat.check_transport("ws")
    with pytest.raises(ValueError, match="unknown address scheme"):
        compat.check_transport("carrier-pigeon")


def test_task_prefix_durations_reads_the_schedulers_mean_durations(dask_cluster) -> None:
    with distributed.Client(dask_cluster.address, timeout=10, set_as_default=False) as client:
        futures = [client.submit(operator.add, i, 1, key=f"compatprobe-{i:032x}") for i in range(5)]
        assert client.gather(futures) == [1, 2, 3, 4, 5]
        means = task_prefix_durations(client, ["compatprobe", "never-seen-prefix"])
        assert set(means) == {"compatprobe"}
        assert isinstance(means["compatprobe"], float) and 0 <= means["compatprobe"] < 1
