"""HealthMonitor: a periodic probe of the database and of how fresh the stored data is.

The verdict is ``ok``, ``degraded`` (working, but something needs attention) or ``down`` (the
database cannot be queried, or the latest stored snapshot is dated in the future: then every
real snapshot after it looks old and collection has in effect stopped), always with the
reasons. A change of verdict is logged once and
handed to the transition listeners (the event bus subscribes there); repeated probes with the
same verdict stay quiet.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import structlog
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from vatsim_collector.store import schema as t
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.manager import PoolStatus

log = structlog.get_logger(__name__)


class Verdict(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"


@dataclass(frozen=True)
class HealthReport:
    status: Verdict
    reasons: tuple[str, ...]
    checked_at: datetime
    latency_ms: float | None
    pool: PoolStatus
    last_snapshot_at: datetime | None
    freshness_seconds: float | None
    backlog: int
    free_disk_bytes: int | None


@dataclass(frozen=True)
class Transition:
    at: datetime
    previous: Verdict | None
    current: Verdict
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class HealthLimits:
    stale_after_seconds: float = 120.0
    latency_degraded_ms: float = 500.0
    pool_saturation_degraded: float = 0.9
    min_free_disk_bytes: int = 500 * 1024**2
    # How far ahead of this clock the latest snapshot may be dated before it is a fault: clock
    # skew between the feed's servers and this machine, not a document from the future.
    future_tolerance_seconds: float = 2.0


TransitionListener = Callable[[Transition], None]
# A further check of a component beside the database (the outbox and NATS, say): the reasons
# it is degraded, none when it is fine. Called from the probe's thread.
HealthCheck = Callable[[], list[str]]


@dataclass
class HealthMonitor:
    db: DatabaseService
    limits: HealthLimits = field(default_factory=HealthLimits)
    # Snapshots fetched but not yet stored (the spool): a backlog means degraded.
    backlog: Callable[[], int] = lambda: 0
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    listeners: list[TransitionListener] = field(default_factory=list)
    checks: list[HealthCheck] = field(default_factory=list)
    last: HealthReport | None = None
    transitions: deque[Transition] = field(default_factory=lambda: deque(maxlen=100))

    def probe(self) -> HealthReport:
        now = self.clock()
        reasons: list[str] = []
        latency_ms: float | None = None
        last_snapshot: datetime | None = None
        reachable = True
        try:
            started = time.perf_counter()
            with self.db.read("health.probe") as conn:
                last_snapshot = conn.execute(
                    select(func.max(t.snapshots.c.update_timestamp)).where(
                        t.snapshots.c.status == "accepted"
                    )
                ).scalar_one()
            latency_ms = round((time.perf_counter() - started) * 1000, 3)
        except SQLAlchemyError as exc:
            reachable = False
            reasons.append(f"database cannot be queried ({type(exc).__name__})")
        if isinstance(last_snapshot, datetime) and last_snapshot.tzinfo is None:
            last_snapshot = last_snapshot.replace(tzinfo=UTC)  # SQLite's MAX skips the type
        pool = self.db.pool_status()
        backlog = self.backlog()
        free = self._free_disk()
        freshness = None if last_snapshot is None else (now - last_snapshot).total_seconds()
        faults = self._faults(freshness)
        if reachable:
            reasons.extend(faults)
            reasons.extend(self._degradations(latency_ms, pool, freshness, backlog, free))
            reasons.extend(self._checked())
        if not reachable or faults:
            status = Verdict.DOWN
        else:
            status = Verdict.DEGRADED if reasons else Verdict.OK
        report = HealthReport(
            status=status,
            reasons=tuple(reasons),
            checked_at=now,
            latency_ms=latency_ms,
            pool=pool,
            last_snapshot_at=last_snapshot,
            freshness_seconds=None if freshness is None else round(freshness, 3),
            backlog=backlog,
            free_disk_bytes=free,
        )
        self._publish(report)
        return report

    def _faults(self, freshness: float | None) -> list[str]:
        """What makes the service down although the database answers."""
        tolerance = self.limits.future_tolerance_seconds
        if freshness is not None and freshness < -tolerance:
            return [
                f"latest stored snapshot is dated {-freshness:.0f} s in the future"
                f" (tolerance {tolerance:g} s): later snapshots would count as old"
            ]
        return []

    def _degradations(
        self,
        latency_ms: float | None,
        pool: PoolStatus,
        freshness: float | None,
        backlog: int,
        free: int | None,
    ) -> list[str]:
        limits = self.limits
        found = []
        if latency_ms is not None and latency_ms > limits.latency_degraded_ms:
            found.append(
                f"database round trip {latency_ms:.0f} ms (limit {limits.latency_degraded_ms:g})"
            )
        if pool.saturation >= limits.pool_saturation_degraded:
            found.append(f"connection pool {pool.saturation:.0%} in use")
        if freshness is None:
            found.append("no snapshot stored yet")
        elif freshness < 0:
            pass  # in the future: a fault beyond the tolerance, clock skew within it
        elif freshness > limits.stale_after_seconds:
            found.append(
                f"last stored snapshot is {freshness:.0f} s old"
                f" (limit {limits.stale_after_seconds:g} s)"
            )
        if backlog:
            found.append(f"{backlog} fetched snapshots waiting to be stored")
        if free is not None and free < limits.min_free_disk_bytes:
            found.append(f"only {free // 1024**2} MiB free disk for the database")
        return found

    def _checked(self) -> list[str]:
        found: list[str] = []
        for check in list(self.checks):
            try:
                found.extend(check())
            except Exception:
                name = getattr(check, "__name__", type(check).__name__)
                log.exception("health check failed", check=name)
        return found

    def _free_disk(self) -> int | None:
        path = self.db.manager.sqlite_file
        if path is None:
            return None
        try:
            return shutil.disk_usage(Path(path).resolve().parent).free
        except OSError:
            return None  # the folder itself is gone: the probe reports the database down

    def _publish(self, report: HealthReport) -> None:
        previous = self.last.status if self.last else None
        self.last = report
        if previous == report.status:
            return
        change = Transition(report.checked_at, previous, report.status, report.reasons)
        self.transitions.append(change)
        level = log.info if report.status is Verdict.OK else log.warning
        level(
            "database health changed",
            previous=None if previous is None else str(previous),
            status=str(report.status),
            reasons=list(report.reasons),
        )
        for listener in list(self.listeners):
            try:
                listener(change)
            except Exception:
                log.exception("health transition listener failed")

    def current(self) -> HealthReport:
        """The latest verdict, probing now if there is none yet."""
        return self.last or self.probe()

    async def run(self, interval: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.to_thread(self.probe)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
