"""Movement rows and the detector's saved state per open pilot session (movements/).

Written in the caller's transaction: live ingest writes them with the snapshot that confirmed
them, recompute replaces a set of sessions' rows wholesale. Every write is one executemany, and
nothing is sent when a snapshot changed nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from vatsim_collector.movements.model import Movement
from vatsim_collector.store import schema as t
from vatsim_collector.store.recompute_rows import chunks

__all__ = [
    "SavedState",
    "delete_session_movements",
    "delete_states",
    "insert_movements",
    "open_session_states",
    "replace_states",
    "save_states",
]

_mv = t.movements
_st = t.movement_state


@dataclass(frozen=True, slots=True)
class SavedState:
    """A session's detector state as the database should hold it (``snapshot_id``: the
    snapshot that last changed it)."""

    pilot_session_id: int
    state: str
    snapshot_id: int


def _row(m: Movement, session_id: int, flight_id: int, cid: int, callsign: str) -> dict[str, Any]:
    return {
        "pilot_session_id": session_id,
        "flight_id": flight_id,
        "cid": cid,
        "callsign": callsign,
        "kind": m.kind,
        "airport": m.airport,
        "at": m.at,
        "bracket_from": m.bracket_from,
        "bracket_to": m.bracket_to,
        "runway_heading": m.runway_heading,
        "diversion": m.diversion,
        "filed_arrival": m.filed_arrival,
    }


def insert_movements(
    conn: Connection,
    rows: Iterable[tuple[Movement, int, int, int, str]],
    snapshot_id: int | None = None,
    *,
    snapshot_ids: Sequence[int] | None = None,
) -> int:
    """Insert (movement, pilot session id, flight id, cid, callsign) rows, confirmed by
    ``snapshot_id`` (or each by its own in ``snapshot_ids``); how many."""
    params = [_row(m, s, f, c, cs) for m, s, f, c, cs in rows]
    if not params:
        return 0
    if snapshot_ids is not None:
        for param, sid in zip(params, snapshot_ids, strict=True):
            param["snapshot_id"] = sid
    else:
        if snapshot_id is None:
            raise ValueError("movements need the snapshot that confirmed them")
        for param in params:
            param["snapshot_id"] = snapshot_id
    conn.execute(insert(_mv), params)
    return len(params)


def save_states(
    conn: Connection, saved: Sequence[tuple[int, str]], dropped: Sequence[int], snapshot_id: int
) -> None:
    """Upsert the states of ``saved`` (session id, state) and delete those of ``dropped``, in
    one statement each."""
    if dropped:
        delete_states(conn, dropped)
    if not saved:
        return
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = dialect_insert(_st)
    upsert = stmt.on_conflict_do_update(
        index_elements=["pilot_session_id"],
        set_={"state": stmt.excluded.state, "snapshot_id": stmt.excluded.snapshot_id},
    )
    conn.execute(
        upsert,
        [{"pilot_session_id": i, "state": s, "snapshot_id": snapshot_id} for i, s in saved],
    )


def replace_states(
    conn: Connection, session_ids: Sequence[int], states: Sequence[SavedState]
) -> int:
    """Delete the saved states of ``session_ids``, then store ``states``; how many stored."""
    delete_states(conn, session_ids)
    if states:
        conn.execute(
            insert(_st),
            [
                {
                    "pilot_session_id": s.pilot_session_id,
                    "state": s.state,
                    "snapshot_id": s.snapshot_id,
                }
                for s in states
            ],
        )
    return len(states)


def delete_states(conn: Connection, session_ids: Sequence[int]) -> int:
    deleted = 0
    for chunk in chunks(list(session_ids)):
        deleted += conn.execute(delete(_st).where(_st.c.pilot_session_id.in_(chunk))).rowcount
    return deleted


def delete_session_movements(conn: Connection, session_ids: Sequence[int]) -> int:
    """Remove these pilot sessions' movements (recompute writes them anew); how many."""
    deleted = 0
    for chunk in chunks(list(session_ids)):
        deleted += conn.execute(delete(_mv).where(_mv.c.pilot_session_id.in_(chunk))).rowcount
    return deleted


def open_session_states(conn: Connection) -> dict[int, str]:
    """The saved detector state of every open pilot session that has one, by session id."""
    ps = t.pilot_sessions
    return {
        row.pilot_session_id: row.state
        for row in conn.execute(
            select(_st.c.pilot_session_id, _st.c.state)
            .join(ps, ps.c.id == _st.c.pilot_session_id)
            .where(ps.c.ended_at.is_(None))
        )
    }
