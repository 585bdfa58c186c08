"""Handlers out of process: ``vatsim-collector worker`` against a real NATS server and database.

Each test starts its own ``nats-server`` with JetStream (``natsworker.running_nats``), creates
the stream and publishes events as the outbox relay does, and runs workers as real
subprocesses. Nothing is mocked: the handlers are the registry's (``summaries``) or registered
by a module (``worker_handlers``), as an operator would.
"""

from __future__ import annotations

import asyncio
import itertools
import json
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
from vatsim_collector.errors.manager import error_type_name
from vatsim_collector.events.delivery import HandlerTimeout
from vatsim_collector.events.event import Event
from vatsim_collector.events.payloads import PilotDisconnected
from vatsim_collector.pipeline.event_layer import build_event_layer
from vatsim_collector.pipeline.handlers import EVENT_LOG_HANDLER, SUMMARIES_HANDLER
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome
from vatsim_collector.pipeline.worker import AttemptAbandoned, nak_delay
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
            # Both also run the event log, to show a worker with several handlers and the
            # event log out of process.
            names = [SUMMARIES_HANDLER, EVENT_LOG_HANDLER]
            with (
                running_worker(names, env, tmp_path / "w1") as first,
                running_worker(names, env, tmp_path / "w2") as second,
            ):
                published: list[Event] = []
                for tick, (data, radios) in enumerate(documents):
                    result = await asyncio.to_thread(ingestor.ingest, data, transceivers_raw=radios)
                    assert result.outcome is Outcome.INGESTED
                    if tick != KILL_AT:
                        assert await publish(js, result.events) == len(result.events)
                    else:
                        # The summary tables held, each worker is caught holding a delivery it
                        # cannot finish: the one killed is never answered, and JetStream must
                        # redeliver it to the other once its ack wait is over.
                        with holding_summaries(second_engine):
                            assert await publish(js, result.events) == len(result.events)
                            assert await _until_ack_pending(js, stream, durable, 2)
                            first.kill()
                    published.extend(result.events)
                    # As the bus is joined before the next snapshot in the reference: each
                    # summary is computed from the same rows in both runs.
                    for name in names:
                        assert await wait_drained(js, stream, durable_name(name), within=60), (
                            f"tick {tick} not drained for {name}:\n{second.output()}"
                        )
                info = await js.consumer_info(stream, durable)
                assert second.terminate() == 0
            assert first.exit_code == -9
    assert summaries(second_engine) == reference
    # Both shared the work before one was killed; the delivery it held was made again.
    handled = [
        sum(
            line["events"]
            for line in worker.logged("events handled")
            if line["handler"] == SUMMARIES_HANDLER
        )
        for worker in (first, second)
    ]
    assert all(handled), handled
    assert info.delivered.consumer_seq == sum(handled) + 1
    assert info.num_pending == info.num_ack_pending == 0
    assert DeadLetterQueue(DatabaseService(second_engine)).size() == 0
    # The event log holds every published event once, whichever worker wrote it.
    with second_engine.connect() as conn:
        logged = conn.execute(select(t.events.c.id)).scalars().all()
    assert sorted(logged) == sorted(e.id for e in published)


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
            cursor.execute("LOCK TABLE flight_summaries, controller_summaries IN EXCLUSIVE MODE")
        else:
            cursor.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        raw.rollback()
        raw.close()


# ----- dead letters, replay, deliveries ------------------------------------------------------


def pilot_events(count: int) -> list[Event]:
    """Events of a pilot type, as the collector would publish them (no names)."""
    at = START + timedelta(hours=1)
    return [
        Event.create(
            PilotDisconnected(
                session_id=1000 + n,
                flight_id=2000 + n,
                cid=1_500_000 + n,
                callsign=f"TST{n}",
                logon_time=at - timedelta(hours=1),
                first_seen=at - timedelta(hours=1),
                last_seen=at,
            ),
            time=at,
            source="tracking",
        )
        for n in range(count)
    ]


