"""GET /metrics of the real service app: every figure matches the service's own counters."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import prometheus_client
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy import Engine, func, select

from simserver import running_simulator
from vatsim_collector.api import create_app, routes_metrics
from vatsim_collector.api.context import ApiContext
from vatsim_collector.api.metrics import CachedCount, install_metrics
from vatsim_collector.cluster.node import Role
from vatsim_collector.config import load_settings
from vatsim_collector.errors.breaker import BreakerState
from vatsim_collector.errors.exceptions import Category, Severity
from vatsim_collector.events.event import Event
from vatsim_collector.events.payloads import EventType, SnapshotReceived
from vatsim_collector.feed.report import REASONS, SNAPSHOT_SECTIONS, TRANSCEIVERS_SECTION
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.pipeline.poller import Poller
from vatsim_collector.service import build_service_app
from vatsim_collector.simulator.world import SimulatedNetwork
from vatsim_collector.store import schema as t
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.dead_letters import DeadLetterQueue, NewDeadLetter

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
INGEST_BUCKETS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0"]

# Labels whose values are fixed by the code, whatever the network does.
FIXED_LABELS: dict[str, set[str]] = {
    "result": {
        "ingested",
        "duplicate",
        "rejected",
        "quarantined",
        "held",
        "fetch_error",
        "write_error",
        "spooled",
    },
    "table": {
        "snapshots",
        "positions",
        "transceivers",
        "pilot_sessions",
        "controller_sessions",
        "atis_sessions",
        "flights",
        "flight_plans",
        "prefiles",
    },
    "kind": {"pilot", "controller", "atis"},
    "section": {*SNAPSHOT_SECTIONS, TRANSCEIVERS_SECTION},
    "reason": set(REASONS),
    "type": {e.value for e in EventType},
    "outcome": {"success", "failure", "timeout", "retry", "shed", "rejected", "ok", "error"},
    "quantile": {"0.5", "0.95", "0.99"},
    "category": {c.value for c in Category},
    "severity": {s.value for s in Severity},
    "state": {s.value for s in BreakerState} | {"checked_out", "idle", "overflow"},
    "le": {*INGEST_BUCKETS, "10.0", "+Inf"},
}


def wired(app: FastAPI) -> FastAPI:
    """The metrics wired as the service does (a no-op for what the app already has)."""
    install_metrics(app)
    if not any(getattr(route, "path", None) == "/metrics" for route in app.routes):
        app.include_router(routes_metrics.router)
    return app


def service_app(database_url: str, tmp_path: Path, sim: str, **overrides: Any) -> FastAPI:
    settings = load_settings(
        database_url=database_url,
        status_url=f"{sim}/status.json",
        poll_interval=0.1,
        http_timeout=5.0,
        retry_attempts=1,
        spool_dir=tmp_path / "spool",
        airspace_enabled=False,
        **overrides,
    )
    return wired(build_service_app(settings))


def context(app: FastAPI) -> ApiContext:
    ctx = app.state.api_context
    assert isinstance(ctx, ApiContext)
    return ctx


def poller_of(ctx: ApiContext) -> Poller:
    assert ctx.errors is not None
    assert ctx.errors.poller is not None
    return ctx.errors.poller


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[ApiContext]:
    """The service's bus running, the poller driven by the test one cycle at a time."""
    ctx = context(app)
    assert ctx.events is not None
    await ctx.events.start()
    try:
        yield ctx
    finally:
        await ctx.events.stop(30)
        await poller_of(ctx).client.aclose()
        ctx.db.dispose()


def network() -> SimulatedNetwork:
    # An hour in the past, so the ticks below never take the feed ahead of the real clock.
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    return SimulatedNetwork(seed=3, start=start)


async def scrape(app: FastAPI) -> tuple[str, list[Sample]]:
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://collector") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE
    families = text_string_to_metric_families(response.text)
    return response.text, [sample for family in families for sample in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) == 1, f"{name}{labels}: {found}"
    return found[0]


