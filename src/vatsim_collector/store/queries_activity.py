"""Reads for controller activity: the stretches of time each controller spent on position.

A controller session is on position from the first snapshot it appeared in to the last one
(``first_seen_at`` to ``last_seen_at``): that is what the collector saw, so a restart or a
missed snapshot never changes it. Within a session, ``controller_frequencies`` records each
change of frequency or facility; a stretch runs from one change to the next (or to the end of
the session). Without those rows (airspace analytics off), the session's own frequency and
facility stand for the whole session.

What is not controlling is left out unless asked for: observer connections (facility 0, the
199.998 "no frequency" placeholder, ``_OBS`` callsigns), supervisor connections (``_SUP``
callsigns; a supervisor-rated member staffing a real position counts), and ATIS.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Float,
    Row,
    Table,
    Text,
    and_,
    case,
    column,
    func,
    literal,
    or_,
    select,
    values,
)

from vatsim_collector.store import schema as t
from vatsim_collector.store.types import UTCDateTime
from vatsim_collector.tracking.state import OBSERVER_FREQUENCY

# Chunks of ids per IN list: SQLite allows 32,766 bound parameters per statement.
_IN_CHUNK = 5000
# Stretches per VALUES list: four parameters each.
_STRETCH_CHUNK = 8000


@dataclass(frozen=True)
class Stretch:
    """Time a station spent on one frequency and facility, clipped to the asked window."""

    session_id: int
    atis: bool
    cid: int
    callsign: str
    facility: int
    frequency: str | None
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class ActivityFilter:
    start: datetime
    end: datetime
    cid: int | None = None
    # An exact callsign, or a prefix ending in ``*`` (``EGLL_*``), case-insensitive.
    callsign: str | None = None
    facility: int | None = None
    include_observers: bool = False
    include_atis: bool = False
    # Callsign prefixes, any of which may match (case-insensitive, matched literally): the
    # event report asks for all of its airports' positions (``EGLL_``, ``LHR_``) at once.
    prefixes: tuple[str, ...] = ()


def _observing(callsign: str, facility: int, frequency: str | None) -> bool:
    upper = callsign.upper()
    return (
        facility == 0
        or frequency == OBSERVER_FREQUENCY
        or upper.endswith("_OBS")
        or upper.endswith("_SUP")
    )


def _like_prefix(prefix: str) -> str:
    # Callsigns are letters, digits, '_' and '-'; '_' is LIKE's one-character wildcard, so it
    # is escaped (and so are '%' and the escape character itself).
    escaped = prefix.upper().replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")
    return escaped + "%"


def _sessions(conn: Connection, table: Table, f: ActivityFilter) -> Sequence[Row[Any]]:
    c = table.c
    clauses = [c.first_seen_at < f.end, c.last_seen_at > f.start]
    if f.cid is not None:
        clauses.append(c.cid == f.cid)
    if f.callsign is not None:
        wanted = f.callsign.upper()
        if wanted.endswith("*"):
            clauses.append(func.upper(c.callsign).like(_like_prefix(wanted[:-1]), escape="\\"))
        else:
            clauses.append(func.upper(c.callsign) == wanted)
    if f.prefixes:
        clauses.append(
            or_(*(func.upper(c.callsign).like(_like_prefix(p), escape="\\") for p in f.prefixes))
        )
    return conn.execute(select(table).where(and_(*clauses)).order_by(c.id)).all()


def _changes(
    conn: Connection, ids: Sequence[int]
) -> dict[int, list[tuple[datetime, str | None, int]]]:
    """Each session's frequency and facility changes, in time order."""
    found: dict[int, list[tuple[datetime, str | None, int]]] = defaultdict(list)
    fr = t.controller_frequencies.c
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = list(ids[start : start + _IN_CHUNK])
        for row in conn.execute(
            select(fr.controller_session_id, fr.first_seen_at, fr.frequency, fr.facility)
            .where(fr.controller_session_id.in_(chunk))
            .order_by(fr.controller_session_id, fr.first_seen_at, fr.id)
        ):
            found[row.controller_session_id].append(
                (row.first_seen_at, row.frequency, row.facility)
            )
    return found


def _clip(start: datetime, end: datetime, f: ActivityFilter) -> tuple[datetime, datetime] | None:
    start, end = max(start, f.start), min(end, f.end)
    return (start, end) if end > start else None


