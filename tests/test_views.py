"""The analyst views of migration 0004 against the base tables, on SQLite and PostgreSQL.

The database is recorded by the real pipeline (``pipeline_db``). Each view is read as an
analyst would, with plain SQL, and compared row by row with what the base tables say,
computed here in Python. Minutes are compared exactly: the views divide whole microseconds,
and so does this module. The read-only access documented in docs/analysts.md is exercised
for real: the PostgreSQL role is created from the document's own SQL, and the SQLite file is
opened with ``mode=ro``.
"""

from __future__ import annotations

import os
import re
import sqlite3
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Boolean, Connection, Engine, create_engine, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from conftest import SERVER_ENV
from pipeline_db import Recorded, module_engine, record
from vatsim_collector.store import schema as t
from vatsim_collector.store.partitions import PartitionManager, partition_name
from vatsim_collector.store.types import UTCDateTime

DOCS = Path(__file__).resolve().parents[1] / "docs" / "analysts.md"
VIEWS = ("v_flights", "v_controller_sessions", "v_hourly_traffic", "v_sector_visits")
TIMES = {
    "v_flights": ("started_at", "ended_at", "summarized_at"),
    "v_controller_sessions": (
        "logon_time",
        "first_seen_at",
        "last_seen_at",
        "ended_at",
        "summarized_at",
    ),
    "v_hourly_traffic": ("hour",),
    "v_sector_visits": ("entered_at", "exited_at"),
}
FLAGS = {"v_controller_sessions": ("is_observer", "is_supervisor")}
ONE_MICROSECOND = timedelta(microseconds=1)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    with module_engine(Path(tmp_path_factory.mktemp("views"))) as engine:
        yield record(engine)


def _view(conn: Connection, name: str, where: str = "") -> list[dict[str, Any]]:
    """The view's rows as an analyst's SQL sees them, times read back as aware UTC."""
    types: dict[str, Any] = {column: UTCDateTime() for column in TIMES[name]}
    types.update({column: Boolean() for column in FLAGS.get(name, ())})
    query = text(f"SELECT * FROM {name} {where}").columns(**types)
    return [dict(row._mapping) for row in conn.execute(query)]


def _rows(engine: Engine, query: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(query))


