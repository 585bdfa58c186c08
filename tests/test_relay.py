"""The outbox relay against a real NATS server of the test's own (tests/natsserver.py).

Every row goes out once, in outbox order, with its event id as ``Nats-Msg-Id``; a re-publish is
dropped by the server; NATS down keeps the rows, and a server restart in the middle of the
outbox neither loses, repeats nor reorders anything. The database is the test's own (SQLite,
or PostgreSQL with VATSIM_TEST_DATABASE_URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from nats.aio.msg import Msg
from nats.js.api import StorageType, StreamConfig
from sqlalchemy import Engine
from structlog.testing import capture_logs

from feeds import SMALL, encode, later, load
from natsserver import NatsServer, nats_server, read_stream
from vatsim_collector.brokers.nats.connection import NatsConnection, redact_url
from vatsim_collector.brokers.nats.health import OutboxHealth
from vatsim_collector.brokers.nats.relay import MSG_ID, OutboxRelay
from vatsim_collector.brokers.nats.stream import (
    StreamMisconfigured,
    StreamSpec,
    ensure_stream,
    events_stream,
)
from vatsim_collector.config import Settings, load_settings
from vatsim_collector.errors.exceptions import ConfigurationError
from vatsim_collector.events.event import Event, decode_event, encode_event
from vatsim_collector.events.payloads import ControllerDisconnected, PilotConnected, SectorEntered
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome
from vatsim_collector.service import build_service_app
from vatsim_collector.store import outbox
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.health import HealthMonitor, Verdict
from vatsim_collector.store.outbox import EventOutbox

PREFIX = "relaytest.events"
STREAM = "RELAYTEST"
SPEC = StreamSpec(STREAM, (f"{PREFIX}.>",), duplicate_window_seconds=600)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    with nats_server(tmp_path) as running:
        yield running


@pytest.fixture
def stopped_server(tmp_path: Path) -> Iterator[NatsServer]:
    with nats_server(tmp_path, start=False) as idle:
        yield idle


@pytest.fixture
def db(engine: Engine) -> DatabaseService:
    return DatabaseService.for_engine(engine)


def make_relay(db: DatabaseService, connection: NatsConnection, batch_size: int) -> OutboxRelay:
    return OutboxRelay(
        db,
        connection,
        SPEC,
        batch_size=batch_size,
        ack_timeout=2.0,
        idle_interval=0.05,
        backoff_initial=0.05,
        backoff_max=0.5,
        count_interval=0.0,
    )


@contextlib.asynccontextmanager
async def connection_to(server: NatsServer) -> AsyncIterator[NatsConnection]:
    connection = NatsConnection(server.url, name="relay-test", reconnect_wait=0.2)
    await connection.start()
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def connection(server: NatsServer) -> AsyncIterator[NatsConnection]:
    async with connection_to(server) as c:
        yield c


def waiting(db: DatabaseService) -> int:
    with db.read("test") as conn:
        return outbox.backlog(conn).rows


async def eventually(check: Callable[[], bool], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def drain(relay: OutboxRelay, db: DatabaseService, within: float = 60.0) -> None:
    relay.start()
    try:
        await eventually(lambda: relay.backlog == 0 and waiting(db) == 0, within)
    finally:
        await relay.stop(10)


def synthetic(snapshots: int, per_snapshot: int) -> list[Event]:
    """Snapshots' worth of events of three types, oldest first, each snapshot's correlated."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    out: list[Event] = []
    for k in range(snapshots):
        at = start + timedelta(seconds=15 * k)
        received = Event.create(
            snapshot_received_payload(k, at), time=at, source="test", correlation_id=None
        )
        out.append(received)
        for i in range(per_snapshot):
            payload = (
                PilotConnected(
                    session_id=k * 1000 + i,
                    flight_id=k * 1000 + i,
                    cid=i,
                    callsign=f"T{i}",
                    logon_time=at,
                    latitude=0.0,
                    longitude=0.0,
                    altitude=0,
                    departure=None,
                    arrival=None,
                ),
                ControllerDisconnected(
                    session_id=k * 1000 + i,
                    cid=i,
                    callsign=f"C{i}",
                    logon_time=at,
                    first_seen=at,
                    last_seen=at,
                ),
                SectorEntered(
                    session_id=i,
                    flight_id=i,
                    cid=i,
                    callsign=f"T{i}",
                    sector="EDGG",
                    latitude=0.0,
                    longitude=0.0,
                    altitude=0,
                ),
            )[i % 3]
            out.append(Event.create(payload, time=at, source="test", correlation_id=received.id))
    return out


