"""The value types of the circuit breakers: states, configuration, transitions, snapshots."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from vatsim_collector.errors.exceptions import CollectorError


def now_utc() -> datetime:
    return datetime.now(UTC)


def count_all(exc: BaseException) -> bool:
    """The default ``counts``: without a filter every exception is a dependency failure."""
    return True


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerConfig:
    failure_threshold: int = 5
    failure_ratio: float | None = None
    ratio_window: int = 20
    ratio_min_calls: int = 10
    cooldown: float = 30.0
    #: A half-open probe not reported within this many seconds is deemed abandoned (a thread
    #: died between ``before_call`` and its outcome) and the next caller may probe instead.
    probe_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if self.failure_ratio is not None and not 0.0 < self.failure_ratio <= 1.0:
            raise ValueError("failure_ratio must be in (0, 1]")
        if self.ratio_window < 1:
            raise ValueError("ratio_window must be at least 1")
        if not 1 <= self.ratio_min_calls <= self.ratio_window:
            raise ValueError("ratio_min_calls must be between 1 and ratio_window")
        if self.cooldown < 0:
            raise ValueError("cooldown must not be negative")
        if self.probe_timeout <= 0:
            raise ValueError("probe_timeout must be positive")


class CircuitOpenError(CollectorError, wrapper=True):
    """Raised instead of calling the dependency while its breaker is open.

    A wrapper for the classifier: a rejection says nothing of why the dependency failed.

    ``retry_after`` is the number of seconds until the next probe may go through; it is 0.0
    when the breaker is half-open and another caller's probe is still running.
    """

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(name, retry_after)
        self.name = name
        self.retry_after = retry_after

    def __str__(self) -> str:
        if self.retry_after <= 0.0:
            return f"circuit breaker {self.name!r} is half-open and its probe is still running"
        return f"circuit breaker {self.name!r} is open; next probe in {self.retry_after:.1f} s"


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    name: str
    previous: BreakerState
    current: BreakerState
    at: datetime
    reason: str


BreakerListener = Callable[[BreakerTransition], None]


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    name: str
    state: BreakerState
    consecutive_failures: int
    failures: int
    successes: int
    rejected: int
    last_failure_at: datetime | None
    last_success_at: datetime | None
    opened_at: datetime | None
    next_probe_at: datetime | None
    last_error_type: str | None
    # Operator resets since start-up (``CircuitBreaker.reset``), from this node or another.
    resets: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (ISO 8601 times) for ``GET /api/errors/circuit-breakers``."""

        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "name": self.name,
            "state": self.state.value,
            "consecutive_failures": self.consecutive_failures,
            "failures": self.failures,
            "successes": self.successes,
            "rejected": self.rejected,
            "last_failure_at": iso(self.last_failure_at),
            "last_success_at": iso(self.last_success_at),
            "opened_at": iso(self.opened_at),
            "next_probe_at": iso(self.next_probe_at),
            "last_error_type": self.last_error_type,
            "resets": self.resets,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BreakerSnapshot:
        """The snapshot ``as_dict`` gave (as another node stored it); raises ``ValueError``,
        ``KeyError`` or ``TypeError`` on anything else."""

        def when(key: str) -> datetime | None:
            value = data.get(key)
            if value is None:
                return None
            if not isinstance(value, str):
                raise TypeError(f"{key} must be an ISO 8601 string")
            return datetime.fromisoformat(value)

        def count(key: str) -> int:
            value = data.get(key, 0)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{key} must be an integer")
            return value

        if not isinstance(data, Mapping):
            raise TypeError("a breaker snapshot is a JSON object")
        name = data["name"]
        error_type = data.get("last_error_type")
        if not isinstance(name, str) or not (error_type is None or isinstance(error_type, str)):
            raise TypeError("name and last_error_type must be strings")
        return cls(
            name=name,
            state=BreakerState(data["state"]),
            consecutive_failures=count("consecutive_failures"),
            failures=count("failures"),
            successes=count("successes"),
            rejected=count("rejected"),
            last_failure_at=when("last_failure_at"),
            last_success_at=when("last_success_at"),
            opened_at=when("opened_at"),
            next_probe_at=when("next_probe_at"),
            last_error_type=error_type,
            resets=count("resets"),
        )