def assert_bounded_labels(samples: list[Sample], ctx: ApiContext) -> None:
    """Every label of our metrics takes its value from a set fixed by the code."""
    assert ctx.errors is not None
    assert ctx.events is not None
    allowed = {
        **FIXED_LABELS,
        "handler": set(ctx.events.bus.handler_names()),
        "breaker": set(ctx.errors.breakers.names()),
        "query": set(ctx.db.query_summaries()),
    }
    if ctx.errors.cluster is not None:  # one series naming this node
        allowed["node"] = {ctx.errors.cluster.node.name}
        allowed["role"] = {role.value for role in Role}
    ours = [s for s in samples if s.name.startswith("vatsim_")]
    assert ours
    for sample in ours:
        for label, label_value in sample.labels.items():
            assert label in allowed, f"{sample.name} has an unexpected label {label}"
            assert label_value in allowed[label], f"{sample.name}: {label}={label_value!r}"


def assert_nothing_personal(text: str, samples: list[Sample], doc: dict[str, Any]) -> None:
    stations = [*doc["pilots"], *doc["controllers"], *doc["atis"]]
    callsigns = {s["callsign"] for s in stations}
    cids = {str(s["cid"]) for s in stations}
    assert callsigns
    assert cids
    label_values = {v for s in samples for v in s.labels.values()}
    assert not label_values & (callsigns | cids)
    assert not [c for c in callsigns if f'"{c}"' in text]