def snapshot_received_payload(k: int, at: datetime) -> object:
    from vatsim_collector.events.payloads import SnapshotReceived

    return SnapshotReceived(
        snapshot_id=k,
        update_timestamp=at,
        outcome="ingested",
        pilots=0,
        controllers=0,
        atis=0,
        prefiles=0,
        transceivers=None,
    )


def fill(db: DatabaseService, events: list[Event]) -> None:
    with db.write("test") as conn:
        EventOutbox(PREFIX).write(conn, events, snapshot_id=None)


def assert_stream_holds(messages: list[Msg], events: list[Event]) -> None:
    """Exactly ``events``, once each, in order, with the id header and the bus's bytes."""
    ids = [m.headers[MSG_ID] for m in messages if m.headers]
    assert len(ids) == len(set(ids)) == len(messages), "a message is missing its id or repeated"
    assert ids == [e.id for e in events]
    assert [m.subject for m in messages] == [f"{PREFIX}.{e.type}" for e in events]
    assert [m.data for m in messages] == [encode_event(e) for e in events]


async def test_the_relay_publishes_every_row_once_in_order_and_empties_the_outbox(
    engine: Engine, db: DatabaseService, server: NatsServer, connection: NatsConnection
) -> None:
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.outbox = EventOutbox(PREFIX)
    ingestor.restore()
    first = load(SMALL)
    events: list[Event] = []
    for doc in (first, later(first, 15), later(first, 30)):
        result = ingestor.ingest(encode(doc))
        assert result.outcome is Outcome.INGESTED
        events.extend(result.events)
    assert waiting(db) == len(events)

    relay = make_relay(db, connection, batch_size=64)
    await drain(relay, db)

    assert_stream_holds(await read_stream(server.url, STREAM), events)
    stats = relay.stats()
    assert (stats.published, stats.duplicates, stats.backlog) == (len(events), 0, 0)
    assert stats.lag_seconds == 0.0
    assert not stats.running


async def test_a_republish_adds_nothing_to_the_stream(
    db: DatabaseService, server: NatsServer, connection: NatsConnection
) -> None:
    events = synthetic(snapshots=6, per_snapshot=20)
    fill(db, events)
    relay = make_relay(db, connection, batch_size=50)
    await drain(relay, db)
    published = await read_stream(server.url, STREAM)
    assert_stream_holds(published, events)

    # As after a crash between the server's acknowledgement and the delete: the rows again.
    fill(db, [decode_event(m.data) for m in published])
    again = make_relay(db, connection, batch_size=50)
    await drain(again, db)
    assert (again.published, again.duplicates) == (0, len(events))
    assert_stream_holds(await read_stream(server.url, STREAM), events)

    # Re-published rows followed by new ones in one batch: the new ones still go out once each,
    # after the others.
    newer = synthetic(snapshots=2, per_snapshot=10)
    fill(db, [decode_event(m.data) for m in published[-30:]] + newer)
    mixed = make_relay(db, connection, batch_size=500)
    await drain(mixed, db)
    assert (mixed.published, mixed.duplicates) == (len(newer), 30)
    assert_stream_holds(await read_stream(server.url, STREAM), events + newer)


