"""The handler registry, remote handlers, the consumers' subjects and figures, and the
idempotency of the built-in handlers under redelivery.

The worker's own behaviour as a process (kills, dead letters, replay over HTTP) is in
``test_workers.py``; here the same parts run in this process, against the real database and,
where a stream is needed, a NATS server of the test's own.
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from sqlalchemy import Engine, func, select

from feeds import SMALL, encode, later, load
from natsworker import create_stream, jetstream, publish, running_nats, wait_drained
from vatsim_collector.api import create_app
from vatsim_collector.api.metrics import ConsumerStatsCache, install_metrics
from vatsim_collector.brokers.nats.consumer import (
    ConsumerStats,
    consumer_stats,
    durable_name,
    filter_subject,
)
from vatsim_collector.config import Settings
from vatsim_collector.errors.exceptions import ConfigurationError
from vatsim_collector.events.event import KNOWN_TYPES, Event
from vatsim_collector.events.letters import NewDeadLetter
from vatsim_collector.events.payloads import EventType
from vatsim_collector.pipeline.event_layer import build_event_layer
from vatsim_collector.pipeline.handlers import (
    EVENT_LOG_HANDLER,
    SUMMARIES_HANDLER,
    HandlerContext,
    HandlerRegistry,
    UnknownHandler,
    build_registry,
)
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.pipeline.worker import WorkerProcess, consumer_reader
from vatsim_collector.store import schema as t
from vatsim_collector.store.database import DatabaseService

NATS = "nats://127.0.0.1:1"  # never connected: only "NATS is configured" matters here


# ----- the registry ---------------------------------------------------------------------------


def test_the_builtin_handlers_are_registered_by_name() -> None:
    registry = build_registry(Settings())
    assert registry.names() == [EVENT_LOG_HANDLER, SUMMARIES_HANDLER]
    assert registry.get(SUMMARIES_HANDLER).patterns == (
        "pilot.disconnected",
        "controller.disconnected",
    )
    log = registry.get(EVENT_LOG_HANDLER)
    assert log.batch
    assert log.options(Settings()).batch_size > 1
    # No event log configured: no event-log handler to run anywhere.
    assert build_registry(Settings(event_log_types="")).names() == [SUMMARIES_HANDLER]


def test_modules_register_their_handlers_after_the_builtin_ones() -> None:
    registry = build_registry(Settings(handler_modules="worker_handlers"))
    assert registry.names() == [EVENT_LOG_HANDLER, "flaky", "slow", SUMMARIES_HANDLER]
    assert registry.get("flaky").patterns == ("pilot.*",)


@pytest.mark.parametrize(
    ("modules", "says"),
    [
        ("no_such_module_here", "cannot be imported"),
        ("feeds", r"has no register\(registry\) function"),
    ],
)
def test_an_unusable_handler_module_is_a_configuration_error(modules: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        build_registry(Settings(handler_modules=modules))


def test_an_unknown_handler_names_the_registered_ones() -> None:
    with pytest.raises(UnknownHandler, match="registered: event-log, summaries"):
        build_registry(Settings()).get("sumaries")


async def _nothing(event: Event) -> None:
    return None


@pytest.mark.parametrize(
    ("name", "patterns", "options", "says"),
    [
        ("Bad Name", ("*",), {}, "must be 1-48 of"),
        ("summaries", ("*",), {}, "already registered"),
        ("quiet", (), {}, "subscribes to no event type"),
        ("typo", ("*",), {"timeuot": 3.0}, "unknown options"),
    ],
)
def test_a_bad_registration_is_refused(
    name: str, patterns: tuple[str, ...], options: dict[str, Any], says: str
) -> None:
    registry = build_registry(Settings())
    with pytest.raises(ConfigurationError, match=says):
        registry.add(name, lambda context: _nothing, *patterns, **options)


@pytest.mark.parametrize(
    ("field", "value"),
    [("handler_modules", "pkg.mod, 9bad"), ("remote_handlers", "summaries,Event Log")],
)
def test_settings_refuse_malformed_lists(field: str, value: str) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: value})


def test_settings_lists() -> None:
    settings = Settings(handler_modules=" a.b , c ", remote_handlers="summaries,,event-log")
    assert settings.handler_module_list == ["a.b", "c"]
    assert settings.remote_handler_list == ["summaries", "event-log"]


# ----- remote handlers in the collector's bus ---------------------------------------------------


def _ended_flights(engine: Engine) -> tuple[Ingestor, list[Event]]:
    """Two snapshots of a real feed, half the pilots gone in the second: their flights end."""
    ingestor = Ingestor(engine, IngestConfig(missed_snapshots_to_end=1))
    ingestor.restore()
    first = load(SMALL)
    second = later(first, 15)
    second["pilots"] = second["pilots"][: len(second["pilots"]) // 2]
    second["controllers"] = second["controllers"][: len(second["controllers"]) // 2]
    events: list[Event] = []
    for doc in (first, second):
        events.extend(ingestor.ingest(encode(doc)).events)
    return ingestor, events


def _rows(engine: Engine, table: Any, key: str) -> list[tuple[Any, ...]]:
    columns = [c for c in table.c if c.name != "computed_at"]
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(*columns).order_by(table.c[key]))]


async def test_a_remote_handler_gets_no_live_event_but_its_dead_letters_replay_here(
    engine: Engine,
) -> None:
    ingestor, events = _ended_flights(engine)
    settings = Settings(nats_url=NATS, remote_handlers=SUMMARIES_HANDLER)
    layer = build_event_layer(settings, ingestor.db)
    await layer.start()
    try:
        await layer.bus.publish_many(events)
        await layer.bus.join()
        assert _rows(engine, t.flight_summaries, "flight_id") == []  # workers' job
        report = layer.bus.handlers_report()
        assert report[SUMMARIES_HANDLER]["remote"] is True
        assert report[EVENT_LOG_HANDLER]["remote"] is False
        assert layer.log.count() == len(events)  # the event log still runs in-process

        # A letter a worker wrote is replayed by this process, to the same handler.
        ended = next(e for e in events if e.type == EventType.PILOT_DISCONNECTED)
        now = ended.time
        layer.dead_letters.put(
            [NewDeadLetter(ended, SUMMARIES_HANDLER, "X", "handler", "boom", 3, now, now)]
        )
        (letter,) = layer.dead_letters.list()[1]
        result = await layer.bus.replay_dead_letter(letter.id)
        assert result.outcome.value == "delivered"
        (row,) = _rows(engine, t.flight_summaries, "flight_id")
        assert row[0] == ended.payload.flight_id
    finally:
        await layer.stop(10)


def test_without_nats_remote_handlers_run_in_process(engine: Engine) -> None:
    db = DatabaseService(engine)
    layer = build_event_layer(Settings(remote_handlers=SUMMARIES_HANDLER), db)
    assert layer.bus.handlers_report()[SUMMARIES_HANDLER]["remote"] is False
    with pytest.raises(UnknownHandler):
        build_event_layer(Settings(nats_url=NATS, remote_handlers="nobody"), db)


# ----- idempotency under redelivery -------------------------------------------------------------


async def test_every_builtin_handler_leaves_the_same_rows_when_an_event_comes_twice(
    engine: Engine,
) -> None:
    ingestor, events = _ended_flights(engine)
    registry = build_registry(Settings())
    context = HandlerContext(Settings(), ingestor.db)
    summaries = registry.get(SUMMARIES_HANDLER).build(context)
    event_log = registry.get(EVENT_LOG_HANDLER).build(context)
    ended = [e for e in events if e.type.endswith(".disconnected")]
    assert {e.type for e in ended} == {"pilot.disconnected", "controller.disconnected"}

    def tables() -> dict[str, list[tuple[Any, ...]]]:
        return {
            "flights": _rows(engine, t.flight_summaries, "flight_id"),
            "controllers": _rows(engine, t.controller_summaries, "controller_session_id"),
            "events": _rows(engine, t.events, "id"),
        }

    for event in ended:
        await summaries(event)
    await event_log(events)
    once = tables()
    assert once["flights"]
    assert once["controllers"]
    assert len(once["events"]) == len(events)

    for event in ended:  # every one again: as a redelivery or a replay would
        await summaries(event)
    await event_log(events)
    await event_log(events[:10])  # and a batch cut differently
    assert tables() == once
    with engine.connect() as conn:
        ids = conn.execute(select(func.count(func.distinct(t.events.c.id)))).scalar_one()
    assert ids == len(events)


# ----- subjects ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patterns", "subject"),
    [
        (["*"], "p.>"),
        (["pilot.*"], "p.pilot.>"),
        (["pilot.disconnected"], "p.pilot.disconnected"),
        (["pilot.disconnected", "controller.disconnected"], "p.*.disconnected"),
        (["pilot.connected", "pilot.disconnected"], "p.pilot.*"),
        (["pilot.*", "controller.connected"], "p.*.>"),
        (["*.disconnected"], "p.*.disconnected"),
        (["pil?t.connected"], "p.>"),
        (["pilot.con*"], "p.pilot.>"),
        (["a.b", "a.b.c"], "p.a.>"),
    ],
)
def test_patterns_become_one_covering_subject(patterns: list[str], subject: str) -> None:
    assert filter_subject("p", patterns) == subject


def _subject_matches(filter_: str, subject: str) -> bool:
    wanted, given_ = filter_.split("."), subject.split(".")
    for position, token in enumerate(wanted):
        if token == ">":
            return len(given_) > position
        if position >= len(given_) or token not in ("*", given_[position]):
            return False
    return len(given_) == len(wanted)


CANDIDATES = sorted(
    {*KNOWN_TYPES, *(f"{k.split('.')[0]}.*" for k in KNOWN_TYPES)}
    | {"*", "*.disconnected", "*.connected", "pil*", "?ilot.*", "[pc]*.connected", "sector.e*"}
)


@given(st.lists(st.sampled_from(CANDIDATES), min_size=1, max_size=5))
def test_the_subject_lets_through_every_event_type_the_patterns_want(patterns: list[str]) -> None:
    subject = filter_subject("vatsim.events", patterns)
    for event_type in KNOWN_TYPES:
        if any(fnmatch.fnmatchcase(event_type, p) for p in patterns):
            assert _subject_matches(subject, f"vatsim.events.{event_type}"), (subject, event_type)


# ----- one worker in this process: what it does with what it must not call the handler for ----


async def test_the_worker_acks_unwanted_events_and_terminates_unreadable_messages(
    tmp_path: Path, engine: Engine
) -> None:
    db = DatabaseService(engine)
    calls: list[str] = []

    async def record(event: Event) -> None:
        calls.append(event.id)

    registry = HandlerRegistry()
    # pilot.* and controller.connected: the subject (*.>) also lets controller.disconnected in.
    registry.add("picky", lambda context: record, "pilot.*", "controller.connected")
    _, events = _ended_flights(engine)
    wanted = [e for e in events if fnmatch.fnmatchcase(e.type, "pilot.*")]
    unwanted = [e for e in events if e.type == "controller.disconnected"]
    assert wanted
    assert unwanted
    stream = f"UNIT_{uuid.uuid4().hex[:8].upper()}"
    settings = Settings(nats_url=NATS, nats_stream=stream)
    with running_nats(tmp_path) as server:
        async with jetstream(server.url) as js:
            await create_stream(js, stream)
            await publish(js, [*wanted, *unwanted])
            await js.publish("vatsim.events.pilot.connected", b"{not an event", headers={})
            process = WorkerProcess.build(settings, db, js, ["picky"], registry=registry)
            stop = asyncio.Event()
            task = asyncio.create_task(process.run(stop))
            try:
                assert await wait_drained(js, stream, durable_name("picky"), within=30)
            finally:
                stop.set()
                await asyncio.wait_for(task, 30)
            info = await js.consumer_info(stream, durable_name("picky"))
    assert sorted(calls) == sorted(e.id for e in wanted)
    assert info.config.filter_subject == "vatsim.events.*.>"
    assert info.num_redelivered == info.num_ack_pending == 0
    # The unreadable message was recorded as an error (and written at stop), not retried.
    assert process.errors.recorded == process.errors.persisted == 1
    assert process.dead_letters.size() == 0


# ----- the consumers on /metrics ---------------------------------------------------------------


async def test_consumer_figures_reach_the_metrics(tmp_path: Path, engine: Engine) -> None:
    stream = f"UNIT_{uuid.uuid4().hex[:8].upper()}"
    settings = Settings(nats_url=NATS, nats_stream=stream)
    ingestor, events = _ended_flights(engine)
    with running_nats(tmp_path) as server:
        async with jetstream(server.url) as js:
            await create_stream(js, stream)
            await publish(js, events)
            durable = durable_name(SUMMARIES_HANDLER)
            pull = await js.pull_subscribe(
                "vatsim.events.*.disconnected", durable=durable, stream=stream
            )
            (first,) = await pull.fetch(1, timeout=5)
            await first.nak()
            held = {first.metadata.sequence.stream}
            for _ in range(50):  # until the nak'ed one comes back; none is acknowledged
                (msg,) = await pull.fetch(1, timeout=5)
                held.add(msg.metadata.sequence.stream)
                if msg.metadata.num_delivered == 2:
                    break
            else:
                raise AssertionError("the nak'ed message was not redelivered")
            wanted = sum(e.type.endswith(".disconnected") for e in events)
            out = len(held)

            read = consumer_reader(settings, lambda: js)
            assert await read() == {
                SUMMARIES_HANDLER: ConsumerStats(
                    num_pending=wanted - out, num_ack_pending=out, num_redelivered=1
                )
            }
            assert await consumer_stats(js, stream, ["nobody"]) == {}

            app = create_app(ingestor, stale_after=60)
            install_metrics(app).watch_consumers(read)
            # On this event loop: the reader uses this loop's NATS connection, as the service's
            # would use its own.
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://api") as client:
                response = await client.get("/metrics")
            assert response.status_code == 200
            text = response.text

            # NATS gone: a scrape still answers, with the figures last read.
            cache = ConsumerStatsCache(read, ttl=0, timeout=1)
            await cache.refresh()
            before = cache.value
            server.stop()
            await cache.refresh()
            assert cache.value == before
    samples = {
        (s.name, s.labels.get("handler")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("vatsim_consumer_")
    }
    assert samples == {
        ("vatsim_consumer_pending", SUMMARIES_HANDLER): wanted - out,
        ("vatsim_consumer_ack_pending", SUMMARIES_HANDLER): out,
        ("vatsim_consumer_redelivered", SUMMARIES_HANDLER): 1,
    }


# ----- the command ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "args", "says"),
    [
        ({}, ["--handler", "summaries"], "set VATSIM_NATS_URL"),
        ({"VATSIM_NATS_URL": NATS}, ["--handler", "nobody"], "no handler called 'nobody'"),
        (
            {"VATSIM_NATS_URL": NATS, "VATSIM_HANDLER_MODULES": "not_a_module_at_all"},
            ["--handler", "summaries"],
            "cannot be imported",
        ),
    ],
)
def test_the_worker_command_refuses_what_cannot_work(
    tmp_path: Path, env: dict[str, str], args: list[str], says: str
) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("VATSIM_")} | env
    environment["VATSIM_DATABASE_URL"] = f"sqlite:///{tmp_path}/w.db"
    done = subprocess.run(
        [sys.executable, "-m", "vatsim_collector", "worker", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
