"""When to retry a failed node, and how long to wait first."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import DispatcherError

RetryPredicate = Callable[[BaseException], bool]


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: `first`, then times `factor` each time, at most `maximum`,
    each delay scaled by a random factor in [1 - jitter, 1 + jitter]."""

    first: float = 0.05
    factor: float = 5.0
    maximum: float = 10.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        for name in ("first", "factor", "maximum", "jitter"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"Backoff {name} must be a number >= 0, got {value!r}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1 for the first retry)."""
        base = min(self.first * self.factor ** (attempt - 1), self.maximum)
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)


@dataclass(frozen=True)
class RetryPolicy:
    """Retry a failure at most `retries` times, and only when a predicate accepts it."""

    retries: int = 0
    retry_on: tuple[RetryPredicate, ...] = ()
    backoff: Backoff = field(default_factory=Backoff)

    @classmethod
    def checked(
        cls, retries: int, retry_on: Iterable[RetryPredicate], backoff: Backoff | None
    ) -> RetryPolicy:
        """A policy from user input; `ValueError`/`TypeError` saying what is wrong."""
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an int >= 0, got {retries!r}")
        if callable(retry_on):
            retry_on = (retry_on,)
        if isinstance(retry_on, (str, bytes)) or not isinstance(retry_on, Iterable):
            raise TypeError(
                f"retry_on must be a callable or a list of callables taking the exception "
                f"and returning True to retry, got {retry_on!r} ({type(retry_on).__name__})"
            )
        predicates = tuple(retry_on)
        for predicate in predicates:
            if not callable(predicate):
                raise TypeError(
                    f"retry_on must hold callables taking the exception and returning "
                    f"True to retry, got {predicate!r}"
                )
        if backoff is not None and not isinstance(backoff, Backoff):
            raise TypeError(f"backoff must be a pydispatch.Backoff, got {backoff!r}")
        return cls(retries, predicates, backoff or Backoff())

    def should_retry(self, err: BaseException, attempt: int) -> bool:
        """Whether attempt number `attempt` (0 = first run), failing with `err`, gets another."""
        if attempt >= self.retries:
            return False
        for predicate in self.retry_on:
            try:
                if predicate(err):
                    return True
            except Exception as failure:
                raise DispatcherError(
                    f"the retry_on predicate {predicate!r} raised {failure!r} while judging "
                    f"{err!r}; a predicate must return True (retry) or False"
                ) from failure
        return False

    def call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call `func`, retrying as the policy says (sleeps in the calling thread)."""
        attempt = 0
        while True:
            try:
                return func(*args, **kwargs)
            except Exception as err:
                if not self.should_retry(err, attempt):
                    raise
                attempt += 1
                time.sleep(self.backoff.delay(attempt))
