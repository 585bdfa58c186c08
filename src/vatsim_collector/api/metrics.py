"""Prometheus metrics of one service app, read from the service's own counters when scraped.

Nearly everything the collector knows about itself is already counted somewhere: the poller,
the ingestor, the error manager, the breakers, the event bus and the database service. A
scrape reads those through one custom collector rather than mirroring every increment into a
second set of metric objects that could drift from the figures the JSON API shows. Only ingest
latency is recorded as it happens, since a histogram cannot be rebuilt from totals.

Each app gets its own ``CollectorRegistry`` (``install_metrics``), never the process-wide
default one, so two collectors in one process (the tests build many) each report only
themselves.

Labels come from bounded sets only: poll results, tables, session kinds, event types, handler,
breaker and query names (all fixed in code), quantiles, error categories and severities, and
this node's own name and role (one series, ``vatsim_node_info``).
Whatever grows with the network (cids, callsigns), URLs and error messages never becomes a
label.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import structlog
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from sqlalchemy.exc import SQLAlchemyError

from vatsim_collector.errors.breaker import BreakerState
from vatsim_collector.errors.exceptions import Category, CollectorError, Severity
from vatsim_collector.pipeline.ingest import Outcome

if TYPE_CHECKING:
    from vatsim_collector.api.context import ApiContext
    from vatsim_collector.brokers.nats.consumer import ConsumerStats
    from vatsim_collector.brokers.nats.relay import OutboxRelay
    from vatsim_collector.pipeline.event_layer import EventLayer

__all__ = [
    "CONTENT_TYPE",
    "INGEST_BUCKETS",
    "CachedCount",
    "ServiceCollector",
    "ServiceMetrics",
    "install_metrics",
    "install_relay_metrics",
]

log = structlog.get_logger(__name__)

# The classic text format: every Prometheus version and most other scrapers read it.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# An accepted snapshot takes tens of milliseconds on a quiet SQLite file and seconds on a busy
# network against a slow server; past 10 s a 15 s poll interval is in danger anyway.
INGEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# The dead-letter count is a COUNT(*) query: at most one per this many seconds, and a scrape
# never waits longer than the timeout for it.
DEAD_LETTER_TTL = 30.0
DEAD_LETTER_TIMEOUT = 2.0

QUANTILES = (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99"))

POLL_RESULTS = (
    "ingested",
    "duplicate",
    "rejected",
    "quarantined",
    "held",
    "fetch_error",
    "write_error",
    "spooled",
)
ROW_TABLES = (
    "snapshots",
    "positions",
    "transceivers",
    "pilot_sessions",
    "controller_sessions",
    "atis_sessions",
    "flights",
    "flight_plans",
    "prefiles",
)
SESSION_KINDS = ("pilot", "controller", "atis")
# Outcome label -> key of the bus's handler report.
HANDLER_OUTCOMES = (
    ("success", "successes"),
    ("failure", "failures"),
    ("timeout", "timeouts"),
    ("retry", "retries"),
    ("shed", "shed"),
    ("rejected", "rejected"),
)
POOL_STATES = ("checked_out", "idle", "overflow")


@dataclass(frozen=True)
class _Family:
    name: str
    doc: str
    kind: Literal["counter", "gauge"]
    labels: tuple[str, ...] = ()

    def empty(self) -> CounterMetricFamily | GaugeMetricFamily:
        if self.kind == "counter":
            return CounterMetricFamily(self.name, self.doc, labels=self.labels)
        return GaugeMetricFamily(self.name, self.doc, labels=self.labels)


POLL_CYCLES = _Family("vatsim_poll_cycles_total", "Poll cycles started.", "counter")
POLLS = _Family(
    "vatsim_polls_total",
    "Fetched snapshots by what became of them; a write error that spooled the snapshot counts"
    " as both, and a snapshot written back from the spool counts under its ingest result.",
    "counter",
    ("result",),
)
SPOOL_WAITING = _Family(
    "vatsim_spool_snapshots", "Snapshots waiting in the spool for the database.", "gauge"
)
SPOOL_DRAINED = _Family(
    "vatsim_spool_drained_total", "Snapshots taken out of the spool once written.", "counter"
)
MISSED_TICKS = _Family(
    "vatsim_missed_ticks_total",
    "Feed ticks never stored: gaps between stored update timestamps beyond the cadence.",
    "counter",
)
POLL_LOOP_ERRORS = _Family(
    "vatsim_poll_loop_errors_total", "Unexpected exceptions the poll loop survived.", "counter"
)
RECORDS_DROPPED = _Family(
    "vatsim_records_dropped_total",
    "Malformed records dropped from otherwise stored snapshots, by feed section and reason.",
    "counter",
    ("section", "reason"),
)
PENDING_SNAPSHOTS = _Family(
    "vatsim_pending_snapshots", "Fetched snapshots queued to be written, in order.", "gauge"
)
SNAPSHOT_AGE = _Family(
    "vatsim_snapshot_age_seconds",
    "Seconds since the update_timestamp of the latest accepted snapshot.",
    "gauge",
)
ROWS_WRITTEN = _Family(
    "vatsim_rows_written_total", "Rows inserted, by table.", "counter", ("table",)
)
SESSIONS_OPEN = _Family(
    "vatsim_sessions_open",
    "Sessions present in the latest accepted snapshot.",
    "gauge",
    ("kind",),
)
SESSIONS_OPENED = _Family("vatsim_sessions_opened_total", "Sessions started.", "counter", ("kind",))
SESSIONS_CLOSED = _Family("vatsim_sessions_closed_total", "Sessions ended.", "counter", ("kind",))
EVENTS_PUBLISHED = _Family(
    "vatsim_events_published_total", "Events published on the bus.", "counter", ("type",)
)
EVENTS_DELIVERED = _Family(
    "vatsim_events_delivered_total",
    "Event deliveries that succeeded, summed over handlers.",
    "counter",
    ("type",),
)
EVENTS_FAILED = _Family(
    "vatsim_events_failed_total",
    "Event deliveries that failed for good (dead-lettered), summed over handlers.",
    "counter",
    ("type",),
)
HANDLER_DELIVERIES = _Family(
    "vatsim_handler_deliveries_total",
    "Per handler: events delivered (success), dead-lettered after every attempt (failure),"
    " attempts cut off by the timeout, retries, events shed from a full queue and events"
    " rejected while the handler's breaker was open.",
    "counter",
    ("handler", "outcome"),
)
HANDLER_QUEUE = _Family(
    "vatsim_handler_queue_depth", "Events waiting in the handler's queue.", "gauge", ("handler",)
)
HANDLER_LATENCY = _Family(
    "vatsim_handler_latency_seconds",
    "Handler call duration quantiles over its last 2048 calls.",
    "gauge",
    ("handler", "quantile"),
)
HANDLER_SHED_SNAPSHOTS = _Family(
    "vatsim_handler_snapshots_with_shed_events_total",
    "Per handler: publishes (one per snapshot) of which the handler shed any event.",
    "counter",
    ("handler",),
)
LAST_SHED_TIME = _Family(
    "vatsim_events_last_shed_timestamp_seconds",
    "When the latest snapshot whose events overflowed a handler's queue was reported (Unix"
    " time); its correlation id is in /api/events/analytics and the error records.",
    "gauge",
)
LAST_SHED_EVENTS = _Family(
    "vatsim_events_last_shed_events",
    "Per handler: events shed from the latest snapshot that shed any.",
    "gauge",
    ("handler",),
)
EVENT_LOG_GAPS = _Family(
    "vatsim_event_log_gaps_total",
    "eventlog.gap markers written into the event log where shed events are missing.",
    "counter",
)
DEAD_LETTERS = _Family(
    "vatsim_dead_letters",
    f"Dead letters stored; read from the database at most every {DEAD_LETTER_TTL:g} s.",
    "gauge",
)
DEAD_LETTERS_UNWRITTEN = _Family(
    "vatsim_dead_letters_unwritten",
    "Dead letters waiting in memory for the database.",
    "gauge",
)
DEAD_LETTERS_EVICTED = _Family(
    "vatsim_dead_letters_evicted_total",
    "Dead letters dropped because the bound was reached.",
    "counter",
)
BREAKER_STATE = _Family(
    "vatsim_breaker_state",
    "1 for the breaker's current state, 0 for the others.",
    "gauge",
    ("breaker", "state"),
)
BREAKER_FAILURES = _Family(
    "vatsim_breaker_failures_total",
    "Failed calls through the breaker.",
    "counter",
    ("breaker",),
)
BREAKER_REJECTED = _Family(
    "vatsim_breaker_rejected_total",
    "Calls refused without trying while the breaker was open.",
    "counter",
    ("breaker",),
)
BREAKER_RESETS = _Family(
    "vatsim_breaker_resets_total",
    "Operator resets of the breaker, asked on this node or on another one.",
    "counter",
    ("breaker",),
)
# Always 1: which node this is and its role, to join on (the process's counters carry no node).
NODE_INFO = _Family("vatsim_node_info", "This node's name and role.", "gauge", ("node", "role"))
ERRORS = _Family("vatsim_errors_total", "Errors reported, by category.", "counter", ("category",))
ERRORS_BY_SEVERITY = _Family(
    "vatsim_errors_by_severity_total", "Errors reported, by severity.", "counter", ("severity",)
)
ERRORS_QUEUED = _Family(
    "vatsim_error_records_queued", "Error records waiting to be written.", "gauge"
)
ERRORS_DROPPED = _Family(
    "vatsim_error_records_dropped_total",
    "Error records dropped unwritten because the queue was full.",
    "counter",
)
POOL_CONNECTIONS = _Family(
    "vatsim_db_pool_connections",
    "Pool connections: in use (checked_out), open and free (idle), open beyond the pool size"
    " (overflow, part of the other two).",
    "gauge",
    ("state",),
)
POOL_SIZE = _Family("vatsim_db_pool_size", "Configured pool size.", "gauge")
POOL_WAITING = _Family("vatsim_db_pool_waiting", "Callers waiting for a pool connection.", "gauge")
DB_QUERIES = _Family(
    "vatsim_db_queries_total",
    "Named database operations, by outcome.",
    "counter",
    ("query", "outcome"),
)
DB_QUERY_SECONDS = _Family(
    "vatsim_db_query_seconds",
    "Duration quantiles of each named database operation over its last 2048 runs.",
    "gauge",
    ("query", "quantile"),
)

# Several nodes on one database (docs/scaling.md).
LEADING = _Family("vatsim_leader", "1 while this node leads (stores snapshots), else 0.", "gauge")
ELECTIONS = _Family(
    "vatsim_leader_elections_total", "Times this node became the leader.", "counter"
)
DEMOTIONS = _Family("vatsim_leader_demotions_total", "Times this node stopped leading.", "counter")
TAKEOVER_SECONDS = _Family(
    "vatsim_takeover_seconds",
    "Seconds the last takeover took, from taking the lock to writing (epoch claimed, state"
    " rebuilt, gap queued).",
    "gauge",
)
GAP_FILLED = _Family(
    "vatsim_gap_fill_snapshots_total",
    "Snapshots this node fetched as a standby and stored when it took over.",
    "counter",
)
STANDBY_RELEASED = _Family(
    "vatsim_standby_released_total",
    "Snapshots a standby let go of because the leader had stored them (or they left the"
    " gap-fill window).",
    "counter",
)
FENCED = _Family(
    "vatsim_fenced_commits_total",
    "Snapshot commits this node's fence refused: it had lost the leadership.",
    "counter",
)

FAMILIES = (
    LEADING,
    ELECTIONS,
    DEMOTIONS,
    TAKEOVER_SECONDS,
    GAP_FILLED,
    STANDBY_RELEASED,
    FENCED,
    POLL_CYCLES,
    POLLS,
    SPOOL_WAITING,
    SPOOL_DRAINED,
    MISSED_TICKS,
    POLL_LOOP_ERRORS,
    RECORDS_DROPPED,
    PENDING_SNAPSHOTS,
    SNAPSHOT_AGE,
    ROWS_WRITTEN,
    SESSIONS_OPEN,
    SESSIONS_OPENED,
    SESSIONS_CLOSED,
    EVENTS_PUBLISHED,
    EVENTS_DELIVERED,
    EVENTS_FAILED,
    HANDLER_DELIVERIES,
    HANDLER_QUEUE,
    HANDLER_LATENCY,
    HANDLER_SHED_SNAPSHOTS,
    LAST_SHED_TIME,
    LAST_SHED_EVENTS,
    EVENT_LOG_GAPS,
    DEAD_LETTERS,
    DEAD_LETTERS_UNWRITTEN,
    DEAD_LETTERS_EVICTED,
    BREAKER_STATE,
    BREAKER_FAILURES,
    BREAKER_REJECTED,
    BREAKER_RESETS,
    NODE_INFO,
    ERRORS,
    ERRORS_BY_SEVERITY,
    ERRORS_QUEUED,
    ERRORS_DROPPED,
    POOL_CONNECTIONS,
    POOL_SIZE,
    POOL_WAITING,
    DB_QUERIES,
    DB_QUERY_SECONDS,
)

# Handlers run by workers (``vatsim-collector worker``): their JetStream consumers' backlog,
# read from NATS at most every CONSUMER_TTL seconds, once the service watches them
# (``ServiceMetrics.watch_consumers``).
CONSUMER_TTL = 5.0
CONSUMER_TIMEOUT = 2.0
CONSUMER_PENDING = _Family(
    "vatsim_consumer_pending",
    "Per handler run by workers: events in the stream its consumer has not delivered yet.",
    "gauge",
    ("handler",),
)
CONSUMER_ACK_PENDING = _Family(
    "vatsim_consumer_ack_pending",
    "Per handler run by workers: events delivered to a worker and not yet acknowledged.",
    "gauge",
    ("handler",),
)
CONSUMER_REDELIVERED = _Family(
    "vatsim_consumer_redelivered",
    "Per handler run by workers: events delivered more than once and not yet acknowledged.",
    "gauge",
    ("handler",),
)
CONSUMER_FAMILIES = (CONSUMER_PENDING, CONSUMER_ACK_PENDING, CONSUMER_REDELIVERED)

ConsumerReader = Callable[[], Awaitable[Mapping[str, "ConsumerStats"]]]


class ConsumerStatsCache:
    """The consumers' figures by handler, read at most once per ``ttl`` seconds; a read that
    fails or takes longer than ``timeout`` keeps the previous figures (NATS down must not
    stall a scrape)."""

    def __init__(
        self,
        read: ConsumerReader,
        *,
        ttl: float = CONSUMER_TTL,
        timeout: float = CONSUMER_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._ttl = ttl
        self._timeout = timeout
        self._clock = clock
        self._attempted_at: float | None = None
        self.value: Mapping[str, ConsumerStats] | None = None

    async def refresh(self) -> None:
        now = self._clock()
        if self._attempted_at is not None and now - self._attempted_at < self._ttl:
            return
        self._attempted_at = now
        try:
            self.value = await asyncio.wait_for(self._read(), self._timeout)
        except (TimeoutError, CollectorError) as exc:
            log.info("consumer figures not refreshed", error=type(exc).__name__)


def _single(family: _Family, value: float) -> Metric:
    metric = family.empty()
    metric.add_metric([], value)
    return metric


class CachedCount:
    """A count that costs a database query, read at most once per ``ttl`` seconds.

    A scrape must answer even while the database hangs, which is when the other figures matter
    most: a read that takes longer than ``timeout`` is abandoned (its thread finishes on its
    own) and the previous value stays, as it does when the read fails.
    """

    def __init__(
        self,
        read: Callable[[], int],
        *,
        ttl: float,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._ttl = ttl
        self._timeout = timeout
        self._clock = clock
        self._attempted_at: float | None = None
        self.value: int | None = None

    async def refresh(self) -> None:
        now = self._clock()
        if self._attempted_at is not None and now - self._attempted_at < self._ttl:
            return
        # Set before the read, so concurrent scrapes and a failing database cost one read per
        # ttl, not one per scrape.
        self._attempted_at = now
        try:
            self.value = await asyncio.wait_for(asyncio.to_thread(self._read), self._timeout)
        except (TimeoutError, SQLAlchemyError) as exc:
            log.info("count not refreshed; the previous value stays", error=type(exc).__name__)


class ServiceCollector:
    """Reads the service's counters at scrape time; registered on one app's registry.

    Runs on the event loop (the metrics route is async), where the bus's counters live.
    """

    def __init__(self, ctx: ApiContext, dead_letters: CachedCount | None = None) -> None:
        self._ctx = ctx
        self._dead_letters = dead_letters
        self.consumers: ConsumerStatsCache | None = None

    def describe(self) -> Iterable[Metric]:
        return [family.empty() for family in (*FAMILIES, *CONSUMER_FAMILIES)]

    def collect(self) -> Iterable[Metric]:
        return [metric for metric in self._collect() if metric.samples]

    def _collect(self) -> Iterator[Metric]:
        yield from self._ingest()
        yield from self._cluster()
        yield from self._sessions()
        yield from self._events()
        yield from self._error_layer()
        yield from self._database()
        yield from self._consumers()

    def _consumers(self) -> Iterator[Metric]:
        figures = self.consumers.value if self.consumers is not None else None
        if not figures:
            return
        pending = CONSUMER_PENDING.empty()
        ack_pending = CONSUMER_ACK_PENDING.empty()
        redelivered = CONSUMER_REDELIVERED.empty()
        for handler, stats in sorted(figures.items()):
            pending.add_metric([handler], stats.num_pending)
            ack_pending.add_metric([handler], stats.num_ack_pending)
            redelivered.add_metric([handler], stats.num_redelivered)
        yield from (pending, ack_pending, redelivered)

    def _ingest(self) -> Iterator[Metric]:
        stats = self._ctx.collector.stats
        poller = self._ctx.errors.poller if self._ctx.errors is not None else None
        # An unchanged feed is noticed by the client before the ingestor ever sees it.
        unchanged = poller.client.duplicates if poller is not None else 0
        results = {
            "ingested": stats.snapshots_ingested,
            "duplicate": stats.snapshots_duplicate + unchanged,
            "rejected": stats.snapshots_rejected,
            "quarantined": stats.snapshots_quarantined,
            "held": stats.snapshots_held,
        }
        if poller is not None:
            counters = poller.counters
            results |= {
                "fetch_error": counters.fetch_errors,
                "write_error": counters.write_errors,
                "spooled": counters.spooled,
            }
            yield _single(POLL_CYCLES, counters.cycles)
            yield _single(SPOOL_WAITING, poller.backlog)
            yield _single(SPOOL_DRAINED, counters.drained)
            yield _single(MISSED_TICKS, counters.missed_ticks)
            yield _single(POLL_LOOP_ERRORS, counters.loop_errors)
            yield _single(PENDING_SNAPSHOTS, poller.backlog)
        yield self._records_dropped(stats.records_dropped_by_reason)
        polls = POLLS.empty()
        for result in POLL_RESULTS:
            if result in results:
                polls.add_metric([result], results[result])
        yield polls
        age = self._ctx.age_seconds()
        if age is not None:
            yield _single(SNAPSHOT_AGE, age)
        rows = ROWS_WRITTEN.empty()
        written = (
            stats.snapshots_ingested + stats.snapshots_quarantined,
            stats.positions_written,
            stats.transceivers_written,
            stats.pilot_sessions_opened,
            stats.controller_sessions_opened,
            stats.atis_sessions_opened,
            stats.flights_opened,
            stats.flight_plan_revisions,
            stats.prefiles_seen,
        )
        for table, count in zip(ROW_TABLES, written, strict=True):
            rows.add_metric([table], count)
        yield rows

    @staticmethod
    def _records_dropped(by_reason: Mapping[str, int]) -> Metric:
        # "section.reason" -> count; both come from the decoder's fixed tables, so the label
        # sets stay small whatever the feed sends.
        metric = RECORDS_DROPPED.empty()
        for key, count in sorted(by_reason.items()):
            section, _, reason = key.partition(".")
            metric.add_metric([section, reason], count)
        return metric

    def _sessions(self) -> Iterator[Metric]:
        stats = self._ctx.collector.stats
        live = self._ctx.collector.live
        now_open = (len(live.pilots), len(live.controllers), len(live.atis))
        opened = (
            stats.pilot_sessions_opened,
            stats.controller_sessions_opened,
            stats.atis_sessions_opened,
        )
        closed = (
            stats.pilot_sessions_closed,
            stats.controller_sessions_closed,
            stats.atis_sessions_closed,
        )
        for family, values in (
            (SESSIONS_OPEN, now_open),
            (SESSIONS_OPENED, opened),
            (SESSIONS_CLOSED, closed),
        ):
            metric = family.empty()
            for kind, value in zip(SESSION_KINDS, values, strict=True):
                metric.add_metric([kind], value)
            yield metric

    def _events(self) -> Iterator[Metric]:
        layer = self._ctx.events
        if layer is None:
            return
        counters = layer.bus.metrics
        for family, by_type in (
            (EVENTS_PUBLISHED, counters.published),
            (EVENTS_DELIVERED, counters.delivered),
            (EVENTS_FAILED, counters.failed),
        ):
            metric = family.empty()
            for event_type, count in sorted(by_type.items()):
                metric.add_metric([event_type], count)
            yield metric
        deliveries = HANDLER_DELIVERIES.empty()
        depth = HANDLER_QUEUE.empty()
        latency = HANDLER_LATENCY.empty()
        shed_snapshots = HANDLER_SHED_SNAPSHOTS.empty()
        for handler, report in layer.bus.handlers_report().items():
            for outcome, key in HANDLER_OUTCOMES:
                deliveries.add_metric([handler, outcome], report[key])
            depth.add_metric([handler], report["queue_depth"])
            shed_snapshots.add_metric([handler], report["snapshots_with_shed_events"])
            for quantile, key in QUANTILES:
                millis = report["latency_ms"][key]
                if millis is not None:
                    latency.add_metric([handler, quantile], millis / 1000)
        yield from (deliveries, depth, latency, shed_snapshots)
        yield from self._shedding(layer)
        letters = layer.dead_letters
        if self._dead_letters is not None and self._dead_letters.value is not None:
            yield _single(DEAD_LETTERS, self._dead_letters.value)
        yield _single(DEAD_LETTERS_UNWRITTEN, letters.unwritten)
        yield _single(DEAD_LETTERS_EVICTED, letters.evicted)

    def _shedding(self, layer: EventLayer) -> Iterator[Metric]:
        last = layer.bus.last_shed
        if last is not None:
            yield _single(LAST_SHED_TIME, last.reported_at.timestamp())
            lost = LAST_SHED_EVENTS.empty()
            for handler, count in last.counts().items():
                lost.add_metric([handler], count)
            yield lost
        if layer.log_writer is not None:
            yield _single(EVENT_LOG_GAPS, layer.log_writer.gaps_marked)

    def _cluster(self) -> Iterator[Metric]:
        poller = self._ctx.poller
        elector = getattr(poller, "elector", None)
        if poller is None or elector is None:
            return
        counters = elector.counters
        yield _single(LEADING, 1.0 if elector.leading else 0.0)
        yield _single(ELECTIONS, counters.elections)
        yield _single(DEMOTIONS, counters.demotions)
        if counters.last_takeover_seconds is not None:
            yield _single(TAKEOVER_SECONDS, counters.last_takeover_seconds)
        yield _single(FENCED, counters.fenced)
        yield _single(GAP_FILLED, poller.counters.gap_filled)
        yield _single(STANDBY_RELEASED, poller.counters.standby_released)

    def _error_layer(self) -> Iterator[Metric]:
        layer = self._ctx.errors
        if layer is None:
            return
        states = BREAKER_STATE.empty()
        failures = BREAKER_FAILURES.empty()
        rejected = BREAKER_REJECTED.empty()
        resets = BREAKER_RESETS.empty()
        for snap in layer.breakers.snapshots():
            for state in BreakerState:
                states.add_metric([snap.name, state.value], 1.0 if snap.state is state else 0.0)
            failures.add_metric([snap.name], snap.failures)
            rejected.add_metric([snap.name], snap.rejected)
            resets.add_metric([snap.name], snap.resets)
        yield from (states, failures, rejected, resets)
        if layer.cluster is not None:
            node = layer.cluster.node
            info = NODE_INFO.empty()
            info.add_metric([node.name, node.role.value], 1.0)
            yield info
        manager = layer.manager
        counts = manager.counts()
        # Every category and severity, zeros included, so rate() works from the first error.
        by_category = ERRORS.empty()
        for category in Category:
            by_category.add_metric([category.value], counts["by_category"].get(category.value, 0))
        by_severity = ERRORS_BY_SEVERITY.empty()
        for severity in Severity:
            by_severity.add_metric([severity.value], counts["by_severity"].get(severity.value, 0))
        yield from (by_category, by_severity)
        yield _single(ERRORS_QUEUED, manager.queued)
        yield _single(ERRORS_DROPPED, manager.dropped)

    def _database(self) -> Iterator[Metric]:
        db = self._ctx.db
        pool = db.pool_status()
        connections = POOL_CONNECTIONS.empty()
        connections.add_metric(["checked_out"], pool.checked_out)
        idle = db.idle_connections()
        if idle is not None:
            connections.add_metric(["idle"], idle)
        connections.add_metric(["overflow"], pool.overflow)
        yield connections
        yield _single(POOL_SIZE, pool.size)
        yield _single(POOL_WAITING, pool.waiting)
        queries = DB_QUERIES.empty()
        seconds = DB_QUERY_SECONDS.empty()
        for name, summary in db.query_summaries().items():
            errors = int(summary["errors"])
            queries.add_metric([name, "ok"], int(summary["count"]) - errors)
            queries.add_metric([name, "error"], errors)
            for quantile, key in QUANTILES:
                seconds.add_metric([name, quantile], float(summary[f"{key}_ms"]) / 1000)
        yield from (queries, seconds)


class ServiceMetrics:
    """One app's registry: the service collector, the ingest histogram, process basics."""

    def __init__(
        self,
        ctx: ApiContext,
        *,
        dead_letter_ttl: float = DEAD_LETTER_TTL,
        dead_letter_timeout: float = DEAD_LETTER_TIMEOUT,
    ) -> None:
        self.registry = CollectorRegistry()
        self.ingest_duration = Histogram(
            "vatsim_ingest_duration_seconds",
            "Seconds from handing an accepted snapshot to the ingestor until it was committed.",
            buckets=INGEST_BUCKETS,
            registry=self.registry,
        )
        events = ctx.events
        self.dead_letters = (
            CachedCount(events.dead_letters.size, ttl=dead_letter_ttl, timeout=dead_letter_timeout)
            if events is not None
            else None
        )
        self._collector = ServiceCollector(ctx, self.dead_letters)
        self.registry.register(self._collector)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def observe_ingest(self, outcome: Outcome, seconds: float) -> None:
        # Accepted snapshots only: duplicates cost nothing and rejections are rare, so mixing
        # them in would only blur the figure that matters, the time to store a snapshot.
        if outcome is Outcome.INGESTED:
            self.ingest_duration.observe(seconds)

    def watch_consumers(self, read: ConsumerReader) -> None:
        """Report the JetStream consumers of the handlers workers run: ``read`` returns their
        figures by handler (``pipeline.worker.consumer_reader``)."""
        self._collector.consumers = ConsumerStatsCache(read)

    async def render(self) -> bytes:
        """The text exposition; call on the event loop that runs the service."""
        if self.dead_letters is not None:
            await self.dead_letters.refresh()
        if self._collector.consumers is not None:
            await self._collector.consumers.refresh()
        return generate_latest(self.registry)


