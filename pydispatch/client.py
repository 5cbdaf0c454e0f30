"""`Client`: submit nodes to a dask scheduler, then cancel, gather or replicate them.

A thin layer over `distributed.Client`: every node becomes a content-keyed
dask task; the client holds a dask future per submitted key, so results stay
on the cluster until they are cancelled, shut down or reset.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import reprlib
import ssl
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

import cloudpickle
import distributed
from distributed import Future
from distributed.client import _wait as _wait_futures

from .address import Address, parse_address
from .dask_graph import build_tasks, with_restrictions
from .executors.plan import Plan
from .executors.retry import RetryPolicy
from .graph import DispatchNode, _check_nodes
from .keys import KeyMaker
from .replication import protect_replicas
from .results import CancelledError, DependencyError, DispatcherError
from .shipping import ShipMode, Shipper


class SchedulerUnreachableError(DispatcherError, ConnectionError):
    """No dask scheduler answered at the given address."""


class SchedulerLostError(DispatcherError, ConnectionError):
    """The connection to the scheduler was lost."""


class TLSError(SchedulerUnreachableError):
    """A TLS connection could not be set up: no certificates, or one side refused the other's."""


def _security_hint(role: str) -> str:
    return (
        f"pass security=distributed.Security(tls_ca_file=CA, tls_{role}_cert=CERT, "
        f"tls_{role}_key=KEY, require_encryption=True) with a certificate the cluster's CA signed"
    )


def check_tls_config(address: str, security: Any, role: str = "client") -> None:
    """`TLSError` if `address` is tls:// but `security` (or dask's config) has no certificate."""
    if not address.startswith("tls://"):
        return
    try:
        sec = security if security is not None else distributed.Security()
        context = sec.get_connection_args(role).get("ssl_context")
    except Exception as err:
        raise TLSError(
            f"cannot set up TLS for {address}: {type(err).__name__}: {err}; {_security_hint(role)}"
        ) from None
    if context is None:
        raise TLSError(
            f"{address} is a TLS address, but this {role} has no TLS certificate "
            f"(security={security!r}); {_security_hint(role)}"
        )