def _minutes(start: datetime, end: datetime | None) -> float | None:
    if end is None:
        return None
    return ((end - start) // ONE_MICROSECOND) / 60_000_000


def _of(summary: Any, column: str) -> Any:
    return None if summary is None else getattr(summary, column)


def _by(rows: list[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    keyed = {row[key]: row for row in rows}
    assert len(keyed) == len(rows), f"{key} is not unique"
    return keyed


def test_the_views_exist_with_their_columns_and_no_names(recorded: Recorded) -> None:
    with recorded.engine.connect() as conn:
        for name in VIEWS:
            columns = list(conn.execute(text(f"SELECT * FROM {name} LIMIT 1")).keys())
            assert set(TIMES[name]) <= set(columns), name
            assert "name" not in columns, name
            assert _view(conn, name), f"{name} is empty"


def test_v_flights_is_one_row_per_flight_with_its_current_summary(recorded: Recorded) -> None:
    engine = recorded.engine
    flights = _rows(engine, select(t.flights))
    summaries = {row.flight_id: row for row in _rows(engine, select(t.flight_summaries))}
    sessions: dict[int, int] = defaultdict(int)
    for row in _rows(engine, select(t.pilot_sessions.c.flight_id)):
        sessions[row.flight_id] += 1
    aircraft: dict[int, str | None] = {}
    for plan in _rows(engine, select(t.flight_plans).order_by(t.flight_plans.c.id)):
        aircraft[plan.flight_id] = plan.aircraft_short or plan.aircraft or None  # latest wins
    with engine.connect() as conn:
        view = _by(_view(conn, "v_flights"), "flight_id")
    assert set(view) == {f.id for f in flights}
    stale = 0
    for flight in flights:
        row = view[flight.id]
        summary = summaries.get(flight.id)
        if summary is not None and summary.ended_at != flight.ended_at:
            stale += 1  # written at an earlier end; the flight has been continued since
            summary = None
        assert row == {
            "flight_id": flight.id,
            "cid": flight.cid,
            "callsign": flight.callsign,
            "departure": flight.departure,
            "arrival": flight.arrival,
            "aircraft": aircraft.get(flight.id),
            "started_at": flight.started_at,
            "ended_at": flight.ended_at,
            "sessions": sessions[flight.id],
            "online_minutes": _of(summary, "online_minutes"),
            "airborne_minutes": _of(summary, "airborne_minutes"),
            "distance_nm": _of(summary, "distance_nm"),
            "max_altitude": _of(summary, "max_altitude"),
            "coverage": _of(summary, "coverage"),
            "airborne_coverage": _of(summary, "airborne_coverage"),
            "summarized_at": _of(summary, "computed_at"),
        }, flight.id
    rows = view.values()
    assert stale > 0, "the recording should contain flights continued after a summary"
    assert sum(row["summarized_at"] is not None for row in rows) > 10
    assert any(row["ended_at"] is None for row in rows)
    assert any(row["aircraft"] is None for row in rows)
    assert any(row["sessions"] > 1 for row in rows)


def test_v_controller_sessions_show_summaries_of_ended_sessions(recorded: Recorded) -> None:
    engine = recorded.engine
    cs = t.controller_sessions
    sessions = _rows(engine, select(cs))
    summaries = {
        row.controller_session_id: row for row in _rows(engine, select(t.controller_summaries))
    }
    with engine.connect() as conn:
        view = _by(_view(conn, "v_controller_sessions"), "controller_session_id")
    assert set(view) == {s.id for s in sessions}
    for session in sessions:
        summary = summaries.get(session.id)
        assert view[session.id] == {
            "controller_session_id": session.id,
            "cid": session.cid,
            "callsign": session.callsign,
            "frequency": session.frequency,
            "facility": session.facility,
            "rating": session.rating,
            "is_observer": session.is_observer,
            "is_supervisor": session.is_supervisor,
            "logon_time": session.logon_time,
            "first_seen_at": session.first_seen_at,
            "last_seen_at": session.last_seen_at,
            "ended_at": session.ended_at,
            "duration_minutes": _of(summary, "duration_minutes"),
            "aircraft_handled": _of(summary, "aircraft_handled"),
            "peak_concurrent": _of(summary, "peak_concurrent"),
            "summarized_at": _of(summary, "computed_at"),
        }, session.id
    rows = view.values()
    assert sum(row["summarized_at"] is not None for row in rows) > 2
    assert any(row["is_observer"] for row in rows)
    assert all(row["summarized_at"] is None for row in rows if row["is_observer"])


def test_a_resumed_controller_session_hides_its_old_summary(recorded: Recorded) -> None:
    cs = t.controller_sessions
    with recorded.engine.connect() as conn, conn.begin() as transaction:
        [session_id] = conn.execute(
            select(t.controller_summaries.c.controller_session_id).limit(1)
        ).scalars()
        before = _view(conn, "v_controller_sessions", f"WHERE controller_session_id = {session_id}")
        assert before[0]["summarized_at"] is not None
        # What a returning connection does to the row: on again, and seen later.
        [last_seen] = conn.execute(select(cs.c.last_seen_at).where(cs.c.id == session_id)).one()
        conn.execute(
            update(cs)
            .where(cs.c.id == session_id)
            .values(ended_at=None, last_seen_at=last_seen + timedelta(seconds=15))
        )
        after = _view(conn, "v_controller_sessions", f"WHERE controller_session_id = {session_id}")
        assert after[0]["summarized_at"] is None
        assert after[0]["duration_minutes"] is None
        transaction.rollback()


def test_v_hourly_traffic_has_the_maxima_of_accepted_snapshots_per_utc_hour(
    recorded: Recorded,
) -> None:
    snapshots = _rows(
        recorded.engine, select(t.snapshots).where(t.snapshots.c.status == "accepted")
    )
    hours: dict[datetime, list[Any]] = defaultdict(list)
    for snap in snapshots:
        hours[snap.update_timestamp.replace(minute=0, second=0, microsecond=0)].append(snap)
    expected = {
        hour: {
            "hour": hour,
            "snapshots": len(snaps),
            "max_pilots": max(s.pilots for s in snaps),
            "max_controllers": max(s.controllers for s in snaps),
            "max_atis": max(s.atis for s in snaps),
        }
        for hour, snaps in hours.items()
    }
    with recorded.engine.connect() as conn:
        view = _by(_view(conn, "v_hourly_traffic"), "hour")
    assert view == expected
    assert list(view) == [
        datetime(2024, 5, 1, 11, tzinfo=UTC),
        datetime(2024, 5, 1, 12, tzinfo=UTC),
    ]


def test_v_sector_visits_are_the_occupancy_rows_with_exact_minutes(recorded: Recorded) -> None:
    so, fl = t.sector_occupancy, t.flights
    occupancy = _rows(
        recorded.engine,
        select(so, fl.c.cid, fl.c.callsign).join(fl, fl.c.id == so.c.flight_id),
    )
    with recorded.engine.connect() as conn:
        view = _by(_view(conn, "v_sector_visits"), "visit_id")
    assert set(view) == {row.id for row in occupancy}
    for row in occupancy:
        assert view[row.id] == {
            "visit_id": row.id,
            "sector": row.sector,
            "flight_id": row.flight_id,
            "pilot_session_id": row.pilot_session_id,
            "cid": row.cid,
            "callsign": row.callsign,
            "entered_at": row.entered_at,
            "exited_at": row.exited_at,
            "minutes": _minutes(row.entered_at, row.exited_at),
            "entry_latitude": row.entry_latitude,
            "entry_longitude": row.entry_longitude,
            "entry_altitude": row.entry_altitude,
            "exit_latitude": row.exit_latitude,
            "exit_longitude": row.exit_longitude,
            "exit_altitude": row.exit_altitude,
        }, row.id
    closed = [v["minutes"] for v in view.values() if v["exited_at"] is not None]
    assert closed
    assert all(m is not None and m >= 0 for m in closed)
    assert any(v["minutes"] is None for v in view.values())  # still inside


def test_minutes_keep_microseconds_the_text_layout_carries(recorded: Recorded) -> None:
    """Milliseconds are all SQLite's date functions read; the view must not lose the rest."""
    so = t.sector_occupancy
    with recorded.engine.connect() as conn, conn.begin() as transaction:
        [visit] = conn.execute(select(so).where(so.c.exited_at.is_not(None)).limit(1)).all()
        # .9996 s is what SQLite's own date functions would round up into the next second.
        entered = visit.entered_at.replace(microsecond=999_600)
        exited = entered + timedelta(minutes=7, seconds=1, microseconds=234_567)
        conn.execute(
            update(so).where(so.c.id == visit.id).values(entered_at=entered, exited_at=exited)
        )
        [row] = _view(conn, "v_sector_visits", f"WHERE visit_id = {visit.id}")
        assert (row["entered_at"], row["exited_at"]) == (entered, exited)
        assert row["minutes"] == 421_234_567 / 60_000_000
        transaction.rollback()


def _sql_blocks(marker: str) -> list[str]:
    """The fenced SQL blocks that follow ``<!-- marker -->`` in docs/analysts.md."""
    pattern = rf"<!-- {re.escape(marker)} -->\s*```sql\n(.*?)```"
    blocks = re.findall(pattern, DOCS.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert blocks, f"no {marker} block in {DOCS}"
    return blocks


def test_the_documented_example_queries_run_and_agree_with_the_views(recorded: Recorded) -> None:
    busiest, routes = _sql_blocks("example-query")
    with recorded.engine.connect() as conn:
        sectors = conn.execute(text(busiest)).all()
        flown = conn.execute(text(routes)).all()
        visits = _view(conn, "v_sector_visits", "WHERE exited_at IS NOT NULL")
    day = datetime(2024, 5, 1, tzinfo=UTC)
    per_sector: dict[str, set[int]] = defaultdict(set)
    for visit in visits:
        if day <= visit["entered_at"] < day + timedelta(days=1):
            per_sector[visit["sector"]].add(visit["flight_id"])
    counts = [row.flights for row in sectors]
    assert len(counts) == min(10, len(per_sector)) > 0
    assert all(row.flights == len(per_sector[row.sector]) for row in sectors)
    # Ties are ordered by the server's collation; the counts themselves are not.
    assert counts == sorted((len(f) for f in per_sector.values()), reverse=True)[:10]
    assert flown
    assert all(row.flights >= 2 for row in flown)


# -- read-only access ----------------------------------------------------------------------


def _on_postgresql(recorded: Recorded) -> bool:
    return recorded.engine.dialect.name == "postgresql"


def test_the_sqlite_file_opens_read_only(recorded: Recorded) -> None:
    if _on_postgresql(recorded):
        pytest.skip("SQLite only; the PostgreSQL role is tested below")
    path = recorded.engine.url.database
    assert path is not None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        [(flights,)] = conn.execute("SELECT COUNT(*) FROM v_flights").fetchall()
        assert flights > 0
        with pytest.raises(sqlite3.OperationalError, match="readonly database"):
            conn.execute(
                "INSERT INTO prefiles (cid, callsign, first_seen_at, last_seen_at)"
                " VALUES (1, 'X', '2024-05-01 00:00:00.000000', '2024-05-01 00:00:00.000000')"
            )
    finally:
        conn.close()


def test_the_documented_read_only_role_reads_views_and_cannot_write(recorded: Recorded) -> None:
    if not _on_postgresql(recorded):
        pytest.skip("PostgreSQL only; the read-only SQLite file is tested above")
    server = os.environ[SERVER_ENV]
    url = recorded.engine.url
    database, owner = url.database, url.username
    assert database
    assert owner
    reader = f"vct_reader_{uuid.uuid4().hex[:12]}"
    [grants] = _sql_blocks("read-only-role")
    grants = grants.replace("vatsim_reader", reader)
    grants = re.sub(r"\bDATABASE vatsim\b", f'DATABASE "{database}"', grants)
    grants = re.sub(r"\bFOR ROLE vatsim\b", f'FOR ROLE "{owner}"', grants)
    assert "vatsim" not in grants.replace(reader, "")

    admin = create_engine(
        make_url(server).set(database=database).render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    as_reader = create_engine(
        url.set(username=reader, password=None).render_as_string(hide_password=False)
    )
    try:
        with admin.connect() as conn:
            for statement in filter(str.strip, grants.split(";")):
                conn.execute(text(statement))
        with as_reader.connect() as conn:
            for name in VIEWS:
                assert _view(conn, name), name
            assert conn.execute(text("SELECT COUNT(*) FROM positions")).scalar_one() > 0
            with pytest.raises(DBAPIError, match=r"read-only transaction|permission denied"):
                conn.execute(
                    text(
                        "INSERT INTO prefiles (cid, callsign, first_seen_at, last_seen_at)"
                        " VALUES (1, 'X', now(), now())"
                    )
                )
            conn.rollback()
            # A session may switch the read-only default off: the grants still refuse.
            conn.execute(text("SET default_transaction_read_only = off"))
            conn.commit()
            with pytest.raises(DBAPIError, match="permission denied"):
                conn.execute(text("DELETE FROM flights"))
            conn.rollback()
        # A partition the collector makes later is readable through the default privileges.
        later = date(2031, 1, 1)
        with recorded.engine.begin() as conn:
            PartitionManager.create(conn, later)
        with as_reader.connect() as conn:
            partition = partition_name("positions", later)
            assert conn.execute(text(f'SELECT COUNT(*) FROM "{partition}"')).scalar_one() == 0
    finally:
        as_reader.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP OWNED BY "{reader}"'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{reader}"'))
        admin.dispose()


def test_v_hourly_traffic_hours_are_utc_whatever_the_session_time_zone(
    recorded: Recorded,
) -> None:
    if not _on_postgresql(recorded):
        pytest.skip("SQLite has no session time zone")
    with recorded.engine.connect() as conn:
        utc = [row["hour"] for row in _view(conn, "v_hourly_traffic", "ORDER BY hour")]
        # Half an hour off UTC: a time-zone-naive truncation would land on :30.
        conn.execute(text("SET TIME ZONE 'Asia/Kolkata'"))
        kolkata = [row["hour"] for row in _view(conn, "v_hourly_traffic", "ORDER BY hour")]
        conn.rollback()
    assert kolkata == utc
    assert all(hour.minute == 0 for hour in kolkata)
