"""Issue 13, deliverable 4 (controllers): hours on position, sessions and aircraft handled.

Rows are written straight into the test's database, so each rule (overlap with the window,
observers, supervisors, ATIS, a change of frequency or facility, UTC days) is checked against
figures worked out by hand; a seeded simulator run is then checked against an independent
computation from the stored sessions, and against SQL.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, insert, select

from vatsim_collector.airspace.setup import build_airspace
from vatsim_collector.api import create_app
from vatsim_collector.config import load_settings
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.simulator.server import SimulatedNetwork
from vatsim_collector.store import schema as t

T0 = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)


def session(
    conn: Any,
    table: t.Table,
    cid: int,
    callsign: str,
    first: datetime,
    last: datetime,
    *,
    facility: int = 4,
    frequency: str = "118.500",
    rating: int = 5,
) -> int:
    row = conn.execute(
        insert(table)
        .values(
            cid=cid,
            callsign=callsign,
            logon_time=first - M,
            first_seen_at=first,
            last_seen_at=last,
            ended_at=last,
            frequency=frequency,
            facility=facility,
            rating=rating,
            visual_range=50,
            is_observer=facility == 0 or frequency == "199.998",
            is_supervisor=rating >= 11,
        )
        .returning(table.c.id)
    ).scalar_one()
    return int(row)


def frequency(conn: Any, session_id: int, at: datetime, freq: str, facility: int) -> None:
    conn.execute(
        insert(t.controller_frequencies).values(
            controller_session_id=session_id, first_seen_at=at, frequency=freq, facility=facility
        )
    )


def contact(conn: Any, controller: int, start: datetime, end: datetime | None, n: int) -> int:
    flight = conn.execute(
        insert(t.flights)
        .values(cid=900_000 + n, callsign=f"TST{n}", started_at=start)
        .returning(t.flights.c.id)
    ).scalar_one()
    pilot = conn.execute(
        insert(t.pilot_sessions)
        .values(
            cid=900_000 + n,
            callsign=f"TST{n}",
            logon_time=start,
            first_seen_at=start,
            last_seen_at=end or start,
            flight_id=flight,
        )
        .returning(t.pilot_sessions.c.id)
    ).scalar_one()
    conn.execute(
        insert(t.contact_intervals).values(
            pilot_session_id=pilot,
            flight_id=flight,
            controller_session_id=controller,
            frequency_hz=118_500_000,
            started_at=start,
            ended_at=end,
        )
    )
    return int(flight)


@pytest.fixture
def client(engine: Engine) -> TestClient:
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    return TestClient(create_app(ingestor, stale_after=1e9, clock=lambda: T0 + 10 * H))


@pytest.fixture
def world(engine: Engine) -> dict[str, int]:
    """Hand-made sessions, each testing one rule (times relative to 22:00 UTC on Nov 30)."""
    with engine.begin() as conn:
        ids = {
            # 22:00-01:00 across midnight, tower then approach from 23:30.
            "tower": session(conn, t.controller_sessions, 1001, "EGLL_TWR", T0, T0 + 3 * H),
            # 22:30-23:00 on 199.998 (waiting), then 23:00-23:45 on a real frequency.
            "primed": session(
                conn,
                t.controller_sessions,
                1002,
                "EGLL_N_APP",
                T0 + 30 * M,
                T0 + 105 * M,
                facility=5,
                frequency="119.725",
            ),
            "observer": session(
                conn,
                t.controller_sessions,
                1003,
                "EGLL_OBS",
                T0,
                T0 + H,
                facility=0,
                frequency="199.998",
            ),
            "supervisor": session(
                conn,
                t.controller_sessions,
                1004,
                "EURW_SUP",
                T0,
                T0 + H,
                facility=6,
                frequency="199.998",
                rating=11,
            ),
            # A supervisor-rated member on a real position counts.
            "sup_rated": session(
                conn,
                t.controller_sessions,
                1004,
                "EGTT_CTR",
                T0 + H,
                T0 + 2 * H,
                facility=6,
                frequency="127.100",
                rating=11,
            ),
            "atis": session(conn, t.atis_sessions, 1005, "EGLL_ATIS", T0, T0 + 2 * H),
            # Before the window: never counted.
            "old": session(conn, t.controller_sessions, 1006, "EGKK_TWR", T0 - 5 * H, T0 - 4 * H),
        }
        tower, primed = ids["tower"], ids["primed"]
        frequency(conn, tower, T0, "118.500", 4)
        frequency(conn, tower, T0 + 90 * M, "119.725", 5)
        frequency(conn, primed, T0 + 30 * M, "199.998", 5)
        frequency(conn, primed, T0 + 60 * M, "119.725", 5)
        # Two flights handled by the tower while on TWR, one while it was approach after
        # midnight; one contact with the primed controller only while it waited on 199.998.
        contact(conn, tower, T0 + 10 * M, T0 + 20 * M, 1)
        contact(conn, tower, T0 + 40 * M, T0 + 60 * M, 2)
        contact(conn, tower, T0 + 150 * M, T0 + 160 * M, 3)
        contact(conn, primed, T0 + 35 * M, T0 + 40 * M, 4)
    return ids


def activity(client: TestClient, **params: Any) -> dict[str, Any]:
    answer = client.get("/api/activity/controllers", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


WINDOW = {"from": (T0 - H).isoformat(), "to": (T0 + 6 * H).isoformat()}


def test_hours_per_member_leave_out_observers_supervisors_atis_and_199_998(
    client: TestClient, world: dict[str, int]
) -> None:
    rows = {r["cid"]: r for r in activity(client, **WINDOW, group_by="cid")["rows"]}
    assert rows[1001]["hours"] == 3.0
    assert rows[1002]["hours"] == 0.75  # 23:00-23:45: the half hour on 199.998 is left out
    assert rows[1004]["hours"] == 1.0  # EGTT_CTR only, not the _SUP connection
    assert 1003 not in rows
    assert 1005 not in rows
    assert 1006 not in rows
    assert rows[1001]["sessions"] == 1
    assert rows[1001]["aircraft_handled"] == 3
    # The contact during the primed controller's 199.998 half hour does not count.
    assert rows[1002]["aircraft_handled"] == 0
    assert rows[1001]["first_seen"] == "2026-11-30T22:00:00Z"
    assert rows[1001]["last_seen"] == "2026-12-01T01:00:00Z"


def test_observers_and_atis_are_counted_when_asked(
    client: TestClient, world: dict[str, int]
) -> None:
    rows = {
        r["key"]: r
        for r in activity(
            client, **WINDOW, group_by="position", include_observers="true", include_atis="true"
        )["rows"]
    }
    assert rows["EGLL_OBS"]["hours"] == 1.0
    assert rows["EURW_SUP"]["hours"] == 1.0
    assert rows["EGLL_ATIS"]["hours"] == 2.0
    assert rows["EGLL_N_APP"]["hours"] == 1.25


def test_a_session_overlapping_the_window_counts_only_its_overlap(
    client: TestClient, world: dict[str, int]
) -> None:
    body = activity(client, **{"from": (T0 + 2 * H).isoformat(), "to": (T0 + 4 * H).isoformat()})
    rows = {r["cid"]: r for r in body["rows"]}
    assert rows[1001]["hours"] == 1.0  # 00:00-01:00 of the tower's 22:00-01:00
    assert rows[1001]["first_seen"] == "2026-12-01T00:00:00Z"
    assert rows[1001]["aircraft_handled"] == 1
    assert 1002 not in rows


def test_a_change_of_facility_counts_under_each(client: TestClient, world: dict[str, int]) -> None:
    rows = {r["key"]: r for r in activity(client, **WINDOW, group_by="facility")["rows"]}
    assert rows["TWR"]["hours"] == 1.5  # the tower 22:00-23:30
    # The tower as approach 23:30-01:00, the primed controller 23:00-23:45.
    assert rows["APP"]["hours"] == 2.25
    assert rows["APP"]["sessions"] == 2
    assert rows["CTR"]["hours"] == 1.0
    only_app = activity(client, **WINDOW, group_by="cid", facility=5)["rows"]
    assert {r["cid"]: r["hours"] for r in only_app} == {1001: 1.5, 1002: 0.75}


def test_days_are_utc_days_and_a_session_is_cut_at_midnight(
    client: TestClient, world: dict[str, int]
) -> None:
    rows = {r["key"]: r for r in activity(client, **WINDOW, group_by="day", cid=1001)["rows"]}
    assert rows["2026-11-30"]["hours"] == 2.0
    assert rows["2026-12-01"]["hours"] == 1.0
    assert rows["2026-11-30"]["aircraft_handled"] == 2
    assert rows["2026-12-01"]["aircraft_handled"] == 1


def test_callsign_filters_exact_or_by_prefix_with_underscores_literal(
    client: TestClient, world: dict[str, int]
) -> None:
    by_prefix = activity(client, **WINDOW, group_by="position", callsign="egll_*")["rows"]
    assert {r["key"] for r in by_prefix} == {"EGLL_TWR", "EGLL_N_APP"}
    # '_' matches only '_', not any one character.
    assert activity(client, **WINDOW, callsign="EGLL*")["pagination"]["total"] == 2
    assert activity(client, **WINDOW, callsign="EGLLxTWR")["rows"] == []
    assert [r["cid"] for r in activity(client, **WINDOW, callsign="egtt_ctr")["rows"]] == [1004]


def test_csv_has_one_line_per_row_in_the_json_order(
    client: TestClient, world: dict[str, int]
) -> None:
    as_json = activity(client, **WINDOW, group_by="position")["rows"]
    answer = client.get(
        "/api/activity/controllers",
        params={**WINDOW, "group_by": "position"},
        headers={"Accept": "text/csv"},
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(answer.text)))
    assert [line["key"] for line in lines] == [r["key"] for r in as_json]
    assert [float(line["hours"]) for line in lines] == [r["hours"] for r in as_json]
    explicit = client.get("/api/activity/controllers", params={**WINDOW, "format": "csv"})
    assert (
        explicit.text
        == client.get(
            "/api/activity/controllers", params=WINDOW, headers={"Accept": "text/csv"}
        ).text
    )


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-12-01T00:00:00Z", "to": "2026-11-30T00:00:00Z"},
        {"from": "2026-01-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"},
        {"group_by": "month"},
        {"facility": "7"},
        {"callsign": "EG%"},
        {"format": "xml"},
    ],
)
def test_bad_parameters_are_422(client: TestClient, params: dict[str, str]) -> None:
    assert client.get("/api/activity/controllers", params=params).status_code == 422


# -- a simulated run, against an independent computation and SQL ------------------------


def test_a_simulated_run_matches_an_independent_count_and_sql(engine: Engine) -> None:
    start = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
    network = SimulatedNetwork(seed=8, start=start)
    airspace = build_airspace(load_settings())
    ingestor = Ingestor(engine, IngestConfig(sanity_min_pilots=1), airspace=airspace.engine)
    ingestor.restore()
    for _ in range(120):
        network.tick()
        ingestor.ingest(
            orjson.dumps(network.data_document()),
            transceivers_raw=orjson.dumps(network.transceivers_document()),
        )
    end = network.now
    client = TestClient(create_app(ingestor, stale_after=1e9, clock=lambda: end))
    low, high = start + 7 * M, end - 3 * M
    window = {"from": low.isoformat(), "to": high.isoformat()}
    rows = activity(client, **window, group_by="cid", limit=500)["rows"]
    # Independently: every session's time on a counting frequency, clipped to the window.
    expected: dict[int, float] = {}
    with engine.connect() as conn:
        sessions = conn.execute(select(t.controller_sessions)).all()
        counted_stretches: dict[int, list[tuple[int, datetime, datetime]]] = {}
        steps: dict[int, list[Any]] = {}
        for row in conn.execute(
            select(t.controller_frequencies).order_by(t.controller_frequencies.c.first_seen_at)
        ):
            steps.setdefault(row.controller_session_id, []).append(row)
        for s in sessions:
            if s.callsign.upper().endswith(("_OBS", "_SUP")):
                continue
            changes = steps.get(s.id) or []
            assert changes, "airspace analytics record every session's first frequency"
            bounds = [c.first_seen_at for c in changes[1:]] + [s.last_seen_at]
            begin = s.first_seen_at
            for change, until in zip(changes, bounds, strict=True):
                counted = change.facility != 0 and change.frequency != "199.998"
                overlap = (min(until, high) - max(begin, low)).total_seconds()
                if counted and overlap > 0:
                    expected[s.cid] = expected.get(s.cid, 0.0) + overlap
                    counted_stretches.setdefault(s.id, []).append(
                        (s.cid, max(begin, low), min(until, high))
                    )
                begin = until
        # Aircraft handled: distinct flights with a contact overlapping a counted stretch.
        handled: dict[int, set[int]] = {}
        for contact in conn.execute(select(t.contact_intervals)):
            for cid, begin, until in counted_stretches.get(contact.controller_session_id, []):
                if contact.started_at < until and (
                    contact.ended_at is None or contact.ended_at > begin
                ):
                    handled.setdefault(cid, set()).add(contact.flight_id)
        # Direct SQL, for members who never changed frequency or facility.
        fr = t.controller_frequencies.c
        steady = {
            row.controller_session_id
            for row in conn.execute(
                select(fr.controller_session_id)
                .group_by(fr.controller_session_id)
                .having(func.count() == 1)
            )
        }
        # Members whose every session stayed on one counting frequency: the API's session
        # count is SQL's count of their sessions overlapping the window.
        c = t.controller_sessions.c
        sql_counts = dict(
            conn.execute(
                select(c.cid, func.count())
                .where(c.first_seen_at < high, c.last_seen_at > low)
                .group_by(c.cid)
            ).all()
        )
    got = {r["cid"]: r["hours"] for r in rows}
    assert any(handled.values()), "the run has contacts"
    assert {r["cid"]: r["aircraft_handled"] for r in rows} == {
        cid: len(handled.get(cid, ())) for cid in got
    }
    assert got.keys() == {cid for cid, seconds in expected.items() if seconds > 0}
    for cid, seconds in expected.items():
        assert got[cid] == pytest.approx(round(seconds / 3600, 4), abs=1e-4)
    simple = {
        s.cid
        for s in sessions
        if all(
            other.id in steady
            and other.facility != 0
            and other.frequency != "199.998"
            and not other.callsign.upper().endswith(("_OBS", "_SUP"))
            for other in sessions
            if other.cid == s.cid
        )
        and s.cid in got
    }
    assert simple, "the run has controllers who stayed on one frequency"
    sessions_by_cid = {r["cid"]: r["sessions"] for r in rows}
    for cid in simple:
        assert sessions_by_cid[cid] == sql_counts[cid]
