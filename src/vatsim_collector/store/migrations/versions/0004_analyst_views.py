"""analyst views: v_flights, v_controller_sessions, v_hourly_traffic, v_sector_visits

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

Ready-made read-only views for Grafana, Metabase and plain SQL (docs/analysts.md describes
every column). They are the same views on SQLite and PostgreSQL: the same names, columns, rows
and values. Only two expressions differ by dialect, because neither backend has the other's
date functions:

- the UTC hour of a time: ``strftime`` on SQLite, ``date_trunc(..., 'UTC')`` on PostgreSQL
  (the three-argument form, so the session's TimeZone cannot shift the hour);
- minutes between two times, computed from whole microseconds on both, so the two backends
  give the same double, not merely close ones.

UTCDateTime stores SQLite times as text, ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC, always with six
fractional digits; the SQLite expressions below rely on that layout. SQLite's own date
functions read only milliseconds, hence the explicit microseconds.

Views are not in ``schema.metadata``: Alembic's autogenerate compares tables only. A later
migration that rebuilds one of the tables below in SQLite batch mode (copy, drop, rename) must
drop these views first and create them again after it, or SQLite refuses the rename; on
PostgreSQL the same goes for changing the type of, or dropping, a column a view reads.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

VIEWS = ("v_flights", "v_controller_sessions", "v_hourly_traffic", "v_sector_visits")


def _utc_hour(column: str, dialect: str) -> str:
    if dialect == "sqlite":
        # The same text layout as every stored time, so it compares and sorts with them.
        return f"strftime('%Y-%m-%d %H:00:00.000000', {column})"
    return f"date_trunc('hour', {column}, 'UTC')"


def _minutes(start: str, end: str, dialect: str) -> str:
    """Minutes from ``start`` to ``end`` (NULL when either is): whole microseconds divided as
    doubles, identical on both backends."""
    if dialect == "sqlite":
        # Whole seconds from the text without its fraction: SQLite rounds a fraction to
        # milliseconds, so .9996 would become the next second. The microseconds come after.
        def seconds(column: str) -> str:
            return f"CAST(strftime('%s', substr({column}, 1, 19)) AS INTEGER)"

        def micros_of(column: str) -> str:
            return f"CAST(substr({column}, 21, 6) AS INTEGER)"

        micros = (
            f"(({seconds(end)} - {seconds(start)}) * 1000000"
            f" + {micros_of(end)} - {micros_of(start)})"
        )
        return f"({micros} / 60000000.0)"
    micros = f"CAST(EXTRACT(EPOCH FROM ({end} - {start})) * 1000000 AS DOUBLE PRECISION)"
    return f"({micros} / 60000000.0)"


def view_sql(dialect: str) -> dict[str, str]:
    """The SELECT of each view on ``dialect`` (``sqlite`` or ``postgresql``)."""
    return {
        # One row per flight. The summary is shown only while it describes the flight as it
        # is: a reconnect that continues a flight reopens it, and the summary written at the
        # earlier end stays in its table until the flight ends again and it is rewritten.
        "v_flights": """
            SELECT
                f.id AS flight_id,
                f.cid,
                f.callsign,
                f.departure,
                f.arrival,
                (
                    SELECT COALESCE(NULLIF(fp.aircraft_short, ''), NULLIF(fp.aircraft, ''))
                    FROM flight_plans AS fp
                    WHERE fp.flight_id = f.id
                    ORDER BY fp.id DESC
                    LIMIT 1
                ) AS aircraft,
                f.started_at,
                f.ended_at,
                (SELECT COUNT(*) FROM pilot_sessions AS ps WHERE ps.flight_id = f.id)
                    AS sessions,
                s.online_minutes,
                s.airborne_minutes,
                s.distance_nm,
                s.max_altitude,
                s.coverage,
                s.airborne_coverage,
                s.computed_at AS summarized_at
            FROM flights AS f
            LEFT JOIN flight_summaries AS s
                ON s.flight_id = f.id AND s.ended_at = f.ended_at
        """,
        # Names are personal data and stay out. A controller session comes back to life when
        # its connection returns soon enough, so its summary counts only while it ends where
        # the session now ends.
        "v_controller_sessions": """
            SELECT
                c.id AS controller_session_id,
                c.cid,
                c.callsign,
                c.frequency,
                c.facility,
                c.rating,
                c.is_observer,
                c.is_supervisor,
                c.logon_time,
                c.first_seen_at,
                c.last_seen_at,
                c.ended_at,
                s.duration_minutes,
                s.aircraft_handled,
                s.peak_concurrent,
                s.computed_at AS summarized_at
            FROM controller_sessions AS c
            LEFT JOIN controller_summaries AS s
                ON s.controller_session_id = c.id
                AND c.ended_at IS NOT NULL
                AND s.ended_at = c.last_seen_at
        """,
        # Quarantined snapshots are left out: their counts are the implausible ones that got
        # them quarantined.
        "v_hourly_traffic": f"""
            SELECT
                {_utc_hour("update_timestamp", dialect)} AS hour,
                COUNT(*) AS snapshots,
                MAX(pilots) AS max_pilots,
                MAX(controllers) AS max_controllers,
                MAX(atis) AS max_atis
            FROM snapshots
            WHERE status = 'accepted'
            GROUP BY 1
        """,
        "v_sector_visits": f"""
            SELECT
                o.id AS visit_id,
                o.sector,
                o.flight_id,
                o.pilot_session_id,
                f.cid,
                f.callsign,
                o.entered_at,
                o.exited_at,
                {_minutes("o.entered_at", "o.exited_at", dialect)} AS minutes,
                o.entry_latitude,
                o.entry_longitude,
                o.entry_altitude,
                o.exit_latitude,
                o.exit_longitude,
                o.exit_altitude
            FROM sector_occupancy AS o
            JOIN flights AS f ON f.id = o.flight_id
        """,
    }


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, select in view_sql(dialect).items():
        op.execute(f"CREATE VIEW {name} AS {select}")


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
