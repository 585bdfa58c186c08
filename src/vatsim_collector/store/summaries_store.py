"""Loads what a flight's or controller session's summary is computed from, and stores the result.

Summaries are written when the flight or session has ended, and rewritten -- an upsert on the
flight or session id -- whenever asked again: a flight continued by a reconnect and ended once
more, or a ``recompute``, simply replaces the row. Observers get no controller summary: they
are excluded from ATC statistics.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    Connection,
    Executable,
    Row,
    and_,
    any_,
    bindparam,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from vatsim_collector.airspace.summaries import (
    ContactSpan,
    HandledSpan,
    PositionSample,
    SectorVisit,
    controller_summary,
    flight_summary,
)
from vatsim_collector.store import schema as t
from vatsim_collector.store.database import DatabaseService

__all__ = ["SummaryWriter"]


def _json(value: Any) -> str:
    def default(obj: object) -> str:
        if isinstance(obj, datetime):
            return obj.isoformat()
        raise TypeError(f"not JSON: {type(obj).__name__}")

    return json.dumps(value, default=default, separators=(",", ":"))


def _mhz(hz: int) -> str:
    return f"{hz / 1e6:.3f}"


def _now() -> datetime:
    return datetime.now(UTC)


# The statements are built once and executed with parameters: a back-fill summarises several
# flights per snapshot, and building the statements anew each time cost more than running them.
@cache
def _upsert_statement(
    dialect_name: str, table: Any, key: str, columns: tuple[str, ...]
) -> Executable:
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    update = {name: stmt.excluded[name] for name in columns if name != key}
    upsert: Executable = stmt.on_conflict_do_update(index_elements=[key], set_=update)
    return upsert


# What a flight summary reads of each position (a ``PositionSample``), whichever way found.
_POSITION_SAMPLE = (
    t.positions.c.pilot_session_id,
    t.snapshots.c.update_timestamp,
    t.positions.c.latitude,
    t.positions.c.longitude,
    t.positions.c.altitude,
    t.positions.c.groundspeed,
)


@cache
def _positions_by_session() -> tuple[Executable, Executable]:
    """PostgreSQL's way to a flight's positions: its sessions' ids first, then the positions'
    session index (``ix_positions_pilot_session_id``) with those ids as one array, from the
    first session's day on. Planned from the flight's own session count, it never scans a day
    of positions; the join of the other shape was planned as a sequential scan of the day's
    partition while its statistics were young (a back-fill into a new database)."""
    ps, pos, snap = t.pilot_sessions, t.positions, t.snapshots
    sessions = select(ps.c.id, ps.c.first_seen_at).where(ps.c.flight_id == bindparam("flight_id"))
    positions = (
        select(*_POSITION_SAMPLE)
        .join(snap, snap.c.id == pos.c.snapshot_id)
        .where(
            pos.c.pilot_session_id == any_(bindparam("ids", type_=postgresql.ARRAY(BigInteger))),
            pos.c.snapshot_id >= bindparam("from_id", type_=BigInteger),
        )
    )
    return sessions, positions


@cache
def _flight_statements() -> tuple[Executable, Executable, Executable, Executable, Executable]:
    """The flight, its positions, its ended contacts, its sector visits and its latest plan,
    each for ``:flight_id``."""
    flight_id: BindParameter[int] = bindparam("flight_id")
    ps, pos, snap = t.pilot_sessions, t.positions, t.snapshots
    flight = select(t.flights).where(t.flights.c.id == flight_id)
    positions = (
        select(*_POSITION_SAMPLE)
        # Positions are keyed by snapshot first: walk each session's snapshots and look up one
        # primary key per snapshot, never scan all traffic for one flight.
        .select_from(
            ps.join(
                snap,
                and_(
                    snap.c.update_timestamp >= ps.c.first_seen_at,
                    snap.c.update_timestamp <= ps.c.last_seen_at,
                ),
            ).join(
                pos,
                and_(pos.c.snapshot_id == snap.c.id, pos.c.pilot_session_id == ps.c.id),
            )
        )
        .where(ps.c.flight_id == flight_id)
    )
    ci, cs = t.contact_intervals, t.controller_sessions
    contacts = (
        select(ci, cs.c.callsign)
        .join(cs, cs.c.id == ci.c.controller_session_id)
        .where(ci.c.flight_id == flight_id, ci.c.ended_at.is_not(None))
    )
    so = t.sector_occupancy
    visits = select(so).where(so.c.flight_id == flight_id, so.c.exited_at.is_not(None))
    fp = t.flight_plans
    plan = (
        select(fp.c.aircraft_short, fp.c.aircraft)
        .where(fp.c.flight_id == flight_id)
        .order_by(fp.c.id.desc())
        .limit(1)
    )
    return flight, positions, contacts, visits, plan


class SummaryWriter:
    def __init__(self, db: DatabaseService, *, clock: Callable[[], datetime] = _now) -> None:
        self.db = db
        self._clock = clock

    def _upsert(self, conn: Connection, table: Any, key: str, row: dict[str, Any]) -> None:
        conn.execute(_upsert_statement(conn.dialect.name, table, key, tuple(row)), row)

    # -- flights -----------------------------------------------------------------------------

    def flight(self, flight_id: int) -> bool:
        """Summarise the flight if it has ended; False when it has not (or does not exist)."""
        with self.db.write("summaries.flight") as conn:
            return self.flight_in(conn, flight_id)

    def flight_in(self, conn: Connection, flight_id: int) -> bool:
        flight, positions_of, contacts_of, visits_of, plan_of = _flight_statements()
        key = {"flight_id": flight_id}
        fl = conn.execute(flight, key).first()
        if fl is None or fl.ended_at is None:
            return False
        positions = [
            PositionSample(
                r.pilot_session_id,
                r.update_timestamp,
                r.latitude,
                r.longitude,
                r.altitude,
                r.groundspeed,
            )
            for r in self._positions(conn, flight_id, positions_of, key)
        ]
        contacts = [
            ContactSpan(
                r.controller_session_id, r.callsign, _mhz(r.frequency_hz), r.started_at, r.ended_at
            )
            for r in conn.execute(contacts_of, key)
        ]
        visits = [
            SectorVisit(r.sector, r.entered_at, r.exited_at) for r in conn.execute(visits_of, key)
        ]
        plan = conn.execute(plan_of, key).first()
        summary = flight_summary(positions, contacts, visits)
        self._upsert(
            conn,
            t.flight_summaries,
            "flight_id",
            {
                "flight_id": flight_id,
                "cid": fl.cid,
                "callsign": fl.callsign,
                "departure": fl.departure,
                "arrival": fl.arrival,
                "aircraft": (plan.aircraft_short or plan.aircraft or None) if plan else None,
                "started_at": fl.started_at,
                "ended_at": fl.ended_at,
                "online_minutes": summary.online_minutes,
                "airborne_minutes": summary.airborne_minutes,
                "distance_nm": summary.distance_nm,
                "max_altitude": summary.max_altitude,
                "coverage": summary.coverage,
                "airborne_coverage": summary.airborne_coverage,
                "controllers": _json(summary.controllers),
                "sectors": _json(summary.sectors),
                "computed_at": self._clock(),
            },
        )
        return True

    @staticmethod
    def _positions(
        conn: Connection, flight_id: int, positions_of: Executable, key: dict[str, int]
    ) -> Iterable[Row[Any]]:
        if conn.dialect.name != "postgresql":
            # SQLite's positions are keyed by snapshot first: the statement walks each
            # session's snapshots and looks up one key per snapshot.
            return conn.execute(positions_of, key)
        sessions_of, by_session = _positions_by_session()
        sessions = conn.execute(sessions_of, key).all()
        if not sessions:
            return []
        first = min(row.first_seen_at for row in sessions)
        return conn.execute(
            by_session,
            {"ids": [row.id for row in sessions], "from_id": t.snapshot_id_for(first)},
        )

    # -- controllers -------------------------------------------------------------------------

    def controller(self, session_id: int) -> bool:
        """Summarise the controller session if it has ended and is not an observer."""
        with self.db.write("summaries.controller") as conn:
            return self.controller_in(conn, session_id)

    def controller_in(self, conn: Connection, session_id: int) -> bool:
        cs = t.controller_sessions
        row = conn.execute(select(cs).where(cs.c.id == session_id)).first()
        if row is None or row.ended_at is None or row.is_observer:
            return False
        cf = t.controller_frequencies
        frequencies = [
            r.frequency
            for r in conn.execute(
                select(cf.c.frequency)
                .where(cf.c.controller_session_id == session_id)
                .order_by(cf.c.id)
            )
            if r.frequency
        ] or ([row.frequency] if row.frequency else [])
        ci, ps = t.contact_intervals, t.pilot_sessions
        spans = [
            HandledSpan(r.flight_id, r.callsign, r.started_at, r.ended_at)
            for r in conn.execute(
                select(ci.c.flight_id, ci.c.started_at, ci.c.ended_at, ps.c.callsign)
                .join(ps, ps.c.id == ci.c.pilot_session_id)
                .where(ci.c.controller_session_id == session_id, ci.c.ended_at.is_not(None))
            )
        ]
        summary = controller_summary(row.first_seen_at, row.last_seen_at, frequencies, spans)
        self._upsert(
            conn,
            t.controller_summaries,
            "controller_session_id",
            {
                "controller_session_id": session_id,
                "cid": row.cid,
                "callsign": row.callsign,
                "facility": row.facility,
                "started_at": row.first_seen_at,
                "ended_at": row.last_seen_at,
                "duration_minutes": summary.duration_minutes,
                "frequencies": _json(summary.frequencies),
                "aircraft_handled": summary.aircraft_handled,
                "peak_concurrent": summary.peak_concurrent,
                "hourly": _json(summary.hourly),
                "per_aircraft": _json(summary.per_aircraft),
                "computed_at": self._clock(),
            },
        )
        return True
