"""Movements wired into ingest, restore, recompute, forget and the events (issue 13).

A realistic simulated network (takeoffs, landings, touch-and-goes, go-arounds, a diversion)
is ingested by the real ``Ingestor`` with the real detector. Rows are compared by the
sessions' natural keys, not their ids: ids are the database's business (PostgreSQL spends
sequence values on a rolled-back transaction).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text

from vatsim_collector.airspace.engine import AirspaceEngine
from vatsim_collector.airspace.sectors import SectorSet
from vatsim_collector.api import create_app
from vatsim_collector.config import load_settings
from vatsim_collector.events.event import Event, decode_event, encode_payload
from vatsim_collector.movements.detector import MovementDetector
from vatsim_collector.movements.setup import build_detector
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome
from vatsim_collector.pipeline.recompute import recompute
from vatsim_collector.simulator.world import SimulatedNetwork
from vatsim_collector.store import schema as t
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.engine import create_db_engine
from vatsim_collector.store.forget import forget_member
from vatsim_collector.store.migrate import upgrade
from vatsim_collector.store.outbox import EventOutbox

START = datetime(2024, 5, 1, 6, 0, 0, tzinfo=UTC)
TICKS = 480  # two hours: every kind of movement, a diversion included (seed 2)
CONFIG = IngestConfig()
# One pilot is left out of these snapshots: longer than the missed-snapshot rule, so its
# session ends and then resumes (the same session, detected afresh).
GAP = range(200, 207)


def _detector() -> MovementDetector:
    detector = build_detector(load_settings())
    assert detector is not None
    return detector


@pytest.fixture(scope="module")
def docs() -> list[bytes]:
    network = SimulatedNetwork(seed=2, start=START, flights="realistic", population=40)
    out: list[bytes] = []
    gone: str | None = None
    for tick in range(TICKS):
        data = network.data_document()
        if tick % 4 == 1:
            # A pilot missing from a single snapshot now and then: missed counts above zero.
            data["pilots"] = [p for i, p in enumerate(data["pilots"]) if (i + tick) % 13]
        if tick in GAP:
            gone = gone or data["pilots"][0]["callsign"]
            data["pilots"] = [p for p in data["pilots"] if p["callsign"] != gone]
        out.append(orjson.dumps(data))
        network.tick()
    return out


def _ingestor(engine: Engine) -> Ingestor:
    ingestor = Ingestor(engine, CONFIG, movements=_detector())
    ingestor.restore()
    return ingestor


def _ingest_all(ingestor: Ingestor, docs: Sequence[bytes]) -> list[Event]:
    events: list[Event] = []
    for raw in docs:
        result = ingestor.ingest(raw)
        assert result.outcome is Outcome.INGESTED, result.reason
        events.extend(result.events)
    return events


_ROWS = text(
    "SELECT ps.cid AS s_cid, ps.callsign AS s_callsign, ps.logon_time, f.started_at,"
    " m.snapshot_id, m.cid, m.callsign, m.kind, m.airport, m.at, m.bracket_from,"
    " m.bracket_to, m.runway_heading, m.diversion, m.filed_arrival"
    " FROM movements m JOIN pilot_sessions ps ON ps.id = m.pilot_session_id"
    " JOIN flights f ON f.id = m.flight_id"
)
_STATES = text(
    "SELECT ps.cid, ps.callsign, ps.logon_time, ms.state, ms.snapshot_id"
    " FROM movement_state ms JOIN pilot_sessions ps ON ps.id = ms.pilot_session_id"
)


def _utc(value: Any) -> Any:
    # Raw SQL reads SQLite's stored text as text: compare times as times on both backends.
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] in " T":
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return value


def _sorted(rows: Any) -> list[tuple[Any, ...]]:
    return sorted(
        (tuple(_utc(v) for v in r) for r in rows),
        key=lambda r: tuple((v is None, str(v)) for v in r),
    )


def movements(engine: Engine) -> list[tuple[Any, ...]]:
    """Every movement, all columns but ids (sessions and flights by their natural keys)."""
    with engine.connect() as conn:
        return _sorted(conn.execute(_ROWS))


def states(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return _sorted(conn.execute(_STATES))


def _sqlite(path: Path) -> Engine:
    engine = create_db_engine(f"sqlite:///{path}")
    upgrade(engine)
    return engine


@pytest.fixture(scope="module")
def reference(
    docs: list[bytes], tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Movements and saved states of one uninterrupted run (on SQLite, its own file)."""
    engine = _sqlite(tmp_path_factory.mktemp("reference") / "ref.db")
    try:
        _ingest_all(_ingestor(engine), docs)
        return movements(engine), states(engine)
    finally:
        engine.dispose()


