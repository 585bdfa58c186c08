"""A database recorded by the real pipeline, for tests that need every table to hold real rows.

The simulator's documents go through the ingestor with the airspace engine and the VATSpy
sectors; every snapshot's events are published on a running event bus, whose own handlers
write the event log and the flight and controller summaries, exactly as in the service. One
extra handler refuses every ``controller.connected``, so the dead-letter queue, the error
records and a handler breaker hold real rows too. Nothing is mocked.

The database is the conftest ``engine`` made once per module: a SQLite file, or a fresh
database on the PostgreSQL server named by ``VATSIM_TEST_DATABASE_URL``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI
from sqlalchemy import Engine, create_engine, func, inspect, select, text
from sqlalchemy.engine import make_url

from conftest import SERVER_ENV
from vatsim_collector.airspace.engine import AirspaceEngine
from vatsim_collector.airspace.sectors import SectorSet
from vatsim_collector.api import create_app
from vatsim_collector.api.context import ErrorLayer
from vatsim_collector.config import Settings
from vatsim_collector.errors.manager import ErrorManager
from vatsim_collector.errors.registry import BreakerRegistry
from vatsim_collector.errors.retry import RetryPolicy
from vatsim_collector.events.event import Event
from vatsim_collector.events.subscription import HandlerOptions
from vatsim_collector.pipeline.event_layer import EventLayer, build_event_layer
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome
from vatsim_collector.simulator.traffic import SimRates
from vatsim_collector.simulator.world import SimulatedNetwork
from vatsim_collector.store.engine import create_db_engine
from vatsim_collector.store.error_records import ErrorRecordStore
from vatsim_collector.store.migrate import upgrade

START = datetime(2024, 5, 1, 11, 55, tzinfo=UTC)  # 40 ticks of 15 s cross 12:00
TICKS = 40
REFUSING_HANDLER = "controllers-out"
ONE_TRY = RetryPolicy(attempts=1, initial=0.001, maximum=0.001, total=5.0)


@contextmanager
def module_engine(directory: Path) -> Iterator[Engine]:
    """A migrated database of its own: a SQLite file in ``directory``, or a new database on
    the PostgreSQL test server, dropped afterwards."""
    server = os.environ.get(SERVER_ENV)
    if not server:
        engine = create_db_engine(f"sqlite:///{directory}/recorded.db")
        upgrade(engine)
        try:
            yield engine
        finally:
            engine.dispose()
        return
    name = f"vct_{uuid.uuid4().hex[:16]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine = create_db_engine(
            make_url(server).set(database=name).render_as_string(hide_password=False)
        )
        try:
            upgrade(engine)
            yield engine
        finally:
            engine.dispose()
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def schema_source() -> FastAPI:
    """An app for its OpenAPI document alone, built as ``Recorded.app`` builds the real one.

    Tests that parametrize over the operations need the document when the module is
    collected, long before a database is recorded. The routes do not depend on the data: this
    app's database (SQLite in memory) is never connected, and each such module checks that the
    recorded app serves the same document.
    """
    return create_app(Ingestor(create_engine("sqlite://"), IngestConfig()), stale_after=60)


async def _refuse(event: Event) -> None:
    raise RuntimeError(f"downstream refused {event.type}")


@dataclass
class Recorded:
    engine: Engine
    ingestor: Ingestor
    sectors: SectorSet
    events: EventLayer
    errors: ErrorLayer
    now: datetime
    last_transceivers: list[dict[str, Any]]

    def app(self, *, api_keys: Sequence[tuple[str, str]] = ()) -> FastAPI:
        """The whole API over this database, as the service builds it, with a fixed clock."""
        now = self.now
        return create_app(
            self.ingestor,
            stale_after=60,
            clock=lambda: now,
            errors=self.errors,
            events=self.events,
            sectors=self.sectors,
            api_keys=api_keys,
        )

    def row_counts(self) -> dict[str, int]:
        """Rows of every table in the database (partitions included on PostgreSQL)."""
        with self.engine.connect() as conn:
            names = inspect(conn).get_table_names()
            return {
                name: conn.execute(select(func.count()).select_from(text(f'"{name}"'))).scalar_one()
                for name in names
            }


def record(engine: Engine, *, ticks: int = TICKS) -> Recorded:
    sectors = SectorSet.default()
    ingestor = Ingestor(
        engine,
        IngestConfig(missed_snapshots_to_end=2),
        airspace=AirspaceEngine(sectors, exit_after=2),
    )
    ingestor.restore()
    manager = ErrorManager(ErrorRecordStore(ingestor.db), clock=lambda: START)
    breakers = BreakerRegistry()
    layer = build_event_layer(Settings(), ingestor.db, errors=manager, breakers=breakers)
    layer.bus.subscribe(
        REFUSING_HANDLER,
        _refuse,
        "controller.connected",
        options=HandlerOptions(retry=ONE_TRY),
    )
    # More controller turnover than the default, so several controller sessions end.
    sim = SimulatedNetwork(
        seed=11, start=START, rates=SimRates(controller_leave=0.01, controller_join=0.01)
    )
    transceivers: list[dict[str, Any]] = []

    async def run() -> None:
        nonlocal transceivers
        await layer.start()
        try:
            for _ in range(ticks):
                transceivers = sim.transceivers_document()
                data, radios = orjson.dumps(sim.data_document()), orjson.dumps(transceivers)
                result = await asyncio.to_thread(ingestor.ingest, data, transceivers_raw=radios)
                assert result.outcome is Outcome.INGESTED
                await layer.bus.publish_many(result.events)
                sim.tick()
            await layer.bus.join()
        finally:
            assert await layer.stop(30)

    asyncio.run(run())
    manager.flush()
    assert ingestor.live.snapshot_at is not None
    return Recorded(
        engine=engine,
        ingestor=ingestor,
        sectors=sectors,
        events=layer,
        errors=ErrorLayer(manager=manager, breakers=breakers),
        now=ingestor.live.snapshot_at + timedelta(seconds=5),
        last_transceivers=transceivers,
    )
