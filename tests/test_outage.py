"""The collector survives its PostgreSQL server going away and coming back, losing nothing."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
from sqlalchemy import Engine, select

from feeds import parse_time
from simserver import running_simulator
from tcpproxy import TcpProxy
from vatsim_collector.config import load_settings
from vatsim_collector.feed.client import FeedClient
from vatsim_collector.feed.schedule import FixedRateSchedule
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.pipeline.poller import Poller
from vatsim_collector.pipeline.spool import SnapshotSpool
from vatsim_collector.simulator.server import SimulatedNetwork
from vatsim_collector.store import schema as t
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.engine import PoolSettings, create_db_engine
from vatsim_collector.store.health import HealthLimits, HealthMonitor, Verdict
from vatsim_collector.store.manager import DatabaseManager


def pilot_keys(doc: dict[str, Any]) -> set[tuple[int, str, datetime]]:
    return {(p["cid"], p["callsign"], parse_time(p["logon_time"])) for p in doc["pilots"]}


async def test_an_outage_loses_nothing_and_splits_no_session(
    proxied_postgresql: tuple[str, TcpProxy], engine: Engine, tmp_path: Path
) -> None:
    url, proxy = proxied_postgresql
    # Ten manual ticks of 15 s each must stay in the past: /health counts a snapshot dated
    # ahead of the clock as a fault.
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    network = SimulatedNetwork(seed=11, start=start)
    db = DatabaseService(
        DatabaseManager(create_db_engine(url, pool=PoolSettings(size=2, max_overflow=0)))
    )
    ingestor = Ingestor(db, IngestConfig(missed_snapshots_to_end=4))
    ingestor.restore()
    spool = SnapshotSpool(tmp_path / "spool", max_entries=100, max_bytes=10**9)
    monitor = HealthMonitor(
        db, limits=HealthLimits(stale_after_seconds=3600), backlog=lambda: poller.backlog
    )
    fetched: list[dict[str, Any]] = []
    with running_simulator(network=network, speed=0) as sim:
        settings = load_settings(
            status_url=f"{sim}/status.json", poll_interval=0.1, database_url=url
        )
        client = FeedClient(settings)
        # Two in memory: the other two of the outage spill to the spool.
        poller = Poller(client, ingestor, FixedRateSchedule(0.1), spool, pending_in_memory=2)

        async def cycle() -> None:
            fetched.append(network.data_document())
            await poller.poll_once()
            httpx2.post(f"{sim}/_sim/tick")

        for _ in range(3):
            await cycle()
        assert monitor.probe().status is Verdict.OK

        proxy.cut()
        for _ in range(4):
            await cycle()
        assert poller.backlog == 4, "snapshots fetched during the outage must wait"
        assert len(spool) == 4 - poller.pending.in_memory, "beyond a few, on disk"
        assert len(spool) > 0
        down = monitor.probe()
        assert down.status is Verdict.DOWN
        assert down.backlog == 4

        proxy.restore()
        for _ in range(3):
            await cycle()
        assert len(spool) == 0
        assert poller.backlog == 0
        assert monitor.probe().status is Verdict.OK
        await client.aclose()
    db.dispose()

    assert [c.current for c in monitor.transitions] == [Verdict.OK, Verdict.DOWN, Verdict.OK]
    stamps = {parse_time(d["general"]["update_timestamp"]) for d in fetched}
    with engine.connect() as conn:
        stored = set(conn.execute(select(t.snapshots.c.update_timestamp)).scalars())
        sessions = {
            (r.cid, r.callsign, r.logon_time): r for r in conn.execute(select(t.pilot_sessions))
        }
        positions = {
            (r.snapshot_id, r.pilot_session_id)
            for r in conn.execute(select(t.positions.c.snapshot_id, t.positions.c.pilot_session_id))
        }
    assert stored == stamps, "every snapshot fetched during the outage was stored afterwards"
    expected_keys = set().union(*(pilot_keys(d) for d in fetched))
    assert set(sessions) == expected_keys, "one session per connection: none split, none lost"
    for doc in fetched:
        snapshot_id = t.snapshot_id_for(parse_time(doc["general"]["update_timestamp"]))
        for key in pilot_keys(doc):
            assert (snapshot_id, sessions[key].id) in positions
    assert os.listdir(tmp_path / "spool") == []