def _recompute(engine: Engine, start: datetime, end: datetime) -> Any:
    return recompute(
        DatabaseService.for_engine(engine),
        lambda: AirspaceEngine(SectorSet.default()),
        start=start,
        end=end,
        missed_to_end=CONFIG.missed_snapshots_to_end,
        detector_factory=_detector,
    )


def test_the_run_has_every_kind_and_consistent_rows(
    engine: Engine, docs: list[bytes], reference: Any
) -> None:
    _ingest_all(_ingestor(engine), docs)
    rows = movements(engine)
    assert rows == reference[0]
    kinds = Counter(r[7] for r in rows)
    assert set(kinds) == {
        "off_block",
        "takeoff",
        "landing",
        "touch_and_go",
        "go_around",
        "on_block",
    }
    assert any(r[13] for r in rows), "the run has a diversion"
    with engine.connect() as conn:
        checked = conn.execute(
            text(
                "SELECT m.cid = ps.cid AND m.callsign = ps.callsign AND ps.flight_id = m.flight_id"
                " AND m.bracket_from <= m.at AND m.at <= m.bracket_to,"
                " s.update_timestamp, m.bracket_to, m.kind, m.diversion"
                " FROM movements m JOIN pilot_sessions ps ON ps.id = m.pilot_session_id"
                " JOIN snapshots s ON s.id = m.snapshot_id"
            )
        ).all()
        open_states = conn.execute(
            text(
                "SELECT count(*) FROM movement_state ms JOIN pilot_sessions ps"
                " ON ps.id = ms.pilot_session_id WHERE ps.ended_at IS NOT NULL"
            )
        ).scalar_one()
    assert len(checked) == len(rows)
    for same, confirmed_at, bracket_to, kind, diversion in checked:
        assert same
        # A movement is confirmed by a snapshot at or after its bracket's end.
        assert _utc(confirmed_at) >= _utc(bracket_to)
        assert not diversion or kind == "landing"
    assert open_states == 0, "an ended session keeps no detector state"
    assert states(engine), "open sessions keep their detector state"


def test_live_movements_equal_recompute_row_for_row(engine: Engine, docs: list[bytes]) -> None:
    _ingest_all(_ingestor(engine), docs)
    live, live_states = movements(engine), states(engine)
    with engine.connect() as conn:
        times = list(
            conn.execute(
                select(t.snapshots.c.update_timestamp).order_by(t.snapshots.c.id)
            ).scalars()
        )
    # A range in the middle first: whole sessions are rebuilt, nothing else is touched.
    report = _recompute(engine, times[150], times[160])
    assert 0 < report.movements_written == report.movements_deleted < len(live)
    assert (movements(engine), states(engine)) == (live, live_states)
    report = _recompute(engine, times[0], times[-1])
    assert report.movements_deleted == report.movements_written == len(live)
    assert report.movement_states == len(live_states)
    assert (movements(engine), states(engine)) == (live, live_states)


def test_restarts_split_nothing(engine: Engine, docs: list[bytes], reference: Any) -> None:
    # Restarts at several points, each a new ingestor and detector rebuilt from the database.
    cuts = [0, 97, 203, 288, 350, TICKS]
    for begin, end in itertools.pairwise(cuts):
        _ingest_all(_ingestor(engine), docs[begin:end])
    assert (movements(engine), states(engine)) == reference


REFUSE_MOVEMENTS = {
    "sqlite": [
        "CREATE TRIGGER refuse_movement BEFORE INSERT ON movements "
        "WHEN NEW.snapshot_id = {sid} "
        "BEGIN SELECT RAISE(ABORT, 'movement refused'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_movement() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.snapshot_id = {sid} THEN "
        "RAISE EXCEPTION 'movement refused' USING ERRCODE = 'check_violation'; END IF; "
        "RETURN NEW; END $$",
        "CREATE TRIGGER refuse_movement BEFORE INSERT ON movements "
        "FOR EACH ROW EXECUTE FUNCTION refuse_movement()",
    ],
}


