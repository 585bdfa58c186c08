"""Flights across reconnects, plan revisions, prefiles and transceivers."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import Engine, func, select

from feeds import SMALL, encode, feed_time, later, load, timestamp
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.store import schema as t


def ingestor_for(engine: Engine, **config: Any) -> Ingestor:
    ingestor = Ingestor(engine, IngestConfig(**config))
    ingestor.restore()
    return ingestor


def with_plan(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The document and one of its pilots that has a flight plan."""
    pilot = next(p for p in doc["pilots"] if p["flight_plan"] and p["flight_plan"]["arrival"])
    return doc, pilot


def reconnect(
    doc: dict[str, Any], pilot: dict[str, Any], seconds: float, **changes: Any
) -> dict[str, Any]:
    """``doc`` ``seconds`` later with ``pilot`` logged on anew (a new session)."""
    out = later(doc, seconds)
    again = next(p for p in out["pilots"] if p["callsign"] == pilot["callsign"])
    again["logon_time"] = feed_time(timestamp(out) - timedelta(seconds=5))
    plan_changes = changes.pop("plan", {})
    again.update(changes)
    again["flight_plan"] = {**again["flight_plan"], **plan_changes}
    return out


def flights_of(engine: Engine, callsign: str) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(
            select(t.flights).where(t.flights.c.callsign == callsign).order_by(t.flights.c.id)
        ).all()


def sessions_of(engine: Engine, callsign: str) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(
            select(t.pilot_sessions)
            .where(t.pilot_sessions.c.callsign == callsign)
            .order_by(t.pilot_sessions.c.id)
        ).all()


def test_reconnect_with_same_route_within_window_continues_the_flight(engine: Engine) -> None:
    doc, pilot = with_plan(load(SMALL))
    ingestor = ingestor_for(engine)
    ingestor.ingest(encode(doc))
    ingestor.ingest(encode(reconnect(doc, pilot, 20 * 60)))
    sessions = sessions_of(engine, pilot["callsign"])
    assert len(sessions) == 2
    assert sessions[0].ended_at == timestamp(doc)  # the old one ended at its last sighting
    assert sessions[1].ended_at is None
    flights = flights_of(engine, pilot["callsign"])
    assert len(flights) == 1
    assert flights[0].ended_at is None
    assert {s.flight_id for s in sessions} == {flights[0].id}


def test_reconnect_after_the_window_is_a_new_flight(engine: Engine) -> None:
    doc, pilot = with_plan(load(SMALL))
    ingestor = ingestor_for(engine)
    ingestor.ingest(encode(doc))
    ingestor.ingest(encode(reconnect(doc, pilot, 31 * 60)))
    assert len(flights_of(engine, pilot["callsign"])) == 2


def test_reconnect_to_another_destination_is_a_new_flight(engine: Engine) -> None:
    doc, pilot = with_plan(load(SMALL))
    ingestor = ingestor_for(engine)
    ingestor.ingest(encode(doc))
    ingestor.ingest(encode(reconnect(doc, pilot, 60, plan={"arrival": "ZZZZ"})))
    flights = flights_of(engine, pilot["callsign"])
    assert [f.arrival for f in flights] == [pilot["flight_plan"]["arrival"], "ZZZZ"]


def test_a_callsign_change_is_always_a_new_flight(engine: Engine) -> None:
    doc, pilot = with_plan(load(SMALL))
    ingestor = ingestor_for(engine, missed_snapshots_to_end=1)
    ingestor.ingest(encode(doc))
    renamed = reconnect(doc, pilot, 60, callsign="RENAMED1")
    ingestor.ingest(encode(renamed))
    assert len(flights_of(engine, pilot["callsign"])) == 1
    assert len(flights_of(engine, "RENAMED1")) == 1
    assert flights_of(engine, pilot["callsign"])[0].ended_at == timestamp(doc)


def test_reconnect_continues_the_flight_after_a_restart(engine: Engine) -> None:
    doc, pilot = with_plan(load(SMALL))
    ingestor_for(engine, missed_snapshots_to_end=1).ingest(encode(doc))
    dropped = later(doc, 15)
    dropped["pilots"] = [p for p in dropped["pilots"] if p["callsign"] != pilot["callsign"]]
    ingestor_for(engine, missed_snapshots_to_end=1).ingest(encode(dropped))
    assert flights_of(engine, pilot["callsign"])[0].ended_at == timestamp(doc)
    restarted = ingestor_for(engine, missed_snapshots_to_end=1)
    restarted.ingest(encode(reconnect(doc, pilot, 10 * 60)))
    flights = flights_of(engine, pilot["callsign"])
    assert len(flights) == 1
    assert flights[0].ended_at is None
    assert len(sessions_of(engine, pilot["callsign"])) == 2


def test_a_pilot_without_a_plan_has_a_null_plan_not_vfr(engine: Engine) -> None:
    doc = load(SMALL)
    planless = next(p for p in doc["pilots"] if p["flight_plan"] is None)
    ingestor_for(engine).ingest(encode(doc))
    flight = flights_of(engine, planless["callsign"])[0]
    assert (flight.departure, flight.arrival) == (None, None)
    with engine.connect() as conn:
        plans = conn.execute(
            select(func.count())
            .select_from(t.flight_plans)
            .where(t.flight_plans.c.flight_id == flight.id)
        ).scalar_one()
    assert plans == 0


