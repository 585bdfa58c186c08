"""Aggregation behind ``ErrorManager.analytics``, apart from the manager's recording path.

Records reach the analytics from three places -- grouped rows from the database, the queue not
yet flushed and the in-memory window -- and :class:`Data` gives them one shape so the summary
and the time series are computed the same way whichever source answered.

The database holds every node's records (each names its node); the queue and the window hold
only this node's, so a summary from the window alone speaks for this node only.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vatsim_collector.errors.exceptions import Category, Severity
from vatsim_collector.errors.records import ErrorRecord
from vatsim_collector.errors.scrub import scrub_text

MAX_BUCKETS = 1000
TOP_ERRORS = 10


@dataclass(frozen=True)
class Recovery:
    at: datetime
    strategy: str
    succeeded: bool


@dataclass
class Top:
    count: int
    last_seen: datetime
    services: set[str]
    service_count: int = 0


@dataclass
class Data:
    """Aggregates from the database, the queue or the window, in one shape."""

    total: int = 0
    transient: int = 0
    by: dict[str, Counter[str]] = field(
        default_factory=lambda: {
            k: Counter() for k in ("category", "severity", "service", "type", "node")
        }
    )
    tops: dict[tuple[str, str], Top] = field(default_factory=dict)
    times: list[tuple[datetime, str]] = field(default_factory=list)

    def add_group(
        self,
        category: str,
        severity: str,
        service: str,
        error_type: str,
        transient: bool,
        n: int,
        node: str | None = None,
    ) -> None:
        self.total += n
        self.transient += n if transient else 0
        self.by["category"][category] += n
        self.by["severity"][severity] += n
        self.by["service"][service] += n
        self.by["type"][error_type] += n
        if node is not None:  # records stored before nodes were named have none
            self.by["node"][node] += n

    def add(self, records: Iterable[ErrorRecord]) -> None:
        for r in records:
            category = r.category.value
            self.add_group(
                category, r.severity.value, r.service, r.error_type, r.transient, 1, r.node
            )
            top = self.tops.get((r.error_type, r.message))
            if top is None:
                self.tops[(r.error_type, r.message)] = Top(1, r.occurred_at, {r.service})
            else:
                top.count += 1
                top.last_seen = max(top.last_seen, r.occurred_at)
                top.services.add(r.service)
            self.times.append((r.occurred_at, category))

    def summary(self) -> dict[str, Any]:
        ranked = sorted(self.tops.items(), key=lambda kv: (-kv[1].count, -_ts(kv[1].last_seen)))
        return {
            "total": self.total,
            "transient": self.transient,
            "permanent": self.total - self.transient,
            "by_category": _zero_filled(self.by["category"], [c.value for c in Category]),
            "by_severity": _zero_filled(self.by["severity"], [s.value for s in Severity]),
            "by_service": dict(self.by["service"].most_common()),
            "by_type": dict(self.by["type"].most_common()),
            "by_node": dict(self.by["node"].most_common()),
            "top_errors": [
                {
                    "error_type": error_type,
                    # Scrubbed when recorded; again here for rows other writers stored.
                    "message": scrub_text(message),
                    "count": top.count,
                    "last_seen": top.last_seen.isoformat(),
                    "service": max(top.services),
                    "services": max(top.service_count, len(top.services)),
                }
                for (error_type, message), top in ranked[:TOP_ERRORS]
            ],
        }


def _ts(at: datetime) -> float:
    return at.timestamp()


def _zero_filled(counts: Counter[str], names: list[str]) -> dict[str, int]:
    out = {name: counts.get(name, 0) for name in names}
    out.update((k, v) for k, v in counts.items() if k not in out)
    return out


def recovery_summary(recoveries: list[Recovery]) -> dict[str, Any]:
    by_strategy: dict[str, dict[str, int]] = {}
    for r in recoveries:
        entry = by_strategy.setdefault(r.strategy, {"attempts": 0, "successes": 0})
        entry["attempts"] += 1
        entry["successes"] += r.succeeded
    attempts = len(recoveries)
    successes = sum(r.succeeded for r in recoveries)
    return {
        "attempts": attempts,
        "successes": successes,
        "failures": attempts - successes,
        "success_rate": successes / attempts if attempts else None,
        "by_strategy": {
            name: {
                **entry,
                "failures": entry["attempts"] - entry["successes"],
                "success_rate": entry["successes"] / entry["attempts"],
            }
            for name, entry in sorted(by_strategy.items())
        },
    }


def series(
    times: list[tuple[datetime, str]], since: datetime, until: datetime, minutes: int
) -> dict[str, Any]:
    """Counts per bucket from ``since`` to ``until``, edges aligned to the bucket size."""
    span = (until - since).total_seconds()
    size = max(minutes * 60, math.ceil(span / MAX_BUCKETS / 60) * 60)
    first = math.floor(since.timestamp() / size) * size
    n = max(1, math.floor((until.timestamp() - first) / size) + 1)
    counts = [0] * n
    by_category: list[Counter[str]] = [Counter() for _ in range(n)]
    for at, category in times:
        index = min(max(int((at.timestamp() - first) // size), 0), n - 1)
        counts[index] += 1
        by_category[index][category] += 1
    return {
        "bucket_minutes": size // 60,
        "buckets": [
            {
                "start": datetime.fromtimestamp(first + i * size, UTC).isoformat(),
                "count": counts[i],
                "by_category": dict(by_category[i]),
            }
            for i in range(n)
        ],
    }