def test_a_refused_snapshot_loses_and_duplicates_no_movement(
    engine: Engine, docs: list[bytes], reference: Any, tmp_path: Path
) -> None:
    # The snapshot that confirmed the reference run's first takeoff is refused for its data.
    first = min((r for r in reference[0] if r[7] == "takeoff"), key=lambda r: r[4])
    refused = first[4]
    with engine.begin() as conn:
        for statement in REFUSE_MOVEMENTS[engine.dialect.name]:
            conn.execute(text(statement.format(sid=refused)))
    ingestor = _ingestor(engine)
    outcomes = Counter(ingestor.ingest(raw).outcome for raw in docs)
    assert outcomes == {Outcome.INGESTED: TICKS - 1, Outcome.HELD: 1}
    with engine.connect() as conn:
        assert not conn.execute(select(t.snapshots.c.id).where(t.snapshots.c.id == refused)).all()
    rows = movements(engine)
    assert all(r[4] != refused for r in rows)
    # Exactly what a run without that snapshot stores: its samples left no trace in the
    # detector, and the state it had before was rebuilt from the database.
    without = _sqlite(tmp_path / "without.db")
    try:
        kept = [
            raw
            for raw in docs
            if t.snapshot_id_for(
                datetime.fromisoformat(orjson.loads(raw)["general"]["update_timestamp"])
            )
            != refused
        ]
        assert len(kept) == TICKS - 1
        _ingest_all(_ingestor(without), kept)
        assert (rows, states(engine)) == (movements(without), states(without))
    finally:
        without.dispose()
    # The takeoff is still there, once, confirmed by a later snapshot.
    session = first[:3]
    takeoffs = [r for r in rows if r[:3] == session and r[7] == "takeoff"]
    assert len(takeoffs) == len([r for r in reference[0] if r[:3] == session and r[7] == "takeoff"])
    assert min(r[4] for r in takeoffs) > refused


def _their_rows(engine: Engine, cid: int) -> tuple[int, int]:
    with engine.connect() as conn:
        moved = conn.execute(
            text(
                "SELECT count(*) FROM movements m JOIN pilot_sessions ps"
                " ON ps.id = m.pilot_session_id WHERE ps.cid = :cid OR m.cid = :cid"
            ),
            {"cid": cid},
        ).scalar_one()
        kept = conn.execute(
            text(
                "SELECT count(*) FROM movement_state ms JOIN pilot_sessions ps"
                " ON ps.id = ms.pilot_session_id WHERE ps.cid = :cid"
            ),
            {"cid": cid},
        ).scalar_one()
    return int(moved), int(kept)


