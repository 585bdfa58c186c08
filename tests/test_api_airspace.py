"""Sector, occupancy, coverage, summary and transceiver endpoints over a real database.

The database is filled by the real pipeline -- the simulator's documents through the ingestor
with the airspace engine and the VATSpy sectors, then the summary writer -- and every answer is
checked against direct SQL on the same database, or against an independent computation in
plain Python. One database serves the module (SQLite, or PostgreSQL when
``VATSIM_TEST_DATABASE_URL`` is set): filling it takes seconds, and no test writes to it.
"""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from conftest import SERVER_ENV
from vatsim_collector.airspace.engine import AirspaceEngine
from vatsim_collector.airspace.sectors import SectorSet
from vatsim_collector.api import create_app
from vatsim_collector.api.routes_airspace import occupancy_hours
from vatsim_collector.feed.models import nearest_micro_degree
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome
from vatsim_collector.simulator.traffic import SimRates
from vatsim_collector.simulator.world import SimulatedNetwork
from vatsim_collector.store import schema as t
from vatsim_collector.store.engine import create_db_engine
from vatsim_collector.store.migrate import upgrade
from vatsim_collector.store.queries_airspace import Span
from vatsim_collector.store.summaries_store import SummaryWriter

START = datetime(2024, 5, 1, 11, 55, tzinfo=UTC)  # 40 ticks of 15 s cross 12:00
TICKS = 40
HOUR = timedelta(hours=1)
INJECTION = "EGLL'; DROP TABLE flights; --"