@dataclass
class Handlers:
    """The steering and report files of ``worker_handlers``."""

    directory: Path

    def environment(self) -> dict[str, str]:
        return {
            "WORKER_TEST_DIR": str(self.directory),
            "VATSIM_HANDLER_MODULES": "worker_handlers",
        }

    def break_flaky(self, broken: bool) -> None:
        flag = self.directory / "broken"
        if broken:
            flag.touch()
        else:
            flag.unlink()

    def flaky_effects(self) -> list[str]:
        path = self.directory / "flaky.effects"
        return path.read_text().split() if path.exists() else []

    def slow_for(self, seconds: float | None) -> None:
        path = self.directory / "slow.seconds"
        if seconds is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(str(seconds))

    def slow_attempts(self) -> list[dict[str, Any]]:
        path = self.directory / "slow.attempts"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def handlers(tmp_path: Path) -> Handlers:
    directory = tmp_path / "handlers"
    directory.mkdir()
    return Handlers(directory)


def worker_breaker(view: dict[str, Any]) -> tuple[str, int] | None:
    """The worker node's role and the failures of its flaky breaker, as the API shows them."""
    roles = {node["node"]: node["role"] for node in view["nodes"]}
    for breaker in view["breakers"]:
        if breaker["node"] == "worker-flaky" and breaker["name"] == "handler.flaky":
            return roles.get("worker-flaky", "?"), breaker["failures"]
    return None


def letters(database_url: str) -> DeadLetterQueue:
    return DeadLetterQueue(DatabaseService.from_settings(Settings(database_url=database_url)))


async def wait_for(check: Any, *, within: float) -> bool:
    deadline = asyncio.get_running_loop().time() + within
    while not await asyncio.to_thread(check):
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def test_a_failing_handler_fills_the_dead_letters_and_api_replay_delivers_each_once(
    tmp_path: Path, database_url: str, engine: Engine, handlers: Handlers
) -> None:
    from hostile_feed import running_collector, wait_until
    from simserver import running_simulator

    handlers.break_flaky(True)
    events = pilot_events(6)
    stream = stream_name()
    dlq = letters(database_url)
    with running_nats(tmp_path / "nats") as server:
        async with jetstream(server.url) as js:
            await create_stream(js, stream)
            worker_env = worker_environment(
                database_url,
                server.url,
                stream,
                **handlers.environment(),
                VATSIM_EVENT_HANDLER_TIMEOUT="2",
                VATSIM_EVENT_HANDLER_RETRIES="2",
                # Every letter is written rather than the breaker pausing the pulls.
                VATSIM_BREAKER_FAILURE_THRESHOLD="100",
                VATSIM_NODE_NAME="worker-flaky",
                VATSIM_NODE_HEARTBEAT_SECONDS="0.5",
                VATSIM_ERROR_FLUSH_INTERVAL="0.5",
            )
            # The collector serving the API knows flaky (the same module) but leaves it to the
            # workers; its own events go to a stream of their own, so the workers see only
            # the test's.
            collector_env = {
                **worker_env,
                "VATSIM_NODE_NAME": "collector",
                "VATSIM_REMOTE_HANDLERS": "flaky",
                "VATSIM_NATS_STREAM": stream + "_OWN",
                "VATSIM_NATS_SUBJECT_PREFIX": "collector.own",
                "VATSIM_LOG_LEVEL": "INFO",
            }
            (tmp_path / "run").mkdir()
            with (
                running_simulator(seed=3) as feed,
                running_collector(
                    database_url, f"{feed}/status.json", tmp_path / "run", env=collector_env
                ) as api,
                running_worker(["flaky"], worker_env, tmp_path / "worker"),
            ):
                assert await publish(js, events) == len(events)
                assert await wait_for(lambda: dlq.size() == len(events), within=60)
                assert await wait_drained(js, stream, durable_name("flaky"), within=30)
                assert handlers.flaky_effects() == []

                listed = api.get("/api/events/dead-letters?handler=flaky&limit=100").json()
                assert listed["pagination"]["total"] == len(events)
                stored = listed["dead_letters"]
                assert sorted(letter["event"]["id"] for letter in stored) == sorted(
                    e.id for e in events
                )
                for letter in stored:
                    assert letter["attempts"] == 2
                    assert letter["error_type"] == "worker_handlers.Broken"
                # The collector runs flaky for replays only: none of its own events reached it.
                analytics = api.get("/api/events/analytics").json()
                assert analytics["handlers"]["flaky"]["remote"] is True
                assert analytics["handlers"]["flaky"]["failures"] == 0
                # The worker is a node of the cluster: its handler's breaker and its error
                # records are seen from the collector's API.
                assert wait_until(
                    lambda: (
                        worker_breaker(api.get("/api/errors/circuit-breakers").json())
                        == ("worker", len(events))
                    ),
                    timeout=30,
                )
                assert wait_until(
                    lambda: (
                        api.get("/api/errors/analytics").json()["by_node"].get("worker-flaky")
                        == len(events)
                    ),
                    timeout=30,
                )

                handlers.break_flaky(False)
                for letter in stored:
                    replay = httpx2.post(
                        f"{api.base}/api/events/dead-letters/{letter['id']}/replay",
                        headers=api.headers,
                        timeout=30,
                    )
                    assert replay.status_code == 200, replay.text
                    assert replay.json()["outcome"] == "delivered"
                again = httpx2.post(
                    f"{api.base}/api/events/dead-letters/{stored[0]['id']}/replay",
                    headers=api.headers,
                    timeout=30,
                )
                assert again.status_code == 404
                assert api.get("/api/events/dead-letters").json()["pagination"]["total"] == 0
    assert sorted(handlers.flaky_effects()) == sorted(e.id for e in events)