def _online_with_movements(engine: Engine) -> list[int]:
    """Members online at the end with movements and a saved detector state."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT DISTINCT ps.cid FROM movement_state ms JOIN pilot_sessions ps"
                    " ON ps.id = ms.pilot_session_id JOIN movements m"
                    " ON m.pilot_session_id = ps.id ORDER BY ps.cid"
                )
            ).scalars()
        )


def test_forget_removes_the_members_movements_and_states(engine: Engine, docs: list[bytes]) -> None:
    cut = TICKS - 40
    ingestor = _ingestor(engine)
    _ingest_all(ingestor, docs[:cut])
    before = movements(engine)
    first, second = _online_with_movements(engine)[:2]
    moved, kept = _their_rows(engine, first)
    assert moved
    assert kept
    report = forget_member(DatabaseService.for_engine(engine), first)
    assert report.deleted["movements"] == moved
    assert report.deleted["movement_state"] == kept
    assert _their_rows(engine, first) == (0, 0)
    assert movements(engine) == [r for r in before if r[0] != first]
    # Through the API, on the collector that is ingesting: it rebuilds its state (the
    # detector's too) and goes on; the member still online is recorded afresh.
    admin = "k" * 32
    client = TestClient(create_app(ingestor, stale_after=1e9, api_keys=[("admin", admin)]))
    moved, kept = _their_rows(engine, second)
    response = client.delete(f"/api/members/{second}", headers={"X-API-Key": admin})
    assert response.status_code == 200
    assert response.json()["deleted"]["movements"] == moved
    assert response.json()["deleted"]["movement_state"] == kept
    assert _their_rows(engine, second) == (0, 0)
    _ingest_all(ingestor, docs[cut:])
    with engine.connect() as conn:
        orphans = conn.execute(
            text(
                "SELECT count(*) FROM movement_state ms LEFT JOIN pilot_sessions ps"
                " ON ps.id = ms.pilot_session_id WHERE ps.id IS NULL OR ps.ended_at IS NOT NULL"
            )
        ).scalar_one()
    assert orphans == 0


_EVENT_KINDS = {
    "takeoff": "flight.departed",
    "landing": "flight.landed",
    "touch_and_go": "flight.touch_and_go",
    "go_around": "flight.go_around",
}


def test_movement_events_carry_the_stored_movements(engine: Engine, docs: list[bytes]) -> None:
    ingestor = _ingestor(engine)
    ingestor.outbox = EventOutbox("test.events")
    events = _ingest_all(ingestor, docs)
    with engine.connect() as conn:
        stored = conn.execute(
            select(t.movements).order_by(t.movements.c.snapshot_id, t.movements.c.id)
        ).all()
        received = {
            e.payload.snapshot_id: e.id  # type: ignore[union-attr]
            for e in events
            if e.type == "snapshot.received"
        }
        outbox = [
            decode_event(row.event)
            for row in conn.execute(
                select(t.event_outbox).where(t.event_outbox.c.subject.like("test.events.flight.%"))
            )
        ]
    expected: list[tuple[Any, ...]] = []
    for m in stored:
        kinds = [_EVENT_KINDS[m.kind]] if m.kind in _EVENT_KINDS else []
        if m.kind == "landing" and m.diversion:
            kinds.append("flight.diverted")
        for kind in kinds:
            expected.append(
                (
                    kind,
                    received[m.snapshot_id],
                    m.pilot_session_id,
                    m.flight_id,
                    m.cid,
                    m.callsign,
                    m.airport,
                    _utc(m.at),
                    m.runway_heading,
                    m.filed_arrival,
                    m.diversion,
                )
            )
    flight_events = [e for e in events if e.type.startswith("flight.")]

    def facts(e: Event) -> tuple[Any, ...]:
        p: Any = e.payload
        return (
            e.type,
            e.correlation_id,
            p.session_id,
            p.flight_id,
            p.cid,
            p.callsign,
            p.airport,
            p.at,
            p.runway_heading,
            p.filed_arrival,
            p.diversion,
        )

    got = [facts(e) for e in flight_events]
    assert sorted(got, key=str) == sorted(expected, key=str)
    assert {e[0] for e in got} == {
        "flight.departed",
        "flight.landed",
        "flight.touch_and_go",
        "flight.go_around",
        "flight.diverted",
    }
    # A diversion follows its landing, in the same snapshot.
    for i, e in enumerate(flight_events):
        if e.type == "flight.diverted":
            assert facts(flight_events[i - 1])[2:] == facts(e)[2:]
            assert flight_events[i - 1].type == "flight.landed"
    # With NATS on, the outbox holds the same events, built in the snapshot's transaction.
    assert sorted((facts(e) for e in outbox), key=str) == sorted(got, key=str)
    # Events never name anyone.
    assert all("name" not in orjson.loads(encode_payload(e.payload)) for e in flight_events)


def test_recompute_of_ended_sessions_confirms_at_the_same_snapshots(
    engine: Engine, docs: list[bytes]
) -> None:
    """A range whose sessions all ended: those last seen near its end were ended, live, by
    snapshots after it, and so were the movements their end decided (a pending landing or
    on-block). Here every pilot of one network disconnects at once, another takes over."""
    cut = 200
    other = SimulatedNetwork(
        seed=3, start=START + cut * timedelta(seconds=15), flights="realistic", population=40
    )
    after: list[bytes] = []
    for _ in range(3 * CONFIG.missed_snapshots_to_end):
        after.append(orjson.dumps(other.data_document()))
        other.tick()
    _ingest_all(_ingestor(engine), [*docs[:cut], *after])
    live, live_states = movements(engine), states(engine)
    with engine.connect() as conn:
        times = list(
            conn.execute(
                select(t.snapshots.c.update_timestamp).order_by(t.snapshots.c.id)
            ).scalars()
        )
        ended_at_the_cut = conn.execute(
            select(t.movements.c.kind).where(
                t.movements.c.snapshot_id > t.snapshot_id_for(times[cut - 1]),
                t.movements.c.pilot_session_id.in_(
                    select(t.pilot_sessions.c.id).where(
                        t.pilot_sessions.c.last_seen_at <= times[cut - 1]
                    )
                ),
            )
        ).all()
    assert ended_at_the_cut, "some movements are decided by the sessions' end"
    report = _recompute(engine, times[cut - 50], times[cut - 40])
    assert report.window_end == times[cut - 1]
    assert report.movements_written == report.movements_deleted > 0
    assert (movements(engine), states(engine)) == (live, live_states)


def _expected_flight(rows: list[Any]) -> dict[str, Any]:
    """A flight's movement fields computed here from its raw rows, independently of the SQL."""

    def when(kind: str, pick: Any) -> Any:
        found = [r for r in rows if r.kind == kind]
        return pick(found, key=lambda r: (_utc(r.at), r.id)) if found else None

    takeoff, landing = when("takeoff", min), when("landing", max)
    off, on = when("off_block", min), when("on_block", max)

    def minutes(a: Any, b: Any) -> float | None:
        if a is None or b is None or _utc(b.at) < _utc(a.at):
            return None
        return round((_utc(b.at) - _utc(a.at)).total_seconds() / 60, 2)

    def iso(r: Any) -> str | None:
        return None if r is None else _utc(r.at).isoformat().replace("+00:00", "Z")

    return {
        "departure_flown": takeoff.airport if takeoff else None,
        "arrival_flown": landing.airport if landing else None,
        "off_block_at": iso(off),
        "takeoff_at": iso(takeoff),
        "landing_at": iso(landing),
        "on_block_at": iso(on),
        "block_minutes": minutes(off, on),
        "airborne_minutes": minutes(takeoff, landing),
        "diverted": bool(landing.diversion) if landing else False,
    }


