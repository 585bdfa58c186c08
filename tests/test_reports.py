"""Issue 13, item 6: the event traffic report (``/api/reports/traffic``).

Movements, contacts, sector occupancies and controller sessions are written straight into the
test's database (the movement detector is not wired into ingest yet). A hand-made morning at
EGLL and EHAM checks each rule against figures worked out by hand; a seeded random two days at
ten airports is then checked against an independent Python computation from the inserted rows,
and against direct SQL.
"""

from __future__ import annotations

import csv
import io
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, insert, select

from vatsim_collector.api import create_app
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.store import schema as t

T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)
WINDOW = {"from": T0.isoformat(), "to": (T0 + 4 * H).isoformat()}


@dataclass
class Rows:
    """What a test inserted, for computing the expected figures without the database."""

    flights: int = 0
    sessions: dict[int, int] = field(default_factory=dict)  # pilot session -> flight
    movements: list[tuple[int, str, str, datetime]] = field(default_factory=list)
    contacts: list[tuple[int, datetime, datetime | None]] = field(default_factory=list)
    sectors: list[tuple[int, str, datetime, datetime | None]] = field(default_factory=list)
    controllers: list[tuple[str, int, str, datetime, datetime]] = field(default_factory=list)


class Writer:
    def __init__(self, conn: Any, rows: Rows) -> None:
        self.conn, self.rows = conn, rows

    def flight(self, cid: int, callsign: str, at: datetime) -> int:
        flight = int(
            self.conn.execute(
                insert(t.flights)
                .values(cid=cid, callsign=callsign, started_at=at)
                .returning(t.flights.c.id)
            ).scalar_one()
        )
        self.rows.flights += 1
        return flight

    def session(self, flight: int, cid: int, callsign: str, first: datetime) -> int:
        session = int(
            self.conn.execute(
                insert(t.pilot_sessions)
                .values(
                    cid=cid,
                    callsign=callsign,
                    logon_time=first,
                    first_seen_at=first,
                    last_seen_at=first + 3 * H,
                    flight_id=flight,
                )
                .returning(t.pilot_sessions.c.id)
            ).scalar_one()
        )
        self.rows.sessions[session] = flight
        return session

    def movement(self, session: int, kind: str, airport: str | None, at: datetime) -> None:
        flight = self.rows.sessions[session]
        self.conn.execute(
            insert(t.movements).values(
                pilot_session_id=session,
                flight_id=flight,
                snapshot_id=int(at.timestamp() * 1000),
                cid=1,
                callsign="X",
                kind=kind,
                airport=airport,
                at=at,
                bracket_from=at - 15 * timedelta(seconds=1),
                bracket_to=at,
                runway_heading=270,
                diversion=False,
                filed_arrival=None,
            )
        )
        if airport is not None:
            self.rows.movements.append((session, kind, airport, at))

    def controller(
        self, callsign: str, first: datetime, last: datetime, *, facility: int = 4, freq: str = ""
    ) -> int:
        frequency = freq or "118.500"
        controller = int(
            self.conn.execute(
                insert(t.controller_sessions)
                .values(
                    cid=800_000 + len(self.rows.controllers),
                    callsign=callsign,
                    logon_time=first - M,
                    first_seen_at=first,
                    last_seen_at=last,
                    ended_at=last,
                    frequency=frequency,
                    facility=facility,
                    rating=5,
                    visual_range=50,
                    is_observer=facility == 0 or frequency == "199.998",
                    is_supervisor=False,
                )
                .returning(t.controller_sessions.c.id)
            ).scalar_one()
        )
        self.rows.controllers.append((callsign, facility, frequency, first, last))
        return controller

    def contact(self, session: int, controller: int, start: datetime, end: datetime | None) -> None:
        self.conn.execute(
            insert(t.contact_intervals).values(
                pilot_session_id=session,
                flight_id=self.rows.sessions[session],
                controller_session_id=controller,
                frequency_hz=118_500_000,
                started_at=start,
                ended_at=end,
            )
        )
        self.rows.contacts.append((session, start, end))

    def sector(self, session: int, name: str, entered: datetime, exited: datetime | None) -> None:
        self.conn.execute(
            insert(t.sector_occupancy).values(
                pilot_session_id=session,
                flight_id=self.rows.sessions[session],
                sector=name,
                entered_at=entered,
                entry_latitude=51.0,
                entry_longitude=0.0,
                entry_altitude=10_000,
                exited_at=exited,
            )
        )
        self.rows.sectors.append((session, name, entered, exited))


