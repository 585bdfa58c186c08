"""A handler added after the fact catches up from the event log, by time range and type."""

from __future__ import annotations

from sqlalchemy import Engine

from feeds import SMALL, encode, later, load
from vatsim_collector.config import Settings
from vatsim_collector.events.event import Event
from vatsim_collector.pipeline.event_layer import build_event_layer
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor


async def test_a_new_handler_is_backfilled_with_exactly_the_logged_history_it_wants(
    engine: Engine,
) -> None:
    ingestor = Ingestor(engine, IngestConfig(missed_snapshots_to_end=1))
    ingestor.restore()
    layer = build_event_layer(Settings(), ingestor.db)
    await layer.start()
    first = load(SMALL)
    second = later(first, 15)
    second["pilots"] = second["pilots"][: len(second["pilots"]) // 2]  # half of them leave
    published: list[Event] = []
    for doc in (first, second):
        result = ingestor.ingest(encode(doc))
        published.extend(result.events)
        await layer.bus.publish_many(result.events)
        await layer.bus.join()
    assert layer.log.count() == len(published)

    got: list[Event] = []

    async def late(event: Event) -> None:
        got.append(event)

    layer.bus.subscribe("late", late, "pilot.*")
    second_time = published[-1].time
    delivered, failed = await layer.backfill("late", start=second_time, types=["pilot.*"])
    wanted = [e for e in published if e.type.startswith("pilot.") and e.time >= second_time]
    assert {e.type for e in wanted} == {"pilot.disconnected"}
    assert (delivered, failed) == (len(wanted), 0)
    assert [e.id for e in got] == sorted(e.id for e in wanted)
    assert got == sorted(wanted, key=lambda e: (e.time, e.id))  # whole events, in log order

    got.clear()
    everything = await layer.backfill("late")  # the log filtered by the handler's own patterns
    assert everything == (sum(1 for e in published if e.type.startswith("pilot.")), 0)
    await layer.stop(10)