async def test_a_slow_handler_is_attempted_the_configured_number_of_times_with_backoff(
    tmp_path: Path, database_url: str, engine: Engine, handlers: Handlers
) -> None:
    handlers.slow_for(30)  # every attempt overruns the timeout
    events = pilot_events(2)
    stream = stream_name()
    dlq = letters(database_url)
    timeout, retries = 0.5, 3
    with running_nats(tmp_path / "nats") as server:
        async with jetstream(server.url) as js:
            await create_stream(js, stream)
            env = worker_environment(
                database_url,
                server.url,
                stream,
                **handlers.environment(),
                VATSIM_EVENT_HANDLER_TIMEOUT=str(timeout),
                VATSIM_EVENT_HANDLER_RETRIES=str(retries),
            )
            with running_worker(["slow"], env, tmp_path / "worker"):
                await publish(js, events)
                assert await wait_for(lambda: dlq.size() == len(events), within=60)
                assert await wait_drained(js, stream, durable_name("slow"), within=30)
                info = await js.consumer_info(stream, durable_name("slow"))
    assert info.config.ack_wait == pytest.approx(timeout + ACK_GRACE_SECONDS)
    assert info.config.max_deliver == retries + 1
    attempts = handlers.slow_attempts()
    policy = Settings(event_handler_retries=retries).event_handler_retries
    assert policy == retries
    for event in events:
        mine = [a["at"] for a in attempts if a["id"] == event.id]
        assert len(mine) == retries
        # Each retry waited out the timeout and then the doubling nak delay.
        for number, (earlier, later) in enumerate(itertools.pairwise(mine), start=1):
            assert later - earlier >= timeout + retry_delay(number) - 0.05
    _, stored = dlq.list(limit=10)
    assert {letter.event.id for letter in stored} == {e.id for e in events}
    for letter in stored:
        assert letter.attempts == retries
        assert letter.error_type == error_type_name(HandlerTimeout("slow", timeout))


def retry_delay(attempt: int) -> float:
    from vatsim_collector.pipeline.handlers import handler_options

    return nak_delay(handler_options(Settings()).retry, attempt)


