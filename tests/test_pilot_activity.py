"""Issue 13, deliverable 4 (pilots): hours online and in the air, flights, sessions, airports.

The world of tests/movement_world.py is written into the test's database; the endpoint's
figures are checked against the world's own truth (each session's time in the air as the
world was made, not as the endpoint derives it from movements) computed in Python, and
against SQL run directly on the database. A hand-made session checks the window's edges.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, case, func, literal, select

from movement_world import Move, Session, World, build, insert_world
from vatsim_collector.api import create_app
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.store import schema as t

T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)
NOW = T0 + 40 * H


def app_client(engine: Engine) -> TestClient:
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    return TestClient(create_app(ingestor, stale_after=1e9, clock=lambda: NOW))


@pytest.fixture
def world(engine: Engine) -> World:
    made = build(T0, 30, 250, seed=21, pilots=90)
    with engine.begin() as conn:
        insert_world(conn, made)
    return made


def get(client: TestClient, **params: Any) -> dict[str, Any]:
    answer = client.get("/api/activity/pilots", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def overlap(a: datetime, b: datetime, low: datetime, high: datetime) -> float:
    return max(0.0, (min(b, high) - max(a, low)).total_seconds())


def expected_rows(world: World, low: datetime, high: datetime) -> dict[int, dict[str, Any]]:
    """Independently, from the world's sessions, its truth in the air and its movements."""
    rows: dict[int, dict[str, Any]] = {}
    by_session: dict[int, list[Move]] = defaultdict(list)
    for m in world.moves:
        by_session[m.session_id].append(m)
    for s in world.sessions:
        online = overlap(s.first, s.last, low, high)
        if online <= 0:
            continue
        row = rows.setdefault(
            s.cid,
            {
                "online": 0.0,
                "airborne": 0.0,
                "sessions": 0,
                "flights": set(),
                "departures": [],
                "arrivals": [],
                "first": max(s.first, low),
                "last": min(s.last, high),
            },
        )
        row["online"] += online
        row["airborne"] += sum(overlap(a, b, low, high) for a, b in s.airborne)
        row["sessions"] += 1
        row["flights"].add(s.flight_id)
        row["first"] = min(row["first"], max(s.first, low))
        row["last"] = max(row["last"], min(s.last, high))
        for m in by_session[s.id]:
            if m.airport and low <= m.at < high:
                if m.kind == "takeoff":
                    row["departures"].append((m.at, m.airport))
                elif m.kind == "landing":
                    row["arrivals"].append((m.at, m.airport))
    return rows


def test_figures_match_the_worlds_truth(client_world: tuple[TestClient, World]) -> None:
    client, world = client_world
    low, high = T0 + 4 * H + 7 * M, T0 + 22 * H + 3 * M
    body = get(client, **{"from": iso(low), "to": iso(high)}, limit=500)
    expected = expected_rows(world, low, high)
    got = {r["cid"]: r for r in body["rows"]}
    assert got.keys() == expected.keys()
    assert body["pagination"]["total"] == len(expected)
    airborne_somewhere = 0
    for cid, want in expected.items():
        row = got[cid]
        assert row["hours_online"] == pytest.approx(want["online"] / 3600, abs=1e-4)
        assert row["hours_airborne"] == pytest.approx(want["airborne"] / 3600, abs=1e-4)
        assert row["sessions"] == want["sessions"]
        assert row["flights"] == len(want["flights"])
        assert row["departures"] == [code for _, code in sorted(want["departures"])]
        assert row["arrivals"] == [code for _, code in sorted(want["arrivals"])]
        assert row["first_seen"] == iso(want["first"])
        assert row["last_seen"] == iso(want["last"])
        assert row["hours_airborne"] <= row["hours_online"]
        airborne_somewhere += row["hours_airborne"] > 0
    assert airborne_somewhere > 10
    hours = [r["hours_online"] for r in body["rows"]]
    assert hours == sorted(hours, reverse=True)
    assert body["totals"]["pilots"] == len(expected)
    assert body["totals"]["sessions"] == sum(w["sessions"] for w in expected.values())
    assert body["totals"]["hours_online"] == pytest.approx(
        sum(w["online"] for w in expected.values()) / 3600, abs=1e-3
    )


def _seconds(engine: Engine, later: Any, earlier: Any) -> Any:
    if engine.dialect.name == "postgresql":
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * literal(86400.0)


def test_figures_match_sql(client_world: tuple[TestClient, World], engine: Engine) -> None:
    client, _ = client_world
    low, high = T0 + 10 * H, T0 + 20 * H
    body = get(client, **{"from": iso(low), "to": iso(high)}, limit=500)
    p, m = t.pilot_sessions.c, t.movements.c
    start = case((p.first_seen_at > low, p.first_seen_at), else_=low)
    end = case((p.last_seen_at < high, p.last_seen_at), else_=high)
    with engine.connect() as conn:
        sql = {
            row.cid: row
            for row in conn.execute(
                select(
                    p.cid,
                    func.count().label("sessions"),
                    func.count(p.flight_id.distinct()).label("flights"),
                    func.sum(_seconds(engine, end, start)).label("seconds"),
                )
                .where(p.first_seen_at < high, p.last_seen_at > low)
                .group_by(p.cid)
            )
        }
        departures: dict[int, list[str]] = defaultdict(list)
        for row in conn.execute(
            select(m.cid, m.airport)
            .where(m.kind == "takeoff", m.at >= low, m.at < high, m.airport.is_not(None))
            .order_by(m.cid, m.at, m.airport)
        ):
            departures[row.cid].append(row.airport)
    got = {r["cid"]: r for r in body["rows"]}
    assert got.keys() == sql.keys()
    for cid, row in sql.items():
        assert got[cid]["sessions"] == row.sessions
        assert got[cid]["flights"] == row.flights
        assert got[cid]["hours_online"] == pytest.approx(float(row.seconds) / 3600, abs=1e-4)
        assert got[cid]["departures"] == departures.get(cid, [])


