"""Rebuilds the tracker's live state from the database, so a restart never splits a session.

A node that does not ingest (``serve``, a standby) rebuilds the same state after each snapshot
the leader commits (``pipeline/follower.py``), so what it serves equals the leader's memory.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, and_, func, select

from vatsim_collector.feed.models import (
    Atis,
    Controller,
    FlightPlan,
    Pilot,
    StationTransceivers,
    Transceiver,
)
from vatsim_collector.store import schema as t
from vatsim_collector.store.rows import plan_from_row, squawk_text
from vatsim_collector.tracking.state import (
    ControllerSession,
    Flight,
    Kind,
    LiveState,
    PilotSession,
    PrefileEntry,
)


def _flight(row: Any) -> Flight:
    return Flight(
        id=row.id,
        cid=row.cid,
        callsign=row.callsign,
        departure=row.departure,
        arrival=row.arrival,
        started_at=row.started_at,
        ended_at=row.ended_at,
    )


def _latest_plans(conn: Connection, session_ids: list[int]) -> dict[int, FlightPlan | None]:
    plans: dict[int, FlightPlan | None] = {}
    for start in range(0, len(session_ids), 5000):
        chunk = session_ids[start : start + 5000]
        rows = conn.execute(
            select(t.flight_plans)
            .where(t.flight_plans.c.pilot_session_id.in_(chunk))
            .order_by(t.flight_plans.c.id)
        )
        for row in rows:
            plans[row.pilot_session_id] = plan_from_row(row)
    return plans


def load_live_state(
    conn: Connection, *, missed_to_end: int, reconnect_window: timedelta
) -> LiveState:
    state = LiveState()
    recent = conn.execute(
        select(t.snapshots)
        .where(t.snapshots.c.status == "accepted")
        .order_by(t.snapshots.c.update_timestamp.desc())
        .limit(missed_to_end + 1)
    ).all()
    if not recent:
        return state
    latest = recent[0]
    state.last_snapshot_at = latest.update_timestamp
    state.last_accepted_clients = latest.pilots + latest.controllers + latest.atis
    recent_times = [r.update_timestamp for r in recent]

    def missed(last_seen: datetime) -> int:
        return sum(1 for ts in recent_times if ts > last_seen)

    _load_pilots(conn, state, missed)
    horizon = latest.update_timestamp - reconnect_window
    _load_recently_ended(conn, state, horizon)
    _load_controllers(conn, state, Kind.CONTROLLER, missed)
    _load_controllers(conn, state, Kind.ATIS, missed)
    prefiles = t.prefiles
    for row in conn.execute(
        select(prefiles).where(prefiles.c.ended_at.is_(None)).order_by(prefiles.c.id)
    ):
        entry = PrefileEntry(
            id=row.id,
            cid=row.cid,
            callsign=row.callsign,
            name=row.name or "",
            plan=plan_from_row(row),
            first_seen=row.first_seen_at,
            last_seen=row.last_seen_at,
            missed=missed(row.last_seen_at),
        )
        state.prefiles[(entry.cid, entry.callsign)] = entry
    return state


def _load_pilots(conn: Connection, state: LiveState, missed: Any) -> None:
    ps, fl, pos, snap = t.pilot_sessions, t.flights, t.positions, t.snapshots
    rows = conn.execute(
        select(ps, fl.c.departure, fl.c.arrival, fl.c.started_at, fl.c.ended_at.label("f_end"))
        .join(fl, fl.c.id == ps.c.flight_id)
        .where(ps.c.ended_at.is_(None))
        # In insertion order: PostgreSQL returns rows in physical order otherwise, and the
        # rebuilt state's order is the order of the events the next snapshot publishes.
        .order_by(ps.c.id)
    ).all()
    # The snapshots the open sessions were last seen in come first: a handful (a session
    # missing more snapshots than that has ended). Named by id, they let PostgreSQL find their
    # positions through the snapshot index instead of reading every position of every open
    # session (its positions have no (snapshot, session) key: store/schema.py).
    last_seen = list(
        conn.execute(
            select(snap.c.id)
            .join(ps, ps.c.last_seen_at == snap.c.update_timestamp)
            .where(ps.c.ended_at.is_(None))
            .distinct()
        ).scalars()
    )
    last_positions: dict[int, Row[Any]] = {
        row.pilot_session_id: row
        for row in conn.execute(
            select(pos)
            .join(snap, snap.c.id == pos.c.snapshot_id)
            .join(ps, ps.c.id == pos.c.pilot_session_id)
            .where(
                and_(
                    pos.c.snapshot_id.in_(last_seen),
                    ps.c.ended_at.is_(None),
                    snap.c.update_timestamp == ps.c.last_seen_at,
                )
            )
        )
    }
    plans = _latest_plans(conn, [r.id for r in rows])
    flights: dict[int, Flight] = {}
    for row in rows:
        flight = flights.get(row.flight_id)
        if flight is None:
            flight = flights[row.flight_id] = Flight(
                id=row.flight_id,
                cid=row.cid,
                callsign=row.callsign,
                departure=row.departure,
                arrival=row.arrival,
                started_at=row.started_at,
                ended_at=None,
            )
        plan = plans.get(row.id)
        if plan is not None:
            flight.plan = plan
        p = last_positions.get(row.id)
        pilot = Pilot(
            cid=row.cid,
            callsign=row.callsign,
            logon_time=row.logon_time,
            latitude=p.latitude if p else 0.0,
            longitude=p.longitude if p else 0.0,
            name=row.name or "",
            server=row.server or "",
            pilot_rating=row.pilot_rating or 0,
            military_rating=row.military_rating,
            altitude=p.altitude if p else 0,
            groundspeed=p.groundspeed if p else 0,
            transponder=squawk_text(p.transponder) if p else "",
            heading=p.heading if p else 0,
            qnh_mb=p.qnh_mb if p else None,
            flight_plan=plan,
        )
        session = PilotSession(
            id=row.id,
            cid=row.cid,
            callsign=row.callsign,
            logon_time=row.logon_time,
            first_seen=row.first_seen_at,
            last_seen=row.last_seen_at,
            flight=flight,
            latest=pilot,
            plan=plan,
            missed=missed(row.last_seen_at),
        )
        state.pilots[session.key] = session
        state.pilot_by_ident[(session.cid, session.callsign)] = session


def _load_recently_ended(conn: Connection, state: LiveState, horizon: datetime) -> None:
    ps, fl = t.pilot_sessions, t.flights
    ended = conn.execute(
        select(ps.c.id, ps.c.cid, ps.c.callsign, ps.c.ended_at, ps.c.flight_id)
        .where(ps.c.ended_at >= horizon)
        .order_by(ps.c.ended_at)
    ).all()
    plans = _latest_plans(conn, [r.id for r in ended])
    flight_plans: dict[int, FlightPlan] = {}
    for row in ended:
        plan = plans.get(row.id)
        state.recent_plans[(row.cid, row.callsign)] = (row.ended_at, plan)
        if plan is not None:
            flight_plans[row.flight_id] = plan
    open_flights = {s.flight.id for s in state.pilots.values()}
    for row in conn.execute(
        select(fl).where(fl.c.ended_at >= horizon).order_by(fl.c.ended_at)
    ).all():
        if row.id not in open_flights:
            flight = _flight(row)
            flight.plan = flight_plans.get(row.id)
            state.recent_flights[(row.cid, row.callsign)] = flight


def _load_controllers(conn: Connection, state: LiveState, kind: Kind, missed: Any) -> None:
    table = t.controller_sessions if kind is Kind.CONTROLLER else t.atis_sessions
    live = state.controllers if kind is Kind.CONTROLLER else state.atis
    latest_atis: dict[int, Row[Any]] = {}
    if kind is Kind.ATIS:
        rev = t.atis_revisions
        for row in conn.execute(
            select(rev)
            .join(table, table.c.id == rev.c.atis_session_id)
            .where(table.c.ended_at.is_(None))
            .order_by(rev.c.id)
        ):
            latest_atis[row.atis_session_id] = row
    for row in conn.execute(select(table).where(table.c.ended_at.is_(None)).order_by(table.c.id)):
        revision = latest_atis.get(row.id)
        code = revision.atis_code if revision else None
        text = tuple(revision.text_atis.split("\n")) if revision and revision.text_atis else None
        common: dict[str, Any] = {
            "cid": row.cid,
            "callsign": row.callsign,
            "logon_time": row.logon_time,
            "name": row.name or "",
            "frequency": row.frequency or "",
            "facility": row.facility,
            "rating": row.rating or 0,
            "server": row.server or "",
            "visual_range": row.visual_range or 0,
            "text_atis": list(text) if text else None,
        }
        record: Controller | Atis = (
            Controller(**common) if kind is Kind.CONTROLLER else Atis(**common, atis_code=code)
        )
        session = ControllerSession(
            id=row.id,
            kind=kind,
            cid=row.cid,
            callsign=row.callsign,
            logon_time=row.logon_time,
            first_seen=row.first_seen_at,
            last_seen=row.last_seen_at,
            latest=record,
            frequency=row.frequency or "",
            facility=row.facility,
            is_observer=row.is_observer,
            is_supervisor=row.is_supervisor,
            atis_code=code,
            text_atis=text,
            latitude=row.latitude,
            longitude=row.longitude,
            missed=missed(row.last_seen_at),
        )
        live[session.key] = session


def latest_snapshot_id(conn: Connection) -> int | None:
    """The newest stored snapshot's id (accepted or quarantined); it grows with every commit
    of a snapshot, so a follower compares it to know whether to rebuild. An index lookup."""
    value = conn.execute(select(func.max(t.snapshots.c.id))).scalar_one()
    return None if value is None else int(value)


def load_latest_transceivers(conn: Connection) -> list[StationTransceivers] | None:
    """The transceivers document of the latest accepted snapshot as it was stored, one entry
    per station with its radios in id order; None when that snapshot came without one."""
    snap, tx = t.snapshots, t.transceivers
    latest = conn.execute(
        select(snap.c.id, snap.c.transceivers)
        .where(snap.c.status == "accepted")
        .order_by(snap.c.update_timestamp.desc())
        .limit(1)
    ).first()
    if latest is None or latest.transceivers is None:
        return None
    stations: dict[str, list[Transceiver]] = {}
    for row in conn.execute(
        select(
            tx.c.callsign,
            tx.c.transceiver_id,
            tx.c.frequency_hz,
            tx.c.latitude,
            tx.c.longitude,
            tx.c.height_msl_m,
            tx.c.height_agl_m,
        )
        .where(tx.c.snapshot_id == latest.id)
        .order_by(tx.c.callsign, tx.c.transceiver_id)
    ):
        stations.setdefault(row.callsign, []).append(
            Transceiver(
                id=row.transceiver_id,
                frequency=row.frequency_hz,
                latDeg=row.latitude,
                lonDeg=row.longitude,
                heightMslM=row.height_msl_m,
                heightAglM=row.height_agl_m,
            )
        )
    return [StationTransceivers(callsign, radios) for callsign, radios in stations.items()]