def stretches(conn: Connection, f: ActivityFilter) -> list[Stretch]:
    """Every stretch on position overlapping the window, clipped to it; the filter's facility
    applies to each stretch (a controller moving from TWR to APP counts under both)."""
    out: list[Stretch] = []
    controllers = _sessions(conn, t.controller_sessions, f)
    changes = _changes(conn, [row.id for row in controllers])
    for row in controllers:
        steps = changes.get(row.id) or [(row.first_seen_at, row.frequency, row.facility)]
        for index, (at, frequency, facility) in enumerate(steps):
            until = steps[index + 1][0] if index + 1 < len(steps) else row.last_seen_at
            window = _clip(row.first_seen_at if index == 0 else at, until, f)
            if window is None or (f.facility is not None and facility != f.facility):
                continue
            if not f.include_observers and _observing(row.callsign, facility, frequency):
                continue
            out.append(Stretch(row.id, False, row.cid, row.callsign, facility, frequency, *window))
    if f.include_atis:
        for row in _sessions(conn, t.atis_sessions, f):
            window = _clip(row.first_seen_at, row.last_seen_at, f)
            if window is None or (f.facility is not None and row.facility != f.facility):
                continue
            out.append(
                Stretch(row.id, True, row.cid, row.callsign, row.facility, row.frequency, *window)
            )
    return out


def aircraft_handled(conn: Connection, keyed: Sequence[tuple[str, Stretch]]) -> dict[str, int]:
    """Per group key, the distinct flights in ATC contact with the group's controllers during
    its stretches (ATIS stretches handle none).

    The stretches go to the database as a VALUES list and the overlap is tested and counted
    there: a day has tens of thousands of contacts, and reading them into Python cost several
    times the query. More stretches than one list holds are matched list by list and their
    (key, flight) pairs united here, so a flight is still counted once per key."""
    wanted = [(key, s) for key, s in keyed if not s.atis]
    chunks = [wanted[i : i + _STRETCH_CHUNK] for i in range(0, len(wanted), _STRETCH_CHUNK)]
    counts: dict[str, int] = {}
    pairs: dict[str, set[int]] = defaultdict(set)
    ci = t.contact_intervals.c
    for chunk in chunks:
        listed = (
            values(
                column("grp", Text),
                column("session_id", BigInteger),
                column("start", UTCDateTime),
                column("end", UTCDateTime),
                name="stretch",
            )
            .data([(key, s.session_id, s.start, s.end) for key, s in chunk])
            # A CTE: SQLite takes no column names after a VALUES subquery's alias.
            .cte("stretch")
        )
        joined = listed.join(
            t.contact_intervals,
            and_(
                ci.controller_session_id == listed.c.session_id,
                ci.started_at < listed.c.end,
                # A contact still open at the end of the data lasts to the stretch's end.
                or_(ci.ended_at.is_(None), ci.ended_at > listed.c.start),
            ),
        )
        if len(chunks) == 1:
            for key, n in conn.execute(
                select(listed.c.grp, func.count(ci.flight_id.distinct()))
                .select_from(joined)
                .group_by(listed.c.grp)
            ):
                counts[key] = int(n)
        else:
            for key, flight_id in conn.execute(
                select(listed.c.grp, ci.flight_id).distinct().select_from(joined)
            ):
                pairs[key].add(int(flight_id))
    counts.update({key: len(flights) for key, flights in pairs.items()})
    return counts


# -- pilots ----------------------------------------------------------------------------------

# The movements that start and end time in the air (go-arounds and blocks do not).
AIRBORNE_KINDS = ("takeoff", "landing", "touch_and_go")


@dataclass(frozen=True)
class PilotSpan:
    """A pilot session as seen (not clipped), with its take-offs, landings and touch-and-goes
    in time order: ``(at, kind, airport)``."""

    session_id: int
    cid: int
    flight_id: int
    first_seen: datetime
    last_seen: datetime
    movements: tuple[tuple[datetime, str, str | None], ...]


