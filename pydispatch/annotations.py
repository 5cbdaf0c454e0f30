"""Per-node dask annotations: resources, priority, placement (workers) and retries.

They are node attributes, set like `label` and `pure`: on the node
(`node.resources = {"GPU": 1}`), by `@op(resources=...)`, or for every node made
inside a `with annotate(...):` block, as with `dask.annotate`. They are never `Op`
keyword arguments (those belong to the function). The dask executor hands them to
dask as task annotations, so dask itself enforces them.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

ANNOTATIONS = ("resources", "priority", "workers", "retries")
"""The annotation attributes every node has (None: not set)."""

_current: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "pydispatch_annotations", default=None
)


def check_annotation(name: str, value: Any) -> Any:
    """`value` in the form dask takes for annotation `name`; `ValueError`/`TypeError` if bad."""
    if value is None:
        return None
    if name == "resources":
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
            for k, v in value.items()
        ):
            raise TypeError(
                f"resources must be a dict of resource name -> amount > 0, e.g. "
                f"{{'GPU': 1}}, got {value!r}"
            )
        return dict(value)
    if name == "priority":
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"priority must be an int (higher runs first), got {value!r}")
        return value
    if name == "workers":
        if isinstance(value, str):
            return [value]
        if isinstance(value, Sequence) and value and all(isinstance(w, str) for w in value):
            return list(value)
        raise TypeError(
            f"workers must be a worker address or a non-empty list of them "
            f"(e.g. 'tcp://127.0.0.1:40000'), got {value!r}"
        )
    if name == "retries":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"retries must be an int >= 0, got {value!r}")
        return value
    raise TypeError(f"unknown annotation {name!r}; the annotations are {', '.join(ANNOTATIONS)}")


def check_annotations(annotations: Mapping[str, Any]) -> dict[str, Any]:
    """The annotations that are set, each checked."""
    return {
        name: check_annotation(name, value)
        for name, value in annotations.items()
        if value is not None
    }


@contextlib.contextmanager
def annotate(
    *,
    resources: Mapping[str, float] | None = None,
    priority: int | None = None,
    workers: str | Sequence[str] | None = None,
    retries: int | None = None,
) -> Iterator[None]:
    """Annotate every node made inside the block (inner blocks win), like `dask.annotate`.

    ```python
    with pydispatch.annotate(resources={"GPU": 1}, priority=10):
        trained = Op(train, data)
    ```
    """
    new = check_annotations(
        {"resources": resources, "priority": priority, "workers": workers, "retries": retries}
    )
    token = _current.set({**current_annotations(), **new})
    try:
        yield
    finally:
        _current.reset(token)


def current_annotations() -> dict[str, Any]:
    """The annotations of the enclosing `annotate` blocks."""
    return _current.get() or {}