@pytest.mark.parametrize("retries", [3, 1])
async def test_a_delivery_left_by_a_killed_worker_comes_back_after_the_ack_wait(
    tmp_path: Path, database_url: str, engine: Engine, handlers: Handlers, retries: int
) -> None:
    """With attempts left, the other worker makes the next one once the ack wait is over;
    with none left, the spare delivery puts the event in the dead-letter queue uncalled."""
    handlers.slow_for(30)
    (event,) = pilot_events(1)
    stream = stream_name()
    dlq = letters(database_url)
    timeout = 3.0
    with running_nats(tmp_path / "nats") as server:
        async with jetstream(server.url) as js:
            await create_stream(js, stream)
            env = worker_environment(
                database_url,
                server.url,
                stream,
                **handlers.environment(),
                VATSIM_EVENT_HANDLER_TIMEOUT=str(timeout),
                VATSIM_EVENT_HANDLER_RETRIES=str(retries),
            )
            with running_worker(["slow"], env, tmp_path / "first") as first:
                await publish(js, [event])
                assert await wait_for(lambda: len(handlers.slow_attempts()) == 1, within=30)
                first.kill()
            handlers.slow_for(None)
            with running_worker(["slow"], env, tmp_path / "second") as second:
                assert await wait_drained(js, stream, durable_name("slow"), within=30)
                assert second.terminate() == 0
    attempts = handlers.slow_attempts()
    assert attempts[0]["pid"] == first.pid
    if retries > 1:
        assert [a["pid"] for a in attempts] == [first.pid, second.pid]
        assert attempts[1]["at"] - attempts[0]["at"] >= timeout + ACK_GRACE_SECONDS - 0.1
        assert dlq.size() == 0
    else:
        assert len(attempts) == 1  # no attempt beyond the configured one
        _, stored = dlq.list()
        assert [(s.event.id, s.error_type, s.attempts) for s in stored] == [
            (event.id, error_type_name(AttemptAbandoned()), 1)
        ]


async def test_sigterm_finishes_the_attempt_in_flight_and_exits_cleanly(
    tmp_path: Path, database_url: str, engine: Engine, handlers: Handlers
) -> None:
    handlers.slow_for(1.5)
    events = pilot_events(3)
    stream = stream_name()
    with running_nats(tmp_path / "nats") as server:
        async with jetstream(server.url) as js:
            await create_stream(js, stream)
            env = worker_environment(
                database_url,
                server.url,
                stream,
                **handlers.environment(),
                VATSIM_EVENT_HANDLER_TIMEOUT="10",
            )
            with running_worker(["slow"], env, tmp_path / "worker") as worker:
                await publish(js, events)
                assert await wait_for(lambda: len(handlers.slow_attempts()) == 1, within=30)
                assert worker.terminate() == 0
            info = await js.consumer_info(stream, durable_name("slow"))
    # The attempt under way was finished and acknowledged; the others wait in the stream.
    assert info.num_ack_pending == 0
    assert info.num_pending == len(events) - 1
    assert [line["successes"] for line in worker.logged("handler stopped")] == [1]
    assert len(handlers.slow_attempts()) == 1


async def test_a_worker_carries_on_after_the_nats_server_restarts(
    tmp_path: Path, database_url: str, engine: Engine, handlers: Handlers
) -> None:
    events = pilot_events(6)
    stream = stream_name()
    durable = durable_name("slow")
    with running_nats(tmp_path / "nats") as server:
        async with jetstream(server.url) as js:
            await create_stream(js, stream)
        env = worker_environment(database_url, server.url, stream, **handlers.environment())
        with running_worker(["slow"], env, tmp_path / "worker") as worker:
            async with jetstream(server.url) as js:
                await publish(js, events[:3])
                assert await wait_drained(js, stream, durable, within=30)
            server.restart()
            async with jetstream(server.url) as js:
                await publish(js, events[3:])
                assert await wait_drained(js, stream, durable, within=60), worker.output()
            assert worker.process.poll() is None
            assert worker.terminate() == 0
    assert sorted(a["id"] for a in handlers.slow_attempts()) == sorted(e.id for e in events)
