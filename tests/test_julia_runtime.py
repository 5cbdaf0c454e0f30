"""The owner-thread contract, checked with the pure-Python fake backend."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import pytest

from pydispatch.julia import JuliaFunction, JuliaRuntime, JuliaRuntimeError, JuliaTaskError
from pydispatch.julia.backends import FakeBackend, FakeJuliaException

TIMEOUT = 30


class Gate:
    """A fake Julia function that blocks until released (no sleeps)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> str:
        self.entered.set()
        assert self.release.wait(TIMEOUT)
        return "released"


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def runtime(backend: FakeBackend) -> Any:
    rt = JuliaRuntime(backend, idle_interval=0.01).start(TIMEOUT)
    yield rt
    rt.stop()


def test_every_backend_call_is_on_the_one_owner_thread(
    runtime: JuliaRuntime, backend: FakeBackend
) -> None:
    tid = JuliaFunction("Base.Threads.threadid")
    with ThreadPoolExecutor(8) as pool:
        seen = list(pool.map(lambda _: runtime.call(tid), range(40)))
    runtime.stop()
    assert backend.stopped.is_set()
    assert backend.threads == {runtime.thread_id}
    assert set(seen) == {runtime.thread_id}
    assert runtime.thread_id != threading.get_ident()


def test_calls_run_in_submission_order(runtime: JuliaRuntime, backend: FakeBackend) -> None:
    gate = Gate()
    backend.functions["Main.gate"] = gate
    order: list[int] = []
    backend.functions["Main.record"] = order.append
    first = runtime.submit(JuliaFunction("Main.gate"))
    assert gate.entered.wait(TIMEOUT)
    futures = [runtime.submit(JuliaFunction("Main.record"), (i,)) for i in range(50)]
    gate.release.set()
    wait(futures, TIMEOUT)
    assert first.result() == "released"
    assert order == list(range(50))


def test_values_cross_through_the_conversion_table(runtime: JuliaRuntime) -> None:
    import numpy as np

    plus = JuliaFunction("Base.+")
    assert runtime.call(plus, (np.arange(3), np.ones(3, dtype=np.int64))).tolist() == [1, 2, 3]
    assert runtime.call(JuliaFunction("Base.string"), ("a", 1, None)) == "a1None"


def test_julia_exceptions_become_plain_julia_task_errors(
    runtime: JuliaRuntime, backend: FakeBackend
) -> None:
    def domain(x: float) -> float:
        raise FakeJuliaException(
            "DomainError", f"DomainError with {x}: sqrt was called with a negative"
        )

    backend.functions["Base.sqrt"] = domain
    with pytest.raises(JuliaTaskError) as info:
        runtime.call(JuliaFunction("Base.sqrt"), (-1.0,))
    assert info.value.jltype == "DomainError"
    assert "negative" in info.value.message
    assert "domain" in info.value.backtrace  # the (fake) Julia backtrace text
    with pytest.raises(JuliaTaskError, match="UndefVarError"):
        runtime.call(JuliaFunction("Main.nothere"))


def test_a_backend_failure_is_flattened_on_the_owner(
    runtime: JuliaRuntime, backend: FakeBackend
) -> None:
    seen: list[int] = []

    class Boom(Exception):
        # The owner thread flattens the exception with str() (and may use repr());
        # both must run there, never on the caller's thread.
        def __repr__(self) -> str:
            seen.append(threading.get_ident())
            return "Boom()"

        def __str__(self) -> str:
            seen.append(threading.get_ident())
            return "bridge bug"

    def broken_call(*_: Any) -> Any:
        raise Boom("bridge bug")

    backend.call = broken_call  # type: ignore[method-assign]
    with pytest.raises(JuliaTaskError) as info:
        runtime.call(JuliaFunction("Base.max"), (1, 2))
    assert "Boom" in info.value.jltype and info.value.message == "bridge bug"
    assert "broken_call" in info.value.backtrace
    assert seen and set(seen) == {runtime.thread_id}


def test_unconvertible_arguments_fail_on_the_caller_before_queueing(
    runtime: JuliaRuntime, backend: FakeBackend
) -> None:
    from pydispatch.julia import ConversionError

    with pytest.raises(ConversionError):
        runtime.submit(JuliaFunction("Base.max"), (object(),))
    assert backend.calls == []


