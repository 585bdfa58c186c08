"""Counters and latency percentiles of the bus, per event type and per handler.

Everything is updated on the event loop by the bus itself, so plain integers suffice. Latency
percentiles come from the last ``window`` deliveries of each handler, sorted only when someone
asks: a delivery costs one ``deque.append``.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EventMetrics", "HandlerMetrics", "percentile"]

LATENCY_WINDOW = 2048


def percentile(ordered: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an ascending list; None when it is empty."""
    if not ordered:
        return None
    rank = max(1, -(-int(fraction * 1000) * len(ordered) // 1000))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class HandlerMetrics:
    successes: int = 0
    failures: int = 0  # deliveries that failed every attempt (dead-lettered)
    timeouts: int = 0  # attempts cut off by the handler's timeout
    retries: int = 0
    shed: int = 0  # events dropped because the queue was full
    snapshots_with_shed_events: int = 0  # publish calls (snapshots) that shed any of its events
    blocked: int = 0  # publishes that had to wait for room in the queue
    rejected: int = 0  # events dead-lettered without a call while the breaker was open
    dead_lettered: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))

    def latency_ms(self) -> dict[str, float | None]:
        ordered = sorted(self.latencies)
        return {
            f"p{int(q * 100)}": None if (v := percentile(ordered, q)) is None else v * 1000
            for q in (0.5, 0.95, 0.99)
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "successes": self.successes,
            "failures": self.failures,
            "timeouts": self.timeouts,
            "retries": self.retries,
            "shed": self.shed,
            "snapshots_with_shed_events": self.snapshots_with_shed_events,
            "blocked": self.blocked,
            "rejected": self.rejected,
            "dead_lettered": self.dead_lettered,
            "latency_ms": self.latency_ms(),
        }


class EventMetrics:
    def __init__(self) -> None:
        self.published: Counter[str] = Counter()
        self.delivered: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.handlers: dict[str, HandlerMetrics] = {}

    def handler(self, name: str) -> HandlerMetrics:
        found = self.handlers.get(name)
        if found is None:
            found = self.handlers[name] = HandlerMetrics()
        return found

    def by_type(self) -> dict[str, dict[str, int]]:
        types = sorted(set(self.published) | set(self.delivered) | set(self.failed))
        return {
            name: {
                "published": self.published[name],
                "delivered": self.delivered[name],
                "failed": self.failed[name],
            }
            for name in types
        }
