"""The registry of named circuit breakers, so components that share a dependency share its breaker.

Listeners registered here follow every breaker, including those created later, which is what
the error API and the service wiring need; a single breaker's behaviour lives in
:mod:`vatsim_collector.errors.breaker`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

import structlog

from vatsim_collector.config import Settings
from vatsim_collector.errors.breaker import (
    BreakerConfig,
    BreakerListener,
    BreakerSnapshot,
    BreakerTransition,
    CircuitBreaker,
    count_all,
    now_utc,
)

__all__ = ["BreakerRegistry"]

log = structlog.get_logger(__name__)


class BreakerRegistry:
    """Named breakers, one per dependency or bus handler, sharing listeners and clocks."""

    def __init__(
        self,
        default_config: BreakerConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.default_config = default_config if default_config is not None else BreakerConfig()
        self._clock = clock
        self._wall_clock = wall_clock
        self._breakers: dict[str, CircuitBreaker] = {}
        self._listeners: list[BreakerListener] = []
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> BreakerRegistry:
        """Breakers opening after ``VATSIM_BREAKER_FAILURE_THRESHOLD`` failures in a row and
        probing after ``VATSIM_BREAKER_COOLDOWN`` seconds."""
        return cls(
            BreakerConfig(
                failure_threshold=settings.breaker_failure_threshold,
                cooldown=settings.breaker_cooldown,
            )
        )

    def get_or_create(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        counts: Callable[[BaseException], bool] | None = None,
    ) -> CircuitBreaker:
        """Return the breaker called ``name``, creating it on first use.

        Asking again with a *different* explicit config is a programming error (two components
        disagreeing about one dependency) and raises ``ValueError``.
        """
        with self._lock:
            breaker = self._breakers.get(name)
            if breaker is not None:
                if config is not None and config != breaker.config:
                    raise ValueError(f"breaker {name!r} already exists with {breaker.config}")
                return breaker
            breaker = CircuitBreaker(
                name,
                config if config is not None else self.default_config,
                clock=self._clock,
                wall_clock=self._wall_clock,
                counts=counts if counts is not None else count_all,
            )
            breaker.add_listener(self._dispatch)
            self._breakers[name] = breaker
            return breaker

    def get(self, name: str) -> CircuitBreaker | None:
        return self._breakers.get(name)

    def names(self) -> list[str]:
        return sorted(self._breakers)

    def snapshots(self) -> list[BreakerSnapshot]:
        return [self._breakers[name].snapshot() for name in self.names()]

    def reset(self, name: str) -> bool:
        """Close the named breaker; False if there is no such breaker."""
        breaker = self._breakers.get(name)
        if breaker is None:
            return False
        breaker.reset()
        return True

    def add_listener(self, listener: BreakerListener) -> None:
        """Listen to transitions of every breaker, existing and future."""
        self._listeners.append(listener)

    def _dispatch(self, transition: BreakerTransition) -> None:
        for listener in list(self._listeners):
            try:
                listener(transition)
            except Exception:
                log.exception("circuit breaker listener failed", breaker=transition.name)
