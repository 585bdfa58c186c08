"""Counts, errors and latency percentiles per named query, and a bounded slow-query log."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

# Enough recent samples for stable p99s, bounded so memory never grows with uptime.
SAMPLES_PER_QUERY = 2048


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(fraction * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


@dataclass
class QueryRecord:
    count: int = 0
    errors: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0
    samples: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES_PER_QUERY))

    def summary(self) -> dict[str, float | int]:
        ordered = sorted(self.samples)
        return {
            "count": self.count,
            "errors": self.errors,
            "mean_ms": round(self.total_ms / self.count, 3) if self.count else 0.0,
            "p50_ms": round(percentile(ordered, 0.50), 3),
            "p95_ms": round(percentile(ordered, 0.95), 3),
            "p99_ms": round(percentile(ordered, 0.99), 3),
            "max_ms": round(self.max_ms, 3),
        }


@dataclass(frozen=True)
class SlowQuery:
    name: str
    at: datetime
    duration_ms: float
    failed: bool


class QueryStats:
    def __init__(self, *, slow_query_ms: float, slow_log_size: int) -> None:
        self.slow_query_ms = slow_query_ms
        self._records: dict[str, QueryRecord] = {}
        self._slow: deque[SlowQuery] = deque(maxlen=slow_log_size)
        self._lock = threading.Lock()

    def record(self, name: str, duration_ms: float, *, failed: bool, at: datetime) -> None:
        with self._lock:
            record = self._records.get(name)
            if record is None:
                record = self._records[name] = QueryRecord()
            record.count += 1
            record.errors += int(failed)
            record.total_ms += duration_ms
            record.max_ms = max(record.max_ms, duration_ms)
            record.samples.append(duration_ms)
            if duration_ms >= self.slow_query_ms:
                self._slow.append(SlowQuery(name, at, duration_ms, failed))

    def summaries(self) -> dict[str, dict[str, float | int]]:
        with self._lock:
            return {name: rec.summary() for name, rec in sorted(self._records.items())}

    def slow_queries(self) -> list[SlowQuery]:
        with self._lock:
            return list(reversed(self._slow))

    @property
    def slow_log_size(self) -> int:
        return self._slow.maxlen or 0