async def test_metrics_match_the_services_own_counters(database_url: str, tmp_path: Path) -> None:
    net = network()
    with running_simulator(network=net, speed=0) as sim:
        app = service_app(database_url, tmp_path, sim)
        async with running(app) as ctx:
            poller = poller_of(ctx)
            assert ctx.events is not None
            assert ctx.errors is not None
            await poller.poll_once()
            for _ in range(3):
                httpx2.post(f"{sim}/_sim/tick")
                await poller.poll_once()
            await poller.poll_once()  # the feed has not moved: a duplicate
            await ctx.events.bus.join()
            doc = net.data_document()
            text, samples = await scrape(app)

            stats = ctx.collector.stats
            assert stats.snapshots_ingested == 4
            counters = poller.counters
            expected_polls = {
                "ingested": stats.snapshots_ingested,
                "duplicate": stats.snapshots_duplicate + poller.client.duplicates,
                "rejected": stats.snapshots_rejected,
                "quarantined": stats.snapshots_quarantined,
                "held": stats.snapshots_held,
                "fetch_error": counters.fetch_errors,
                "write_error": counters.write_errors,
                "spooled": counters.spooled,
            }
            assert expected_polls["duplicate"] == 1
            for result, count in expected_polls.items():
                assert value(samples, "vatsim_polls_total", result=result) == count, result
            assert value(samples, "vatsim_poll_cycles_total") == counters.cycles == 5
            assert value(samples, "vatsim_spool_snapshots") == 0

            # The histogram saw each accepted snapshot once.
            assert value(samples, "vatsim_ingest_duration_seconds_count") == 4
            buckets = [s for s in samples if s.name == "vatsim_ingest_duration_seconds_bucket"]
            assert [s.labels["le"] for s in buckets] == [*INGEST_BUCKETS, "10.0", "+Inf"]
            counts = [s.value for s in buckets]
            assert counts == sorted(counts)
            assert counts[-1] == 4
            assert value(samples, "vatsim_ingest_duration_seconds_sum") > 0

            live = ctx.collector.live
            assert len(live.pilots) == len(doc["pilots"]) > 0
            for kind, sessions in (
                ("pilot", live.pilots),
                ("controller", live.controllers),
                ("atis", live.atis),
            ):
                assert value(samples, "vatsim_sessions_open", kind=kind) == len(sessions)
            assert value(samples, "vatsim_sessions_opened_total", kind="pilot") == (
                stats.pilot_sessions_opened
            )
            assert value(samples, "vatsim_rows_written_total", table="positions") == (
                stats.positions_written
            )
            assert value(samples, "vatsim_rows_written_total", table="snapshots") == 4
            age = value(samples, "vatsim_snapshot_age_seconds")
            assert math.isfinite(age)
            assert age > 0

            # The bus: per type, per handler, and nothing left waiting or dead.
            metrics = ctx.events.bus.metrics
            assert value(samples, "vatsim_events_published_total", type="snapshot.received") == 4
            for event_type, count in metrics.published.items():
                assert value(samples, "vatsim_events_published_total", type=event_type) == count
            for event_type, count in metrics.delivered.items():
                assert value(samples, "vatsim_events_delivered_total", type=event_type) == count
            for handler in ctx.events.bus.handler_names():
                figures = metrics.handlers[handler]
                assert (
                    value(
                        samples,
                        "vatsim_handler_deliveries_total",
                        handler=handler,
                        outcome="success",
                    )
                    == figures.successes
                )
                assert value(samples, "vatsim_handler_queue_depth", handler=handler) == 0
            assert metrics.handlers["event-log"].successes > 0
            p50 = value(
                samples, "vatsim_handler_latency_seconds", handler="event-log", quantile="0.5"
            )
            p99 = value(
                samples, "vatsim_handler_latency_seconds", handler="event-log", quantile="0.99"
            )
            assert 0 < p50 <= p99
            assert value(samples, "vatsim_dead_letters") == 0

            # Breakers all closed; database figures are the database service's.
            for breaker in ctx.errors.breakers.names():
                assert value(samples, "vatsim_breaker_state", breaker=breaker, state="closed") == 1
                assert value(samples, "vatsim_breaker_state", breaker=breaker, state="open") == 0
            db = ctx.db
            pool = db.pool_status()
            assert value(samples, "vatsim_db_pool_size") == pool.size
            assert value(samples, "vatsim_db_pool_connections", state="checked_out") == 0
            written = db.query_summaries()["ingest.snapshot"]
            assert written["count"] == 4
            ok = value(samples, "vatsim_db_queries_total", query="ingest.snapshot", outcome="ok")
            assert ok == 4
            p95 = value(
                samples, "vatsim_db_query_seconds", query="ingest.snapshot", quantile="0.95"
            )
            assert p95 == written["p95_ms"] / 1000

            for category in Category:
                assert value(samples, "vatsim_errors_total", category=category.value) == 0

            cluster = ctx.errors.cluster
            assert cluster is not None
            node = cluster.node
            assert value(samples, "vatsim_node_info", node=node.name, role=node.role.value) == 1
            assert len([s for s in samples if s.name == "vatsim_node_info"]) == 1

            assert_bounded_labels(samples, ctx)
            assert_nothing_personal(text, samples, doc)


async def test_a_breaker_opened_by_feed_faults_shows_open(
    database_url: str, tmp_path: Path
) -> None:
    with running_simulator(network=network(), speed=0) as sim:
        app = service_app(
            database_url, tmp_path, sim, breaker_failure_threshold=2, breaker_cooldown=3600
        )
        async with running(app) as ctx:
            poller = poller_of(ctx)
            assert ctx.errors is not None
            await poller.poll_once()
            answer = httpx2.post(f"{sim}/_sim/faults", json={"rate": 1.0, "kinds": ["http5xx"]})
            assert answer.status_code == 200, answer.text
            for _ in range(4):
                httpx2.post(f"{sim}/_sim/tick")
                await poller.poll_once()
            _, samples = await scrape(app)

            breaker = ctx.errors.breakers.get("feed.data")
            assert breaker is not None
            snap = breaker.snapshot()
            assert snap.state is BreakerState.OPEN
            for state in BreakerState:
                expected = 1 if state is BreakerState.OPEN else 0
                assert (
                    value(samples, "vatsim_breaker_state", breaker="feed.data", state=state.value)
                    == expected
                )
            assert value(samples, "vatsim_breaker_failures_total", breaker="feed.data") == 2
            assert snap.failures == 2
            assert value(samples, "vatsim_breaker_rejected_total", breaker="feed.data") == (
                snap.rejected
            )
            assert snap.rejected == 2
            assert value(samples, "vatsim_breaker_resets_total", breaker="feed.data") == 0
            breaker.reset()
            _, after_reset = await scrape(app)
            assert value(after_reset, "vatsim_breaker_resets_total", breaker="feed.data") == 1
            assert (
                value(after_reset, "vatsim_breaker_state", breaker="feed.data", state="closed") == 1
            )

            # Four failed cycles; only the two calls that reached the feed are 5xx errors.
            assert poller.counters.fetch_errors == 4
            assert value(samples, "vatsim_polls_total", result="fetch_error") == 4
            assert value(samples, "vatsim_polls_total", result="ingested") == 1
            counts = ctx.errors.manager.counts()
            assert counts["by_category"]["http_status"] == 2
            for category in Category:
                assert value(samples, "vatsim_errors_total", category=category.value) == (
                    counts["by_category"].get(category.value, 0)
                )
            for severity in Severity:
                assert value(
                    samples, "vatsim_errors_by_severity_total", severity=severity.value
                ) == counts["by_severity"].get(severity.value, 0)
            assert_bounded_labels(samples, ctx)