def test_stop_fails_pending_calls_with_a_clear_error(backend: FakeBackend) -> None:
    rt = JuliaRuntime(backend, idle_interval=0.01).start(TIMEOUT)
    gate = Gate()
    backend.functions["Main.gate"] = gate
    running = rt.submit(JuliaFunction("Main.gate"))
    assert gate.entered.wait(TIMEOUT)
    pending = [rt.submit(JuliaFunction("Base.max"), (i, 0)) for i in range(5)]
    stopper = threading.Thread(target=rt.stop)
    stopper.start()
    for fut in pending:  # failed at once, while the running call is still running
        with pytest.raises(JuliaRuntimeError, match="shut down before this call ran"):
            fut.result(TIMEOUT)
    assert not running.done()
    gate.release.set()
    stopper.join(TIMEOUT)
    assert running.result(TIMEOUT) == "released"
    assert backend.stopped.is_set()
    assert backend.calls == ["Main.gate"]
    with pytest.raises(JuliaRuntimeError, match="shut down"):
        rt.submit(JuliaFunction("Base.max"), (1, 2))


def test_a_failed_start_fails_waiters_and_says_what_to_do() -> None:
    class NoJulia(FakeBackend):
        def start(self) -> None:
            raise FileNotFoundError("julia")

    rt = JuliaRuntime(NoJulia())
    with pytest.raises(
        JuliaRuntimeError, match=r"starting Julia \(fake backend\) failed.*README"
    ) as info:
        rt.start(TIMEOUT)
    assert isinstance(info.value.__cause__, FileNotFoundError)
    with pytest.raises(JuliaRuntimeError):
        rt.submit(JuliaFunction("Base.max"), (1, 2))


def test_idle_lets_the_backend_run_while_waiting(
    runtime: JuliaRuntime, backend: FakeBackend
) -> None:
    ticked = threading.Event()
    backend.idle = ticked.set  # type: ignore[method-assign]
    assert ticked.wait(TIMEOUT)


def test_reentrant_calls_from_the_owner_run_inline(
    runtime: JuliaRuntime, backend: FakeBackend
) -> None:
    backend.functions["Main.outer"] = lambda x: runtime.call(JuliaFunction("Base.+"), (x, 1))
    assert runtime.call(JuliaFunction("Main.outer"), (41,)) == 42


def test_process_runtime_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydispatch.julia import current_runtime, get_runtime, stop_runtime

    monkeypatch.setenv("PYDISPATCH_JULIA_BACKEND", "fake")
    stop_runtime()
    try:
        assert current_runtime() is None
        assert JuliaFunction("Base.max")(3, 4) == 4  # starts the runtime on first use
        rt = get_runtime()
        assert rt.backend.name == "fake" and current_runtime() is rt
    finally:
        stop_runtime()
    assert current_runtime() is None


def test_unknown_backend_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydispatch.julia.backends import backend_from_env

    monkeypatch.setenv("PYDISPATCH_JULIA_BACKEND", "pyjulia")
    with pytest.raises(JuliaRuntimeError, match="expected 'juliacall' or 'fake'"):
        backend_from_env()


def test_juliacall_backend_refuses_a_process_where_julia_started_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys
    import types

    from pydispatch.julia.backends import JuliacallBackend

    monkeypatch.setitem(sys.modules, "juliacall", types.ModuleType("juliacall"))
    with pytest.raises(JuliaRuntimeError, match="already imported"):
        JuliacallBackend().start()


def test_stopping_drops_juliacalls_wrappers_on_the_stopping_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # juliacall's module holds Julia values (Main, Base, ...); their dealloc enters
    # Julia, so they are dropped by stop() (on the owner thread, before Julia's exit
    # hooks), not at Python finalization on the main thread.
    import sys
    import types

    from pydispatch.julia.backends import JuliacallBackend

    freed: list[tuple[str, int]] = []

    class ValueBase:
        def __init__(self, name: str) -> None:
            self.name = name

        def __del__(self) -> None:
            freed.append((self.name, threading.get_ident()))

    fake = types.ModuleType("juliacall")
    fake.ValueBase = ValueBase  # type: ignore[attr-defined]
    fake.Main = ValueBase("Main")  # type: ignore[attr-defined]
    fake.Base = ValueBase("Base")  # type: ignore[attr-defined]
    fake._convert = ValueBase("_convert")  # type: ignore[attr-defined]
    fake.CONFIG = {"inited": True}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "juliacall", fake)
    order: list[str] = []

    class Hook:
        def run_here(self, code: int) -> None:
            order.append(f"exit hook after {len(freed)} freed")

    backend = JuliacallBackend()
    backend.exit_hook = Hook()  # type: ignore[assignment]
    worker = threading.Thread(target=backend.stop)
    worker.start()
    worker.join(10)
    assert sorted(name for name, _ in freed) == ["Base", "Main", "_convert"]
    assert {ident for _, ident in freed} == {worker.ident}
    assert order == ["exit hook after 3 freed"]
    assert fake.Main is None and fake.ValueBase is ValueBase
    assert fake.CONFIG == {"inited": True}