def _client(engine: Engine, now: datetime) -> TestClient:
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    return TestClient(create_app(ingestor, stale_after=1e9, clock=lambda: now))


@pytest.fixture
def client(engine: Engine) -> TestClient:
    return _client(engine, T0 + 5 * H)


@pytest.fixture
def morning(engine: Engine) -> Rows:
    """10:00-14:00 UTC at EGLL and EHAM; each flight tests one rule."""
    rows = Rows()
    with engine.begin() as conn:
        w = Writer(conn, rows)

        def pilot(n: int, first: datetime) -> int:
            return w.session(w.flight(100 + n, f"BAW{n}", first), 100 + n, f"BAW{n}", first)

        ctr = w.controller("EGTT_CTR", T0 - 2 * H, T0 + 6 * H, facility=6)
        s1 = pilot(1, T0 - H)
        w.movement(s1, "off_block", "EGLL", T0 - 5 * M)  # not a departure: a block time
        w.movement(s1, "takeoff", "EGLL", T0 + 5 * M)
        w.contact(s1, ctr, T0 - 10 * M, T0 + 20 * M)
        w.sector(s1, "EGTT", T0 + 6 * M, T0 + 30 * M)
        w.sector(s1, "EGTTS", T0 + 30 * M, T0 + 50 * M)
        s2 = pilot(2, T0 - 2 * H)
        w.movement(s2, "landing", "EGLL", T0 + 10 * M)
        w.sector(s2, "EGTT", T0 - H, T0 + 8 * M)
        s3 = pilot(3, T0 - 2 * H)
        w.movement(s3, "landing", "EGLL", T0 + 12 * M)
        w.contact(s3, ctr, T0 - H, T0 - 30 * M)  # before the window: not in contact
        w.sector(s3, "EGTT", T0 - H, T0 - 10 * M)  # before the window: not counted
        s4 = pilot(4, T0 + H)
        w.movement(s4, "takeoff", "EGLL", T0 + 100 * M)
        w.contact(s4, ctr, T0 + 90 * M, None)  # still open: in contact
        w.sector(s4, "EGTT", T0 + 101 * M, None)
        s5 = pilot(5, T0)
        w.movement(s5, "touch_and_go", "EGLL", T0 + 30 * M)
        w.movement(s5, "go_around", "EGLL", T0 + 40 * M)
        s6 = pilot(6, T0 - H)
        w.movement(s6, "takeoff", "EGLL", T0 - M)  # before the window
        w.movement(s6, "landing", "EGLL", T0 + 4 * H)  # the window's end is exclusive
        s7 = pilot(7, T0)
        w.movement(s7, "takeoff", "EGLL", T0 + 14 * M)
        w.sector(s7, "EGTTS", T0 + 15 * M, T0 + 40 * M)
        # One flight, two sessions (a reconnect), landing and taking off again at EHAM.
        flight = w.flight(108, "KLM8", T0)
        s8a = w.session(flight, 108, "KLM8", T0)
        s8b = w.session(flight, 108, "KLM8", T0 + 150 * M)
        w.movement(s8a, "landing", "EHAM", T0 + 150 * M)
        w.movement(s8b, "takeoff", "EHAM", T0 + 190 * M)
        w.contact(s8b, ctr, T0 + 185 * M, T0 + 200 * M)
        # Elsewhere: not in either report.
        s9 = pilot(9, T0)
        w.movement(s9, "takeoff", "EGKK", T0 + 20 * M)
        w.movement(s9, "landing", None, T0 + 80 * M)
        # Positions: 09:00-11:00 counts one hour in the window.
        w.controller("EGLL_TWR", T0 - H, T0 + H)
        w.controller("EGLL_N_APP", T0 + 30 * M, T0 + 2 * H, facility=5, freq="119.725")
        w.controller("LHR_GND", T0 + 3 * H, T0 + 5 * H, facility=3, freq="121.900")
        w.controller("EGLL_OBS", T0, T0 + H, facility=0, freq="199.998")
        w.controller("EGLL_DEL", T0, T0 + H, facility=2, freq="199.998")
        w.controller("AMS_TWR", T0 + 2 * H, T0 + 6 * H, facility=4, freq="118.280")
        w.controller("EGKK_TWR", T0, T0 + H)
    return rows


