"""ErrorManager: the one place every component reports failures to.

``record()`` is cheap and never touches the database: it classifies the exception, scrubs its
message and the caller's context, appends the record to a bounded in-memory window, counts it,
logs one (scrubbed) line and queues it. ``flush()`` writes the queue to ``error_records`` in
one transaction; while the database is down the records stay queued (bounded, the oldest are
dropped and counted) and go out with a later flush. ``run_flusher()`` flushes periodically.

``analytics(hours)`` summarises the last ``hours`` from the database (plus what is still
queued), or from the in-memory window when there is no database or it cannot be read.

Each record names the node that raised it (``node``, the service passes ``Settings.node``).
The database is shared by every node, so analytics from it cover them all (or one, with
``node=``); the queue and the window are this node's alone, so a summary read from the window
covers this node only, and the recovery counts (kept in memory) are this node's in any case.

Whether an error was transient is not a column of ``error_records``; it is stored in the JSON
context under the reserved key ``"$transient"`` (written first, so a caller's key of that
name is overwritten).
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from vatsim_collector.errors.analytics import (
    Data,
    Recovery,
    recovery_summary,
    series,
)
from vatsim_collector.errors.exceptions import Severity
from vatsim_collector.errors.records import ErrorRecord
from vatsim_collector.errors.scrub import scrub_mapping, scrub_text
from vatsim_collector.errors.sink import ErrorRecordSink
from vatsim_collector.errors.taxonomy import classify

log = structlog.get_logger(__name__)

MESSAGE_LIMIT = 2000

_LOG_LEVEL = {
    Severity.LOW: "info",
    Severity.MEDIUM: "warning",
    Severity.HIGH: "error",
    Severity.CRITICAL: "critical",
}


def _utc_now() -> datetime:
    return datetime.now(UTC)


def error_type_name(exc: BaseException) -> str:
    """``module.QualName`` of the exception's type (builtins without a module)."""
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _message(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        text = f"<unprintable {type(exc).__name__}>"
    # Scrub before the final cut: a cut through a URL could leave half a password unmatched.
    text = scrub_text(text[: MESSAGE_LIMIT * 8])
    if len(text) > MESSAGE_LIMIT:
        text = text[: MESSAGE_LIMIT - 1] + "…"
    return text or type(exc).__name__


class ErrorManager:
    def __init__(
        self,
        sink: ErrorRecordSink | None,
        *,
        window_size: int = 10_000,
        max_queued: int | None = None,
        clock: Callable[[], datetime] = _utc_now,
        node: str | None = None,
    ) -> None:
        if window_size < 1:
            raise ValueError("window_size must be at least 1")
        # Written into every record, so analytics over the shared table can tell nodes apart.
        self.node = node
        # Where records are kept (the database, through store.error_records); None: memory only.
        self.sink = sink
        self._clock = clock
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._window: deque[ErrorRecord] = deque(maxlen=window_size)
        self._max_queued = max_queued if max_queued is not None else window_size
        self._queue: deque[ErrorRecord] = deque()
        self._recoveries: deque[Recovery] = deque(maxlen=window_size)
        self._counts: dict[str, Counter[str]] = {
            k: Counter() for k in ("category", "severity", "service", "type")
        }
        self.recorded = 0
        self.persisted = 0
        self.dropped = 0
        self.flush_failures = 0
        self._db_down = False

    # -- reporting -----------------------------------------------------------------------

    def record(
        self,
        exc: BaseException,
        *,
        service: str,
        operation: str,
        context: Mapping[str, Any] | None = None,
    ) -> ErrorRecord:
        """Classify, scrub, count, log and queue ``exc``; no I/O besides the log line."""
        found = classify(exc)
        ctx: dict[str, Any] = scrub_mapping(context) if context else {}
        cause = exc.__cause__
        if cause is not None and "cause" not in ctx:
            ctx["cause"] = f"{error_type_name(cause)}: {_message(cause)}"
        record = ErrorRecord(
            occurred_at=self._clock(),
            service=service,
            operation=operation,
            category=found.category,
            severity=found.severity,
            transient=found.transient,
            error_type=error_type_name(exc),
            message=_message(exc),
            context=ctx,
            node=self.node,
        )
        with self._lock:
            self._window.append(record)
            self.recorded += 1
            self._counts["category"][record.category.value] += 1
            self._counts["severity"][record.severity.value] += 1
            self._counts["service"][service] += 1
            self._counts["type"][record.error_type] += 1
            if self.sink is not None:
                if len(self._queue) >= self._max_queued:
                    self._queue.popleft()
                    self.dropped += 1
                self._queue.append(record)
        getattr(log, _LOG_LEVEL[record.severity])(
            "error recorded",
            service=service,
            operation=operation,
            category=record.category.value,
            severity=record.severity.value,
            transient=record.transient,
            error_type=record.error_type,
            message=record.message,
            context=ctx,
        )
        return record

    def record_recovery(self, strategy: str, succeeded: bool) -> None:
        """Count one recovery attempt of ``strategy`` (retry, breaker fallback, spool, ...)."""
        with self._lock:
            self._recoveries.append(Recovery(self._clock(), strategy, succeeded))

    # -- persistence ---------------------------------------------------------------------

    @property
    def queued(self) -> int:
        return len(self._queue)

    def flush(self) -> int:
        """Write queued records in one transaction; the number written (0 if the DB is down)."""
        if self.sink is None:
            return 0
        with self._flush_lock:
            with self._lock:
                batch = list(self._queue)
                self._queue.clear()
            if not batch:
                return 0
            try:
                self.sink.persist(batch)
            except Exception as exc:  # whatever the store raises: keep them, try again later
                self._requeue(batch)
                self.flush_failures += 1
                if not self._db_down:
                    self._db_down = True
                    log.warning(
                        "error records not persisted; kept queued",
                        queued=self.queued,
                        error=scrub_text(f"{type(exc).__name__}: {exc}")[:MESSAGE_LIMIT],
                    )
                return 0
            except BaseException:
                self._requeue(batch)
                raise
            if self._db_down:
                self._db_down = False
                log.info("error records persisted again", written=len(batch))
            self.persisted += len(batch)
            return len(batch)

    def _requeue(self, batch: list[ErrorRecord]) -> None:
        with self._lock:
            self._queue.extendleft(reversed(batch))
            excess = len(self._queue) - self._max_queued
            for _ in range(max(excess, 0)):
                self._queue.popleft()
            self.dropped += max(excess, 0)

    async def run_flusher(self, interval: float, stop: asyncio.Event) -> None:
        """Flush every ``interval`` seconds in a worker thread, and once more when stopped."""
        while True:
            stopping = stop.is_set()
            if not stopping:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=interval)
                    stopping = True
                except TimeoutError:
                    pass
            try:
                await asyncio.to_thread(self.flush)
            except Exception as exc:
                log.error("error record flush failed", error=scrub_text(repr(exc))[:MESSAGE_LIMIT])
            if stopping:
                return

    # -- reading -------------------------------------------------------------------------

    def recent(self, limit: int = 50) -> list[ErrorRecord]:
        """The newest ``limit`` records of the in-memory window, newest first."""
        with self._lock:
            items = list(self._window)
        return items[::-1][: max(limit, 0)]

    def counts(self) -> dict[str, Any]:
        """Counts since start-up by category, severity, service and type."""
        with self._lock:
            return {
                "total": self.recorded,
                "by_category": dict(self._counts["category"]),
                "by_severity": dict(self._counts["severity"]),
                "by_service": dict(self._counts["service"]),
                "by_type": dict(self._counts["type"]),
            }

    def stats(self) -> dict[str, int]:
        return {
            "recorded": self.recorded,
            "queued": self.queued,
            "persisted": self.persisted,
            "dropped": self.dropped,
            "flush_failures": self.flush_failures,
            "window": len(self._window),
        }

    def analytics(
        self, hours: float, *, bucket_minutes: int | None = None, node: str | None = None
    ) -> dict[str, Any]:
        """Totals, breakdowns (by node too), top errors, recovery rate and a zero-filled time
        series; of every node, or only of ``node``."""
        if not (hours > 0 and math.isfinite(hours)):
            raise ValueError("hours must be a positive number")
        if bucket_minutes is not None and bucket_minutes < 1:
            raise ValueError("bucket_minutes must be at least 1")
        until = self._clock()
        since = until - timedelta(hours=hours)

        def wanted(record: ErrorRecord) -> bool:
            return record.occurred_at >= since and (node is None or record.node == node)

        # Recoveries are counted in memory only: this node's, unless another node is asked for.
        mine = node is None or node == self.node
        with self._lock:
            window = [r for r in self._window if wanted(r)]
            recoveries = [r for r in self._recoveries if r.at >= since] if mine else []
        source = "memory"
        data: Data | None = None
        if self.sink is not None:
            # No flush runs meanwhile: every record is either in the database or queued.
            with self._flush_lock:
                with self._lock:
                    queued = [r for r in self._queue if wanted(r)]
                try:
                    data = self.sink.summary_since(since, node)
                    source = "database"
                except Exception as exc:  # the store cannot answer: the window still can
                    log.warning(
                        "error analytics read from the in-memory window; database unavailable",
                        error=type(exc).__name__,
                    )
                else:
                    data.add(queued)
        if data is None:
            data = Data()
            data.add(window)
        minutes = bucket_minutes or max(1, math.ceil(hours * 60 / 24))
        return {
            "source": source,
            "node": node,
            "window": {"hours": hours, "since": since.isoformat(), "until": until.isoformat()},
            **data.summary(),
            "recovery": recovery_summary(recoveries),
            "series": series(data.times, since, until, minutes),
            "queued": self.queued,
            "dropped": self.dropped,
        }
