"""The tracking layer's events: counted from first principles over the real shared snapshots,
and pinned rule by rule on small edits of one of them."""

from __future__ import annotations

import copy
from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from feeds import REAL_FEEDS, SMALL, encode, later, load, parse_time, timestamp
from vatsim_collector.events.bus import EventBus
from vatsim_collector.events.event import Event
from vatsim_collector.events.payloads import (
    AtisChanged,
    FlightplanAmended,
    PilotConnected,
    PilotDisconnected,
)
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome

Key = tuple[int, str, datetime]
N = 4  # the default missed-snapshot rule


def key(record: dict[str, Any]) -> Key:
    return (record["cid"], record["callsign"], parse_time(record["logon_time"]))


def expected_events(docs: list[dict[str, Any]]) -> Counter[str]:
    """What docs/architecture.md says should happen, computed without the tracker.

    A connection is (cid, callsign, logon_time). It connects when first seen, disconnects after
    N snapshots without it -- or at once when the same cid and callsign log on again -- and,
    coming back after that, connects again (resumed). A flight's first plan is "filed", each
    different plan after it "amended". Each session here is its own flight: the files are
    months apart, far beyond the 30-minute reconnect window. An ATIS changes when first seen
    and whenever its letter or text does.
    """
    counts: Counter[str] = Counter()
    for section, prefix in (("pilots", "pilot"), ("controllers", "controller")):
        missed: dict[Key, int] = {}
        ended: set[Key] = set()
        for doc in docs:
            present = {key(r) for r in doc[section]}
            for k in present:
                if k in missed:
                    missed[k] = 0
                    continue
                if section == "pilots":
                    for other in [o for o in missed if o[:2] == k[:2]]:
                        del missed[other]
                        ended.add(other)
                        counts[f"{prefix}.disconnected"] += 1
                counts[f"{prefix}.connected"] += 1
                ended.discard(k)
                missed[k] = 0
            for k in list(missed):
                if k not in present:
                    missed[k] += 1
                    if missed[k] >= N:
                        del missed[k]
                        ended.add(k)
                        counts[f"{prefix}.disconnected"] += 1
    plans: dict[Key, Any] = {}
    atis: dict[Key, Any] = {}
    for doc in docs:
        for pilot in doc["pilots"]:
            plan = pilot.get("flight_plan")
            if plan is None:
                continue
            before = plans.get(key(pilot))
            if before is None:
                counts["flightplan.filed"] += 1
            elif before != plan:
                counts["flightplan.amended"] += 1
            plans[key(pilot)] = plan
        for station in doc["atis"]:
            text = [line for line in station.get("text_atis") or []]
            state = ((station.get("atis_code") or "").strip() or None, tuple(text) or None)
            if atis.get(key(station), "new") != state:
                counts["atis.changed"] += 1
            atis[key(station)] = state
    counts["snapshot.received"] = len(docs)
    return counts


async def replay_through_bus(engine: Engine, docs: list[dict[str, Any]]) -> list[Event]:
    ingestor = Ingestor(engine, IngestConfig(missed_snapshots_to_end=N))
    ingestor.restore()
    bus = EventBus()
    seen: list[Event] = []

    async def record(event: Event) -> None:
        seen.append(event)

    bus.subscribe("recorder", record, "*")
    await bus.start()
    for doc in docs:
        result = ingestor.ingest(encode(doc))
        assert result.outcome is Outcome.INGESTED
        await bus.publish_many(result.events)
        await bus.join()  # the service ingests in a thread, letting handlers run meanwhile
    await bus.stop(timeout=10)
    return seen


