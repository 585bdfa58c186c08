"""Forget one member: remove everything stored about a CID, in one transaction.

Why: names are personal data (docs/architecture.md, "Invariants").

What goes, per table:

- their pilot sessions with positions, flight plans, sector occupancy, movements and the
  movement detector's saved state, their contacts and transceivers; their flights with flight
  summaries; their controller and ATIS sessions with frequencies, contacts, controller
  summaries, ATIS revisions and transceivers; their prefiles;
- transceivers of their callsigns linked to no session, within their sessions' time ranges
  (a station the feed carried whose session was never recorded);
- logged events, dead letters and events waiting in the outbox about them (their cid,
  sessions or flights);
- their records inside held documents (rewritten; deleted when that cannot be done safely);
- their cid, callsigns and names inside error records' messages and contexts, replaced by
  ``[forgotten]`` (the records describe the collector's failures and stay).

Other members' summaries that counted them (a controller who handled their flight, a flight
they controlled) are recomputed without them, in the same transaction.

This is about stored history only; the in-memory state of a running collector is not touched.
A member still online is recorded again, as new sessions, from the next snapshot on. A
collector that still holds their sessions fails its next snapshot write once on the vanished
rows (reported; it then rebuilds its state from the database): the admin API endpoint tells
the collector it runs beside to rebuild first, which a separate process cannot.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Column, Connection, Table, and_, delete, or_, select

from vatsim_collector.store import schema as t
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.forget_scan import (
    forget_dead_letters,
    forget_error_records,
    forget_events,
    forget_held_documents,
    forget_outbox,
)
from vatsim_collector.store.redact import Member
from vatsim_collector.store.summaries_store import SummaryWriter

__all__ = ["ForgetReport", "forget_member"]

_CHUNK = 1000
_TABLES = (
    "pilot_sessions",
    "positions",
    "flight_plans",
    "flights",
    "flight_summaries",
    "sector_occupancy",
    "contact_intervals",
    "movements",
    "movement_state",
    "controller_sessions",
    "controller_frequencies",
    "controller_summaries",
    "atis_sessions",
    "atis_revisions",
    "transceivers",
    "prefiles",
    "events",
    "dead_letters",
    "event_outbox",
    "held_documents",
)


@dataclass
class ForgetReport:
    """Rows deleted and rewritten per table; ``open_sessions`` were online when forgotten."""

    cid: int
    deleted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_TABLES, 0))
    updated: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("flight_summaries", "controller_summaries", "held_documents", "error_records"), 0
        )
    )
    held_documents_unreadable: int = 0
    open_sessions: int = 0

    @property
    def found(self) -> bool:
        return any(self.deleted.values()) or any(self.updated.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "cid": self.cid,
            "found": self.found,
            "deleted": dict(self.deleted),
            "updated": dict(self.updated),
            "held_documents_unreadable": self.held_documents_unreadable,
            "open_sessions": self.open_sessions,
        }


class _Span(NamedTuple):
    id: int
    callsign: str
    first_seen_at: datetime
    last_seen_at: datetime


def _chunks(ids: Iterable[int]) -> Iterable[list[int]]:
    ordered = sorted(ids)
    for start in range(0, len(ordered), _CHUNK):
        yield ordered[start : start + _CHUNK]


def _delete_in(conn: Connection, column: Column[Any], ids: Iterable[int]) -> int:
    return sum(
        conn.execute(delete(column.table).where(column.in_(chunk))).rowcount
        for chunk in _chunks(ids)
    )


def _take_write_lock(conn: Connection) -> None:
    """On SQLite, take the write lock before the first read: pysqlite opens the transaction
    only at the first write, so without this what is read could change before it is deleted.
    PostgreSQL locks the member's rows instead (``FOR UPDATE`` below)."""
    if conn.dialect.name != "sqlite":
        return
    raw = conn.connection.driver_connection
    if not getattr(raw, "in_transaction", True):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _locked_rows(conn: Connection, table: Table, cid: int) -> list[Any]:
    # Taken in the order the snapshot writer touches these tables, which keeps the two from
    # deadlocking over them; a snapshot write referring to the rows waits for the forget.
    return list(conn.execute(select(table).where(table.c.cid == cid).with_for_update()))


def _spans(rows: Sequence[Any]) -> list[_Span]:
    return [_Span(r.id, r.callsign, r.first_seen_at, r.last_seen_at) for r in rows]


