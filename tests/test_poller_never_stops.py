"""Nothing stops collection: poisoned and damaged spool entries, failing loops, missed ticks."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import Engine, select

from feeds import SMALL, encode, later, load, timestamp
from simserver import running_simulator
from test_poison_pills import held, refuse_poison, with_poison
from tinyfs import PAGE, tiny_filesystem_or_skip
from vatsim_collector.config import load_settings
from vatsim_collector.errors.breaker import BreakerConfig, BreakerState
from vatsim_collector.errors.manager import ErrorManager
from vatsim_collector.errors.registry import BreakerRegistry
from vatsim_collector.feed.client import FeedClient, FetchedFeed
from vatsim_collector.feed.schedule import FixedRateSchedule
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.pipeline.poller import Poller
from vatsim_collector.pipeline.spool import SnapshotSpool, SpooledSnapshot
from vatsim_collector.simulator.server import SimulatedNetwork
from vatsim_collector.store import schema as t
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.engine import create_db_engine
from vatsim_collector.store.migrate import upgrade

NOWHERE = "http://127.0.0.1:9/status.json"  # never asked: these pollers only write


def stored_stamps(engine: Engine) -> list[datetime]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(t.snapshots.c.update_timestamp).order_by(t.snapshots.c.update_timestamp)
            ).scalars()
        )


def item(doc: dict[str, Any], source: str = "test") -> SpooledSnapshot:
    return SpooledSnapshot(encode(doc), None, datetime.now(UTC), source)


async def test_a_poisoned_and_a_damaged_spool_entry_are_set_aside_and_the_rest_drain(
    engine: Engine, tmp_path: Path
) -> None:
    refuse_poison(engine)
    first = load(SMALL)
    docs = [first, with_poison(later(first, 15)), later(first, 30), later(first, 45)]
    spool = SnapshotSpool(tmp_path / "spool", max_entries=100, max_bytes=10**9)
    for doc in docs:
        spool.put(item(doc))
    # The third entry is damaged on disk after it was written (a torn disk, a stray copy).
    third = sorted((tmp_path / "spool").glob("*.snap"))[2]
    third.write_bytes(b"\x00garbag")

    errors = ErrorManager(None)
    breakers = BreakerRegistry(BreakerConfig(failure_threshold=1, cooldown=60))
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    client = FeedClient(load_settings(status_url=NOWHERE))
    poller = Poller(client, ingestor, FixedRateSchedule(1), spool, errors=errors, breakers=breakers)
    try:
        results = await poller.write_pending()
    finally:
        await client.aclose()

    assert [r.outcome.value for r in results] == ["ingested", "held", "ingested"]
    assert stored_stamps(engine) == [timestamp(docs[0]), timestamp(docs[3])]
    assert [kind for kind, _, _ in held(engine)] == ["held"]
    assert breakers.get_or_create("database").state is BreakerState.CLOSED
    assert len(spool) == 0
    assert poller.backlog == 0
    assert list((tmp_path / "spool").glob("*.snap")) == []
    damaged = [r for r in errors.recent(100) if r.operation == "spool_read"]
    assert len(damaged) == 1
    assert poller.counters.spool_damaged == 1
    assert poller.counters.data_errors == 1
    assert any(p.is_file() for p in (tmp_path / "spool").rglob("*") if p.parent.name != "spool")


async def test_ticks_missed_between_stored_snapshots_are_counted(engine: Engine) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    network = SimulatedNetwork(seed=4, start=start)
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    with running_simulator(network=network, speed=0) as sim:
        client = FeedClient(load_settings(status_url=f"{sim}/status.json", poll_interval=0.1))
        poller = Poller(client, ingestor, FixedRateSchedule(0.1), cadence=15)
        try:
            await poller.poll_once()
            httpx2.post(f"{sim}/_sim/tick")
            await poller.poll_once()
            assert poller.counters.missed_ticks == 0
            for _ in range(3):  # two ticks pass unseen
                httpx2.post(f"{sim}/_sim/tick")
            await poller.poll_once()
        finally:
            await client.aclose()
    assert len(stored_stamps(engine)) == 3
    assert poller.counters.missed_ticks == 2


class FlakyClient(FeedClient):
    """A feed client with a bug: every other "stored" notice raises (a failure of ours, not
    of the feed, which the fetch's own recovery would absorb)."""

    calls = 0

    def accepted(self, stamp: datetime) -> None:
        self.calls += 1
        if self.calls % 2 == 0:
            raise RuntimeError("a bug in the client")
        super().accepted(stamp)


class Fatal(BaseException):
    """Something no loop may swallow."""


class DeadlyClient(FeedClient):
    async def fetch(self) -> FetchedFeed | None:
        raise Fatal("the interpreter is going away")


async def wait_until(condition: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


async def test_unexpected_failures_are_survived_and_counted(engine: Engine) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    errors = ErrorManager(None)
    with running_simulator(network=SimulatedNetwork(seed=4, start=start), speed=0) as sim:
        client = FlakyClient(load_settings(status_url=f"{sim}/status.json", poll_interval=0.05))
        poller = Poller(client, ingestor, FixedRateSchedule(0.05), errors=errors)
        task = asyncio.create_task(poller.run())
        try:
            for _ in range(3):
                httpx2.post(f"{sim}/_sim/tick")
                stored = len(stored_stamps(engine))
                await wait_until(lambda n=stored: len(stored_stamps(engine)) > n, 30)
        finally:
            poller.stop()
            await asyncio.wait_for(task, 30)
            await client.aclose()
    assert poller.counters.loop_errors >= 1
    assert poller.fatal is None
    assert len(stored_stamps(engine)) == 3
    survived = [r for r in errors.recent(100) if r.operation == "write_loop"]
    assert survived
    assert all("RuntimeError" in r.error_type for r in survived)


async def test_a_dead_loop_is_reported_not_hidden(engine: Engine) -> None:
    ingestor = Ingestor(engine, IngestConfig())
    client = DeadlyClient(load_settings(status_url=NOWHERE))
    poller = Poller(client, ingestor, FixedRateSchedule(0.05))
    try:
        with pytest.raises(Fatal):
            await asyncio.wait_for(poller.run(), 30)
    finally:
        await client.aclose()
    assert poller.fatal is not None
    assert "fetch loop died" in poller.fatal
    assert "Fatal" in poller.fatal


async def test_a_full_spool_disk_while_the_database_is_down_never_stops_polling(
    tmp_path: Path,
) -> None:
    # A database without its schema: every write fails as an outage would, until the
    # migrations run (the database "comes back").
    db = DatabaseService.for_engine(create_db_engine(f"sqlite:///{tmp_path}/late.db"))
    ingestor = Ingestor(db, IngestConfig())
    errors = ErrorManager(None)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    network = SimulatedNetwork(seed=6, start=start)
    fetched: list[datetime] = []
    with (
        tiny_filesystem_or_skip(64 * PAGE) as disk,
        running_simulator(network=network, speed=0) as sim,
    ):
        spool = SnapshotSpool(disk.root / "spool", max_entries=1000, max_bytes=10**9)
        disk.fill()
        client = FeedClient(load_settings(status_url=f"{sim}/status.json", poll_interval=0.1))
        poller = Poller(
            client, ingestor, FixedRateSchedule(0.1), spool, errors=errors, pending_in_memory=2
        )
        try:
            for _ in range(6):
                fetched.append(timestamp(network.data_document()))
                await poller.poll_once()
                httpx2.post(f"{sim}/_sim/tick")
            assert poller.counters.cycles == 6
            assert poller.backlog == 6, "nothing fetched is lost while the disk is full"
            assert len(spool) == 0
            assert [r for r in errors.recent(100) if r.operation == "spool_write"]
            assert not list((disk.root / "spool").glob("*.tmp"))

            disk.free_all()
            upgrade(db.engine)
            for _ in range(2):
                fetched.append(timestamp(network.data_document()))
                await poller.poll_once()
                httpx2.post(f"{sim}/_sim/tick")
        finally:
            await client.aclose()
    assert poller.backlog == 0
    assert stored_stamps(db.engine) == fetched
    assert poller.counters.dropped == 0
    db.dispose()