async def test_a_replay_of_the_real_snapshots_publishes_the_expected_events(
    engine: Engine,
) -> None:
    docs = sorted((load(p) for p in REAL_FEEDS), key=timestamp)
    seen = await replay_through_bus(engine, docs)
    assert Counter(e.type for e in seen) == expected_events(docs)
    # Every event of a snapshot is correlated with that snapshot's own event, and happens at
    # its update time.
    by_id = {e.id: e for e in seen if e.type == "snapshot.received"}
    for e in seen:
        if e.type != "snapshot.received":
            assert e.correlation_id in by_id
            assert by_id[e.correlation_id].time == e.time
    ids = [e.id for e in seen]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


async def test_plan_rules_filed_amended_withdrawn_and_reconnected(engine: Engine) -> None:
    first = load(SMALL)
    pilot = next(p for p in first["pilots"] if p["flight_plan"] is not None)
    second = later(first, 15)
    amended = next(p for p in second["pilots"] if p["cid"] == pilot["cid"])
    amended["flight_plan"]["route"] = amended["flight_plan"]["route"] + " DCT TEST"
    third = later(second, 15)
    withdrawn = next(p for p in third["pilots"] if p["cid"] == pilot["cid"])
    withdrawn["flight_plan"] = None
    fourth = later(third, 15)  # the amended plan again, after being withdrawn: no event
    fourth_pilot = next(p for p in fourth["pilots"] if p["cid"] == pilot["cid"])
    fourth_pilot["flight_plan"] = copy.deepcopy(amended["flight_plan"])

    seen = await replay_through_bus(engine, [first, second, third, fourth])
    mine = [
        e
        for e in seen
        if getattr(e.payload, "cid", None) == pilot["cid"] and e.type.startswith("flightplan")
    ]
    assert [e.type for e in mine] == ["flightplan.filed", "flightplan.amended"]
    change = mine[1].payload
    assert isinstance(change, FlightplanAmended)
    assert change.changed == ("route",)
    assert change.route.endswith("DCT TEST")


async def test_a_reconnect_continuing_the_flight_refiles_nothing_and_resumes_nothing(
    engine: Engine,
) -> None:
    first = load(SMALL)
    pilot = next(p for p in first["pilots"] if p["flight_plan"] is not None)
    gone = [later(first, 15 * i) for i in range(1, N + 1)]
    for doc in gone:
        doc["pilots"] = [p for p in doc["pilots"] if p["cid"] != pilot["cid"]]
    back = later(first, 15 * (N + 1))
    again = next(p for p in back["pilots"] if p["cid"] == pilot["cid"])
    again["logon_time"] = gone[-1]["general"]["update_timestamp"]  # a new logon, same plan
    seen = await replay_through_bus(engine, [first, *gone, back])
    mine = [e for e in seen if getattr(e.payload, "cid", None) == pilot["cid"]]
    types = [e.type for e in mine]
    assert types == [
        "pilot.connected",
        "flightplan.filed",
        "pilot.disconnected",
        "pilot.connected",
    ]
    connect, _, disconnect, reconnect = (e.payload for e in mine)
    assert isinstance(connect, PilotConnected)
    assert isinstance(reconnect, PilotConnected)
    assert isinstance(disconnect, PilotDisconnected)
    assert reconnect.flight_id == connect.flight_id  # the same flight continues
    assert reconnect.session_id != connect.session_id
    assert not reconnect.resumed
    assert disconnect.last_seen == timestamp(first)


async def test_atis_changes_only_when_letter_or_text_does(engine: Engine) -> None:
    first = load(SMALL)
    station = first["atis"][0]
    second = later(first, 15)
    third = later(second, 15)
    changed = next(a for a in third["atis"] if a["callsign"] == station["callsign"])
    changed["atis_code"] = "Z" if station.get("atis_code") != "Z" else "Y"
    seen = await replay_through_bus(engine, [first, second, third])
    mine = [
        e.payload
        for e in seen
        if isinstance(e.payload, AtisChanged) and e.payload.callsign == station["callsign"]
    ]
    assert [p.atis_code for p in mine] == [
        (station.get("atis_code") or "").strip() or None,
        changed["atis_code"],
    ]