def test_each_app_has_its_own_registry_and_the_default_one_is_untouched(engine: Engine) -> None:
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    apps = [wired(create_app(ingestor, stale_after=60)) for _ in range(2)]
    assert apps[0].state.metrics.registry is not apps[1].state.metrics.registry
    for app in apps:
        with TestClient(app) as api:
            response = api.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"] == CONTENT_TYPE
        samples = [s for f in text_string_to_metric_families(response.text) for s in f.samples]
        # An app without poller, bus or error layer reports what it has: the ingestor's side.
        assert value(samples, "vatsim_polls_total", result="ingested") == 0
        assert not [s for s in samples if s.name == "vatsim_poll_cycles_total"]
        assert not [s for s in samples if s.name.startswith("vatsim_handler_")]
        # No snapshot yet: no age rather than a made-up one.
        assert not [s for s in samples if s.name == "vatsim_snapshot_age_seconds"]
        assert value(samples, "vatsim_ingest_duration_seconds_count") == 0
        assert [s for s in samples if s.name.startswith("process_")]
    default = prometheus_client.REGISTRY
    assert default.get_sample_value("vatsim_polls_total", {"result": "ingested"}) is None


def test_metrics_are_documented_as_text_in_the_openapi_schema(engine: Engine) -> None:
    ingestor = Ingestor(engine, IngestConfig())
    app = wired(create_app(ingestor, stale_after=60))
    operation = app.openapi()["paths"]["/metrics"]["get"]
    assert operation["responses"]["200"]["content"] == {
        "text/plain": {"schema": {"type": "string"}}
    }


def _letter(handler: str) -> NewDeadLetter:
    at = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    payload = SnapshotReceived(
        snapshot_id=1,
        update_timestamp=at,
        outcome="ingested",
        pilots=0,
        controllers=0,
        atis=0,
        prefiles=0,
        transceivers=None,
    )
    return NewDeadLetter(
        event=Event.create(payload, time=at, source="test"),
        handler=handler,
        error_type="RuntimeError",
        error_category="handler",
        error_message="failed",
        attempts=1,
        first_failed_at=at,
        last_failed_at=at,
    )


async def test_the_dead_letter_count_is_read_at_most_once_per_ttl(engine: Engine) -> None:
    queue = DeadLetterQueue(DatabaseService.for_engine(engine))
    now = [0.0]
    cached = CachedCount(queue.size, ttl=30.0, timeout=10.0, clock=lambda: now[0])
    assert cached.value is None
    await cached.refresh()
    assert cached.value == 0
    queue.put([_letter("a")])
    now[0] = 29.0
    await cached.refresh()
    assert cached.value == 0, "read again inside the ttl"
    now[0] = 30.0
    await cached.refresh()
    assert cached.value == 1
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.dead_letters)).scalar_one() == 1