def test_readme_does_not_advise_importing_juliacall_before_the_worker_starts() -> None:
    # Importing juliacall early (sitecustomize) starts Julia on the main thread, which
    # the backend refuses (the test above): the README's GLIBCXX fix is LD_PRELOAD only.
    from tests.julia_helpers import REPO

    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Julia", 1)[1].split("\n## ", 1)[0]
    (item,) = [i for i in section.split("\n- ") if "GLIBCXX" in i]
    assert "LD_PRELOAD" in item
    assert "Do not import juliacall" in item
    assert "put `import juliacall` first" not in section


def test_an_exception_whose_str_fails_still_reaches_the_caller(
    runtime: JuliaRuntime, backend: FakeBackend
) -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

    def broken_call(*_: Any) -> Any:
        raise Unprintable()

    backend.call = broken_call  # type: ignore[method-assign]
    with pytest.raises(JuliaTaskError, match="could not be computed"):
        runtime.call(JuliaFunction("Base.max"), (1, 2))
    backend.call = FakeBackend.call.__get__(backend)  # type: ignore[method-assign]
    assert runtime.call(JuliaFunction("Base.max"), (1, 2)) == 2  # the owner lives on


def test_the_owner_thread_never_dies_silently(backend: FakeBackend) -> None:
    rt = JuliaRuntime(backend, idle_interval=0.01).start(TIMEOUT)
    gate = Gate()
    backend.functions["Main.gate"] = gate
    running = rt.submit(JuliaFunction("Main.gate"))
    assert gate.entered.wait(TIMEOUT)
    queued = rt.submit(JuliaFunction("Base.max"), (1, 2))

    def explode() -> None:
        raise MemoryError("out of memory in idle")

    backend.idle = explode  # type: ignore[method-assign]
    gate.release.set()
    assert running.result(TIMEOUT) == "released"
    assert queued.result(TIMEOUT) == 2  # the queue is served before the owner idles
    rt._thread.join(TIMEOUT)  # the next idle() kills the owner thread...
    assert not rt._thread.is_alive()
    assert not rt.running and isinstance(rt.failure, MemoryError)
    with pytest.raises(JuliaRuntimeError, match="out of memory in idle"):
        rt.submit(JuliaFunction("Base.max"), (1, 2))  # ...and says so, instead of hanging
    assert backend.stopped.is_set()


def test_pending_calls_fail_when_the_owner_dies(backend: FakeBackend) -> None:
    rt = JuliaRuntime(backend, idle_interval=0.01).start(TIMEOUT)
    gate = Gate()

    def die() -> None:
        gate()
        raise SystemExit("owner killed")

    original = rt._run

    def run_or_die(fut: Any, spec: Any, *rest: Any) -> None:
        if spec[1] == "Main.die":
            fut.set_result(None)
            die()
        original(fut, spec, *rest)

    rt._run = run_or_die  # type: ignore[method-assign]
    rt.submit(JuliaFunction("Main.die"))
    assert gate.entered.wait(TIMEOUT)
    pending = [rt.submit(JuliaFunction("Base.max"), (i, 0)) for i in range(3)]
    gate.release.set()
    for fut in pending:
        with pytest.raises(JuliaRuntimeError, match=r"owner thread stopped.*owner killed"):
            fut.result(TIMEOUT)


class OnceBackend(FakeBackend):
    """A backend that, like juliacall, can start only once per process."""

    restartable = False