def install_metrics(app: FastAPI) -> ServiceMetrics:
    """Give ``app`` its metrics (on ``app.state.metrics``) over the service in its context,
    and have its poller time each ingest. Call once ``app.state.api_context`` is set;
    calling again returns the same metrics."""
    found = getattr(app.state, "metrics", None)
    if isinstance(found, ServiceMetrics):
        return found
    ctx: ApiContext = app.state.api_context
    metrics = ServiceMetrics(ctx)
    poller = ctx.errors.poller if ctx.errors is not None else None
    if poller is not None:
        poller.ingest_observers.append(metrics.observe_ingest)
    app.state.metrics = metrics
    return metrics


# ----- the outbox relay (NATS JetStream), when the service has one ---------------------------

OUTBOX_BACKLOG = _Family(
    "vatsim_outbox_backlog",
    "Events waiting in the outbox for the relay, as the relay last counted them.",
    "gauge",
)
RELAY_LAG = _Family(
    "vatsim_relay_lag_seconds",
    "Seconds since the oldest event still waiting in the outbox was committed; 0 when none.",
    "gauge",
)
RELAY_PUBLISHED = _Family(
    "vatsim_relay_published_total", "Events the relay published and JetStream stored.", "counter"
)
RELAY_DUPLICATES = _Family(
    "vatsim_relay_duplicates_total",
    "Events published again (after a crash or a lost acknowledgement) that JetStream recognised"
    " by id and did not store twice.",
    "counter",
)
RELAY_FAILED_ROUNDS = _Family(
    "vatsim_relay_failed_rounds_total",
    "Relay rounds that ended before every event of their batch was acknowledged.",
    "counter",
)
RELAY_RUNNING = _Family("vatsim_relay_running", "1 while this node runs the outbox relay.", "gauge")
NATS_CONNECTED = _Family("vatsim_nats_connected", "1 while the NATS connection is up.", "gauge")
RELAY_FAMILIES = (
    OUTBOX_BACKLOG,
    RELAY_LAG,
    RELAY_PUBLISHED,
    RELAY_DUPLICATES,
    RELAY_FAILED_ROUNDS,
    RELAY_RUNNING,
    NATS_CONNECTED,
)


