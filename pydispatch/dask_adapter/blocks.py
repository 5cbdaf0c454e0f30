"""The worker side of fusion: one dask task that evaluates a block of nodes in order.

A block's value is a `BlockValues`: the value of each member node it keeps, by the
node's key. A member that raises does not fail the block: it becomes a `Failure`
in the block's value, its dependents become `Upstream` (they do not run), and the
block's other members still run. A block with a failure has the type
`BlockWithErrors`, which the scheduler reports to the client with the key, so a
client learns of a failure without fetching the value.

Everything here is picklable and imported by reference on the workers.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import cloudpickle

from ..tracebacks import format_user_frames
from .transfer import check_transferable


class Failure:
    """A node that raised: the exception (picklable) and its traceback text."""

    __slots__ = ("error", "trace")

    def __init__(self, error: BaseException, trace: str):
        self.error = error
        self.trace = trace

    def __reduce__(self) -> tuple[Any, ...]:
        return (Failure, (self.error, self.trace))


class Upstream:
    """A node that did not run because its dependency `key` failed."""

    __slots__ = ("key",)

    def __init__(self, key: str):
        self.key = key

    def __reduce__(self) -> tuple[Any, ...]:
        return (Upstream, (self.key,))


class UpstreamFailed(Exception):
    """Raised by a task that needs the value of a fused node that failed (key `key`)."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"its dependency {self.key} failed"


class BlockValues:
    """What a block task returns: member values by key, and per-label timings."""

    __slots__ = ("timings", "values")

    def __init__(self, values: dict[str, Any], timings: dict[str, tuple[float, int]]):
        self.values = values
        self.timings = timings

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.values, self.timings))


class BlockWithErrors(BlockValues):
    """A block's value when at least one member failed (or did not run)."""

    __slots__ = ()


def member_value(holder: Any, key: str) -> Any:
    """The value of node `key` from its holder's value; `UpstreamFailed` if it failed."""
    if isinstance(holder, Failure):
        raise UpstreamFailed(key)
    if isinstance(holder, BlockValues):
        value = holder.values.get(key, MISSING)
        if value is MISSING:
            raise KeyError(f"the block does not keep the value of {key}")
        if isinstance(value, (Failure, Upstream)):
            raise UpstreamFailed(key)
        return value
    return holder


def failed_in(holder: Any, key: str) -> bool:
    """Whether node `key` failed (or did not run), its holder's value being `holder`."""
    return isinstance(holder, Failure) or (
        isinstance(holder, BlockValues) and isinstance(holder.values.get(key), (Failure, Upstream))
    )


def entry_of(holder: Any, key: str) -> Any:
    """Node `key`'s entry in its holder's value: a value, a `Failure` or an `Upstream`."""
    if isinstance(holder, BlockValues):
        return holder.values.get(key, MISSING)
    return holder


class Guarded:
    """A task function whose exception becomes its value, as a `Failure`.

    For an unfused node that a block depends on: its failure then reaches the block
    as data, so the block's members that do not depend on it still run.
    """

    __slots__ = ("func",)

    def __init__(self, func: Callable[..., Any]):
        self.func = func

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.func(*args, **kwargs)
        except Exception as err:
            return Failure(_picklable(err), format_user_frames(err.__traceback__))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Guarded, (self.func,))

    def __dask_tokenize__(self) -> Any:
        return ("pydispatch.Guarded", self.func)


def constant(value: Any) -> Any:
    """Member function of a data node or a given value: the value itself."""
    return value


def pick(holder: Any, key: str) -> Any:
    """Task function: node `key`'s value out of a block (for an unfused dependent)."""
    return member_value(holder, key)


MISSING = object()


def _picklable(error: BaseException) -> BaseException:
    """`error`, or an `Exception` of its repr when it cannot be pickled (as dask does)."""
    try:
        pickle.dumps(error)
    except Exception:
        try:
            cloudpickle.dumps(error)
        except Exception:
            return Exception(repr(error))
    return error


class Member(NamedTuple):
    """One node of a block: its key, label, function and arguments.

    An argument that stands for another node's value is None in `args` (or
    `kwargs`) and listed in `refs` as (position, or keyword name; the node's key):
    a block then travels as plain tuples, which pickle without a call per member.
    """

    key: str
    label: str
    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    name: str
    """The function's name, for messages."""
    refs: tuple[tuple[int | str, str], ...] = ()


class RunBlock:
    """Task function of a block: evaluates `members` in order; returns `BlockValues`.

    The task's arguments are the values of `sources` (task keys), in order; `where`
    maps each outside node key a member needs to its position among them. `keep`
    is the member keys whose values the block returns (None: all); values that are
    returned are checked to be transferable, others never leave the worker.
    `members` are `Member`s, or the plain tuples they travel as.
    """

    __slots__ = ("keep", "members", "where")

    def __init__(
        self,
        members: Sequence[tuple[Any, ...]],
        where: Mapping[str, int],
        keep: frozenset[str] | None,
    ):
        self.members = tuple(members)
        self.where = dict(where)
        self.keep = keep

    def __reduce__(self) -> tuple[Any, ...]:
        plain = tuple(tuple(m) for m in self.members)  # no per-member reduce, either way
        return (RunBlock, (plain, self.where, self.keep))

    def __dask_tokenize__(self) -> Any:
        """dask's token of the block: its members' content keys (no pickling of the block)."""
        keep = None if self.keep is None else sorted(self.keep)
        return ("pydispatch.RunBlock", [m[0] for m in self.members], sorted(self.where), keep)

    def __call__(self, *sources: Any) -> BlockValues:
        values: dict[str, Any] = {}
        failed = False
        totals: dict[str, list[float]] = {}
        keep = self.keep
        where = self.where
        clock = time.perf_counter
        for key, label, func, args, kwargs, name, refs in self.members:
            if refs:
                blocked: str | None = None
                call_args = list(args)
                call_kwargs = kwargs
                for slot, ref in refs:
                    if ref in values:
                        value = values[ref]
                    else:
                        value = sources[where[ref]]
                        if isinstance(value, BlockValues):
                            value = value.values.get(ref, MISSING)
                        values[ref] = value
                    if isinstance(value, (Failure, Upstream)) or value is MISSING:
                        blocked = ref
                        break
                    if type(slot) is int:
                        call_args[slot] = value
                    else:
                        if call_kwargs is kwargs:
                            call_kwargs = dict(kwargs)
                        call_kwargs[slot] = value
                if blocked is not None:
                    values[key] = Upstream(blocked)
                    failed = True
                    continue
            else:
                call_args, call_kwargs = args, kwargs
            start = clock()
            try:
                result = func(*call_args, **call_kwargs)
                if keep is None or key in keep:
                    result = check_transferable(result, name, key)
            except Exception as err:
                values[key] = Failure(_picklable(err), format_user_frames(err.__traceback__))
                failed = True
                continue
            finally:
                total = totals.get(label)
                if total is None:
                    totals[label] = [clock() - start, 1]
                else:
                    total[0] += clock() - start
                    total[1] += 1
            values[key] = result
        # Failures are always kept (they are small): a kept member that failed upstream
        # is reported with the failure's own error and trace.
        kept = {
            m[0]: values[m[0]]
            for m in self.members
            if keep is None or m[0] in keep or isinstance(values[m[0]], (Failure, Upstream))
        }
        timings = {label: (t[0], int(t[1])) for label, t in totals.items()}
        return (BlockWithErrors if failed else BlockValues)(kept, timings)