def _chain(err: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def connect_error(
    address: str, timeout: float, err: BaseException, role: str = "client"
) -> SchedulerUnreachableError:
    """The error to raise when connecting to the scheduler at `address` failed with `err`."""
    detail = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    chain = _chain(err)
    text = " ".join(str(e) for e in chain)
    if address.startswith("tls://") and (
        any(isinstance(e, ssl.SSLError) for e in chain) or "SSL" in text or not str(err)
    ):
        return TLSError(
            f"the TLS handshake with the dask scheduler at {address} failed ({detail}): "
            f"the scheduler refused this {role}'s certificate, this {role} does not trust "
            "the scheduler's, or the scheduler does not speak TLS; check the tls_ca_file, "
            f"tls_{role}_cert and tls_{role}_key of `security=`"
        )
    # a TLS server drops a plain-TCP handshake: reset, or closed with no refusal
    reset = not any(isinstance(e, ConnectionRefusedError) for e in chain) and any(
        isinstance(e, (ConnectionResetError, distributed.comm.CommClosedError)) for e in chain
    )
    if address.startswith("tcp://") and reset:
        return SchedulerUnreachableError(
            f"the dask scheduler at {address} closed the connection during the handshake "
            f"({detail}); if it requires TLS, connect to {'tls://' + address[len('tcp://') :]} "
            f"and {_security_hint(role)}"
        )
    return SchedulerUnreachableError(
        f"cannot reach a dask scheduler at {address} within {timeout}s ({detail}). Start one "
        f"with `dask scheduler`, and workers with `pydispatch worker {address}`, or use "
        "DaskExecutor.local() for an embedded cluster"
    )


class UnpicklableResultError(DispatcherError, TypeError):
    """A task's value cannot be pickled, so it could never leave its worker."""


_PLAIN = (int, float, complex, str, bytes, bool, type(None))


def _out_of_band(buffer: pickle.PickleBuffer) -> bool:
    return False  # do not copy large buffers: checking needs no bytes


def check_transferable(value: Any, name: str) -> Any:
    """`value`, after checking dask could pickle it (as it would to send it elsewhere).

    Without this, a dependent on another worker waits forever for a value its
    worker cannot send.
    """
    if type(value) in _PLAIN:
        return value
    dtype = getattr(value, "dtype", None)
    if getattr(dtype, "hasobject", True) is False:
        return value  # numpy-style arrays of plain numbers: dask sends their buffers
    try:
        pickle.dumps(value, protocol=5, buffer_callback=_out_of_band)
    except Exception:
        try:
            cloudpickle.dumps(value, protocol=5, buffer_callback=_out_of_band)
        except Exception as err:
            key = getattr(distributed.worker.thread_state, "key", None)
            task = f" as task {key!r}" if key is not None else ""
            raise UnpicklableResultError(
                f"the value {name}() returned{task}, {reprlib.repr(value)} "
                f"({type(value).__module__}.{type(value).__qualname__}), could not be pickled "
                f"({type(err).__name__}: {err}), so it cannot be sent to another worker or to "
                "the client; return picklable data (numbers, strings, lists, dicts, numpy "
                "arrays, ...) instead"
            ) from None
    return value


class ResultChecked:
    """A task function whose value is checked to be transferable (see `check_transferable`)."""

    __slots__ = ("func", "name")

    def __init__(self, func: Callable[..., Any]):
        self.func = func
        self.name = getattr(func, "__name__", None) or getattr(func, "name", None) or repr(func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return check_transferable(self.func(*args, **kwargs), self.name)

    def __reduce__(self) -> tuple[Any, ...]:
        return (ResultChecked, (self.func,))


class _CheckingShipper(Shipper):
    """Ships task functions as `shipper` does, each wrapped in `ResultChecked`."""

    def __init__(self, shipper: Shipper):
        super().__init__(shipper.mode)
        self._inner = shipper
        self._wrapped: dict[int, tuple[Callable[..., Any], ResultChecked]] = {}

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        shipped = self._inner(func)
        hit = self._wrapped.get(id(shipped))
        if hit is None or hit[0] is not shipped:
            hit = self._wrapped[id(shipped)] = (shipped, ResultChecked(shipped))
        return hit[1]


def check_seconds(name: str, value: object) -> None:
    """`ValueError` unless `value` is a number of seconds > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")


def normalize_address(address: str | Address) -> str:
    """`tcp://host:port` form of a user's address; `ValueError` if malformed."""
    if isinstance(address, Address):
        return str(address)
    scheme, host, port = parse_address(address)
    return str(Address(host, port, scheme))


class _DaskClient(distributed.Client):
    """A `distributed.Client` that ignores the scheduler's late echo of our own cancels.

    The scheduler confirms a cancel to every client after the fact; a key
    cancelled and submitted again at once would otherwise have its new future
    cancelled by that late confirmation.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        self._late_cancels: dict[str, int] = {}
        try:
            super().__init__(*args, **kwargs)
        except BaseException:
            # close now: otherwise __del__ closes it later, at exit, with a timeout traceback
            if getattr(self, "_Client__loop", None) is not None:
                self.close(timeout=2)
            raise

    def expect_cancel_echo(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._late_cancels[key] = self._late_cancels.get(key, 0) + 1

    def _handle_cancelled_keys(self, keys, reason=None, msg=None):
        for key in keys:
            pending = self._late_cancels.get(key, 0)
            if pending:
                if pending == 1:
                    del self._late_cancels[key]
                else:
                    self._late_cancels[key] = pending - 1
                continue
            state = self.futures.get(key)
            if state is not None:
                state.cancel(reason=reason, msg=msg)


_OWN_FRAMES = (
    os.path.join("pydispatch", "shipping.py"),
    os.path.join("pydispatch", "dask_graph.py"),
    os.path.join("pydispatch", "executors", "retry.py"),
)


def remote_trace(future: Future) -> str:
    """The remote traceback text of a failed future, without pydispatch's own frames."""
    try:
        tb = future.traceback()
    except Exception:
        return ""
    if tb is None:
        return ""
    frames = [f for f in traceback.extract_tb(tb) if not f.filename.endswith(_OWN_FRAMES)]
    return "".join(traceback.format_list(frames))


class DaskOutcome:
    """A node's outcome on the cluster: its dask future, and its error once known."""

    __slots__ = ("client", "error", "future", "node")

    def __init__(self, client: Client, node: DispatchNode, future: Future):
        self.client = client
        self.node = node
        self.future = future
        self.error: DependencyError | None = None

    def result(self, timeout: float | None = None) -> Any:
        if timeout is not None:
            check_seconds("timeout", timeout)
        if self.client.status != "running":
            raise DispatcherError(
                f"the result of node {self.node.label!r} is gone: its Client of "
                f"{self.client.scheduler_address} was shut down (executor closed or reset); "
                "run the node again"
            )
        self.client._check_not_cancelled(cast(str, self.future.key), self.node)
        if self.error is not None:
            raise self.error
        try:
            return self.future.result(timeout=timeout)
        except (distributed.client.FutureCancelledError, distributed.CancelledError) as err:
            raise CancelledError(
                f"node {self.node.label!r} was cancelled on the cluster ({err}); run it again"
            ) from None
        except TimeoutError:
            raise
        except Exception as err:
            self.error = DependencyError(err, remote_trace(self.future), self.node)
            raise self.error from None

    def done(self) -> bool:
        return self.future.done()


class Client:
    """Submits nodes to the dask scheduler at `scheduler_address` and fetches results."""

    def __init__(
        self,
        scheduler_address: str | Address = "127.0.0.1:8786",
        *,
        connect_timeout: float = 10.0,
        security: Any = None,
        ship_functions: ShipMode = "auto",
        retry_policy: RetryPolicy | None = None,
    ):
        self.scheduler_address = normalize_address(scheduler_address)
        check_seconds("connect_timeout", connect_timeout)
        if security is not None and self.scheduler_address.startswith("tcp://"):
            self.scheduler_address = "tls://" + self.scheduler_address[len("tcp://") :]
        self.id = f"pydispatch-client-{uuid.uuid4()}"
        self.status = "connecting"
        self._ship = Shipper(ship_functions)
        self._task_functions = _CheckingShipper(self._ship)
        self._policy = retry_policy and dataclasses.replace(
            retry_policy, retry_on=tuple(self._ship(p) for p in retry_policy.retry_on)
        )
        self._futures: dict[str, Future] = {}
        self._nodes: dict[str, DispatchNode] = {}
        self._key_of: dict[int, str] = {}
        self._dependents: dict[str, set[str]] = {}
        self._cancelled: set[str] = set()
        check_tls_config(self.scheduler_address, security)
        try:
            self._dask = _DaskClient(
                self.scheduler_address,
                timeout=connect_timeout,
                security=security,
                set_as_default=False,
                name=self.id,
            )
        except (OSError, TimeoutError) as err:
            self.status = "closed"
            raise connect_error(self.scheduler_address, connect_timeout, err) from None
        self.status = "running"

    @property
    def keys(self) -> set[str]:
        """Keys submitted by this client and not cancelled."""
        return set(self._futures)

    @property
    def dask_client(self) -> distributed.Client:
        """The underlying `distributed.Client`."""
        return self._dask

    def _check_running(self) -> None:
        if self.status != "running":
            raise DispatcherError(
                f"this Client of {self.scheduler_address} is shut down; create a new Client"
            )

    def _check_not_cancelled(self, key: str, node: DispatchNode) -> None:
        if key in self._cancelled:
            raise CancelledError(
                f"node {node.label!r} (key {key}) was cancelled, and its result is gone; "
                "submit it again to recompute it"
            )

    def submit_plan(
        self, plan: Plan, restrictions: Mapping[DispatchNode, Sequence[str]] | None = None
    ) -> tuple[KeyMaker, dict[str, Future]]:
        """Submit every node of `plan` not already held, in one update; futures by key."""
        self._check_running()
        keys = KeyMaker(plan.given)
        tasks = build_tasks(
            plan.order,
            keys,
            plan.given,
            self._task_functions,
            self._policy,
            skip=self._futures.__contains__,
        )
        by_key = {keys(node): node for node in plan.order}
        for key, node in by_key.items():
            self._nodes[key] = node
            self._key_of[id(node)] = key
            self._cancelled.discard(key)
            for dep in plan.dependencies(node):
                self._dependents.setdefault(keys(dep), set()).add(key)
        if tasks:
            key_restrictions = {keys(n): list(w) for n, w in (restrictions or {}).items()}
            graph = with_restrictions(tasks, key_restrictions)
            new = self._dask.get(graph, list(tasks), sync=False)
            self._futures.update(zip(tasks, new, strict=True))
        futures = {key: self._futures[key] for key in by_key}
        for key, node in by_key.items():
            node._outcome = DaskOutcome(self, node, futures[key])
        return keys, futures

    def submit(self, node: DispatchNode, workers: str | Sequence[str] | None = None) -> None:
        """Submit `node` and every dependency not yet submitted, in one update.

        `workers` (addresses) restricts where `node` itself runs.
        """
        (node,) = _check_nodes([node], "submit()")
        restrictions = None
        if workers is not None:
            if isinstance(workers, (str, Address)):
                wanted: list[Any] = [workers]
            elif isinstance(workers, Iterable):
                wanted = list(workers)
            else:
                raise TypeError(
                    f"workers must be a worker address or a list of them "
                    f"(e.g. 'tcp://127.0.0.1:40000'), got {workers!r} ({type(workers).__name__})"
                )
            restrictions = {node: self._check_workers(wanted)}
        self.submit_plan(Plan.build([node]), restrictions)

    def _check_workers(self, wanted: list[Any]) -> list[str]:
        known = set(self._dask.scheduler_info(n_workers=-1)["workers"])
        addresses = [
            normalize_address(w) if not str(w).startswith("tls") else str(w) for w in wanted
        ]
        missing = [a for a in addresses if a not in known]
        if missing:
            raise ValueError(
                f"no worker at {', '.join(missing)} is connected to {self.scheduler_address}; "
                f"connected workers: {', '.join(sorted(known)) or 'none'}"
            )
        return addresses

    def _key(self, node: DispatchNode) -> str:
        key = self._key_of.get(id(node))
        if key is not None and self._nodes.get(key) is node:
            return key
        return KeyMaker()(node)

    def _outcome(self, node: DispatchNode) -> DaskOutcome:
        key = self._key(node)
        self._check_not_cancelled(key, node)
        if key not in self._futures:
            self.submit(node)
        outcome = node._outcome
        if not isinstance(outcome, DaskOutcome) or outcome.client is not self:
            outcome = DaskOutcome(self, node, self._futures[key])
        return outcome

    def result(self, node: DispatchNode, timeout: float | None = None) -> Any:
        """The node's value (submitting it first if this client has not)."""
        self._check_running()
        (node,) = _check_nodes([node], "result()")
        return self._outcome(node).result(timeout)

    def gather(self, nodes: Iterable[DispatchNode], timeout: float | None = None) -> list[Any]:
        """The values of `nodes`, in order."""
        self._check_running()
        outcomes = [self._outcome(n) for n in _check_nodes(nodes, "gather()")]
        try:
            return list(self._dask.gather([o.future for o in outcomes]))
        except Exception:
            for outcome in outcomes:
                if outcome.future.status != "finished":
                    outcome.result(timeout)
            raise

    def cancel(self, nodes: Iterable[DispatchNode]) -> None:
        """Stop `nodes` and their dependents and forget their results."""
        self._check_running()
        doomed: set[str] = set()
        stack = [self._key(n) for n in _check_nodes(nodes, "cancel()")]
        while stack:
            key = stack.pop()
            if key not in doomed:
                doomed.add(key)
                stack.extend(self._dependents.get(key, ()))
        futures = [self._futures.pop(k) for k in doomed if k in self._futures]
        self._cancelled |= doomed
        if futures:
            self._dask.expect_cancel_echo(cast(str, f.key) for f in futures)
            self._dask.cancel(futures)

    def replicate(self, nodes: Iterable[DispatchNode] | None = None) -> None:
        """Copy results onto every worker (default: everything submitted), and keep them there."""
        self._check_running()
        if nodes is None:
            futures = list(self._futures.values())
        else:
            futures = [self._outcome(n).future for n in _check_nodes(nodes, "replicate()")]
        if not futures:
            return
        self._dask.sync(_wait_futures, futures)
        keys = [f.key for f in futures]
        self._dask.run_on_scheduler(protect_replicas, keys=keys)
        self._dask.replicate(futures)

    def shutdown(self) -> None:
        """Forget everything this client submitted and disconnect; a second call raises."""
        if self.status != "running":
            raise DispatcherError(f"this Client of {self.scheduler_address} is already shut down")
        self.status = "closed"
        self._futures.clear()
        self._nodes.clear()
        self._key_of.clear()
        self._dependents.clear()
        self._dask.close()

    close = shutdown

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status == "running":
            self.shutdown()

    def __repr__(self) -> str:
        return (
            f"<pydispatch.Client {self.scheduler_address} {self.status}, {len(self._futures)} keys>"
        )