@dataclass
class World:
    engine: Engine
    ingestor: Ingestor
    sectors: SectorSet
    client: TestClient
    now: datetime
    last_transceivers: list[dict[str, Any]]

    def rows(self, query: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def scalar(self, query: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()


@pytest.fixture(scope="module")
def module_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The conftest ``engine`` per module rather than per test: same backends, one fill."""
    server = os.environ.get(SERVER_ENV)
    if not server:
        engine = create_db_engine(f"sqlite:///{tmp_path_factory.mktemp('airspace')}/t.db")
        upgrade(engine)
        yield engine
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
        upgrade(engine)
        yield engine
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(scope="module")
def world(module_engine: Engine) -> World:
    sectors = SectorSet.default()
    ingestor = Ingestor(
        module_engine,
        IngestConfig(missed_snapshots_to_end=2),
        airspace=AirspaceEngine(sectors, exit_after=2),
    )
    ingestor.restore()
    # More controller turnover than the default, so several controller sessions end.
    sim = SimulatedNetwork(
        seed=11, start=START, rates=SimRates(controller_leave=0.01, controller_join=0.01)
    )
    tx: list[dict[str, Any]] = []
    for _ in range(TICKS):
        tx = sim.transceivers_document()
        result = ingestor.ingest(
            orjson.dumps(sim.data_document()), transceivers_raw=orjson.dumps(tx)
        )
        assert result.outcome is Outcome.INGESTED
        sim.tick()
    writer = SummaryWriter(ingestor.db)
    with module_engine.connect() as conn:
        flights = conn.execute(select(t.flights.c.id).where(t.flights.c.ended_at.is_not(None)))
        flight_ids = [row.id for row in flights]
        cs = t.controller_sessions
        controller_ids = [
            row.id for row in conn.execute(select(cs.c.id).where(cs.c.ended_at.is_not(None)))
        ]
    for flight_id in flight_ids:
        assert writer.flight(flight_id)
    for session_id in controller_ids:
        writer.controller(session_id)  # observers get none
    assert ingestor.live.snapshot_at is not None
    now = ingestor.live.snapshot_at + timedelta(seconds=5)
    app = create_app(ingestor, stale_after=60, sectors=sectors, clock=lambda: now)
    return World(module_engine, ingestor, sectors, TestClient(app), now, tx)


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _get(world: World, path: str, **params: Any) -> dict[str, Any]:
    response = world.client.get(path, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _all_pages(world: World, path: str, key: str, **params: Any) -> tuple[list[Any], int]:
    items: list[Any] = []
    offset, totals = 0, set()
    while True:
        body = _get(world, path, limit=7, offset=offset, **params)
        assert body["pagination"]["limit"] == 7
        assert body["pagination"]["offset"] == offset
        totals.add(body["pagination"]["total"])
        items.extend(body[key])
        offset += 7
        if not body[key]:
            break
    assert len(totals) == 1
    total = totals.pop()
    assert len(items) == total
    return items, total


def _mhz(hz: int) -> str:
    return f"{hz / 1e6:.3f}"


def test_the_pipeline_produced_something_to_query(world: World) -> None:
    for table in (t.sector_occupancy, t.contact_intervals, t.flight_summaries):
        assert world.scalar(select(func.count()).select_from(table)) > 10
    assert world.scalar(select(func.count()).select_from(t.controller_summaries)) > 2
    open_rows = select(func.count()).where(t.sector_occupancy.c.exited_at.is_(None))
    assert world.scalar(open_rows.select_from(t.sector_occupancy)) > 10


# /api/sectors ------------------------------------------------------------------------------


def _open_counts(world: World) -> dict[str, int]:
    so = t.sector_occupancy
    rows = world.rows(
        select(so.c.sector, func.count(so.c.pilot_session_id.distinct()))
        .where(so.c.exited_at.is_(None))
        .group_by(so.c.sector)
    )
    return {sector: n for sector, n in rows}


def test_sectors_list_every_name_once_with_pilots_inside_now(world: World) -> None:
    seen: list[dict[str, Any]] = []
    for offset in (0, 500, 1000):
        body = _get(world, "/api/sectors", limit=500, offset=offset)
        assert body["pagination"] == {
            "total": len(world.sectors.names()),
            "limit": 500,
            "offset": offset,
        }
        seen.extend(body["sectors"])
    assert [s["name"] for s in seen] == world.sectors.names()
    expected = _open_counts(world)
    assert {s["name"]: s["current"] for s in seen if s["current"]} == expected
    by_name = {s["name"]: s for s in seen}
    assert by_name["CZQM"]["features"] == len(world.sectors.by_name("CZQM")) == 2
    assert by_name["EGTT"]["features"] == 1
    assert set(by_name["EGTT"]) == {"name", "features", "lower_ft", "upper_ft", "current"}


def test_sectors_name_is_a_case_insensitive_prefix(world: World) -> None:
    body = _get(world, "/api/sectors", name="egt", limit=500)
    names = [s["name"] for s in body["sectors"]]
    assert names == [n for n in world.sectors.names() if n.startswith("EGT")]
    assert body["pagination"]["total"] == len(names) > 3
    assert _get(world, "/api/sectors", name="ZZZZZZ")["sectors"] == []


def test_sector_altitude_limits_span_the_polygons_of_a_name(world: World) -> None:
    def box(name: str, lower: float | None, upper: float | None) -> dict[str, Any]:
        ring = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]
        return {
            "type": "Feature",
            "properties": {"id": name, "lower_ft": lower, "upper_ft": upper},
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        }

    banded = SectorSet.from_mapping(
        {
            "type": "FeatureCollection",
            "features": [
                box("LOW", 0, 10000),
                box("LOW", 10000, 24500),
                box("OPEN", 24500, None),
                box("OPEN", 5000, 12000),
            ],
        }
    )
    client = TestClient(create_app(world.ingestor, stale_after=60, sectors=banded))
    sectors = client.get("/api/sectors").json()["sectors"]
    assert sectors == [
        {"name": "LOW", "features": 2, "lower_ft": 0.0, "upper_ft": 24500.0, "current": 0},
        {"name": "OPEN", "features": 2, "lower_ft": 5000.0, "upper_ft": None, "current": 0},
    ]


def test_sector_endpoints_are_503_without_a_sector_set(world: World) -> None:
    client = TestClient(create_app(world.ingestor, stale_after=60))
    for path in ("/api/sectors", "/api/sectors/EGTT/occupancy", "/api/coverage?sector=EGTT"):
        response = client.get(path)
        assert response.status_code == 503, path
        assert "sector" in response.json()["detail"]
    assert client.get("/api/coverage").status_code == 200


# /api/sectors/{name}/occupancy -------------------------------------------------------------


def _busiest_sector(world: World) -> str:
    so = t.sector_occupancy
    row = world.rows(
        select(so.c.sector)
        .group_by(so.c.sector)
        .order_by(func.count().desc(), so.c.sector)
        .limit(1)
    )
    sector: str = row[0].sector
    return sector


def _occupancy_rows(world: World, sector: str) -> list[Any]:
    so, ps = t.sector_occupancy, t.pilot_sessions
    return world.rows(
        select(so, ps.c.callsign)
        .join(ps, ps.c.id == so.c.pilot_session_id)
        .where(so.c.sector == sector)
        .order_by(so.c.entered_at, so.c.id)
    )


def _expected_hours(
    rows: list[Any], start: datetime, end: datetime, now: datetime
) -> list[dict[str, Any]]:
    """Hour by hour, visit by visit: the slow and obvious way."""
    hour = start.replace(minute=0, second=0, microsecond=0)
    out = []
    while hour < end:
        low, high = max(hour, start), min(hour + HOUR, end)
        present = set()
        entries = 0
        for row in rows:
            last = row.exited_at if row.exited_at is not None else min(now, end)
            # closed visit [entered, last] meets the half-open [low, high)
            if row.entered_at < high and last >= low and row.entered_at <= last:
                present.add(row.flight_id)
            if low <= row.entered_at < high:
                entries += 1
        out.append({"hour": hour, "aircraft": len(present), "entries": entries})
        hour += HOUR
    return out


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (START - HOUR, None),  # the whole recording, to now
        (START - HOUR, START + 3 * HOUR),  # into the future: open visits stop at now
        (datetime(2024, 5, 1, 12, 0, tzinfo=UTC), datetime(2024, 5, 1, 12, 2, tzinfo=UTC)),
        (datetime(2024, 5, 1, 11, 57, tzinfo=UTC), datetime(2024, 5, 1, 11, 59, 30, tzinfo=UTC)),
    ],
)
def test_occupancy_matches_the_rows(world: World, start: datetime, end: datetime | None) -> None:
    sector = _busiest_sector(world)
    params: dict[str, Any] = {"from": start.isoformat()}
    if end is not None:
        params["to"] = end.isoformat()
    end = end or world.now
    rows = _occupancy_rows(world, sector)
    overlapping = [
        r for r in rows if r.entered_at < end and (r.exited_at is None or r.exited_at >= start)
    ]
    visits, total = _all_pages(world, f"/api/sectors/{sector}/occupancy", "visits", **params)
    assert total == len(overlapping) > 0
    assert [v["id"] for v in visits] == [r.id for r in overlapping]
    by_id = {r.id: r for r in rows}
    for visit in visits:
        row = by_id[visit["id"]]
        assert visit["sector"] == sector
        assert visit["callsign"] == row.callsign
        assert (visit["flight_id"], visit["pilot_session_id"]) == (
            row.flight_id,
            row.pilot_session_id,
        )
        assert _at(visit["entered_at"]) == row.entered_at
        assert visit["entry"] == {
            "latitude": row.entry_latitude,
            "longitude": row.entry_longitude,
            "altitude": row.entry_altitude,
        }
        if row.exited_at is None:
            assert visit["exited_at"] is None
            assert visit["exit"] is None
        else:
            assert _at(visit["exited_at"]) == row.exited_at
            assert visit["exit"]["altitude"] == row.exit_altitude
    body = _get(world, f"/api/sectors/{sector}/occupancy", **params)
    assert (_at(body["from"]), _at(body["to"])) == (start, end)
    assert [c["id"] for c in body["current"]] == [r.id for r in rows if r.exited_at is None]
    assert all(c["exited_at"] is None for c in body["current"])
    hourly = [{**h, "hour": _at(h["hour"])} for h in body["hourly"]]
    assert hourly == _expected_hours(overlapping, start, end, world.now)


def test_occupancy_hours_count_a_flight_once_per_hour_and_open_visits_until_now() -> None:
    def at(hour: int, minute: int) -> datetime:
        return datetime(2024, 5, 1, hour, minute, tzinfo=UTC)

    spans = [
        Span(1, at(10, 10), at(10, 20)),  # flight 1 leaves and comes back within 10:00
        Span(1, at(10, 40), at(12, 5)),
        Span(2, at(9, 30), at(10, 0)),  # entered before the window, exits on its first instant
        Span(3, at(11, 59), None),  # still inside: counts until now, not until the window's end
        Span(4, at(13, 0), None),  # entered at now, the last hour with anybody inside
    ]
    hours = occupancy_hours(spans, at(10, 0), at(15, 0), now=at(13, 0))
    assert [(h.hour.hour, h.aircraft, h.entries) for h in hours] == [
        (10, 2, 2),
        (11, 2, 1),
        (12, 2, 0),
        (13, 2, 1),
        (14, 0, 0),
    ]


def test_occupancy_hours_cross_the_hour_and_count_entries(world: World) -> None:
    sector = _busiest_sector(world)
    body = _get(world, f"/api/sectors/{sector}/occupancy", **{"from": START.isoformat()})
    hours = [_at(h["hour"]) for h in body["hourly"]]
    assert hours == [datetime(2024, 5, 1, 11, tzinfo=UTC), datetime(2024, 5, 1, 12, tzinfo=UTC)]
    assert sum(h["entries"] for h in body["hourly"]) == body["pagination"]["total"]
    assert all(h["aircraft"] > 0 for h in body["hourly"])


def test_occupancy_defaults_to_the_last_24_hours(world: World) -> None:
    body = _get(world, f"/api/sectors/{_busiest_sector(world)}/occupancy")
    assert _at(body["to"]) == world.now
    assert _at(body["from"]) == world.now - timedelta(hours=24)
    assert len(body["hourly"]) == 25  # 12:04 yesterday to 12:04 today meets 25 UTC hours


def test_occupancy_of_an_unknown_sector_is_404_and_case_is_forgiven(world: World) -> None:
    response = world.client.get("/api/sectors/NOSUCH/occupancy")
    assert response.status_code == 404
    assert response.json()["detail"] == "no sector named NOSUCH"
    sector = _busiest_sector(world)
    lower = _get(world, f"/api/sectors/{sector.lower()}/occupancy")
    assert lower == _get(world, f"/api/sectors/{sector}/occupancy")


# /api/coverage ----------------------------------------------------------------------------


def _expected_coverage(
    world: World, start: datetime, end: datetime, sector: str | None
) -> dict[str, Any]:
    """Loop over every position and every interval: slow, obvious, independent of the SQL."""
    pos, snap = t.positions, t.snapshots
    samples = world.rows(
        select(pos.c.pilot_session_id, snap.c.update_timestamp)
        .join(snap, snap.c.id == pos.c.snapshot_id)
        .where(snap.c.update_timestamp >= start, snap.c.update_timestamp < end)
    )
    contacts: dict[int, list[Any]] = defaultdict(list)
    for row in world.rows(select(t.contact_intervals)):
        contacts[row.pilot_session_id].append(row)
    visits: dict[int, list[Any]] = defaultdict(list)
    for row in world.rows(select(t.sector_occupancy)):
        visits[row.pilot_session_id].append(row)

    def contains(start_at: datetime, end_at: datetime | None, at: datetime) -> bool:
        return start_at <= at and (end_at is None or end_at >= at)

    hours: dict[datetime, list[int]] = {}
    hour = start.replace(minute=0, second=0, microsecond=0)
    while hour < end:
        hours[hour] = [0, 0]
        hour += HOUR
    per_sector: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    total = [0, 0]
    for session, at in samples:
        covered = any(contains(c.started_at, c.ended_at, at) for c in contacts[session])
        inside = {v.sector for v in visits[session] if contains(v.entered_at, v.exited_at, at)}
        if sector is not None and sector not in inside:
            continue
        for bucket in (total, hours[at.replace(minute=0, second=0, microsecond=0)]):
            bucket[0] += 1
            bucket[1] += covered
        if sector is None:
            for name in inside:
                per_sector[name][0] += 1
                per_sector[name][1] += covered

    def share(n: int, c: int) -> float | None:
        return c / n if n else None

    return {
        "from": start,
        "to": end,
        "sector": sector,
        "samples": total[0],
        "covered": total[1],
        "coverage": share(*total),
        "hourly": [
            {"hour": h, "samples": n, "covered": c, "coverage": share(n, c)}
            for h, (n, c) in hours.items()
        ],
        "by_sector": [
            {"sector": name, "samples": n, "covered": c, "coverage": share(n, c)}
            for name, (n, c) in sorted(per_sector.items())
        ],
    }


def _coverage(world: World, **params: Any) -> dict[str, Any]:
    body = _get(world, "/api/coverage", **params)
    body["from"], body["to"] = _at(body["from"]), _at(body["to"])
    for hour in body["hourly"]:
        hour["hour"] = _at(hour["hour"])
    return body


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (START - HOUR, START + HOUR),
        (datetime(2024, 5, 1, 11, 58, tzinfo=UTC), datetime(2024, 5, 1, 12, 1, 30, tzinfo=UTC)),
    ],
)
def test_coverage_equals_an_independent_count(world: World, start: datetime, end: datetime) -> None:
    body = _coverage(world, **{"from": start.isoformat(), "to": end.isoformat()})
    expected = _expected_coverage(world, start, end, None)
    assert body == expected  # the same integer division on both sides
    assert 0 < body["covered"] < body["samples"]
    assert len(body["by_sector"]) > 10


def test_coverage_inside_one_sector(world: World) -> None:
    sector = _busiest_sector(world)
    start, end = START - HOUR, START + HOUR
    body = _coverage(world, **{"from": start.isoformat(), "to": end.isoformat(), "sector": sector})
    assert body == _expected_coverage(world, start, end, sector)
    assert body["samples"] > 0
    assert body["by_sector"] == []
    whole = _coverage(world, **{"from": start.isoformat(), "to": end.isoformat()})
    [row] = [s for s in whole["by_sector"] if s["sector"] == sector]
    assert (row["samples"], row["covered"]) == (body["samples"], body["covered"])


def test_coverage_defaults_to_the_last_24_hours_and_counts_every_position(world: World) -> None:
    body = _coverage(world)
    assert (body["from"], body["to"]) == (world.now - timedelta(hours=24), world.now)
    assert body["samples"] == world.scalar(select(func.count()).select_from(t.positions))
    assert len(body["hourly"]) == 25


def test_coverage_of_an_unknown_sector_is_404(world: World) -> None:
    response = world.client.get("/api/coverage", params={"sector": "NOSUCH"})
    assert response.status_code == 404
    assert response.json()["detail"] == "no sector named NOSUCH"


def test_coverage_of_an_empty_window_is_null(world: World) -> None:
    start = datetime(2024, 4, 1, tzinfo=UTC)
    body = _coverage(world, **{"from": start.isoformat(), "to": (start + HOUR).isoformat()})
    assert (body["samples"], body["covered"], body["coverage"]) == (0, 0, None)
    assert body["hourly"] == [{"hour": start, "samples": 0, "covered": 0, "coverage": None}]
    assert body["by_sector"] == []


# /api/flights/summaries -------------------------------------------------------------------


def _summary_rows(world: World, *where: Any) -> list[Any]:
    fs = t.flight_summaries
    return world.rows(
        select(fs).where(*where).order_by(fs.c.ended_at.desc(), fs.c.flight_id.desc())
    )


def test_flight_summaries_newest_first_with_json_decoded(world: World) -> None:
    items, total = _all_pages(world, "/api/flights/summaries", "summaries")
    rows = _summary_rows(world)
    assert total == len(rows)
    assert [s["flight_id"] for s in items] == [r.flight_id for r in rows]
    by_id = {r.flight_id: r for r in rows}
    for item in items:
        row = by_id[item["flight_id"]]
        assert item["controllers"] == orjson.loads(row.controllers)
        assert item["sectors"] == orjson.loads(row.sectors)
        assert item["coverage"] == row.coverage
        assert "name" not in item
    assert any(item["controllers"] for item in items)
    assert all(item["sectors"] for item in items if item["online_minutes"] > 0)


def test_flight_summary_filters(world: World) -> None:
    fs = t.flight_summaries
    rows = _summary_rows(world)
    sample = next(r for r in rows if r.departure and r.arrival and r.aircraft)
    cases = [
        ({"departure": sample.departure.lower()}, [fs.c.departure == sample.departure]),
        ({"arrival": sample.arrival}, [fs.c.arrival == sample.arrival]),
        ({"aircraft": sample.aircraft.lower()}, [fs.c.aircraft == sample.aircraft]),
        ({"callsign": sample.callsign.lower()}, [fs.c.callsign == sample.callsign]),
        ({"cid": sample.cid}, [fs.c.cid == sample.cid]),
        (
            {"departure": sample.departure, "callsign": sample.callsign},
            [fs.c.departure == sample.departure, fs.c.callsign == sample.callsign],
        ),
    ]
    for params, where in cases:
        body = _get(world, "/api/flights/summaries", limit=500, **params)
        expected = [r.flight_id for r in _summary_rows(world, *where)]
        assert [s["flight_id"] for s in body["summaries"]] == expected, params
        assert body["pagination"]["total"] == len(expected) >= 1
    middle = sorted(r.ended_at for r in rows)[len(rows) // 2]
    later = _get(world, "/api/flights/summaries", limit=500, **{"from": middle.isoformat()})
    earlier = _get(world, "/api/flights/summaries", limit=500, **{"to": middle.isoformat()})
    assert later["pagination"]["total"] + earlier["pagination"]["total"] == len(rows)
    assert all(_at(s["ended_at"]) >= middle for s in later["summaries"])
    assert all(_at(s["ended_at"]) < middle for s in earlier["summaries"])
    nothing = _get(world, "/api/flights/summaries", departure="ZZZZ")
    assert nothing == {"summaries": [], "pagination": {"total": 0, "limit": 50, "offset": 0}}


# /api/flights/{flight_id} -----------------------------------------------------------------


def _flight_with_contacts(world: World, *, ended: bool) -> int:
    ci, fl = t.contact_intervals, t.flights
    condition = fl.c.ended_at.is_not(None) if ended else fl.c.ended_at.is_(None)
    row = world.rows(
        select(fl.c.id)
        .join(ci, ci.c.flight_id == fl.c.id)
        .where(condition)
        .order_by(fl.c.id)
        .limit(1)
    )
    flight_id: int = row[0].id
    return flight_id


@pytest.mark.parametrize("ended", [True, False])
def test_flight_detail_equals_the_rows(world: World, ended: bool) -> None:
    flight_id = _flight_with_contacts(world, ended=ended)
    body = _get(world, f"/api/flights/{flight_id}")
    [flight] = world.rows(select(t.flights).where(t.flights.c.id == flight_id))
    assert body["flight"]["id"] == flight_id
    assert (body["flight"]["cid"], body["flight"]["callsign"]) == (flight.cid, flight.callsign)
    assert (body["flight"]["ended_at"] is None) is (not ended)
    ps = t.pilot_sessions
    sessions = world.rows(
        select(ps).where(ps.c.flight_id == flight_id).order_by(ps.c.first_seen_at)
    )
    assert [s["id"] for s in body["sessions"]] == [s.id for s in sessions]
    assert [_at(s["last_seen_at"]) for s in body["sessions"]] == [s.last_seen_at for s in sessions]
    ci, cs = t.contact_intervals, t.controller_sessions
    contacts = world.rows(
        select(ci, cs.c.callsign)
        .join(cs, cs.c.id == ci.c.controller_session_id)
        .where(ci.c.flight_id == flight_id)
        .order_by(ci.c.started_at, ci.c.id)
    )
    assert len(body["contacts"]) == len(contacts) > 0
    for got, row in zip(body["contacts"], contacts, strict=True):
        assert got["id"] == row.id
        assert got["callsign"] == row.callsign
        assert got["controller_session_id"] == row.controller_session_id
        assert got["frequency_hz"] == row.frequency_hz
        assert got["frequency"] == _mhz(row.frequency_hz)
        assert _at(got["started_at"]) == row.started_at
        assert (None if got["ended_at"] is None else _at(got["ended_at"])) == row.ended_at
    so = t.sector_occupancy
    visits = world.rows(
        select(so.c.id).where(so.c.flight_id == flight_id).order_by(so.c.entered_at, so.c.id)
    )
    assert [v["id"] for v in body["sectors"]] == [v.id for v in visits]
    if ended:
        assert body["summary"]["flight_id"] == flight_id
        assert isinstance(body["summary"]["controllers"], list)
        assert {c["controller_session_id"] for c in body["summary"]["controllers"]} <= {
            c.controller_session_id for c in contacts
        }
    else:
        assert body["summary"] is None


def test_flight_detail_of_an_unknown_flight_is_404(world: World) -> None:
    response = world.client.get("/api/flights/999999999")
    assert response.status_code == 404
    assert response.json()["detail"] == "no flight 999999999"


def test_flight_id_routes_leave_summaries_and_tracks_alone(world: World) -> None:
    flight_id = _flight_with_contacts(world, ended=False)
    callsign = _get(world, f"/api/flights/{flight_id}")["flight"]["callsign"]
    track = _get(world, f"/api/flights/{callsign}/track")
    assert track["flight_id"] == flight_id
    assert len(track["positions"]) > 1
    assert "summaries" in _get(world, "/api/flights/summaries")
    assert "flights" in _get(world, "/api/flights")


# /api/controller-summaries ----------------------------------------------------------------


def test_controller_summaries_equal_the_rows_and_filter(world: World) -> None:
    csum = t.controller_summaries
    rows = world.rows(
        select(csum).order_by(csum.c.ended_at.desc(), csum.c.controller_session_id.desc())
    )
    items, total = _all_pages(world, "/api/controller-summaries", "summaries")
    assert total == len(rows)
    assert [i["controller_session_id"] for i in items] == [r.controller_session_id for r in rows]
    for item, row in zip(items, rows, strict=True):
        assert item["frequencies"] == orjson.loads(row.frequencies)
        assert item["per_aircraft"] == orjson.loads(row.per_aircraft)
        assert [_at(h["hour"]) for h in item["hourly"]] == [
            _at(h["hour"]) for h in orjson.loads(row.hourly)
        ]
    sample = rows[0]
    for params, keep in (
        ({"callsign": sample.callsign.lower()}, lambda r: r.callsign == sample.callsign),
        ({"cid": sample.cid}, lambda r: r.cid == sample.cid),
        ({"facility": sample.facility}, lambda r: r.facility == sample.facility),
        ({"from": sample.ended_at.isoformat()}, lambda r: r.ended_at >= sample.ended_at),
        ({"to": sample.ended_at.isoformat()}, lambda r: r.ended_at < sample.ended_at),
    ):
        body = _get(world, "/api/controller-summaries", limit=500, **params)
        expected = [r.controller_session_id for r in rows if keep(r)]
        assert [i["controller_session_id"] for i in body["summaries"]] == expected, params
        assert body["pagination"]["total"] == len(expected)


# /api/transceivers ------------------------------------------------------------------------


def test_transceivers_are_the_latest_document_sorted_by_callsign(world: World) -> None:
    items, total = _all_pages(world, "/api/transceivers", "transceivers")
    # A station listed without radios is left out (a node that did not fetch the document
    # rebuilds it from the stored radios, and there are none).
    expected = {s["callsign"]: s for s in world.last_transceivers if s["transceivers"]}
    assert len(expected) < len(world.last_transceivers)
    assert total == len(expected)
    assert [i["callsign"] for i in items] == sorted(expected)
    for item in items[:50]:
        radios = expected[item["callsign"]]["transceivers"]
        assert [r["id"] for r in item["transceivers"]] == [r["id"] for r in radios]
        for got, radio in zip(item["transceivers"], radios, strict=True):
            assert got["frequency_hz"] == radio["frequency"]
            assert got["frequency"] == _mhz(radio["frequency"])
            # Coordinates are kept to 1e-6 degree from decoding on (docs/postgresql.md).
            lat = radio.get("latDeg")
            assert got["latitude"] == (None if lat is None else nearest_micro_degree(lat))
            assert got["height_msl_m"] == radio.get("heightMslM")
    body = _get(world, "/api/transceivers")
    assert _at(body["updated_at"]) == world.ingestor.live.snapshot_at
    prefix = sorted(expected)[len(expected) // 2][:3]
    filtered = _get(world, "/api/transceivers", callsign=prefix.lower(), limit=500)
    assert [i["callsign"] for i in filtered["transceivers"]] == [
        c for c in sorted(expected) if c.upper().startswith(prefix.upper())
    ]


def test_transceivers_are_empty_before_the_first_snapshot(world: World) -> None:
    fresh = Ingestor(world.engine, IngestConfig())
    body = TestClient(create_app(fresh, stale_after=60)).get("/api/transceivers").json()
    assert body == {
        "transceivers": [],
        "updated_at": None,
        "pagination": {"total": 0, "limit": 50, "offset": 0},
    }


# hostile and malformed parameters ----------------------------------------------------------

NAIVE = "2024-05-01T12:00:00"


@pytest.mark.parametrize(
    ("path", "params", "detail"),
    [
        ("/api/sectors/EGTT/occupancy", {"from": NAIVE}, "UTC offset"),
        ("/api/sectors/EGTT/occupancy", {"to": NAIVE}, "UTC offset"),
        ("/api/coverage", {"from": NAIVE}, "UTC offset"),
        ("/api/flights/summaries", {"to": NAIVE}, "UTC offset"),
        ("/api/controller-summaries", {"from": NAIVE}, "UTC offset"),
        (
            "/api/sectors/EGTT/occupancy",
            {"from": "2024-05-01T12:00:00Z", "to": "2024-05-01T11:00:00Z"},
            "after from",
        ),
        ("/api/coverage", {"from": "2024-05-01T12:00:00Z", "to": "2024-05-01T12:00:00Z"}, "after"),
        (
            "/api/flights/summaries",
            {"from": "2024-05-01T12:00:00+02:00", "to": "2024-05-01T10:00:00Z"},
            "after from",
        ),
        ("/api/coverage", {"from": "2099-01-01T00:00:00Z"}, "after from"),
        (
            "/api/sectors/EGTT/occupancy",
            {"from": "2024-03-01T00:00:00Z", "to": "2024-04-01T00:00:01Z"},
            "31 days",
        ),
        (
            "/api/coverage",
            {"from": "2024-04-01T00:00:00Z", "to": "2024-04-08T00:00:01Z"},
            "7 days",
        ),
        ("/api/coverage", {"from": "2024-04-23T00:00:00Z"}, "7 days"),
    ],
)
def test_bad_windows_are_422_with_a_clear_message(
    world: World, path: str, params: dict[str, str], detail: str
) -> None:
    response = world.client.get(path, params=params)
    assert response.status_code == 422
    assert detail in response.json()["detail"]


def test_longest_windows_allowed(world: World) -> None:
    month = {"from": "2024-04-01T00:00:00Z", "to": "2024-05-02T00:00:00Z"}
    assert world.client.get("/api/sectors/EGTT/occupancy", params=month).status_code == 200
    week = {"from": "2024-04-25T00:00:00Z", "to": "2024-05-02T00:00:00Z"}
    assert _coverage(world, **week)["samples"] == world.scalar(
        select(func.count()).select_from(t.positions)
    )


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/sectors", {"name": INJECTION}),
        ("/api/sectors", {"name": "A" * 33}),
        ("/api/sectors", {"limit": 501}),
        ("/api/sectors", {"limit": 0}),
        ("/api/sectors", {"offset": -1}),
        ("/api/sectors", {"offset": 10_000_001}),
        (f"/api/sectors/{quote(INJECTION)}/occupancy", {}),
        ("/api/sectors/EG%20TT/occupancy", {}),
        ("/api/sectors/EGTT/occupancy", {"limit": 10_000}),
        ("/api/sectors/EGTT/occupancy", {"from": "yesterday"}),
        ("/api/coverage", {"sector": INJECTION}),
        ("/api/flights/summaries", {"departure": INJECTION}),
        ("/api/flights/summaries", {"arrival": "EG LL"}),
        ("/api/flights/summaries", {"callsign": INJECTION}),
        ("/api/flights/summaries", {"aircraft": INJECTION}),
        ("/api/flights/summaries", {"cid": "1 OR 1=1"}),
        ("/api/flights/summaries", {"cid": 2**31}),
        ("/api/flights/summaries", {"limit": 501}),
        ("/api/flights/0", {}),
        ("/api/flights/-4", {}),
        (f"/api/flights/{2**70}", {}),
        ("/api/controller-summaries", {"callsign": INJECTION}),
        ("/api/controller-summaries", {"facility": 100}),
        ("/api/controller-summaries", {"offset": 10_000_001}),
        ("/api/transceivers", {"callsign": INJECTION}),
        ("/api/transceivers", {"limit": 501}),
    ],
)
def test_hostile_parameters_are_422_and_change_nothing(
    world: World, path: str, params: dict[str, Any]
) -> None:
    before = world.scalar(select(func.count()).select_from(t.flights))
    response = world.client.get(path, params=params)
    assert response.status_code == 422, response.text
    assert "detail" in response.json()
    assert world.scalar(select(func.count()).select_from(t.flights)) == before


def test_openapi_documents_the_new_endpoints(world: World) -> None:
    paths = world.client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/sectors",
        "/api/sectors/{name}/occupancy",
        "/api/coverage",
        "/api/transceivers",
        "/api/flights/summaries",
        "/api/flights/{flight_id}",
        "/api/controller-summaries",
    ):
        responses = paths[path]["get"]["responses"]
        assert "$ref" in responses["200"]["content"]["application/json"]["schema"], path
    for path in ("/api/sectors/{name}/occupancy", "/api/flights/{flight_id}", "/api/coverage"):
        not_found = paths[path]["get"]["responses"]["404"]["content"]["application/problem+json"]
        assert not_found["schema"]["$ref"].endswith("/ErrorOut")
    assert "sample" in paths["/api/coverage"]["get"]["description"]


def test_names_are_never_returned(world: World) -> None:
    flight_id = _flight_with_contacts(world, ended=True)
    for path in (
        "/api/flights/summaries",
        f"/api/flights/{flight_id}",
        "/api/controller-summaries",
        f"/api/sectors/{_busiest_sector(world)}/occupancy",
    ):
        assert '"name"' not in world.client.get(path).text, path