def _mentioning(
    conn: Connection,
    table: Table,
    key: str,
    json_column: str,
    ref: str,
    ids: set[int],
    spans: list[_Span],
) -> set[int]:
    """Summaries of others whose JSON list names one of ``ids`` under ``ref``; only those
    overlapping the member's time on the network can, which keeps the scan short."""
    if not ids or not spans:
        return set()
    lo = min(s.first_seen_at for s in spans)
    hi = max(s.last_seen_at for s in spans)
    found: set[int] = set()
    rows = conn.execute(
        select(table.c[key], table.c[json_column]).where(
            table.c.ended_at >= lo, table.c.started_at <= hi
        )
    )
    for row_key, text in rows:
        try:
            entries = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue
        if isinstance(entries, list) and any(
            isinstance(e, dict) and e.get(ref) in ids for e in entries
        ):
            found.add(row_key)
    return found


def _summarised(conn: Connection, column: Column[Any], ids: set[int]) -> set[int]:
    found: set[int] = set()
    for chunk in _chunks(ids):
        found.update(conn.execute(select(column).where(column.in_(chunk))).scalars())
    return found


def _others_to_recompute(
    conn: Connection, member: Member, pilots: list[_Span], controllers: list[_Span]
) -> tuple[set[int], set[int]]:
    """(controller sessions, flights) of other members whose stored summary counts them."""
    ci, cs, fs = t.contact_intervals, t.controller_summaries, t.flight_summaries
    handled_by: set[int] = set()
    for chunk in _chunks(member.flights):
        handled_by.update(
            conn.execute(
                select(ci.c.controller_session_id).distinct().where(ci.c.flight_id.in_(chunk))
            ).scalars()
        )
    worked: set[int] = set()
    for chunk in _chunks(member.controller_sessions):
        worked.update(
            conn.execute(
                select(ci.c.flight_id).distinct().where(ci.c.controller_session_id.in_(chunk))
            ).scalars()
        )
    controllers_of = _summarised(conn, cs.c.controller_session_id, handled_by)
    controllers_of |= _mentioning(
        conn, cs, "controller_session_id", "per_aircraft", "flight_id", member.flights, pilots
    )
    flights_of = _summarised(conn, fs.c.flight_id, worked)
    flights_of |= _mentioning(
        conn,
        fs,
        "flight_id",
        "controllers",
        "controller_session_id",
        member.controller_sessions,
        controllers,
    )
    return controllers_of - member.controller_sessions, flights_of - member.flights


def _delete_radio_and_track(
    conn: Connection, report: ForgetReport, spans: list[_Span], link: Column[Any]
) -> None:
    """Transceivers (and, for pilots, positions) of each session within its time range: both
    tables are keyed by snapshot first, and a snapshot id is the time in milliseconds."""
    tx, pos = t.transceivers, t.positions
    for span in spans:
        lo, hi = t.snapshot_id_for(span.first_seen_at), t.snapshot_id_for(span.last_seen_at)
        unlinked = and_(
            tx.c.callsign == span.callsign,
            tx.c.pilot_session_id.is_(None),
            tx.c.controller_session_id.is_(None),
            tx.c.atis_session_id.is_(None),
        )
        report.deleted["transceivers"] += conn.execute(
            delete(tx).where(tx.c.snapshot_id.between(lo, hi), or_(link == span.id, unlinked))
        ).rowcount
        if link is tx.c.pilot_session_id:
            report.deleted["positions"] += conn.execute(
                delete(pos).where(
                    pos.c.snapshot_id.between(lo, hi), pos.c.pilot_session_id == span.id
                )
            ).rowcount


def _recompute(
    conn: Connection,
    db: DatabaseService,
    report: ForgetReport,
    controllers: set[int],
    flights: set[int],
) -> None:
    """Summaries of others, now without the member; one that can no longer be computed (its
    session or flight was reopened since) is removed, to be written again when it ends."""
    writer = SummaryWriter(db)
    cs, fs = t.controller_summaries, t.flight_summaries
    for session_id in sorted(controllers):
        if writer.controller_in(conn, session_id):
            report.updated["controller_summaries"] += 1
        else:
            report.deleted["controller_summaries"] += _delete_in(
                conn, cs.c.controller_session_id, [session_id]
            )
    for flight_id in sorted(flights):
        if writer.flight_in(conn, flight_id):
            report.updated["flight_summaries"] += 1
        else:
            report.deleted["flight_summaries"] += _delete_in(conn, fs.c.flight_id, [flight_id])


