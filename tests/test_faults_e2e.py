"""The collector against a misbehaving simulator: faults are classified, counted, survived."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from simserver import running_simulator
from vatsim_collector.api import create_app
from vatsim_collector.api.context import ErrorLayer
from vatsim_collector.config import load_settings
from vatsim_collector.errors.breaker import BreakerConfig, BreakerState
from vatsim_collector.errors.manager import ErrorManager
from vatsim_collector.errors.registry import BreakerRegistry
from vatsim_collector.feed.client import FeedClient
from vatsim_collector.feed.schedule import FixedRateSchedule
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.pipeline.poller import Poller
from vatsim_collector.pipeline.spool import SnapshotSpool
from vatsim_collector.simulator.world import SimRates, SimulatedNetwork
from vatsim_collector.store import schema as t
from vatsim_collector.store.error_records import ErrorRecordStore

NO_CHURN = SimRates(
    pilot_leave=0,
    pilot_join=0,
    controller_leave=0,
    controller_join=0,
    atis_leave=0,
    atis_join=0,
)


def count(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


async def test_faults_are_counted_breakers_cycle_and_no_session_is_harmed(
    engine: Engine, tmp_path: Path
) -> None:
    # Started in the past: each manual tick moves the network 15 s on, and a document dated
    # more than 5 minutes ahead of the clock would be quarantined.
    network = SimulatedNetwork(
        seed=5, start=datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6), rates=NO_CHURN
    )
    population = len(network.data_document()["pilots"])
    ingestor = Ingestor(engine, IngestConfig(missed_snapshots_to_end=1))
    ingestor.restore()
    errors = ErrorManager(ErrorRecordStore(ingestor.db))
    breakers = BreakerRegistry(BreakerConfig(failure_threshold=3, cooldown=0.5))
    transitions: list[tuple[str, BreakerState]] = []
    breakers.add_listener(lambda change: transitions.append((change.name, change.current)))

    with running_simulator(network=network, speed=0) as sim:
        settings = load_settings(
            # Generous against a loaded machine: only the injected hold may time out.
            status_url=f"{sim}/status.json",
            poll_interval=0.1,
            http_timeout=2.0,
        )
        client = FeedClient(settings)
        poller = Poller(
            client,
            ingestor,
            FixedRateSchedule(0.1),
            SnapshotSpool(tmp_path / "spool", max_entries=10, max_bytes=10**8),
            errors=errors,
            breakers=breakers,
        )

        def faults(**plan: Any) -> dict[str, Any]:
            response = httpx2.post(f"{sim}/_sim/faults", json=plan)
            assert response.status_code == 200, response.text
            answer: dict[str, Any] = httpx2.get(f"{sim}/_sim/faults").json()
            return answer

        async def cycles(n: int) -> None:
            for _ in range(n):
                httpx2.post(f"{sim}/_sim/tick")
                await poller.poll_once()  # must never raise, whatever the feed does

        await cycles(2)
        faults(rate=0.5, seed=9, timeout_seconds=6.0, apply_to_transceivers=False)
        await cycles(40)
        injected = faults(rate=0.0)["counts"]

        # Every injected fault on the data document is one error record of the right kind.
        by_category = errors.counts()["by_category"]
        assert injected["http5xx"] + injected["timeout"] > 0
        assert by_category.get("http_status", 0) == injected["http5xx"]
        assert by_category.get("timeout", 0) == injected["timeout"]
        decode_faults = injected["truncated"] + injected["invalid_json"] + injected["non_v3"]
        assert decode_faults > 0
        assert by_category.get("decode", 0) == decode_faults
        assert client.duplicates >= injected["stale"]

        # A feed that keeps failing opens its breaker; once it heals, a probe closes it.
        faults(rate=1.0, kinds=["http5xx"], reset_counts=True)
        await cycles(6)
        data_breaker = breakers.get("feed.data")
        assert data_breaker is not None
        assert data_breaker.state is BreakerState.OPEN
        requests_while_open = faults(rate=0.0)["requests"]
        assert requests_while_open < 6, "an open breaker must stop the calls"
        app = create_app(ingestor, stale_after=10**9, errors=ErrorLayer(errors, breakers, poller))
        with TestClient(app) as api:
            feed = api.get("/api/status").json()["feed"]
        assert feed["status"] == "failing"
        assert feed["breakers"]["feed.data"] in ("open", "half_open")
        assert feed["failing_since"] is not None
        await asyncio.sleep(0.6)
        stored_before = count(engine, t.snapshots)
        await cycles(3)
        assert data_breaker.state is BreakerState.CLOSED
        with TestClient(app) as api:
            assert api.get("/api/status").json()["feed"]["status"] == "ok"
        await client.aclose()

    feed_changes = [state for name, state in transitions if name == "feed.data"]
    assert feed_changes[-3:] == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]
    # No failed or stale cycle ended a session, even with the strictest end rule (N = 1).
    assert ingestor.stats.pilot_sessions_closed == 0
    assert count(engine, t.pilot_sessions) == population
    # After the faults: every cycle stored a snapshot with every pilot in it.
    assert count(engine, t.snapshots) == stored_before + 3
    last_three = select(t.snapshots.c.id).order_by(t.snapshots.c.id.desc()).limit(3)
    with engine.connect() as conn:
        rows = conn.execute(
            select(func.count())
            .select_from(t.positions)
            .where(t.positions.c.snapshot_id.in_(last_three.scalar_subquery()))
        ).scalar_one()
    assert rows == 3 * population
    assert errors.flush() >= 0
    assert count(engine, t.error_records) == errors.counts()["total"]