class RelayCollector:
    """Reads the relay's counters (``OutboxRelay.stats``) at scrape time."""

    def __init__(self, relay: OutboxRelay) -> None:
        self._relay = relay

    def describe(self) -> Iterable[Metric]:
        return [family.empty() for family in RELAY_FAMILIES]

    def collect(self) -> Iterable[Metric]:
        stats = self._relay.stats()
        if stats.backlog is not None:
            yield _single(OUTBOX_BACKLOG, stats.backlog)
        yield _single(RELAY_LAG, stats.lag_seconds)
        yield _single(RELAY_PUBLISHED, stats.published)
        yield _single(RELAY_DUPLICATES, stats.duplicates)
        yield _single(RELAY_FAILED_ROUNDS, stats.failed_rounds)
        yield _single(RELAY_RUNNING, 1.0 if stats.running else 0.0)
        yield _single(NATS_CONNECTED, 1.0 if stats.connected else 0.0)


def install_relay_metrics(app: FastAPI, relay: OutboxRelay) -> None:
    """Add the relay's figures to ``app``'s /metrics (after ``install_metrics``)."""
    metrics = install_metrics(app)
    if getattr(app.state, "relay_metrics", None) is None:
        metrics.registry.register(RelayCollector(relay))
        app.state.relay_metrics = relay
