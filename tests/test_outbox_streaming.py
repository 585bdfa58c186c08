"""Acceptance "Outbox and streaming": every event reaches the stream exactly once, in snapshot
order, through kill -9 of the collector between commit and publish and restarts of NATS.

All real and multi-process: ``vatsim-collector run`` as a subprocess against the hostile feed
server (valid documents only, on its own clock) over HTTP, a NATS server of the test's own, the
test's own database. The collector first runs while NATS is down, so the committed snapshots'
events pile up in the outbox unpublished, and is killed with SIGKILL; NATS starts, the
collector restarts and relays them; NATS is restarted under it; the collector is killed once
more while publishing; a last run drains the outbox. Then the stream is compared with what the
database holds: one ``snapshot.received`` per stored snapshot, one ``pilot.connected`` per
pilot session and one ``controller.connected`` per controller session, no event twice, none
of a snapshot the database lacks, each snapshot's events together and in snapshot order.

The NATS URL carries credentials, which must appear in no log line.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
from collections import defaultdict
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path

import pytest
from nats.aio.msg import Msg
from sqlalchemy import Engine, func, select

from hostile_feed import (
    Collector,
    HostileFeed,
    metric_sum,
    running_collector,
    serving,
    wait_until,
)
from natsserver import NatsServer, nats_server, read_stream
from vatsim_collector.brokers.nats.relay import MSG_ID
from vatsim_collector.events.event import Event, decode_event
from vatsim_collector.events.payloads import (
    ControllerConnected,
    PilotConnected,
    SnapshotReceived,
)
from vatsim_collector.store import schema as t
from vatsim_collector.store.engine import create_db_engine

pytestmark = pytest.mark.slow

STREAM = "ACCEPTANCE_EVENTS"
PREFIX = "vatsim.events"


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsServer]:
    with nats_server(tmp_path, start=False) as server:
        yield server


@pytest.fixture
def db(database_url: str) -> Iterator[Engine]:
    engine = create_db_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def count(engine: Engine, table: t.Table) -> int:
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
    except Exception:  # not migrated yet: the collector is still starting
        return 0


def ids(engine: Engine, table: t.Table) -> set[int]:
    with engine.connect() as conn:
        return {int(v) for v in conn.execute(select(table.c.id)).scalars()}


def grows(engine: Engine, at_least: int) -> bool:
    return count(engine, t.snapshots) >= at_least


def kill(collector: Collector) -> None:
    assert collector.proc is not None
    collector.proc.kill()  # SIGKILL: no shutdown of any kind
    collector.proc.wait(timeout=30)


def test_every_event_reaches_the_stream_once_in_snapshot_order(
    database_url: str, db: Engine, nats: NatsServer, tmp_path: Path
) -> None:
    password = f"pw-{secrets.token_hex(8)}"
    env = {
        "VATSIM_NATS_URL": f"nats://collector:{password}@127.0.0.1:{nats.port}",
        "VATSIM_NATS_STREAM": STREAM,
        "VATSIM_HEALTH_INTERVAL": "0.5",
        "VATSIM_OUTBOX_BACKLOG_DEGRADED": "1",
        "VATSIM_EVENT_LOG_TYPES": "",
    }
    feed = HostileFeed(network_seed=12, cadence=0.5)
    logs: list[Path] = []
    with serving(feed) as base:
        status_url = f"{base}/status.json"

        def run() -> AbstractContextManager[Collector]:
            return running_collector(database_url, status_url, tmp_path, env=env)

        # 1. NATS down: snapshots commit, their events wait in the outbox; then kill -9.
        with run() as collector:
            logs.append(collector.log_path)
            assert wait_until(lambda: grows(db, 4) and count(db, t.event_outbox) > 0, timeout=90)
            assert wait_until(
                lambda: (
                    "NATS is not connected: events wait in the outbox"
                    in collector.get("/health").json()["reasons"]
                ),
                timeout=30,
            )
            samples = collector.metrics()
            assert metric_sum(samples, "vatsim_nats_connected") == 0
            assert metric_sum(samples, "vatsim_relay_published_total") == 0
            kill(collector)
        stranded = count(db, t.event_outbox)
        assert stranded > 0, "the killed collector's committed events are in the outbox"

        # 2. NATS up, the collector back: the stranded events go out; NATS restarts under it.
        nats.start()
        with run() as collector:
            logs.append(collector.log_path)
            stored = count(db, t.snapshots)
            assert wait_until(lambda: count(db, t.event_outbox) < stranded, timeout=60)
            assert wait_until(lambda: grows(db, stored + 3), timeout=60)
            nats.restart()
            stored = count(db, t.snapshots)
            assert wait_until(lambda: grows(db, stored + 3), timeout=60)
            assert wait_until(
                lambda: (
                    (metric_sum(collector.metrics(), "vatsim_relay_published_total") or 0)
                    > stranded
                ),
                timeout=60,
            )
            # 3. Killed again while it publishes: whatever was acknowledged but not yet
            # deleted goes out again, and the server drops it.
            kill(collector)

        # 4. A last run drains the outbox once the feed stops moving.
        with run() as collector:
            logs.append(collector.log_path)
            stored = count(db, t.snapshots)
            assert wait_until(lambda: grows(db, stored + 2), timeout=60)
            feed.last_tick = feed.current.index
            last = feed.current.update_timestamp
            assert wait_until(
                lambda: _latest(db) == last and count(db, t.event_outbox) == 0, timeout=90
            )
            samples = collector.metrics()
            assert metric_sum(samples, "vatsim_nats_connected") == 1
            assert metric_sum(samples, "vatsim_outbox_backlog") == 0
            assert wait_until(lambda: collector.get("/health").json()["reasons"] == [], timeout=30)
        # Stopped in order (uvicorn re-raises the SIGTERM it handled once it has shut down).
        assert collector.exit_code in (0, -signal.SIGTERM)
        assert "outbox relay stopped" in collector.output()

    messages = asyncio.run(read_stream(nats.url, STREAM))
    assert_stream_matches_database(messages, db)
    for path in logs:
        assert password not in path.read_text(errors="replace"), f"{path} leaks the NATS password"
    assert nats.starts == 2


def _latest(engine: Engine) -> datetime | None:
    with engine.connect() as conn:
        value: datetime | None = conn.execute(
            select(t.snapshots.c.update_timestamp)
            .order_by(t.snapshots.c.update_timestamp.desc())
            .limit(1)
        ).scalar_one_or_none()
        return value


def assert_stream_matches_database(messages: list[Msg], engine: Engine) -> None:
    events: list[Event] = [decode_event(m.data) for m in messages]
    # Exactly once: every message's id header is its event's id, and no id twice.
    assert [m.headers[MSG_ID] if m.headers else None for m in messages] == [e.id for e in events]
    assert len({e.id for e in events}) == len(events), "an event is in the stream twice"
    assert [m.subject for m in messages] == [f"{PREFIX}.{e.type}" for e in events]

    # Every stored snapshot once, and nothing of a snapshot the database does not hold.
    received = [e for e in events if isinstance(e.payload, SnapshotReceived)]
    snapshot_ids = [e.payload.snapshot_id for e in received]  # type: ignore[union-attr]
    assert sorted(snapshot_ids) == sorted(ids(engine, t.snapshots))
    by_correlation = {e.id: e for e in received}
    for event in events:
        if event in received:
            continue
        assert event.correlation_id in by_correlation, "an event of an unknown snapshot"
        assert event.time == by_correlation[event.correlation_id].time

    # Every session opened once.
    opened = [
        e.payload.session_id  # type: ignore[union-attr]
        for e in events
        if isinstance(e.payload, PilotConnected) and not e.payload.resumed
    ]
    assert len(opened) == len(set(opened))
    assert set(opened) == ids(engine, t.pilot_sessions)
    controllers = [
        e.payload.session_id  # type: ignore[union-attr]
        for e in events
        if isinstance(e.payload, ControllerConnected) and not e.payload.resumed
    ]
    assert len(controllers) == len(set(controllers))
    assert set(controllers) == ids(engine, t.controller_sessions)

    # Snapshot order: each snapshot's events in one run, its snapshot.received first, the
    # snapshots one after the other in time; so per subject too.
    runs: list[str] = []
    for event in events:
        key = event.id if isinstance(event.payload, SnapshotReceived) else event.correlation_id
        assert key is not None
        if not runs or runs[-1] != key:
            assert key not in runs, "a snapshot's events are split"
            assert isinstance(event.payload, SnapshotReceived), "events before their snapshot"
            runs.append(key)
    times = [by_correlation[key].time for key in runs]
    assert times == sorted(times)
    assert len(set(times)) == len(times)
    per_subject: dict[str, list[datetime]] = defaultdict(list)
    for message, event in zip(messages, events, strict=True):
        per_subject[message.subject].append(event.time)
    for subject, seen in per_subject.items():
        assert seen == sorted(seen), f"{subject} is out of snapshot order"
    assert {f"{PREFIX}.snapshot.received", f"{PREFIX}.pilot.connected"} <= per_subject.keys()