def _fields(body: dict[str, Any]) -> dict[str, Any]:
    out = {k: body[k] for k in _expected_flight([])}
    for k in ("off_block_at", "takeoff_at", "landing_at", "on_block_at"):
        if out[k] is not None:
            out[k] = datetime.fromisoformat(out[k]).astimezone(UTC).isoformat()
            out[k] = out[k].replace("+00:00", "Z")
    return out


def test_flights_show_their_movements(engine: Engine, docs: list[bytes]) -> None:
    ingestor = _ingestor(engine)
    _ingest_all(ingestor, docs)
    with engine.connect() as conn:
        times = list(
            conn.execute(
                select(t.snapshots.c.update_timestamp).order_by(t.snapshots.c.id)
            ).scalars()
        )
        raw = conn.execute(select(t.movements)).all()
        first_takeoffs = dict(
            conn.execute(
                text(
                    "SELECT flight_id, min(at) FROM movements WHERE kind = 'takeoff'"
                    " GROUP BY flight_id"
                )
            ).all()
        )
        flights = conn.execute(select(t.flights.c.id, t.flights.c.cid)).all()
    # Summaries of the ended flights (the bus handler would write them; recompute does too).
    _recompute(engine, times[0], times[-1])
    by_flight: dict[int, list[Any]] = {}
    for r in raw:
        by_flight.setdefault(r.flight_id, []).append(r)
    client = TestClient(create_app(ingestor, stale_after=1e9, clock=lambda: times[-1]))
    seen = Counter[str]()
    for flight_id, cid in flights:
        expected = _expected_flight(by_flight.get(flight_id, []))
        detail = client.get(f"/api/flights/{flight_id}")
        assert detail.status_code == 200
        body = detail.json()
        assert _fields(body["flight"]) == expected, flight_id
        if body["summary"] is not None:
            assert _fields(body["summary"]["movements"]) == expected
            seen["summary"] += 1
        if flight_id in first_takeoffs:
            assert _utc(first_takeoffs[flight_id]) == datetime.fromisoformat(
                body["flight"]["takeoff_at"]
            )
        for key, value in expected.items():
            seen[key] += value not in (None, False)
        member = client.get(f"/api/members/{cid}/flights", params={"limit": 200}).json()
        (mine,) = [f for f in member["flights"] if f["flight_id"] == flight_id]
        assert _fields(mine) == expected
    summaries = client.get("/api/flights/summaries", params={"limit": 500}).json()["summaries"]
    assert len(summaries) == seen["summary"] > 0
    for s in summaries:
        assert _fields(s["movements"]) == _expected_flight(by_flight.get(s["flight_id"], []))
    # Every field is seen filled in for some flight, and a diversion among them.
    assert all(seen[k] for k in _expected_flight([]))
