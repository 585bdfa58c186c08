"""When the spool bound is hit, the dropped snapshot is counted and becomes an error record."""

from __future__ import annotations

from pathlib import Path

import httpx2

from simserver import running_simulator
from vatsim_collector.config import load_settings
from vatsim_collector.errors.manager import ErrorManager
from vatsim_collector.feed.client import FeedClient
from vatsim_collector.feed.schedule import FixedRateSchedule
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.pipeline.poller import Poller
from vatsim_collector.pipeline.spool import SnapshotSpool
from vatsim_collector.simulator.server import SimulatedNetwork
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.engine import create_db_engine


async def test_spool_bound_drops_oldest_with_a_counter_and_an_error_record(
    tmp_path: Path,
) -> None:
    # A database without its schema: every write fails as an outage would.
    broken = DatabaseService.for_engine(create_db_engine(f"sqlite:///{tmp_path}/empty.db"))
    errors = ErrorManager(None)
    spool = SnapshotSpool(tmp_path / "spool", max_entries=2, max_bytes=10**9)
    with running_simulator(network=SimulatedNetwork(seed=2), speed=0) as sim:
        client = FeedClient(load_settings(status_url=f"{sim}/status.json", poll_interval=0.1))
        poller = Poller(
            client,
            Ingestor(broken, IngestConfig()),
            FixedRateSchedule(0.1),
            spool,
            errors=errors,
            pending_in_memory=1,  # the rest spills to the spool at once
        )
        for _ in range(5):
            await poller.poll_once()
            httpx2.post(f"{sim}/_sim/tick")
        await client.aclose()
    broken.dispose()
    assert len(spool) == 2
    assert poller.pending.in_memory == 1
    assert spool.dropped == 2
    assert poller.counters.dropped == 2
    drops = [r for r in errors.recent(100) if r.operation == "spool"]
    assert len(drops) == 2
    assert {r.category.value for r in drops} == {"resource"}
    assert all("bytes" in r.context for r in drops)