def test_a_backend_that_cannot_restart_is_not_restarted(monkeypatch: pytest.MonkeyPatch) -> None:
    import pydispatch.julia.runtime as runtime_module
    from pydispatch.julia import start_runtime, stop_runtime

    monkeypatch.setattr(runtime_module, "_runtime", None)
    monkeypatch.setattr(runtime_module, "_ended", None)

    class FailingOnce(OnceBackend):
        def start(self) -> None:
            raise OSError("libjulia not found")

    with pytest.raises(JuliaRuntimeError, match="libjulia not found"):
        start_runtime(FailingOnce(), timeout=TIMEOUT)
    with pytest.raises(JuliaRuntimeError, match="cannot start again") as info:
        start_runtime(timeout=TIMEOUT)  # not a second jl_init: the original error again
    assert "libjulia not found" in str(info.value)
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(JuliaRuntimeError, match="cannot start again"):
        JuliaFunction("Base.max")(1, 2)

    monkeypatch.setattr(runtime_module, "_runtime", None)  # as in a fresh process
    monkeypatch.setattr(runtime_module, "_ended", None)
    start_runtime(OnceBackend(), timeout=TIMEOUT)
    stop_runtime()
    with pytest.raises(JuliaRuntimeError, match="was stopped in this process"):
        start_runtime(timeout=TIMEOUT)


def test_the_exit_hook_runs_julias_exit_on_the_owner_thread_once() -> None:
    from pydispatch.julia.backends import OwnerExitHook

    ran_on: list[int] = []
    owner_ready = threading.Event()
    stop = threading.Event()
    hooks: list[OwnerExitHook] = []

    def owner() -> None:
        hooks.append(OwnerExitHook(lambda code: ran_on.append(threading.get_ident()), 0))
        hooks[0].owner = threading.get_ident()
        owner_ready.set()
        while not stop.is_set():  # the owner's idle loop
            hooks[0].serve()
            stop.wait(0.01)

    thread = threading.Thread(target=owner)
    thread.start()
    assert owner_ready.wait(TIMEOUT)
    hook = hooks[0]
    hook.argtypes, hook.restype = [int], None  # what juliacall's atexit function sets
    hook(0)  # from this thread, as Python's atexit would: handed to the owner
    stop.set()
    thread.join(TIMEOUT)
    assert ran_on == [thread.ident]
    hook(0)
    hook.run_here(0)
    assert ran_on == [thread.ident]  # once only


def test_the_exit_hook_does_not_hang_when_the_owner_is_busy() -> None:
    import time

    from pydispatch.julia.backends import OwnerExitHook

    ran: list[int] = []
    hook = OwnerExitHook(ran.append, owner=-1, wait=0.2)  # an owner that never serves
    started = time.monotonic()
    hook(0)
    assert time.monotonic() - started < 5 and ran == []  # Julia's exit skipped, no hang


def test_juliacall_backend_pins_threads_and_clears_the_no_init_flag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from pydispatch.julia.backends import JuliacallBackend

    monkeypatch.delenv("PYTHON_JULIACALL_THREADS", raising=False)
    monkeypatch.setenv("PYTHON_JULIACALL_INIT", "no")
    monkeypatch.delitem(sys.modules, "juliacall", raising=False)

    class NoJuliacall:  # importing juliacall now fails, installed or not
        @staticmethod
        def find_spec(name: str, *args: Any) -> None:
            if name == "juliacall":
                raise ImportError("no juliacall here")

    monkeypatch.setattr(sys, "meta_path", [NoJuliacall(), *sys.meta_path])
    with pytest.raises(JuliaRuntimeError, match="not installed"):
        JuliacallBackend().start()
    import os

    assert os.environ["PYTHON_JULIACALL_THREADS"] == "1"
    assert "PYTHON_JULIACALL_INIT" not in os.environ


def test_at_exit_the_juliacall_backend_drops_wrappers_before_julia_exits() -> None:
    from pydispatch.julia.backends import JuliacallBackend, OwnerExitHook

    backend = JuliacallBackend()
    seen: list[object] = []
    backend._invoke, backend._idle = object(), lambda: None
    backend.exit_hook = OwnerExitHook(lambda code: seen.append(backend._invoke), 0)
    backend.idle()  # no exit waiting: an ordinary idle
    assert seen == []
    backend.exit_hook._requests.append(threading.Event())  # Python's atexit asked for it
    with pytest.raises(JuliaRuntimeError, match="process is exiting"):
        backend.idle()
    assert seen == [None]  # Julia's exit hooks ran once the wrappers were gone
    backend.stop()
    assert seen == [None]  # and only once
