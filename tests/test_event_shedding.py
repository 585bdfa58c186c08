"""Events shed from full handler queues: reported once per snapshot, counted on
/api/events/analytics and /metrics, and marked in the event log -- with the real bus, a real
dead-letter queue and the real database (SQLite, or PostgreSQL with VATSIM_TEST_DATABASE_URL).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import structlog
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text
from starlette.testclient import TestClient

from vatsim_collector.api import create_app
from vatsim_collector.config import Settings
from vatsim_collector.errors.manager import ErrorManager
from vatsim_collector.events.bus import EventBus
from vatsim_collector.events.event import Event
from vatsim_collector.events.payloads import (
    EventLogGap,
    PilotConnected,
    SectorEntered,
    SnapshotReceived,
)
from vatsim_collector.events.subscription import HandlerOptions, Overflow
from vatsim_collector.pipeline.event_layer import EVENT_LOG_HANDLER, EventLayer, build_event_layer
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.dead_letters import DeadLetterQueue

T0 = datetime(2026, 4, 1, 18, 0, tzinfo=UTC)
KEY = "shedding-test-key"
AUTH = {"X-API-Key": KEY}
# Queues this small overflow at once; a block timeout of 0 makes the event log (a ``block``
# handler) shed without waiting, so a publish never yields and the tests need no timing.
TINY = Settings(event_queue_size=4, event_block_timeout=0.0, event_handler_retries=1)


def snapshot_events(at: datetime, pilots: int, sectors: int) -> list[Event]:
    """What the ingest publishes for one snapshot: its ``snapshot.received`` first, then domain
    events carrying that event's id as their correlation id."""
    received = Event.create(
        SnapshotReceived(
            snapshot_id=int(at.timestamp()),
            update_timestamp=at,
            outcome="ingested",
            pilots=pilots,
            controllers=0,
            atis=0,
            prefiles=0,
            transceivers=None,
        ),
        time=at,
        source="test",
    )
    domain: list[Event] = [
        Event.create(
            PilotConnected(
                session_id=n,
                flight_id=n,
                cid=1_000_000 + n,
                callsign=f"TST{n}",
                logon_time=at,
                latitude=50.0,
                longitude=0.0,
                altitude=0,
                departure=None,
                arrival=None,
            ),
            time=at,
            source="test",
            correlation_id=received.id,
        )
        for n in range(pilots)
    ]
    domain += [
        Event.create(
            SectorEntered(
                session_id=n,
                flight_id=n,
                cid=1_000_000 + n,
                callsign=f"TST{n}",
                sector="EGTT",
                latitude=50.0,
                longitude=0.0,
                altitude=0,
            ),
            time=at,
            source="test",
            correlation_id=received.id,
        )
        for n in range(sectors)
    ]
    return [received, *domain]