async def test_with_nats_down_the_rows_stay_and_go_out_once_it_is_back(
    db: DatabaseService, stopped_server: NatsServer
) -> None:
    events = synthetic(snapshots=3, per_snapshot=10)
    fill(db, events)
    async with connection_to(stopped_server) as connection:
        relay = make_relay(db, connection, batch_size=8)
        check = OutboxHealth(db, connection, backlog_degraded=5)
        monitor = HealthMonitor(db, checks=[check])
        relay.start()
        try:
            await eventually(lambda: relay.backlog == len(events) and relay.failed_rounds == 0)
            await asyncio.sleep(0.5)  # several backoff rounds
            assert waiting(db) == len(events)
            stats = relay.stats()
            assert stats.running
            assert not stats.connected
            assert stats.published == 0
            assert stats.lag_seconds > 0
            assert stats.last_error == "NATS is not connected"
            report = await asyncio.to_thread(monitor.probe)
            assert report.status is Verdict.DEGRADED
            assert "NATS is not connected: events wait in the outbox" in report.reasons
            assert any(f"{len(events)} events waiting in the outbox" in r for r in report.reasons)

            stopped_server.start()
            await eventually(lambda: relay.backlog == 0 and waiting(db) == 0)
            report = await asyncio.to_thread(monitor.probe)
            assert not any("NATS" in r or "outbox" in r for r in report.reasons)
        finally:
            await relay.stop(10)
    assert_stream_holds(await read_stream(stopped_server.url, STREAM), events)


async def test_a_server_restart_in_the_middle_loses_repeats_and_reorders_nothing(
    db: DatabaseService, server: NatsServer
) -> None:
    events = synthetic(snapshots=80, per_snapshot=60)  # 4,880 rows
    fill(db, events)
    async with connection_to(server) as connection:
        relay = make_relay(db, connection, batch_size=25)
        relay.start()
        try:
            await eventually(lambda: relay.published >= 500)
            server.stop()  # in order (SIGTERM): what it acknowledged is on disk
            assert waiting(db) > 0, "the restart must come while rows still wait"
            await asyncio.sleep(0.5)
            server.start()
            await eventually(lambda: relay.published >= 2_500)
            server.restart()
            await eventually(lambda: relay.backlog == 0 and waiting(db) == 0, within=120)
        finally:
            await relay.stop(10)
    assert connection.disconnects >= 2
    assert_stream_holds(await read_stream(server.url, STREAM), events)
    assert relay.published + relay.duplicates >= len(events)


async def test_another_publisher_in_the_stream_costs_rounds_not_order(
    db: DatabaseService, server: NatsServer, connection: NatsConnection
) -> None:
    events = synthetic(snapshots=40, per_snapshot=50)
    fill(db, events)
    relay = make_relay(db, connection, batch_size=40)
    nc = await nats.connect(server.url)
    try:
        js = nc.jetstream()
        relay.start()
        try:
            await eventually(lambda: relay.published > 0)  # the relay made the stream
            for i in range(40):  # while the relay publishes, someone else does too
                await js.publish(f"{PREFIX}.foreign", str(i).encode())
                await asyncio.sleep(0.005)
            await eventually(lambda: relay.backlog == 0 and waiting(db) == 0)
        finally:
            await relay.stop(10)
    finally:
        await nc.close()
    messages = await read_stream(server.url, STREAM)
    ours = [m for m in messages if m.subject != f"{PREFIX}.foreign"]
    assert_stream_holds(ours, events)
    assert [m.data for m in messages if m.subject == f"{PREFIX}.foreign"] == [
        str(i).encode() for i in range(40)
    ]


async def test_the_stream_is_created_updated_and_refused_when_it_cannot_be(
    server: NatsServer,
) -> None:
    nc = await nats.connect(server.url)
    try:
        js = nc.jetstream()
        settings = Settings(nats_url=server.url, nats_stream="EV", nats_subject_prefix="a.b")
        spec = events_stream(settings)
        info = await ensure_stream(js, spec)
        assert info.config.subjects == ["a.b.>"]
        assert info.config.storage == StorageType.FILE.value
        assert info.config.duplicate_window == 600.0
        assert info.config.max_age == 7 * 86_400.0
        assert (await ensure_stream(js, spec)).config == info.config  # nothing to change

        longer = StreamSpec("EV", ("a.b.>", "c.>"), duplicate_window_seconds=900)
        updated = await ensure_stream(js, longer)
        assert sorted(updated.config.subjects or []) == ["a.b.>", "c.>"]
        assert updated.config.duplicate_window == 900.0
        assert updated.config.max_age == 0.0

        await js.add_stream(StreamConfig(name="MEM", subjects=["m.>"], storage=StorageType.MEMORY))
        with pytest.raises(StreamMisconfigured, match="file storage"):
            await ensure_stream(js, StreamSpec("MEM", ("m.>",), duplicate_window_seconds=60))
    finally:
        await nc.close()
    with pytest.raises(ConfigurationError, match="shorter than the duplicate window"):
        StreamSpec("X", ("x.>",), duplicate_window_seconds=600, max_age_seconds=60)


