"""Handlers out of process: ``vatsim-collector worker`` against a real NATS server and database.

Each test starts its own ``nats-server`` with JetStream (``natsworker.running_nats``), creates
the stream and publishes events as the outbox relay does, and runs workers as real
subprocesses. Nothing is mocked: the handlers are the registry's (``summaries``) or registered
by a module (``worker_handlers``), as an operator would.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import orjson
import pytest
from sqlalchemy import Engine, select

from natsworker import (
    create_stream,
    jetstream,
    publish,
    running_nats,
    running_worker,
    wait_drained,
    worker_environment,
)
from pipeline_db import module_engine
from vatsim_collector.airspace.engine import AirspaceEngine
from vatsim_collector.airspace.sectors import SectorSet
from vatsim_collector.brokers.nats.consumer import ACK_GRACE_SECONDS, durable_name
from vatsim_collector.config import Settings
from vatsim_collector.events.event import Event
from vatsim_collector.events.payloads import PilotDisconnected
from vatsim_collector.pipeline.event_layer import build_event_layer
from vatsim_collector.pipeline.handlers import SUMMARIES_HANDLER
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome
from vatsim_collector.pipeline.worker import nak_delay
from vatsim_collector.simulator.traffic import SimRates
from vatsim_collector.simulator.world import SimulatedNetwork
from vatsim_collector.store import schema as t
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.dead_letters import DeadLetterQueue

pytestmark = pytest.mark.slow

START = datetime(2024, 5, 1, 11, 55, tzinfo=UTC)
TICKS = 36
KILL_AT = TICKS // 2


def stream_name() -> str:
    return f"TEST_{uuid.uuid4().hex[:10].upper()}"


# ----- a seeded simulator run, ingested twice ---------------------------------------------------


def simulated_documents(ticks: int) -> list[tuple[bytes, bytes]]:
    # More turnover than the default, so that many flights and controller sessions end.
    network = SimulatedNetwork(
        seed=11,
        start=START,
        rates=SimRates(
            pilot_leave=0.01, pilot_join=0.01, controller_leave=0.02, controller_join=0.02
        ),
    )
    documents = []
    for _ in range(ticks):
        documents.append(
            (orjson.dumps(network.data_document()), orjson.dumps(network.transceivers_document()))
        )
        network.tick()
    return documents


def new_ingestor(engine: Engine, sectors: SectorSet) -> Ingestor:
    ingestor = Ingestor(
        engine,
        IngestConfig(missed_snapshots_to_end=1),
        airspace=AirspaceEngine(sectors, exit_after=2),
    )
    ingestor.restore()
    return ingestor


def summaries(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Both summary tables row for row, by key; ``computed_at`` says when, not what."""
    tables = {
        "flights": (t.flight_summaries, "flight_id"),
        "controllers": (t.controller_summaries, "controller_session_id"),
    }
    found = {}
    with engine.connect() as conn:
        for name, (table, key) in tables.items():
            columns = [c for c in table.c if c.name != "computed_at"]
            rows = conn.execute(select(*columns).order_by(table.c[key])).all()
            found[name] = [tuple(row) for row in rows]
    return found


async def single_process_run(
    engine: Engine, documents: list[tuple[bytes, bytes]], sectors: SectorSet
) -> None:
    """The reference: every snapshot's events on the in-process bus, delivered before the
    next snapshot, as the service does."""
    ingestor = new_ingestor(engine, sectors)
    layer = build_event_layer(Settings(event_log_types=""), ingestor.db)
    await layer.start()
    try:
        for data, radios in documents:
            result = await asyncio.to_thread(ingestor.ingest, data, transceivers_raw=radios)
            assert result.outcome is Outcome.INGESTED
            await layer.bus.publish_many(result.events)
            await layer.bus.join()
    finally:
        assert await layer.stop(30)
    assert sum(m.dead_lettered for m in layer.bus.metrics.handlers.values()) == 0


@pytest.fixture
def second_engine(tmp_path: Path) -> Iterator[Engine]:
    directory = tmp_path / "workers-db"
    directory.mkdir()
    with module_engine(directory) as engine:
        yield engine


async def test_two_summaries_workers_one_killed_mid_run_equal_a_single_process_run(
    tmp_path: Path, engine: Engine, second_engine: Engine
) -> None:
    documents = simulated_documents(TICKS)
    sectors = SectorSet.default()
    await single_process_run(engine, documents, sectors)
    reference = summaries(engine)
    assert len(reference["flights"]) >= 20
    assert len(reference["controllers"]) >= 3

    stream = stream_name()
    durable = durable_name(SUMMARIES_HANDLER)
    workers_db = second_engine.url.render_as_string(hide_password=False)
    ingestor = new_ingestor(second_engine, sectors)
    with running_nats(tmp_path / "nats") as server:
        async with jetstream(server.url) as js:
            await create_stream(js, stream)
            env = worker_environment(
                workers_db,
                server.url,
                stream,
                VATSIM_EVENT_HANDLER_TIMEOUT="2",
                VATSIM_EVENT_HANDLER_RETRIES="3",
            )
            with (
                running_worker([SUMMARIES_HANDLER], env, tmp_path / "w1") as first,
                running_worker([SUMMARIES_HANDLER], env, tmp_path / "w2") as second,
            ):
                published = 0
                for tick, (data, radios) in enumerate(documents):
                    result = await asyncio.to_thread(ingestor.ingest, data, transceivers_raw=radios)
                    assert result.outcome is Outcome.INGESTED
                    if tick != KILL_AT:
                        published += await publish(js, result.events)
                    else:
                        # The summary tables held, each worker is caught holding a delivery it
                        # cannot finish: the one killed is never answered, and JetStream must
                        # redeliver it to the other once its ack wait is over.
                        with holding_summaries(second_engine):
                            published += await publish(js, result.events)
                            assert await _until_ack_pending(js, stream, durable, 2)
                            first.kill()
                    # As the bus is joined before the next snapshot in the reference: each
                    # summary is computed from the same rows in both runs.
                    assert await wait_drained(js, stream, durable, timeout=60), (
                        f"tick {tick} not drained:\n{second.output()}"
                    )
                info = await js.consumer_info(stream, durable)
                assert second.terminate() == 0
                assert published > 0
            assert first.exit_code == -9
    assert summaries(second_engine) == reference
    # Both shared the work before one was killed; the delivery it held was made again.
    handled = [
        sum(line["events"] for line in worker.logged("events handled"))
        for worker in (first, second)
    ]
    assert all(handled), handled
    assert info.delivered.consumer_seq == sum(handled) + 1
    assert info.num_pending == info.num_ack_pending == 0
    assert DeadLetterQueue(DatabaseService(second_engine)).size() == 0


async def _until_ack_pending(js: Any, stream: str, durable: str, count: int) -> bool:
    for _ in range(200):
        info = await js.consumer_info(stream, durable)
        if info.num_ack_pending >= count:
            return True
        await asyncio.sleep(0.02)
    return False


@contextmanager
def holding_summaries(engine: Engine) -> Iterator[None]:
    """Block every write to the summary tables until the block ends (readers go on)."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "postgresql":
            cursor.execute("BEGIN")
            cursor.execute(
                "LOCK TABLE flight_summaries, controller_summaries IN EXCLUSIVE MODE"
            )
        else:
            cursor.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        raw.rollback()
        raw.close()
