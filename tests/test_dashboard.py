"""dask's live dashboard: the link pydispatch prints opens it, or pydispatch says why not.

Each page is fetched over HTTP from a real scheduler (embedded, or a `dask
scheduler` process), with a bounded timeout.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Callable
from pathlib import Path

from real_cluster import Cluster

from pydispatch import DaskExecutor, Op

ROOT = Path(__file__).resolve().parent.parent


def fetch(link: str) -> str:
    with urllib.request.urlopen(link, timeout=30) as response:
        assert response.status == 200
        return str(response.read().decode("utf-8", "replace"))


def assert_live_bokeh_dashboard(link: str) -> None:
    page = fetch(link)
    assert "Dask needs bokeh" not in page
    assert "bokeh.min.js" in page and "Bokeh.embed.embed_items" in page, page[:2000]


def test_embedded_cluster_link_opens_the_live_dashboard() -> None:
    with DaskExecutor.local(1, 1) as executor:
        link = executor.dashboard_link
        assert link is not None and link.startswith("http://127.0.0.1:")
        assert_live_bokeh_dashboard(link)
        assert str(executor.dashboard) == link and executor.dashboard.problem is None
        # the notebook summaries of the executor and of a run link it too
        results = executor.run([Op(max, 3, 4)])
        assert f'<a href="{link}"' in executor._repr_html_()
        assert f'<a href="{link}"' in results._repr_html_()


def test_cli_prints_the_live_dashboard_link(tmp_path: Path) -> None:
    """The link printed while `pydispatch run` runs opens the live dashboard.

    The graph's one node waits on a socket this test holds, so the run (and its
    cluster) stays up until the page has been fetched.
    """
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(120)
        port = server.getsockname()[1]
        job = tmp_path / "hold.py"
        job.write_text(
            textwrap.dedent(f"""\
                import socket
                from pydispatch import Op

                def held():
                    with socket.create_connection(("127.0.0.1", {port}), timeout=120) as sock:
                        return sock.recv(64).decode()

                outputs = [Op(held)]
                """)
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "pydispatch", "run", str(job), "--workers", "1",
             "--threads", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )  # fmt: skip
        try:
            assert proc.stderr is not None
            lines = []
            for line in proc.stderr:
                lines.append(line)
                if line.startswith("pydispatch: dashboard "):
                    break
            assert lines and lines[-1].startswith("pydispatch: dashboard http://"), lines
            assert_live_bokeh_dashboard(lines[-1].split()[-1])
            connection, _ = server.accept()
            with connection:
                connection.sendall(b"released")
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert proc.returncode == 0, err
    assert out == "held = 'released'\n"


def test_a_scheduler_without_a_dashboard_says_so(dask_cluster: Cluster) -> None:
    with DaskExecutor(dask_cluster.address) as executor:  # started with --no-dashboard
        assert executor.dashboard_link is None
        assert "serves no dashboard" in str(executor.dashboard)
    proc = subprocess.run(
        [sys.executable, "-m", "pydispatch", "run", "examples/quickstart.py",
         "--scheduler", dask_cluster.address],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (
        f"pydispatch: dashboard unavailable: the scheduler at {dask_cluster.address} "
        "serves no dashboard" in proc.stderr
    )
    assert "http://" not in proc.stderr


def test_a_scheduler_without_bokeh_says_so_instead_of_linking_its_error_page(
    own_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    shadow = tmp_path / "shadow" / "bokeh"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('bokeh hidden by a pydispatch test')\n")
    path = os.pathsep.join(filter(None, [str(shadow.parent), os.environ.get("PYTHONPATH")]))
    cluster = own_cluster(
        0,
        scheduler_args=("--dashboard", "--dashboard-address", "127.0.0.1:0"),
        env={"PYTHONPATH": path},
    )
    with DaskExecutor(cluster.address) as executor:
        dashboard = executor.dashboard
        assert executor.dashboard_link is None
        assert dashboard.problem is not None and "lacks bokeh" in dashboard.problem
        assert 'install "bokeh>=3.1.0" where the scheduler runs' in dashboard.problem
        page = dashboard.problem.split("the scheduler serving ")[1].split()[0]
    assert "Dask needs bokeh" in fetch(page)  # what the old link led to