def _seconds(conn: Connection, later: Any, earlier: Any) -> Any:
    """Seconds from ``earlier`` to ``later`` in SQL, the way each database spells it. SQLite's
    Julian days carry about 50 microseconds of rounding at today's dates: far below the 4
    decimals of an hour the endpoints give."""
    if conn.dialect.name == "postgresql":
        return func.extract("epoch", later - earlier).cast(Float)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def _overlapping(start: datetime, end: datetime, cid: int | None) -> list[Any]:
    p = t.pilot_sessions.c
    clauses = [p.first_seen_at < end, p.last_seen_at > start]
    if cid is not None:
        clauses.append(p.cid == cid)
    return clauses


@dataclass(frozen=True)
class PilotHours:
    cid: int
    seconds: float


@dataclass(frozen=True)
class PilotHoursTotals:
    pilots: int
    seconds: float
    sessions: int
    flights: int


def _clipped_seconds(conn: Connection, start: datetime, end: datetime) -> Any:
    p = t.pilot_sessions.c
    low = case((p.first_seen_at > start, p.first_seen_at), else_=literal(start, UTCDateTime()))
    high = case((p.last_seen_at < end, p.last_seen_at), else_=literal(end, UTCDateTime()))
    return _seconds(conn, high, low)


def pilot_hours(
    conn: Connection, start: datetime, end: datetime, cid: int | None, limit: int, offset: int
) -> list[PilotHours]:
    """One page of members by time online in ``[start, end)`` (sessions cut to it), most
    first, then by CID. Summed in the database: a day holds tens of thousands of sessions,
    and reading them all cost ten times the target."""
    p = t.pilot_sessions.c
    seconds = func.sum(_clipped_seconds(conn, start, end))
    # Rounded for the order on SQLite, whose sums carry rounding noise: equal times must tie,
    # and ties go by CID.
    order = func.round(seconds, 3) if conn.dialect.name == "sqlite" else seconds
    return [
        PilotHours(int(row.cid), float(row.seconds))
        for row in conn.execute(
            select(p.cid, seconds.label("seconds"))
            .where(*_overlapping(start, end, cid))
            .group_by(p.cid)
            .order_by(order.desc(), p.cid)
            .limit(limit)
            .offset(offset)
        )
    ]


def pilot_hours_totals(
    conn: Connection, start: datetime, end: datetime, cid: int | None
) -> PilotHoursTotals:
    p = t.pilot_sessions.c
    row = conn.execute(
        select(
            func.count(p.cid.distinct()),
            func.coalesce(func.sum(_clipped_seconds(conn, start, end)), 0.0),
            func.count(),
            func.count(p.flight_id.distinct()),
        ).where(*_overlapping(start, end, cid))
    ).one()
    return PilotHoursTotals(int(row[0]), float(row[1]), int(row[2]), int(row[3]))


def pilot_spans(
    conn: Connection, start: datetime, end: datetime, cids: Sequence[int]
) -> list[PilotSpan]:
    """The pilot sessions of ``cids`` overlapping ``[start, end)``, with all of their airborne
    movements, the ones outside the window too: a take-off before it starts the time in the
    air the window counts, and a session's first movement says whether it was first seen in
    the air. Meant for a page of members: the movements are read by session id."""
    p, m = t.pilot_sessions.c, t.movements.c
    sessions: list[Row[Any]] = []
    for first in range(0, len(cids), _IN_CHUNK):
        chunk = list(cids[first : first + _IN_CHUNK])
        sessions.extend(
            conn.execute(
                select(p.id, p.cid, p.flight_id, p.first_seen_at, p.last_seen_at).where(
                    *_overlapping(start, end, None), p.cid.in_(chunk)
                )
            )
        )
    ids = sorted(row.id for row in sessions)
    moves: dict[int, list[tuple[datetime, str, str | None]]] = defaultdict(list)
    for first in range(0, len(ids), _IN_CHUNK):
        for row in conn.execute(
            select(m.pilot_session_id, m.at, m.kind, m.airport)
            .where(m.pilot_session_id.in_(ids[first : first + _IN_CHUNK]))
            .where(m.kind.in_(AIRBORNE_KINDS))
            .order_by(m.pilot_session_id, m.at, m.id)
        ):
            moves[row.pilot_session_id].append((row.at, row.kind, row.airport))
    return [
        PilotSpan(
            row.id,
            row.cid,
            row.flight_id,
            row.first_seen_at,
            row.last_seen_at,
            tuple(moves.get(row.id, ())),
        )
        for row in sorted(sessions, key=lambda row: row.id)
    ]