def forget_member(db: DatabaseService, cid: int) -> ForgetReport:
    """Remove member ``cid`` from everything stored, in one transaction; see the module doc."""
    report = ForgetReport(cid)
    member = Member(cid)
    gone = report.deleted
    with db.write("privacy.forget") as conn:
        _take_write_lock(conn)
        flights = _locked_rows(conn, t.flights, cid)
        pilot_rows = _locked_rows(conn, t.pilot_sessions, cid)
        controller_rows = _locked_rows(conn, t.controller_sessions, cid)
        atis_rows = _locked_rows(conn, t.atis_sessions, cid)
        prefile_rows = _locked_rows(conn, t.prefiles, cid)
        sessions = [*pilot_rows, *controller_rows, *atis_rows]
        report.open_sessions = sum(1 for r in sessions if r.ended_at is None)
        member.pilot_sessions = {r.id for r in pilot_rows}
        member.controller_sessions = {r.id for r in controller_rows}
        member.atis_sessions = {r.id for r in atis_rows}
        member.flights = {r.id for r in flights} | {r.flight_id for r in pilot_rows}
        member.learn(
            (r.callsign for r in [*flights, *sessions, *prefile_rows]),
            (r.name for r in [*sessions, *prefile_rows]),
        )
        pilots, controllers, atis = _spans(pilot_rows), _spans(controller_rows), _spans(atis_rows)
        others_controllers, others_flights = _others_to_recompute(conn, member, pilots, controllers)

        _delete_radio_and_track(conn, report, pilots, t.transceivers.c.pilot_session_id)
        _delete_radio_and_track(conn, report, controllers, t.transceivers.c.controller_session_id)
        _delete_radio_and_track(conn, report, atis, t.transceivers.c.atis_session_id)
        ps_ids, cs_ids, atis_ids = (
            member.pilot_sessions,
            member.controller_sessions,
            member.atis_sessions,
        )
        fl = member.flights
        for table, by_session, by_flight in (
            (t.flight_plans, t.flight_plans.c.pilot_session_id, t.flight_plans.c.flight_id),
            (
                t.sector_occupancy,
                t.sector_occupancy.c.pilot_session_id,
                t.sector_occupancy.c.flight_id,
            ),
            (
                t.contact_intervals,
                t.contact_intervals.c.pilot_session_id,
                t.contact_intervals.c.flight_id,
            ),
            (t.movements, t.movements.c.pilot_session_id, t.movements.c.flight_id),
        ):
            gone[table.name] += _delete_in(conn, by_session, ps_ids) + _delete_in(
                conn, by_flight, fl
            )
        gone["contact_intervals"] += _delete_in(
            conn, t.contact_intervals.c.controller_session_id, cs_ids
        )
        gone["controller_frequencies"] += _delete_in(
            conn, t.controller_frequencies.c.controller_session_id, cs_ids
        )
        gone["atis_revisions"] += _delete_in(conn, t.atis_revisions.c.atis_session_id, atis_ids)
        gone["flight_summaries"] += _delete_in(conn, t.flight_summaries.c.flight_id, fl)
        gone["controller_summaries"] += _delete_in(
            conn, t.controller_summaries.c.controller_session_id, cs_ids
        )
        gone["movement_state"] += _delete_in(conn, t.movement_state.c.pilot_session_id, ps_ids)
        gone["pilot_sessions"] += _delete_in(conn, t.pilot_sessions.c.id, ps_ids)
        gone["flights"] += _delete_in(conn, t.flights.c.id, fl)
        gone["controller_sessions"] += _delete_in(conn, t.controller_sessions.c.id, cs_ids)
        gone["atis_sessions"] += _delete_in(conn, t.atis_sessions.c.id, atis_ids)
        gone["prefiles"] += _delete_in(conn, t.prefiles.c.id, {r.id for r in prefile_rows})

        _recompute(conn, db, report, others_controllers, others_flights)
        gone["events"] += forget_events(conn, member)
        gone["dead_letters"] += forget_dead_letters(conn, member)
        gone["event_outbox"] += forget_outbox(conn, member)
        held = forget_held_documents(conn, member)
        report.held_documents_unreadable = held["unreadable"]
        gone["held_documents"] += held["unreadable"] + held["still_mentioned"]
        report.updated["held_documents"] += held["rewritten"]
        # Last: names first met inside held documents are redacted too.
        report.updated["error_records"] += forget_error_records(conn, member)
    return report