def report(client: TestClient, **params: Any) -> dict[str, Any]:
    answer = client.get("/api/reports/traffic", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_departures_and_arrivals_per_hour_peaks_and_totals(
    client: TestClient, morning: Rows
) -> None:
    body = report(client, airports="EGLL,EHAM", **WINDOW)
    assert body["from"] == "2026-11-30T10:00:00Z"
    assert body["to"] == "2026-11-30T14:00:00Z"
    egll, eham = body["airports"]
    assert (egll["icao"], egll["iata"], eham["icao"]) == ("EGLL", "LHR", "EHAM")
    assert [
        (h["hour"][11:16], h["departures"], h["arrivals"], h["total"]) for h in egll["hours"]
    ] == [
        ("10:00", 2, 2, 4),
        ("11:00", 1, 0, 1),
        ("12:00", 0, 0, 0),
        ("13:00", 0, 0, 0),
    ]
    assert (egll["departures"], egll["arrivals"], egll["total"]) == (3, 2, 5)
    assert egll["peak_hour"] == {
        "hour": "2026-11-30T10:00:00Z",
        "departures": 2,
        "arrivals": 2,
        "total": 4,
    }
    assert egll["peak_15_minutes"] == {
        "start": "2026-11-30T10:00:00Z",
        "movements": 4,
        "per_hour": 16,
    }
    assert [h["total"] for h in eham["hours"]] == [0, 0, 1, 1]
    # Equal hours: the earlier one is the peak.
    assert eham["peak_hour"]["hour"] == "2026-11-30T12:00:00Z"
    assert eham["peak_15_minutes"]["start"] == "2026-11-30T12:30:00Z"


def test_atc_contact_share_counts_flights_in_contact_during_the_window(
    client: TestClient, morning: Rows
) -> None:
    egll, eham = report(client, airports="EGLL,EHAM", **WINDOW)["airports"]
    # BAW1 (contact overlapping), BAW4 (contact still open) of BAW1, 2, 3, 4, 7.
    assert egll["atc_contact"] == {"flights": 5, "in_contact": 2, "share": 0.4}
    # KLM8's two sessions are one flight, in contact on its second session.
    assert eham["atc_contact"] == {"flights": 1, "in_contact": 1, "share": 1.0}


def test_positions_are_the_airports_own_with_hours_in_the_window(
    client: TestClient, morning: Rows
) -> None:
    egll, eham = report(client, airports="EGLL,EHAM", **WINDOW)["airports"]
    assert egll["positions"] == [
        {"callsign": "EGLL_N_APP", "hours": 1.5, "sessions": 1},
        {"callsign": "EGLL_TWR", "hours": 1.0, "sessions": 1},
        {"callsign": "LHR_GND", "hours": 1.0, "sessions": 1},
    ]
    assert egll["position_hours"] == 3.5
    assert eham["positions"] == [{"callsign": "AMS_TWR", "hours": 2.0, "sessions": 1}]
    # The same hours as the controller activity endpoint gives for those callsigns.
    activity = client.get(
        "/api/activity/controllers", params={**WINDOW, "group_by": "position"}
    ).json()["rows"]
    hours = {row["key"]: row["hours"] for row in activity}
    for position in egll["positions"] + eham["positions"]:
        assert hours[position["callsign"]] == position["hours"]


def test_busiest_sectors_count_the_flights_sessions_inside_during_the_window(
    client: TestClient, morning: Rows
) -> None:
    egll, eham = report(client, airports="EGLL,EHAM", **WINDOW)["airports"]
    assert egll["busiest_sectors"] == [
        {"sector": "EGTT", "pilot_sessions": 3},
        {"sector": "EGTTS", "pilot_sessions": 2},
    ]
    assert eham["busiest_sectors"] == []


def test_codes_are_case_insensitive_and_repeats_are_ignored(
    client: TestClient, morning: Rows
) -> None:
    body = report(client, airports="egll,EGLL,Egll", **WINDOW)
    assert [a["icao"] for a in body["airports"]] == ["EGLL"]
    assert body["airports"][0]["total"] == 5


def test_the_window_defaults_to_the_last_24_hours(engine: Engine, morning: Rows) -> None:
    client = _client(engine, T0 + 4 * H + 30 * M)
    body = report(client, airports="EGLL")
    assert body["to"] == "2026-11-30T14:30:00Z"
    assert body["from"] == "2026-11-29T14:30:00Z"
    egll = body["airports"][0]
    assert len(egll["hours"]) == 25  # 14:00 on the 29th (from 14:30) to 14:00 on the 30th
    # Now the 09:59 takeoff and the 14:00 landing are in the window too.
    assert (egll["departures"], egll["arrivals"]) == (4, 3)


def test_an_unknown_airport_is_404_naming_it(client: TestClient, morning: Rows) -> None:
    answer = client.get("/api/reports/traffic", params={"airports": "EGLL,ZZZZ,XQ9", **WINDOW})
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["detail"] == "unknown airport: ZZZZ, XQ9"


@pytest.mark.parametrize(
    "params",
    [
        {},  # airports is required
        {"airports": ""},
        {"airports": "EG LL"},
        {"airports": "EGLL,"},
        {"airports": "EGLL;DROP"},
        {"airports": ",".join(f"K{chr(65 + i // 26)}{chr(65 + i % 26)}A" for i in range(21))},
        {"airports": "EGLL", "from": "2026-11-30T12:00:00Z", "to": "2026-11-30T12:00:00Z"},
        {"airports": "EGLL", "from": "2026-11-20T00:00:00Z", "to": "2026-11-27T00:00:01Z"},
        {"airports": "EGLL", "from": "2026-11-30T12:00:00"},
        {"airports": "EGLL", "format": "xml"},
    ],
)
def test_bad_parameters_are_422(client: TestClient, params: dict[str, str]) -> None:
    answer = client.get("/api/reports/traffic", params=params)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_seven_days_is_the_longest_window(client: TestClient, morning: Rows) -> None:
    body = report(
        client, airports="EGLL", **{"from": (T0 - 7 * 24 * H).isoformat(), "to": T0.isoformat()}
    )
    assert len(body["airports"][0]["hours"]) == 7 * 24


def test_csv_has_a_line_per_airport_and_hour_with_the_airports_figures(
    client: TestClient, morning: Rows
) -> None:
    as_json = report(client, airports="EGLL,EHAM", **WINDOW)["airports"]
    answer = client.get(
        "/api/reports/traffic", params={"airports": "EGLL,EHAM", **WINDOW, "format": "csv"}
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "traffic-report.csv" in answer.headers["content-disposition"]
    lines = list(csv.DictReader(io.StringIO(answer.text)))
    assert len(lines) == sum(len(a["hours"]) for a in as_json) == 8
    expected = [(a, h) for a in as_json for h in a["hours"]]
    for line, (airport, hour) in zip(lines, expected, strict=True):
        assert line["airport"] == airport["icao"]
        assert line["hour"] == hour["hour"]
        assert [int(line[k]) for k in ("departures", "arrivals", "total")] == [
            hour["departures"],
            hour["arrivals"],
            hour["total"],
        ]
        assert int(line["airport_total"]) == airport["total"]
        assert line["peak_hour"] == airport["peak_hour"]["hour"]
        assert int(line["peak_15_minutes_per_hour"]) == airport["peak_15_minutes"]["per_hour"]
        assert float(line["atc_contact_share"]) == airport["atc_contact"]["share"]
        assert float(line["position_hours"]) == airport["position_hours"]
    first = lines[0]
    assert first["positions"] == "EGLL_N_APP=1.5;EGLL_TWR=1.0;LHR_GND=1.0"
    assert first["busiest_sectors"] == "EGTT=3;EGTTS=2"
    by_accept = client.get(
        "/api/reports/traffic",
        params={"airports": "EGLL,EHAM", **WINDOW},
        headers={"Accept": "text/csv"},
    )
    assert by_accept.text == answer.text


def test_an_airport_without_traffic_has_empty_figures(client: TestClient, morning: Rows) -> None:
    lfpg = report(client, airports="LFPG", **WINDOW)["airports"][0]
    assert lfpg["total"] == 0
    assert lfpg["peak_hour"] is None
    assert lfpg["peak_15_minutes"] is None
    assert lfpg["atc_contact"] == {"flights": 0, "in_contact": 0, "share": None}
    assert lfpg["positions"] == []
    assert lfpg["busiest_sectors"] == []
    line = client.get(
        "/api/reports/traffic", params={"airports": "LFPG", **WINDOW, "format": "csv"}
    ).text.splitlines()[1]
    assert line.startswith("LFPG,2026-11-30T10:00:00Z,0,0,0,0,0,0,,,,,0,0,,0.0,,")


# -- seeded random traffic, against an independent computation and SQL -------------------

AIRPORTS = ["EGLL", "EHAM", "EDDF", "LFPG", "KJFK", "EGKK", "LEMD", "LIRF", "EKCH", "ESSA"]
KINDS = ["takeoff", "landing", "touch_and_go", "go_around", "off_block", "on_block"]
SECTORS = [f"SECT{i}" for i in range(9)]
POSITIONS = ["EGLL_TWR", "EGLL_S_TWR", "LHR_GND", "EHAM_APP", "JFK_DEP", "KJFK_GND", "EDDF_N_APP"]
DAYS = 2


def _random_traffic(engine: Engine, seed: int) -> Rows:
    rng = random.Random(seed)
    rows = Rows()
    base = T0 - 12 * H

    def moment() -> datetime:
        return base + timedelta(seconds=rng.randrange(DAYS * 86_400))

    with engine.begin() as conn:
        w = Writer(conn, rows)
        controllers = []
        for _ in range(40):
            first = moment()
            callsign = rng.choice([*POSITIONS, "EGTT_CTR", "EGLL_OBS"])
            controllers.append(
                w.controller(callsign, first, first + timedelta(minutes=rng.randrange(10, 300)))
            )
        for n in range(300):
            first = moment()
            flight = w.flight(200_000 + n, f"RND{n}", first)
            for k in range(rng.choice([1, 1, 1, 2])):
                session = w.session(flight, 200_000 + n, f"RND{n}", first + k * H)
                for _ in range(rng.randrange(1, 4)):
                    w.movement(session, rng.choice(KINDS), rng.choice(AIRPORTS), moment())
                for _ in range(rng.randrange(0, 3)):
                    start = moment()
                    end = None if rng.random() < 0.1 else start + rng.randrange(1, 120) * M
                    w.contact(session, rng.choice(controllers), start, end)
                for name in rng.sample(SECTORS, rng.randrange(0, 4)):
                    entered = moment()
                    exited = None if rng.random() < 0.1 else entered + rng.randrange(1, 90) * M
                    w.sector(session, name, entered, exited)
    return rows


def _expected(rows: Rows, icao: str, start: datetime, end: datetime) -> dict[str, Any]:
    """The report's figures from the inserted rows, computed another way: hour and quarter by
    integer arithmetic on epoch seconds, overlaps by plain comparisons."""
    counted = [
        (s, kind, at)
        for s, kind, airport, at in rows.movements
        if airport == icao and kind in ("takeoff", "landing") and start <= at < end
    ]
    per_hour: dict[int, Counter[str]] = defaultdict(Counter)
    per_quarter: Counter[int] = Counter()
    for _, kind, at in counted:
        seconds = int(at.timestamp())
        per_hour[seconds // 3600 * 3600][kind] += 1
        per_quarter[seconds // 900 * 900] += 1
    first_hour = int(start.timestamp()) // 3600 * 3600
    hours = []
    for hour in range(first_hour, int(end.timestamp()), 3600):
        dep, arr = per_hour[hour]["takeoff"], per_hour[hour]["landing"]
        hours.append((datetime.fromtimestamp(hour, UTC), dep, arr, dep + arr))
    peak = None
    for row in hours:
        if row[3] > 0 and (peak is None or row[3] > peak[3]):
            peak = row
    quarter = None
    for q, n in sorted(per_quarter.items()):
        if quarter is None or n > quarter[1]:
            quarter = (datetime.fromtimestamp(q, UTC), n)
    sessions = {s for s, _, _ in counted}
    flights = {rows.sessions[s] for s in sessions}
    contacted_sessions = {
        s
        for s, c_start, c_end in rows.contacts
        if c_start < end and (c_end is None or c_end > start)
    }
    contacted = {rows.sessions[s] for s in sessions & contacted_sessions}
    inside: dict[str, set[int]] = defaultdict(set)
    for s, name, entered, exited in rows.sectors:
        if s in sessions and entered < end and (exited is None or exited > start):
            inside[name].add(s)
    busiest = sorted(((name, len(ss)) for name, ss in inside.items()), key=lambda x: (-x[1], x[0]))
    return {
        "hours": hours,
        "peak": peak,
        "quarter": quarter,
        "flights": len(flights),
        "in_contact": len(contacted),
        "busiest": busiest[:5],
    }


def _expected_positions(
    rows: Rows, prefixes: set[str], start: datetime, end: datetime
) -> dict[str, float]:
    seconds: dict[str, float] = defaultdict(float)
    for callsign, facility, frequency, first, last in rows.controllers:
        parts = callsign.split("_")
        if parts[0] not in prefixes or parts[-1] in ("CTR", "OBS"):
            continue
        if facility == 0 or frequency == "199.998":
            continue
        overlap = (min(last, end) - max(first, start)).total_seconds()
        if overlap > 0:
            seconds[callsign] += overlap
    return {c: round(s / 3600, 4) for c, s in seconds.items()}


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (T0 - 12 * H, T0 + 36 * H),  # all of it
        (T0 + 7 * M + 13 * timedelta(seconds=1), T0 + 29 * H + 41 * M),  # ragged ends
    ],
)
def test_random_traffic_matches_an_independent_computation_and_sql(
    engine: Engine, start: datetime, end: datetime
) -> None:
    rows = _random_traffic(engine, seed=13)
    client = _client(engine, T0 + 48 * H)
    body = report(
        client, airports=",".join(AIRPORTS), **{"from": start.isoformat(), "to": end.isoformat()}
    )
    m = t.movements.c
    with engine.connect() as conn:
        sql = {
            (airport, kind): n
            for airport, kind, n in conn.execute(
                select(m.airport, m.kind, func.count())
                .where(m.at >= start, m.at < end, m.kind.in_(["takeoff", "landing"]))
                .group_by(m.airport, m.kind)
            )
        }
        sql_flights = dict(
            conn.execute(
                select(m.airport, func.count(m.flight_id.distinct()))
                .where(m.at >= start, m.at < end, m.kind.in_(["takeoff", "landing"]))
                .group_by(m.airport)
            ).all()
        )
    assert [a["icao"] for a in body["airports"]] == AIRPORTS
    busy = 0
    for airport in body["airports"]:
        icao = airport["icao"]
        want = _expected(rows, icao, start, end)
        got_hours = [
            (datetime.fromisoformat(h["hour"]), h["departures"], h["arrivals"], h["total"])
            for h in airport["hours"]
        ]
        assert got_hours == want["hours"], icao
        assert airport["departures"] == sql.get((icao, "takeoff"), 0)
        assert airport["arrivals"] == sql.get((icao, "landing"), 0)
        peak = want["peak"]
        if peak is None:
            assert airport["peak_hour"] is None
        else:
            assert datetime.fromisoformat(airport["peak_hour"]["hour"]) == peak[0]
            assert airport["peak_hour"]["total"] == peak[3]
        quarter = want["quarter"]
        if quarter is None:
            assert airport["peak_15_minutes"] is None
        else:
            assert datetime.fromisoformat(airport["peak_15_minutes"]["start"]) == quarter[0]
            assert airport["peak_15_minutes"]["per_hour"] == 4 * quarter[1]
        contact = airport["atc_contact"]
        assert contact["flights"] == want["flights"] == sql_flights.get(icao, 0)
        assert contact["in_contact"] == want["in_contact"]
        if want["flights"]:
            assert contact["share"] == round(want["in_contact"] / want["flights"], 4)
        sectors = [(s["sector"], s["pilot_sessions"]) for s in airport["busiest_sectors"]]
        assert sectors == want["busiest"], icao
        busy += airport["total"] > 0 and 0 < contact["in_contact"] < contact["flights"]
    assert busy >= 5, "the random traffic exercises the figures at most airports"
    by_icao = {a["icao"]: a for a in body["airports"]}
    for icao, prefixes in (("EGLL", {"EGLL", "LHR"}), ("KJFK", {"KJFK", "JFK"})):
        positions = {p["callsign"]: p["hours"] for p in by_icao[icao]["positions"]}
        assert positions == _expected_positions(rows, prefixes, start, end)
        assert positions, f"the random traffic staffs {icao}"
