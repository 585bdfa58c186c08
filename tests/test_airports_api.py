"""Issue 13, item 3: the airport endpoints.

A deterministic world of flights (tests/movement_world.py) is written into the test's database;
every figure the endpoints give is checked against an independent count in Python over the
rows the world was made of, and against SQL run directly on the database. The live part of
``/api/airports/{icao}`` (on the ground, inbound, ATC) comes from a small hand-made feed
document ingested through the real pipeline.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from movement_world import AIRPORTS, CIRCUITS_AT, Move, World, build, insert_world
from vatsim_collector.airports.nearest import haversine_nm
from vatsim_collector.api import create_app
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.store import schema as t

T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)
LIVE = T0 + 30 * H
COUNTED = ("takeoff", "landing", "touch_and_go")


@pytest.fixture
def world(engine: Engine) -> World:
    made = build(T0, 30, 300, pilots=120)
    with engine.begin() as conn:
        insert_world(conn, made)
    return made


@pytest.fixture
def client(engine: Engine, world: World) -> TestClient:
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    return TestClient(create_app(ingestor, stale_after=1e9, clock=lambda: LIVE))


def get(client: TestClient, path: str, **params: Any) -> dict[str, Any]:
    answer = client.get(path, params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def in_window(world: World, airport: str, start: datetime, end: datetime) -> list[Move]:
    return [m for m in world.moves if m.airport == airport and start <= m.at < end]


def tally(moves: list[Move]) -> dict[str, int]:
    kinds = Counter(m.kind for m in moves)
    return {
        "departures": kinds["takeoff"],
        "arrivals": kinds["landing"],
        "touch_and_goes": kinds["touch_and_go"],
        "total": kinds["takeoff"] + kinds["landing"],
    }


def sql_counts(engine: Engine, airport: str | None, start: datetime, end: datetime) -> Counter[str]:
    m = t.movements.c
    query = select(m.kind, func.count()).where(m.at >= start, m.at < end).group_by(m.kind)
    if airport is not None:
        query = query.where(m.airport == airport)
    with engine.connect() as conn:
        return Counter({kind: int(n) for kind, n in conn.execute(query)})


def counts_of(found: Counter[str]) -> dict[str, int]:
    return {
        "departures": found["takeoff"],
        "arrivals": found["landing"],
        "touch_and_goes": found["touch_and_go"],
        "total": found["takeoff"] + found["landing"],
    }


def only_counts(row: dict[str, Any]) -> dict[str, int]:
    return {k: row[k] for k in ("departures", "arrivals", "touch_and_goes", "total")}


# -- traffic -----------------------------------------------------------------------------------


@pytest.mark.parametrize("minutes", [15, 60, 180])
@pytest.mark.parametrize("airport", ["EGLL", CIRCUITS_AT])
def test_traffic_buckets_match_python_and_sql(
    client: TestClient, world: World, engine: Engine, airport: str, minutes: int
) -> None:
    start, end = T0 + 2 * H, T0 + 26 * H
    body = get(
        client,
        f"/api/airports/{airport}/traffic",
        **{"from": iso(start), "to": iso(end)},
        bucket_minutes=minutes,
    )
    size = minutes * M
    midnight = datetime.combine(start.date(), datetime.min.time(), UTC)
    first = midnight + ((start - midnight) // size) * size
    assert body["buckets"][0]["start"] == iso(first)
    assert len(body["buckets"]) == -((first - end) // size)
    for bucket in body["buckets"]:
        low = datetime.fromisoformat(bucket["start"])
        low, high = max(low, start), min(low + size, end)
        assert only_counts(bucket) == tally(in_window(world, airport, low, high))
        assert only_counts(bucket) == counts_of(sql_counts(engine, airport, low, high))
    assert body["totals"] == tally(in_window(world, airport, start, end))
    assert body["totals"] == counts_of(sql_counts(engine, airport, start, end))
    assert body["totals"]["total"] > 0
    if airport == CIRCUITS_AT:
        assert body["totals"]["touch_and_goes"] > 0


def brute_peak(
    world: World, airport: str, start: datetime, end: datetime, minutes: int
) -> dict[str, Any] | None:
    """The peak hour as documented, by trying every candidate start."""
    step = min(minutes, 60) * M
    midnight = datetime.combine(start.date(), datetime.min.time(), UTC)
    s = midnight + ((start - midnight) // step) * step
    best: tuple[int, datetime] | None = None
    while s < end:
        moves = [m for m in in_window(world, airport, start, end) if s <= m.at < s + H]
        total = tally(moves)["total"]
        if total > 0 and (best is None or total > best[0]):
            best = (total, s)
        s += step
    if best is None:
        return None
    found = best[1]
    return {
        "start": iso(found),
        "end": iso(found + H),
        **tally([m for m in in_window(world, airport, start, end) if found <= m.at < found + H]),
    }


@pytest.mark.parametrize("minutes", [5, 30, 60, 240])
def test_peak_hour_is_the_busiest_60_minutes_as_documented(
    client: TestClient, world: World, minutes: int
) -> None:
    start, end = T0 + 3 * H + 7 * M, T0 + 20 * H + 50 * M
    for airport in ("EGLL", "EHAM", CIRCUITS_AT):
        body = get(
            client,
            f"/api/airports/{airport}/traffic",
            **{"from": iso(start), "to": iso(end)},
            bucket_minutes=minutes,
        )
        assert body["peak_hour"] == brute_peak(world, airport, start, end, minutes)
        assert body["peak_hour"] is not None


def test_a_window_off_the_bucket_grid_counts_only_movements_inside_it(
    client: TestClient, world: World
) -> None:
    """The first and last buckets start on the grid and reach outside the window; the
    movements outside it are not counted in them."""
    busiest = Counter(m.airport for m in world.moves if m.kind in COUNTED and m.airport)
    airport = busiest.most_common(1)[0][0]
    start, end = T0 + 5 * H + 7 * M, T0 + 9 * H + 52 * M
    body = get(client, f"/api/airports/{airport}/traffic", **{"from": iso(start), "to": iso(end)})
    starts = [b["start"] for b in body["buckets"]]
    assert starts[0] == iso(T0 + 5 * H)
    assert starts[-1] == iso(T0 + 9 * H)
    first = body["buckets"][0]
    assert only_counts(first) == tally(in_window(world, airport, start, T0 + 6 * H))
    last = body["buckets"][-1]
    assert only_counts(last) == tally(in_window(world, airport, T0 + 9 * H, end))
    assert (
        sum(b["total"] for b in body["buckets"])
        == tally(in_window(world, airport, start, end))["total"]
    )


def test_an_airport_without_movements_has_empty_buckets_and_no_peak(
    client: TestClient, world: World
) -> None:
    body = get(client, "/api/airports/LPPT/traffic", bucket_minutes=120)
    assert len(body["buckets"]) == 12
    assert all(b["total"] == 0 for b in body["buckets"])
    assert body["peak_hour"] is None


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/airports/EGLL/traffic", {"bucket_minutes": "7"}),
        ("/api/airports/EGLL/traffic", {"bucket_minutes": "4"}),
        ("/api/airports/EGLL/traffic", {"bucket_minutes": "1441"}),
        ("/api/airports/EGLL/traffic", {"bucket_minutes": "50"}),
        ("/api/airports/EGLL/traffic", {"from": "2026-10-01T00:00:00Z"}),
        ("/api/airports/EGLL/traffic", {"from": "2026-12-01T00:00:00Z", "to": "2026-11-30T00:00Z"}),
        ("/api/airports/EGLL/traffic", {"to": "2026-11-30T00:00:00"}),
        ("/api/airports/EGLL/movements", {"kind": "takeoff,landed"}),
        ("/api/airports/EGLL/movements", {"kind": ""}),
        ("/api/airports/EGLL/movements", {"limit": "0"}),
        ("/api/airports/EGLL/movements", {"from": "2026-10-01T00:00:00Z"}),
        ("/api/airports/busiest", {"limit": "101"}),
        ("/api/airports/busiest", {"from": "2026-10-01T00:00:00Z"}),
        ("/api/airports/EG!L", {}),
        ("/api/airports/EGLLEGLLE", {}),
    ],
)
def test_bad_parameters_are_422(client: TestClient, path: str, params: dict[str, str]) -> None:
    answer = client.get(path, params=params)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "path", ["/api/airports/ZZZZ", "/api/airports/ZZZZ/traffic", "/api/airports/zzzz/movements"]
)
def test_a_code_not_in_the_reference_is_404(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 404, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "ZZZZ" in answer.json()["detail"]


# -- busiest -----------------------------------------------------------------------------------


def test_busiest_ranks_airports_by_departures_plus_arrivals(
    client: TestClient, world: World, engine: Engine
) -> None:
    start, end = T0 + H, T0 + 25 * H
    body = get(client, "/api/airports/busiest", **{"from": iso(start), "to": iso(end)}, limit=5)
    expected = sorted(
        ({"icao": a, **tally(in_window(world, a, start, end))} for a in AIRPORTS),
        key=lambda r: (-r["total"], r["icao"]),
    )[:5]
    got = [{"icao": r["icao"], **only_counts(r)} for r in body["airports"]]
    assert got == expected
    for row in body["airports"]:
        assert row == {
            "icao": row["icao"],
            "name": row["name"],
            **counts_of(sql_counts(engine, row["icao"], start, end)),
        }
    assert body["airports"][0]["name"]
    # A take-off from a strip away from any airport is no airport's.
    assert all(r["icao"] for r in get(client, "/api/airports/busiest", limit=100)["airports"])


def test_busiest_is_not_taken_for_an_airport_code(client: TestClient, world: World) -> None:
    body = get(client, "/api/airports/busiest")
    assert "airports" in body
    assert len(body["airports"]) <= 10


# -- movements ---------------------------------------------------------------------------------


def test_movements_are_paged_newest_first_and_filtered_by_kind(
    client: TestClient, world: World, engine: Engine
) -> None:
    start, end = T0, T0 + 30 * H
    window = {"from": iso(start), "to": iso(end)}
    expected = sorted(
        in_window(world, CIRCUITS_AT, start, end), key=lambda m: (m.at, m.id), reverse=True
    )
    seen: list[int] = []
    offset = 0
    while True:
        body = get(
            client,
            f"/api/airports/{CIRCUITS_AT.lower()}/movements",
            **window,
            limit=37,
            offset=offset,
        )
        assert body["icao"] == CIRCUITS_AT
        assert body["pagination"] == {"total": len(expected), "limit": 37, "offset": offset}
        seen += [m["id"] for m in body["movements"]]
        if len(body["movements"]) < 37:
            break
        offset += 37
    assert seen == [m.id for m in expected]
    with engine.connect() as conn:
        m = t.movements.c
        assert (
            len(seen)
            == conn.execute(
                select(func.count()).where(m.airport == CIRCUITS_AT, m.at >= start, m.at < end)
            ).scalar_one()
        )
    first = get(client, f"/api/airports/{CIRCUITS_AT}/movements", **window, limit=1)
    top = first["movements"][0]
    assert top["at"] == iso(expected[0].at)
    assert top["kind"] == expected[0].kind
    assert top["cid"] == expected[0].cid
    # Repeated or comma-separated, the same filter.
    wanted = {"touch_and_go", "landing"}
    repeated = client.get(
        f"/api/airports/{CIRCUITS_AT}/movements",
        params={**window, "kind": ["touch_and_go", "landing"], "limit": 500},
    ).json()
    listed = get(
        client,
        f"/api/airports/{CIRCUITS_AT}/movements",
        **window,
        kind="touch_and_go,landing",
        limit=500,
    )
    assert repeated == listed
    assert [m["id"] for m in listed["movements"]] == [m.id for m in expected if m.kind in wanted]
    assert {m["kind"] for m in listed["movements"]} == wanted


def test_movements_default_to_the_last_24_hours(client: TestClient, world: World) -> None:
    body = get(client, "/api/airports/EGLL/movements", limit=500)
    assert body["from"] == iso(LIVE - 24 * H)
    assert body["to"] == iso(LIVE)
    assert body["pagination"]["total"] == len(in_window(world, "EGLL", LIVE - 24 * H, LIVE))


# -- the live picture --------------------------------------------------------------------------

EGLL = (51.4706, -0.46194)
EGKK = (51.1481, -0.19028)


def pilot(
    cid: int,
    callsign: str,
    lat: float,
    lon: float,
    altitude: int,
    groundspeed: int,
    dep: str | None,
    arr: str | None,
    aircraft: str = "A320",
) -> dict[str, Any]:
    plan = (
        None
        if dep is None
        else {
            "flight_rules": "I",
            "aircraft": f"{aircraft}/M-SDFGIRWY/S",
            "aircraft_short": aircraft,
            "departure": dep,
            "arrival": arr,
            "altitude": "35000",
            "route": "DCT",
        }
    )
    return {
        "cid": cid,
        "name": "",
        "callsign": callsign,
        "server": "UK",
        "pilot_rating": 0,
        "latitude": lat,
        "longitude": lon,
        "altitude": altitude,
        "groundspeed": groundspeed,
        "transponder": "2000",
        "heading": 90,
        "qnh_i_hg": 29.92,
        "qnh_mb": 1013,
        "flight_plan": plan,
        "logon_time": "2026-12-01T10:00:00Z",
        "last_updated": "2026-12-01T11:59:59Z",
    }


def controller(cid: int, callsign: str, facility: int, frequency: str) -> dict[str, Any]:
    return {
        "cid": cid,
        "name": "",
        "callsign": callsign,
        "frequency": frequency,
        "facility": facility,
        "rating": 5,
        "server": "UK",
        "visual_range": 50,
        "text_atis": None,
        "last_updated": "2026-12-01T11:59:59Z",
        "logon_time": "2026-12-01T09:30:00Z",
    }


def east_of(point: tuple[float, float], nm: float) -> tuple[float, float]:
    lat, lon = point
    return lat, lon + nm / (60 * math.cos(math.radians(lat)))


LIVE_PILOTS = [
    pilot(2001, "BAW1", 51.4700, -0.4550, 100, 0, "EGLL", "KJFK", "B77W"),  # parked
    pilot(2002, "BAW2", 51.4690, -0.4700, 90, 15, "EGLL", "EHAM"),  # taxiing
    pilot(2003, "BAW3", *east_of(EGLL, 20), 4000, 180, "EHAM", "EGLL"),  # final, 20 nm
    pilot(2004, "BAW4", EGLL[0] + 5, EGLL[1], 35000, 450, "EGPH", "EGLL"),  # 300 nm, 40 min
    pilot(2005, "BAW5", EGLL[0] + 8, EGLL[1], 35000, 400, "BIKF", "egll"),  # 480 nm: 72 min
    pilot(2006, "BAW6", EGKK[0], EGKK[1], 210, 0, "EGKK", "EGLL"),  # on the ground at EGKK
    pilot(2007, "BAW7", 51.4706, -0.40, 600, 150, "EGLL", "EHAM"),  # climbing out: airborne
    pilot(2008, "BAW8", 51.4710, -0.4500, 95, 1, None, None),  # no plan, stopped (1 kt: the edge)
]
LIVE_CONTROLLERS = [
    controller(3001, "EGLL_TWR", 4, "118.500"),
    controller(3002, "EGLL_N_APP", 5, "119.725"),
    controller(3003, "LHR_GND", 3, "121.900"),  # by the IATA code
    controller(3004, "LON_CTR", 6, "127.825"),
    controller(3005, "EGLL_OBS", 0, "199.998"),
    controller(3006, "EGKK_TWR", 4, "124.225"),
]


@pytest.fixture
def live(engine: Engine, world: World) -> TestClient:
    ingestor = Ingestor(engine, IngestConfig(sanity_min_pilots=1))
    ingestor.restore()
    doc = {
        "general": {"version": 3, "update_timestamp": iso(LIVE)},
        "pilots": LIVE_PILOTS,
        "controllers": LIVE_CONTROLLERS,
        "atis": [{**controller(3007, "EGLL_ATIS", 4, "128.075"), "atis_code": "A"}],
        "prefiles": [],
    }
    ingestor.ingest(orjson.dumps(doc))
    assert ingestor.live.snapshot_at == LIVE
    return TestClient(create_app(ingestor, stale_after=1e9, clock=lambda: LIVE + 5 * M))


def test_the_airport_now_from_the_live_view_and_the_recent_movements(
    live: TestClient, world: World
) -> None:
    body = get(live, "/api/airports/egll")
    assert (body["icao"], body["iata"], body["country"], body["tz"]) == (
        "EGLL",
        "LHR",
        "GB",
        "Europe/London",
    )
    assert body["name"] == "London Heathrow Airport"
    assert body["at"] == iso(LIVE)
    assert body["on_ground"] == [
        {
            "cid": 2001,
            "callsign": "BAW1",
            "aircraft": "B77W",
            "departure": "EGLL",
            "arrival": "KJFK",
            "groundspeed": 0,
            "state": "stopped",
        },
        {
            "cid": 2002,
            "callsign": "BAW2",
            "aircraft": "A320",
            "departure": "EGLL",
            "arrival": "EHAM",
            "groundspeed": 15,
            "state": "taxiing",
        },
        {
            "cid": 2008,
            "callsign": "BAW8",
            "aircraft": None,
            "departure": None,
            "arrival": None,
            "groundspeed": 1,
            "state": "stopped",
        },
    ]
    inbound = body["inbound"]
    assert [i["callsign"] for i in inbound] == ["BAW3", "BAW4"]
    for row in inbound:
        source = next(p for p in LIVE_PILOTS if p["callsign"] == row["callsign"])
        distance = float(haversine_nm(source["latitude"], source["longitude"], *EGLL))
        assert row["distance_nm"] == pytest.approx(distance, abs=0.05)
        eta = LIVE + timedelta(hours=distance / source["groundspeed"])
        assert abs(datetime.fromisoformat(row["eta"]) - eta) < timedelta(seconds=1)
    assert inbound[0]["distance_nm"] == pytest.approx(20.0, abs=0.1)
    assert inbound[0]["departure"] == "EHAM"
    assert [(c["callsign"], c["facility"], c["frequency"]) for c in body["atc"]] == [
        ("EGLL_N_APP", 5, "119.725"),
        ("EGLL_TWR", 4, "118.500"),
        ("LHR_GND", 3, "121.900"),
    ]
    assert body["atc"][0]["logon_time"] == "2026-12-01T09:30:00Z"
    # Counted back from the snapshot's time, not the clock's, for every airport of the world.
    recent = 0
    for airport in AIRPORTS:
        answer = get(live, f"/api/airports/{airport}")
        for span, key in ((30 * M, "last_30_min"), (60 * M, "last_60_min")):
            moves = [m for m in world.moves if m.airport == airport and LIVE - span < m.at <= LIVE]
            kinds = Counter(m.kind for m in moves)
            assert answer["departures"][key] == kinds["takeoff"], (airport, key)
            assert answer["arrivals"][key] == kinds["landing"], (airport, key)
            recent += kinds["takeoff"] + kinds["landing"]
    assert recent > 0, "the world has movements in the last hour"


def test_an_airport_with_nothing_live(live: TestClient) -> None:
    body = get(live, "/api/airports/LPPT")
    assert body["on_ground"] == []
    assert body["inbound"] == []
    assert body["atc"] == []
    gatwick = get(live, "/api/airports/EGKK")
    assert [p["callsign"] for p in gatwick["on_ground"]] == ["BAW6"]
    assert [c["callsign"] for c in gatwick["atc"]] == ["EGKK_TWR"]


@pytest.mark.parametrize("minutes", [5, 60])
def test_a_window_starting_and_ending_within_a_minute(
    client: TestClient, world: World, minutes: int
) -> None:
    """Movements are counted per minute in the database; a window edge inside a minute must
    still cut between the movements of that minute."""
    moves = sorted(
        (m for m in world.moves if m.airport == "EGLL" and m.kind in COUNTED), key=lambda m: m.at
    )
    start = moves[5].at + timedelta(seconds=5)
    end = moves[-5].at + timedelta(seconds=5)
    body = get(
        client,
        "/api/airports/EGLL/traffic",
        **{"from": iso(start), "to": iso(end)},
        bucket_minutes=minutes,
    )
    assert body["totals"] == tally(in_window(world, "EGLL", start, end))
    # moves[5] is just outside, moves[-5] just inside.
    assert moves[5].at < start <= moves[6].at
    assert moves[-5].at < end
    size = minutes * M
    for bucket in body["buckets"]:
        low = datetime.fromisoformat(bucket["start"])
        cut = in_window(world, "EGLL", max(low, start), min(low + size, end))
        assert only_counts(bucket) == tally(cut)
    assert body["peak_hour"] == brute_peak(world, "EGLL", start, end, minutes)