def test_urls_are_redacted() -> None:
    assert redact_url("nats://alice:s3cret@host:4222") == "nats://***@host:4222"
    assert redact_url("nats://t0ken@h1:4222, tls://h2:4222") == "nats://***@h1:4222,tls://h2:4222"
    assert redact_url("127.0.0.1:4222") == "nats://127.0.0.1:4222"


async def test_credentials_in_the_url_never_reach_the_logs(stopped_server: NatsServer) -> None:
    url = f"nats://alice:s3cret-pw@127.0.0.1:{stopped_server.port}"
    with capture_logs() as logs:
        connection = NatsConnection(url, name="secret-test", reconnect_wait=0.1)
        await connection.start()
        try:
            await asyncio.sleep(0.5)  # failed attempts
            assert not connection.connected
            stopped_server.start()
            assert await connection.wait_connected(10)
        finally:
            await connection.close()
    assert any(entry["event"] == "NATS connection error" for entry in logs)
    assert any(entry["event"] == "NATS connected" for entry in logs)
    assert "s3cret-pw" not in repr(logs)
    assert "alice" not in repr(logs)
    assert f"nats://***@127.0.0.1:{stopped_server.port}" in repr(logs)


def _service(database_url: str, tmp_path: Path, **nats: str) -> FastAPI:
    settings = load_settings(
        database_url=database_url,
        status_url="http://127.0.0.1:9/status.json",
        spool_dir=tmp_path / "spool",
        airspace_enabled=False,
        **nats,
    )
    return build_service_app(settings)  # no lifespan: nothing is started


def test_without_a_nats_url_the_service_has_no_outbox_relay_or_nats_health(
    database_url: str, tmp_path: Path
) -> None:
    app = _service(database_url, tmp_path)
    try:
        ctx = app.state.api_context
        assert ctx.collector.outbox is None
        assert ctx.health.checks == []
        text = TestClient(app).get("/metrics").text
        assert "vatsim_outbox_backlog" not in text
        assert "vatsim_nats_connected" not in text
    finally:
        ctx.db.dispose()


def test_with_a_nats_url_the_service_writes_the_outbox_and_reports_the_relay(
    database_url: str, tmp_path: Path, stopped_server: NatsServer
) -> None:
    app = _service(
        database_url,
        tmp_path,
        nats_url=f"nats://user:hunter2@127.0.0.1:{stopped_server.port}",
        nats_subject_prefix="svc.events",
    )
    try:
        ctx = app.state.api_context
        assert isinstance(ctx.collector.outbox, EventOutbox)
        assert ctx.collector.outbox.subject_prefix == "svc.events"
        client = TestClient(app)
        text = client.get("/metrics").text
        for line in (
            "vatsim_relay_running 0.0",
            "vatsim_nats_connected 0.0",
            "vatsim_relay_published_total 0.0",
            "vatsim_relay_lag_seconds 0.0",
        ):
            assert line in text, line
        health = client.get("/health").json()
        assert "NATS is not connected: events wait in the outbox" in health["reasons"]
        assert "hunter2" not in client.get("/api/status").text
    finally:
        ctx.db.dispose()


async def test_the_relay_runs_while_the_node_leads(
    db: DatabaseService, server: NatsServer, connection: NatsConnection
) -> None:
    relay = make_relay(db, connection, batch_size=50)
    first, second = synthetic(snapshots=2, per_snapshot=20), synthetic(snapshots=2, per_snapshot=5)
    fill(db, first)
    await relay.promote(1)
    try:
        await eventually(lambda: relay.running and waiting(db) == 0)
        await relay.demote("another node leads")
        await eventually(lambda: not relay.running)
        fill(db, second)
        relay.wake()
        await asyncio.sleep(0.5)
        assert waiting(db) == len(second), "a node that does not lead relays nothing"
        await relay.observe(object())
        await relay.promote(2)
        await eventually(lambda: relay.running and waiting(db) == 0)
    finally:
        await relay.stop(10)
    assert_stream_holds(await read_stream(server.url, STREAM), first + second)