@pytest.fixture
def client_world(engine: Engine, world: World) -> tuple[TestClient, World]:
    return app_client(engine), world


# -- the window's edges, by hand -------------------------------------------------------------


def hand_world() -> World:
    """One member: a flight EGLL-EHAM seen 10:00-14:00, airborne 10:30-13:00; then a
    session first seen in the air at 15:00, landing at EGKK at 15:40, seen to 16:00."""
    day = datetime(2026, 12, 1, tzinfo=UTC)
    w = World(day, day + 24 * H)
    w.flights = {1: (1500001, "TST1", "EGLL", "EHAM"), 2: (1500001, "TST2", "EHAM", "EGKK")}
    w.sessions = [
        Session(11, 1500001, "TST1", 1, day + 10 * H, day + 14 * H),
        Session(12, 1500001, "TST2", 2, day + 15 * H, day + 16 * H),
    ]
    w.moves = [
        Move(101, 11, 1, 1500001, "TST1", "off_block", "EGLL", day + 10 * H + 10 * M),
        Move(102, 11, 1, 1500001, "TST1", "takeoff", "EGLL", day + 10 * H + 30 * M),
        Move(103, 11, 1, 1500001, "TST1", "landing", "EHAM", day + 13 * H),
        Move(104, 11, 1, 1500001, "TST1", "on_block", "EHAM", day + 13 * H + 10 * M),
        Move(105, 12, 2, 1500001, "TST2", "landing", "EGKK", day + 15 * H + 40 * M),
    ]
    return w


@pytest.mark.parametrize(
    ("hours", "online", "airborne", "departures", "arrivals", "sessions"),
    [
        ((0, 24), 5.0, 2.5 + 40 / 60, ["EGLL"], ["EHAM", "EGKK"], 2),
        ((12, 16), 3.0, 1.0 + 40 / 60, [], ["EHAM", "EGKK"], 2),
        ((9, 11), 1.0, 0.5, ["EGLL"], [], 1),
        ((13, 15), 1.0, 0.0, [], ["EHAM"], 1),
        ((15.5, 15.75), 0.25, 10 / 60, [], ["EGKK"], 1),
    ],
)
def test_sessions_and_time_in_the_air_count_only_their_overlap(
    engine: Engine,
    hours: tuple[float, float],
    online: float,
    airborne: float,
    departures: list[str],
    arrivals: list[str],
    sessions: int,
) -> None:
    w = hand_world()
    with engine.begin() as conn:
        insert_world(conn, w)
    low, high = (w.start + timedelta(hours=h) for h in hours)
    [row] = get(app_client(engine), **{"from": iso(low), "to": iso(high)})["rows"]
    assert row["hours_online"] == pytest.approx(online, abs=1e-4)
    assert row["hours_airborne"] == pytest.approx(airborne, abs=1e-4)
    assert (row["departures"], row["arrivals"]) == (departures, arrivals)
    assert row["sessions"] == sessions
    met = [s for s in w.sessions if s.first < high and s.last > low]
    assert row["first_seen"] == iso(min(max(s.first, low) for s in met))
    assert row["last_seen"] == iso(max(min(s.last, high) for s in met))


def test_a_session_touching_the_window_only_at_its_end_is_not_counted(engine: Engine) -> None:
    w = hand_world()
    with engine.begin() as conn:
        insert_world(conn, w)
    body = get(app_client(engine), **{"from": iso(w.start + 14 * H), "to": iso(w.start + 15 * H)})
    assert body["rows"] == []
    assert body["totals"]["pilots"] == 0


# -- shape, CSV, validation ------------------------------------------------------------------


def test_one_member_paging_and_csv(client_world: tuple[TestClient, World]) -> None:
    client, _ = client_world
    window = {"from": iso(T0), "to": iso(T0 + 30 * H)}
    everyone = get(client, **window, limit=500)["rows"]
    paged = get(client, **window, limit=7, offset=7)
    assert paged["rows"] == everyone[7:14]
    assert paged["pagination"] == {"total": len(everyone), "limit": 7, "offset": 7}
    cid = everyone[3]["cid"]
    assert get(client, **window, cid=cid)["rows"] == [everyone[3]]
    answer = client.get("/api/activity/pilots", params=window, headers={"Accept": "text/csv"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "pilot-activity.csv" in answer.headers["content-disposition"]
    lines = list(csv.DictReader(io.StringIO(answer.text)))
    as_json = get(client, **window)["rows"]
    assert [int(line["cid"]) for line in lines] == [r["cid"] for r in as_json]
    for line, row in zip(lines, as_json, strict=True):
        assert float(line["hours_online"]) == row["hours_online"]
        assert float(line["hours_airborne"]) == row["hours_airborne"]
        assert line["departures"].split() == row["departures"]
        assert line["arrivals"].split() == row["arrivals"]
    explicit = client.get("/api/activity/pilots", params={**window, "format": "csv"})
    assert explicit.text == answer.text


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-12-01T00:00:00Z", "to": "2026-11-30T00:00:00Z"},
        {"from": "2026-01-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"},
        {"cid": "0"},
        {"format": "xml"},
        {"limit": "501"},
        {"to": "2026-11-30T00:00:00"},
    ],
)
def test_bad_parameters_are_422(engine: Engine, params: dict[str, str]) -> None:
    answer = app_client(engine).get("/api/activity/pilots", params=params)
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