def test_every_plan_change_is_a_revision_with_its_first_seen_time(engine: Engine) -> None:
    doc, pilot = with_plan(load(SMALL))
    ingestor = ingestor_for(engine)
    ingestor.ingest(encode(doc))
    same = later(doc, 15)
    ingestor.ingest(encode(same))
    amended = later(doc, 30)
    target = next(p for p in amended["pilots"] if p["callsign"] == pilot["callsign"])
    target["flight_plan"]["route"] = "DCT NEWPOINT DCT"
    ingestor.ingest(encode(amended))
    ingestor.ingest(encode(later(amended, 15)))
    with engine.connect() as conn:
        revisions = conn.execute(
            select(t.flight_plans)
            .join(t.flights, t.flights.c.id == t.flight_plans.c.flight_id)
            .where(t.flights.c.callsign == pilot["callsign"])
            .order_by(t.flight_plans.c.id)
        ).all()
    assert [r.route for r in revisions] == [pilot["flight_plan"]["route"], "DCT NEWPOINT DCT"]
    assert [r.first_seen_at for r in revisions] == [timestamp(doc), timestamp(amended)]


def test_prefiles_are_kept_but_not_ghosts_of_online_pilots(engine: Engine) -> None:
    doc, pilot = with_plan(load(SMALL))
    ghost = {
        "cid": pilot["cid"],
        "name": pilot["name"],
        "callsign": pilot["callsign"],
        "flight_plan": copy.deepcopy(pilot["flight_plan"]),
        "last_updated": doc["general"]["update_timestamp"],
    }
    doc["prefiles"].append(ghost)
    ingestor = ingestor_for(engine)
    ingestor.ingest(encode(doc))
    with engine.connect() as conn:
        stored = set(conn.execute(select(t.prefiles.c.callsign)).scalars())
    real = {p["callsign"] for p in doc["prefiles"]} - {pilot["callsign"]}
    assert stored == real
    assert ingestor.stats.prefiles_seen == len(real)


def test_transceivers_are_stored_and_linked_and_place_the_controller(engine: Engine) -> None:
    doc = load(SMALL)
    controller = next(c for c in doc["controllers"] if c["facility"] == 6)
    pilot = doc["pilots"][0]
    stations = [
        {
            "callsign": controller["callsign"],
            "transceivers": [
                {
                    "id": 0,
                    "frequency": 132_600_000,
                    "latDeg": 50.0,
                    "lonDeg": 179.5,
                    "heightMslM": 10.0,
                    "heightAglM": 5.0,
                },
                {
                    "id": 1,
                    "frequency": 132_600_000,
                    "latDeg": 52.0,
                    "lonDeg": -179.5,
                    "heightMslM": 10.0,
                    "heightAglM": 5.0,
                },
            ],
        },
        {
            "callsign": pilot["callsign"],
            "transceivers": [
                {
                    "id": 0,
                    "frequency": 122_800_010,
                    "latDeg": pilot["latitude"],
                    "lonDeg": pilot["longitude"],
                    "heightMslM": 1000.0,
                    "heightAglM": 900.0,
                }
            ],
        },
        {"callsign": "NOBODY_HERE", "transceivers": []},
    ]
    ingestor = ingestor_for(engine)
    ingestor.ingest(encode(doc), transceivers_raw=orjson.dumps(stations))
    with engine.connect() as conn:
        rows = conn.execute(select(t.transceivers).order_by(t.transceivers.c.callsign)).all()
        ctl = conn.execute(
            select(t.controller_sessions).where(
                t.controller_sessions.c.callsign == controller["callsign"]
            )
        ).one()
        snap = conn.execute(select(t.snapshots.c.transceivers)).scalar_one()
    assert snap == 3
    by_callsign = {r.callsign: r for r in rows}
    assert by_callsign[pilot["callsign"]].pilot_session_id is not None
    assert by_callsign[pilot["callsign"]].frequency_hz == 122_800_010
    assert by_callsign[controller["callsign"]].controller_session_id == ctl.id
    # The centroid of two stations either side of the antimeridian lies on it, not at 0°.
    assert ctl.latitude is not None
    assert abs(ctl.latitude - 51.0) < 0.1
    assert ctl.longitude is not None
    assert abs(abs(ctl.longitude) - 180.0) < 0.1


def test_a_bad_transceivers_document_keeps_the_snapshot(engine: Engine) -> None:
    ingestor = ingestor_for(engine)
    result = ingestor.ingest(SMALL.read_bytes(), transceivers_raw=b'{"not": "a list"}')
    assert result.snapshot_id is not None
    with engine.connect() as conn:
        held = conn.execute(select(t.held_documents.c.reason)).scalars().all()
        snap = conn.execute(select(t.snapshots.c.transceivers)).scalar_one()
    assert snap is None
    assert len(held) == 1
    assert "transceivers" in held[0]