class Gated:
    """A handler that takes nothing until its gate opens."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.received = 0

    async def __call__(self, event: Event) -> None:
        await self.gate.wait()
        self.received += 1


@pytest.fixture
def db(engine: Engine) -> DatabaseService:
    return DatabaseService.for_engine(engine)


def shed_records(errors: ErrorManager) -> list[dict[str, object]]:
    return [r.context for r in errors.recent() if r.operation == "publish"]


async def test_a_snapshot_that_overflows_queues_is_reported_once_with_counts_per_handler(
    db: DatabaseService,
) -> None:
    errors = ErrorManager(None)
    bus = EventBus(errors=errors, dead_letters=DeadLetterQueue(db, max_entries=1000))
    everything, pilots = Gated(), Gated()
    shed = HandlerOptions(queue_size=2, overflow=Overflow.SHED)
    bus.subscribe("everything", everything, "*", options=shed)
    bus.subscribe("pilots", pilots, "pilot.*", options=HandlerOptions(queue_size=5))
    await bus.start()
    burst = snapshot_events(T0, pilots=20, sectors=10)
    with structlog.testing.capture_logs() as logs:
        await bus.publish_many(burst)

    # 31 events: "everything" kept the first two (snapshot.received and one pilot), "pilots"
    # five of its twenty.
    [context] = shed_records(errors)
    assert context["correlation_id"] == burst[0].id
    assert context["snapshot_time"] == T0.isoformat()
    assert context["shed"] == 29 + 15
    assert context["handlers"] == {"everything": 29, "pilots": 15}
    assert context["by_type"] == {
        "everything": {"pilot.connected": 19, "sector.entered": 10},
        "pilots": {"pilot.connected": 15},
    }
    reported = [line for line in logs if line.get("operation") == "publish"]
    assert len(reported) == 1
    assert reported[0]["log_level"] == "error"

    report = bus.last_shed
    assert report is not None
    assert report.correlation_id == burst[0].id
    assert report.counts() == {"everything": 29, "pilots": 15}
    assert report.handlers["pilots"].first_time == T0
    handlers = bus.handlers_report()
    assert handlers["everything"]["shed"] == 29
    assert handlers["everything"]["snapshots_with_shed_events"] == 1
    assert handlers["pilots"]["snapshots_with_shed_events"] == 1

    # A snapshot that fits says nothing; the next one that overflows is one more report.
    everything.gate.set()
    pilots.gate.set()
    await bus.join()
    await bus.publish_many(snapshot_events(T0 + timedelta(seconds=15), pilots=1, sectors=0))
    await bus.join()
    assert len(shed_records(errors)) == 1
    everything.gate.clear()
    third = snapshot_events(T0 + timedelta(seconds=30), pilots=3, sectors=0)
    await bus.publish_many(third)
    [latest, _] = shed_records(errors)  # newest first
    assert latest["correlation_id"] == third[0].id
    assert latest["handlers"] == {"everything": 2}
    handlers = bus.handlers_report()
    assert handlers["everything"]["snapshots_with_shed_events"] == 2
    assert handlers["pilots"]["snapshots_with_shed_events"] == 1
    everything.gate.set()
    await bus.stop(timeout=5)


def gaps_in(layer: EventLayer) -> list[Event]:
    return layer.log.read(types=["eventlog.gap"])


async def test_the_event_log_marks_the_events_it_lost(db: DatabaseService) -> None:
    layer = build_event_layer(TINY, db)
    await layer.start()
    try:
        burst = snapshot_events(T0, pilots=10, sectors=5)
        await layer.bus.publish_many(burst)
        await layer.bus.join()
    finally:
        await layer.stop(10)

    # The log's queue took snapshot.received and three pilots; twelve events were shed.
    stored = layer.log.read()
    [gap] = gaps_in(layer)
    assert {e.id for e in stored} == {e.id for e in burst[:4]} | {gap.id}
    assert gap.correlation_id == burst[0].id
    assert gap.time == T0
    assert gap.payload == EventLogGap(
        snapshot_time=T0,
        first_time=T0,
        last_time=T0,
        events=12,
        lost={"pilot.connected": 7, "sector.entered": 5},
    )
    # A reader following the snapshot by correlation id finds the marker among its events.
    assert gap.id in {e.id for e in stored if e.correlation_id == burst[0].id}
    assert layer.log_writer is not None
    assert (layer.log_writer.gaps_marked, layer.log_writer.pending_gaps) == (1, 0)


def rename_events_table(db: DatabaseService, to: str, back: str) -> None:
    with db.write("test.rename") as conn:
        conn.execute(text(f"ALTER TABLE {to} RENAME TO {back}"))


async def test_a_marker_waits_while_the_log_cannot_write_then_goes_with_the_next_batch(
    db: DatabaseService,
) -> None:
    layer = build_event_layer(TINY, db)
    writer = layer.log_writer
    assert writer is not None
    await layer.start()
    try:
        rename_events_table(db, "events", "events_away")  # every log write now fails
        lost = snapshot_events(T0, pilots=6, sectors=0)
        await layer.bus.publish_many(lost)
        await layer.bus.join()
        assert writer.pending_gaps == 1
        analytics = await layer.analytics()
        assert analytics["event_log_gaps"] == {"marked": 0, "pending": 1, "dropped": 0}
        # What the log's queue held is dead-lettered as for any failed delivery.
        assert analytics["handlers"][EVENT_LOG_HANDLER]["dead_lettered"] == 4

        rename_events_table(db, "events_away", "events")
        later = snapshot_events(T0 + timedelta(seconds=15), pilots=1, sectors=0)
        await layer.bus.publish_many(later)
        await layer.bus.join()
    finally:
        await layer.stop(10)

    [gap] = gaps_in(layer)
    assert gap.correlation_id == lost[0].id
    assert isinstance(gap.payload, EventLogGap)
    assert gap.payload.lost == {"pilot.connected": 3}
    assert {e.id for e in layer.log.read(types=["snapshot.received", "pilot.*"])} == {
        e.id for e in later
    }
    assert (writer.gaps_marked, writer.pending_gaps) == (1, 0)


async def test_a_marker_still_pending_at_stop_is_written_then(db: DatabaseService) -> None:
    layer = build_event_layer(TINY, db)
    writer = layer.log_writer
    assert writer is not None
    await layer.start()
    try:
        rename_events_table(db, "events", "events_away")
        burst = snapshot_events(T0, pilots=8, sectors=0)
        await layer.bus.publish_many(burst)
        await layer.bus.join()
        assert writer.pending_gaps == 1
        rename_events_table(db, "events_away", "events")
    finally:
        await layer.stop(10)
    [gap] = gaps_in(layer)
    assert gap.correlation_id == burst[0].id
    assert (writer.gaps_marked, writer.pending_gaps) == (1, 0)


# --- over HTTP ---------------------------------------------------------------------------------


@dataclass
class Running:
    client: TestClient
    layer: EventLayer

    def publish(self, events: list[Event]) -> None:
        portal = self.client.portal
        assert portal is not None
        portal.call(self.layer.bus.publish_many, events)
        portal.call(self.layer.bus.join)


@pytest.fixture
def running(engine: Engine) -> Iterator[Running]:
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    layer = build_event_layer(TINY, ingestor.db)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await layer.start()
        yield
        await layer.stop(10)

    app = create_app(ingestor, stale_after=60, lifespan=lifespan, events=layer, api_keys=[KEY])
    with TestClient(app) as client:
        yield Running(client, layer)


def samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_analytics_metrics_and_the_event_log_show_a_shedding_snapshot(running: Running) -> None:
    client = running.client
    quiet = client.get("/api/events/analytics", headers=AUTH).json()
    assert quiet["last_shed"] is None
    assert quiet["handlers"][EVENT_LOG_HANDLER]["snapshots_with_shed_events"] == 0
    before = samples(client.get("/metrics", headers=AUTH).text)
    assert ("vatsim_events_last_shed_timestamp_seconds", ()) not in before

    burst = snapshot_events(T0, pilots=9, sectors=0)
    running.publish(burst)

    data = client.get("/api/events/analytics", headers=AUTH).json()
    log = data["handlers"][EVENT_LOG_HANDLER]
    assert (log["shed"], log["snapshots_with_shed_events"]) == (6, 1)
    last = data["last_shed"]
    assert last["correlation_id"] == burst[0].id
    assert datetime.fromisoformat(last["snapshot_time"]) == T0
    assert last["total"] == 6
    assert last["handlers"] == {
        EVENT_LOG_HANDLER: {
            "events": 6,
            "by_type": {"pilot.connected": 6},
            "first_time": last["handlers"][EVENT_LOG_HANDLER]["first_time"],
            "last_time": last["handlers"][EVENT_LOG_HANDLER]["last_time"],
        }
    }
    assert datetime.fromisoformat(last["handlers"][EVENT_LOG_HANDLER]["first_time"]) == T0
    assert data["event_log_gaps"] == {"marked": 1, "pending": 0, "dropped": 0}

    after = samples(client.get("/metrics", headers=AUTH).text)
    handler = (("handler", EVENT_LOG_HANDLER),)
    assert after[("vatsim_handler_snapshots_with_shed_events_total", handler)] == 1
    assert after[("vatsim_events_last_shed_events", handler)] == 6
    reported = datetime.fromisoformat(last["reported_at"]).timestamp()
    assert after[("vatsim_events_last_shed_timestamp_seconds", ())] == pytest.approx(reported)
    assert after[("vatsim_event_log_gaps_total", ())] == 1

    page = client.get("/api/events", params={"type": "eventlog.gap"}, headers=AUTH).json()
    [gap] = page["events"]
    assert gap["correlation_id"] == burst[0].id
    assert gap["payload"]["events"] == 6
    assert gap["payload"]["lost"] == {"pilot.connected": 6}
