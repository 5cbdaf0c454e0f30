"""Bring your own cluster: a distributed.Client, a cluster object, a scheduler file,
another dask transport; and dask's diagnostics around pydispatch runs."""

from __future__ import annotations

import operator
from collections.abc import Iterator

import distributed
import pytest
from real_cluster import start_cluster, wait_until

from pydispatch import CancelledError, Client, DaskExecutor, Op


@pytest.fixture(scope="module")
def local_cluster() -> Iterator[distributed.LocalCluster]:
    cluster = distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        scheduler_port=0,
        dashboard_address=":0",
    )
    yield cluster
    cluster.close()


def test_an_existing_distributed_client_is_used_and_not_closed(local_cluster):
    with distributed.Client(local_cluster, set_as_default=False) as dask_client:
        with DaskExecutor(dask_client) as ex:
            assert ex.client.dask_client is dask_client
            (r,) = ex.run([Op(operator.add, 40, 2)])
            assert r.unwrap().result() == 42
            ex.reset()  # releases this executor's results, keeps the user's client
            assert dask_client.status == "running"
            assert ex.run([Op(operator.mul, 6, 7)])[0].unwrap().result() == 42
        assert dask_client.status == "running"
        assert dask_client.submit(operator.add, 1, 1).result() == 2


def test_a_client_on_a_borrowed_distributed_client_cancels(local_cluster):
    with distributed.Client(local_cluster, set_as_default=False) as dask_client:
        client = Client(dask_client)
        node = Op(operator.add, 1, 2)
        client.submit(node)
        assert client.result(node) == 3
        client.cancel([node])
        with pytest.raises(CancelledError):
            node.result()
        client.close()
        client.close()  # idempotent
        assert dask_client.status == "running"


def test_a_cluster_object(local_cluster):
    with DaskExecutor(local_cluster) as ex:
        assert ex.scheduler_address == local_cluster.scheduler_address
        assert ex.run([Op(max, 3, 4)])[0].unwrap().result() == 4
    assert local_cluster.status.name == "running"  # not closed: it is the user's


def test_anything_with_a_scheduler_address_is_a_cluster(local_cluster):
    class Deployment:  # as dask-jobqueue's and dask-kubernetes' cluster objects are
        scheduler_address = local_cluster.scheduler_address
        security = None

    with DaskExecutor(Deployment()) as ex:
        assert ex.run([Op(min, 3, 4)])[0].unwrap().result() == 3


@pytest.fixture
def file_scheduler(tmp_path) -> Iterator[tuple[str, str]]:
    """A `dask scheduler --scheduler-file` with one worker: the file, and the address."""
    path = str(tmp_path / "scheduler.json")
    cluster = start_cluster(1, scheduler_args=("--scheduler-file", path))
    try:
        wait_until(lambda: (tmp_path / "scheduler.json").exists(), 60, "the scheduler file")
        yield path, cluster.address
    finally:
        cluster.stop()


def test_a_scheduler_file(file_scheduler):
    path, address = file_scheduler
    with DaskExecutor(scheduler_file=path) as ex:
        assert ex.scheduler_address == address
        assert ex.run([Op(operator.sub, 50, 8)], timeout=60)[0].unwrap().result() == 42


def test_a_missing_scheduler_file_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="--scheduler-file"):
        DaskExecutor(scheduler_file=tmp_path / "nope.json")


def test_another_dask_transport():
    """A websocket scheduler (ws://): any transport dask supports is accepted."""
    cluster = start_cluster(1, protocol="ws")
    try:
        with DaskExecutor(cluster.address, connect_timeout=30) as ex:
            assert cluster.address.startswith("ws://") and ex.scheduler_address == cluster.address
            assert ex.run([Op(operator.add, 2, 2)], timeout=60)[0].unwrap().result() == 4
    finally:
        cluster.stop()


def test_performance_report_and_task_stream_see_a_run(dask_cluster, tmp_path):
    report = tmp_path / "report.html"
    with DaskExecutor(dask_cluster.address) as ex:
        with distributed.performance_report(filename=str(report)):
            with distributed.get_task_stream() as stream:
                ex.run([Op(operator.add, i, 1000) for i in range(5)])
    html = report.read_text()
    assert "Dask Performance Report" in html and "bokeh" in html.lower()
    assert any(t["key"].startswith("add-") for t in stream.data)


def test_the_executor_client_is_current_during_a_run_without_becoming_the_default(dask_cluster):
    ex = DaskExecutor(dask_cluster.address)
    try:
        seen: list[object] = []

        def spy(plan_done: object = None) -> None:
            seen.append(distributed.get_client())

        ex.run([Op(abs, -1)], progress=_Recorder(spy))
        assert seen and seen[0] is ex.client.dask_client
        with pytest.raises(ValueError):
            distributed.default_client()  # nothing was made the global default
    finally:
        ex.close()


class _Recorder:
    """A progress reporter that calls `spy` when a node finishes (inside the run)."""

    def __init__(self, spy):  # type: ignore[no-untyped-def]
        self.spy = spy

    def start(self, plan):  # type: ignore[no-untyped-def]
        pass

    def node_finished(self, node, ok):  # type: ignore[no-untyped-def]
        self.spy()

    def finish(self):  # type: ignore[no-untyped-def]
        pass


def test_pydispatch_run_with_a_scheduler_file(file_scheduler, capsys):
    from pathlib import Path

    from pydispatch import cli

    path, _ = file_scheduler
    example = Path(__file__).parent.parent / "examples" / "quickstart.py"
    assert cli.main(["run", str(example), "--scheduler-file", path, "--quiet"]) == 0
    assert "max = 4" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # one place to run: not both
        cli.main(["run", str(example), "--scheduler-file", path, "--scheduler", "x:1"])
