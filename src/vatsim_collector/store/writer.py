"""Persists one snapshot's changes in the caller's transaction.

Everything a snapshot changes is written through one connection inside one transaction, so
a failure anywhere leaves the database exactly as it was before the snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Connection, Table, any_, bindparam, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from vatsim_collector.airspace.live import LiveChanges
from vatsim_collector.errors.exceptions import Category, CollectorError
from vatsim_collector.store import schema as t
from vatsim_collector.store.airspace_writer import write_changes
from vatsim_collector.store.rows import (
    POSITION_COLUMNS,
    controller_session_row,
    pilot_session_row,
    plan_row,
    position_row,
)
from vatsim_collector.store.types import MicroDegrees, to_micro_degrees
from vatsim_collector.tracking.changes import Changeset, S, SessionChanges, StationChanges
from vatsim_collector.tracking.state import Flight, Kind

_SESSION_TABLES = {
    Kind.PILOT: t.pilot_sessions,
    Kind.CONTROLLER: t.controller_sessions,
    Kind.ATIS: t.atis_sessions,
}

# SQLite allows 32,766 bound parameters per statement; stay far below it.
_IN_CHUNK = 5000


def _insert_returning_ids(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> list[int]:
    if not rows:
        return []
    stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return [row[0] for row in conn.execute(stmt, rows)]


def _insert_sessions(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert new sessions; a key already stored (a connection back after a restart) reopens
    that row instead of failing the whole snapshot on the unique constraint."""
    if not rows:
        return []
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = dialect_insert(table)
    reopen: dict[str, Any] = {"ended_at": None, "last_seen_at": stmt.excluded.last_seen_at}
    if "flight_id" in table.c:
        reopen["flight_id"] = stmt.excluded.flight_id
    upsert = stmt.on_conflict_do_update(
        index_elements=["cid", "callsign", "logon_time"], set_=reopen
    ).returning(table.c.id, sort_by_parameter_order=True)
    return [row[0] for row in conn.execute(upsert, rows)]


def _reopen(conn: Connection, table: Table, maybe_ids: Iterable[int | None]) -> None:
    ids = [i for i in maybe_ids if i is not None]
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        conn.execute(update(table).where(table.c.id.in_(chunk)).values(ended_at=None))


def _bulk_insert(
    conn: Connection, table: Table, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """Hand plain tuples straight to the driver, in the caller's transaction.

    For the thousands of position and transceiver rows per snapshot, SQLAlchemy's per-row
    parameter processing cost more than the database itself; these columns need none. On
    PostgreSQL, COPY streams the rows instead of a round of protocol messages per row.
    """
    if not rows:
        return
    quote = conn.dialect.identifier_preparer.quote
    target = f"{quote(table.name)} ({', '.join(quote(c) for c in columns)})"
    if conn.dialect.name == "postgresql":
        import psycopg  # loaded with the dialect; not imported at all on SQLite

        raw = conn.connection.driver_connection
        assert isinstance(raw, psycopg.Connection)
        statement = f"COPY {target} FROM STDIN"
        stored = _as_stored(table, columns, rows)
        try:
            with raw.cursor() as cursor, cursor.copy(statement) as copy:
                for row in stored:
                    copy.write_row(row)
        except psycopg.Error as exc:
            # The driver's own error, as SQLAlchemy would have wrapped it: an outage and a
            # refusal of the data are then told apart here as for every other statement.
            raise DBAPIError.instance(
                statement,
                None,
                exc,
                psycopg.Error,
                hide_parameters=True,
                connection_invalidated=raw.broken,
            ) from exc
        return
    marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    conn.exec_driver_sql(
        f"INSERT INTO {target} VALUES ({', '.join([marker] * len(columns))})", rows
    )


def _as_stored(
    table: Table, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> Iterable[tuple[Any, ...]]:
    """Rows as PostgreSQL stores them: COPY bypasses the column types' bind processing, so the
    degrees of MicroDegrees columns become micro-degrees here, as they do in every statement.

    Both volume tables have their two coordinates side by side; each row is rebuilt from two
    slices and the pair, the cheapest way found for the thousands of rows of a snapshot.
    """
    micro = [i for i, name in enumerate(columns) if isinstance(table.c[name].type, MicroDegrees)]
    if not micro:
        return rows
    if len(micro) != 2 or micro[1] != micro[0] + 1:
        raise ValueError(f"{table.name}: expected latitude and longitude side by side in {columns}")
    lat, lon = micro
    stored = []
    for row in rows:
        a, b = row[lat], row[lon]
        a = None if a is None else to_micro_degrees(a)
        b = None if b is None else to_micro_degrees(b)
        stored.append((*row[:lat], a, b, *row[lon + 1 :]))
    return stored


def _touch(conn: Connection, table: Table, maybe_ids: Iterable[int | None], at: datetime) -> None:
    """Set ``last_seen_at`` for the given rows in a few statements rather than one per row."""
    ids = [i for i in maybe_ids if i is not None]
    if not ids:
        return
    if conn.dialect.name == "postgresql":
        # One array parameter: the statement text stays the same, so it is parsed once.
        conn.execute(
            update(table)
            .where(table.c.id == any_(bindparam("ids", type_=postgresql.ARRAY(BigInteger))))
            .values(last_seen_at=at),
            {"ids": ids},
        )
        return
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        conn.execute(update(table).where(table.c.id.in_(chunk)).values(last_seen_at=at))


def _end(conn: Connection, table: Table, rows: Iterable[tuple[int | None, datetime]]) -> None:
    params = [{"row_id": row_id, "ended": ended} for row_id, ended in rows if row_id is not None]
    if params:
        conn.execute(
            update(table)
            .where(table.c.id == bindparam("row_id"))
            .values(ended_at=bindparam("ended"), last_seen_at=bindparam("ended")),
            params,
        )


class DuplicatePosition(CollectorError):
    """A session present twice in one snapshot's changes: a tracker bug, refused loudly."""

    category = Category.DATABASE


def _require_one_position_each(rows: list[tuple[Any, ...]]) -> None:
    """PostgreSQL's positions have no primary key (schema.py): the one row per (snapshot,
    session) that SQLite's key enforces is checked here, before any position is written; the
    snapshot's transaction then rolls back whole."""
    sessions = {row[1] for row in rows}
    if len(sessions) != len(rows):
        raise DuplicatePosition(f"{len(rows) - len(sessions)} session(s) written twice")


class SnapshotWriter:
    def __init__(self, *, store_names: bool) -> None:
        self.store_names = store_names
        # While a transaction of several snapshots is open (``defer_last_seen``): each row's
        # latest ``last_seen_at``, written once by ``flush_last_seen`` before the commit. On
        # PostgreSQL every update of a row makes a new version of it, and versions made by the
        # open transaction cannot be pruned before it ends: touching every online session in
        # each of 20 snapshots cost a bulk replay more than the rest of its batching saved.
        self._last_seen: dict[Table, dict[int, datetime]] | None = None

    def defer_last_seen(self) -> None:
        """Keep ``last_seen_at`` updates until :meth:`flush_last_seen`. Nothing written in the
        meantime may read an open row's ``last_seen_at`` (ended rows get theirs at once)."""
        self._last_seen = {}

    def flush_last_seen(self, conn: Connection) -> None:
        """Write the kept ``last_seen_at`` values, one statement per table and moment."""
        pending, self._last_seen = self._last_seen, None
        for table, seen in (pending or {}).items():
            by_moment: dict[datetime, list[int]] = {}
            for row_id, at in seen.items():
                by_moment.setdefault(at, []).append(row_id)
            for at, ids in by_moment.items():
                _touch(conn, table, sorted(ids), at)

    def discard_last_seen(self) -> None:
        """Forget the kept updates: their transaction rolled back."""
        self._last_seen = None

    def _touch(
        self, conn: Connection, table: Table, maybe_ids: Iterable[int | None], at: datetime
    ) -> None:
        if self._last_seen is None:
            _touch(conn, table, maybe_ids, at)
            return
        seen = self._last_seen.setdefault(table, {})
        for row_id in maybe_ids:
            if row_id is not None:
                seen[row_id] = at

    def write(
        self,
        conn: Connection,
        changes: Changeset,
        *,
        fetched_at: datetime,
        transceivers_fetched: bool,
        airspace: LiveChanges | None = None,
        leader_epoch: int | None = None,
    ) -> int:
        """Write ``changes`` (and the airspace analytics' own changes, when they run)."""
        snap = changes.snapshot
        at = changes.at
        snapshot_id = t.snapshot_id_for(at)
        conn.execute(
            insert(t.snapshots),
            [
                {
                    "id": snapshot_id,
                    "update_timestamp": at,
                    "fetched_at": fetched_at,
                    "status": "accepted",
                    "reason": None,
                    "pilots": len(snap.pilots),
                    "controllers": len(snap.controllers),
                    "atis": len(snap.atis),
                    "prefiles": len(snap.prefiles),
                    "transceivers": changes.transceiver_count if transceivers_fetched else None,
                    "leader_epoch": leader_epoch,
                }
            ],
        )
        self._write_flights(conn, changes)
        self._write_pilots(conn, changes, snapshot_id)
        self._write_controllers(conn, changes)
        self._write_prefiles(conn, changes)
        self._write_transceivers(conn, changes, snapshot_id)
        if airspace is not None:
            write_changes(conn, airspace)
        return snapshot_id

    def _write_flights(self, conn: Connection, changes: Changeset) -> None:
        new: list[Flight] = changes.flights.new
        ids = _insert_returning_ids(
            conn,
            t.flights,
            [
                {
                    "cid": f.cid,
                    "callsign": f.callsign,
                    "departure": f.departure,
                    "arrival": f.arrival,
                    "started_at": f.started_at,
                    "ended_at": f.ended_at,
                }
                for f in new
            ],
        )
        for flight, flight_id in zip(new, ids, strict=True):
            flight.id = flight_id
        changed = [
            {"row_id": f.id, "dep": f.departure, "arr": f.arrival, "ended": f.ended_at}
            for f in changes.flights.changed
        ]
        if changed:
            conn.execute(
                update(t.flights)
                .where(t.flights.c.id == bindparam("row_id"))
                .values(
                    departure=bindparam("dep"),
                    arrival=bindparam("arr"),
                    ended_at=bindparam("ended"),
                ),
                changed,
            )

    def _write_sessions(
        self,
        conn: Connection,
        changes: SessionChanges[S],
        row: Callable[[S, bool], dict[str, Any]],
        at: datetime,
    ) -> None:
        """One kind's session rows: insert the opened (taking their ids), end the closed,
        reopen the resumed, and mark the rest of those present as seen at ``at``."""
        table = _SESSION_TABLES[changes.kind]
        opened = changes.opened
        ids = _insert_sessions(conn, table, [row(s, self.store_names) for s in opened])
        for session, session_id in zip(opened, ids, strict=True):
            session.id = session_id
        _end(conn, table, ((s.id, s.last_seen) for s in changes.closed))
        _reopen(conn, table, (s.id for s in changes.resumed))
        opened_ids = set(ids)
        self._touch(conn, table, [s.id for s in changes.present if s.id not in opened_ids], at)

    def _write_pilots(self, conn: Connection, changes: Changeset, snapshot_id: int) -> None:
        at = changes.at
        pilots = changes.pilots
        self._write_sessions(conn, pilots, pilot_session_row, at)
        rows = [position_row(snapshot_id, s.id, s.latest) for s in pilots.present]  # type: ignore[arg-type]
        _require_one_position_each(rows)
        _bulk_insert(conn, t.positions, POSITION_COLUMNS, rows)
        if pilots.plan_revisions:
            conn.execute(
                insert(t.flight_plans),
                [
                    {
                        "pilot_session_id": session.id,
                        "flight_id": session.flight.id,
                        "first_seen_at": at,
                        **plan_row(plan),
                    }
                    for session, plan in pilots.plan_revisions
                ],
            )

    def _write_controllers(self, conn: Connection, changes: Changeset) -> None:
        at = changes.at
        for stations in (changes.controllers, changes.atis):
            self._write_sessions(conn, stations, controller_session_row, at)
            self._update_stations(conn, stations)
        if changes.atis.revisions:
            conn.execute(
                insert(t.atis_revisions),
                [
                    {
                        "atis_session_id": s.id,
                        "first_seen_at": at,
                        "atis_code": s.atis_code,
                        "text_atis": "\n".join(s.text_atis) if s.text_atis else None,
                    }
                    for s in changes.atis.revisions
                ],
            )

    @staticmethod
    def _update_stations(conn: Connection, changes: StationChanges) -> None:
        table = _SESSION_TABLES[changes.kind]
        params = [
            {
                "row_id": s.id,
                "freq": s.frequency,
                "fac": s.facility,
                "lat": s.latitude,
                "lon": s.longitude,
            }
            for s in changes.changed
            if s.id is not None
        ]
        if params:
            conn.execute(
                update(table)
                .where(table.c.id == bindparam("row_id"))
                .values(
                    frequency=bindparam("freq"),
                    facility=bindparam("fac"),
                    latitude=bindparam("lat"),
                    longitude=bindparam("lon"),
                ),
                params,
            )

    def _write_prefiles(self, conn: Connection, changes: Changeset) -> None:
        at = changes.at
        new = changes.prefiles.new
        ids = _insert_returning_ids(
            conn,
            t.prefiles,
            [
                {
                    "cid": p.cid,
                    "callsign": p.callsign,
                    "first_seen_at": at,
                    "last_seen_at": at,
                    "name": p.name if self.store_names else None,
                    **plan_row(p.plan),
                }
                for p in new
            ],
        )
        for entry, entry_id in zip(new, ids, strict=True):
            entry.id = entry_id
        new_ids = set(ids)
        self._touch(
            conn, t.prefiles, [p.id for p in changes.prefiles.present if p.id not in new_ids], at
        )
        changed = [p for p in changes.prefiles.changed if p.id is not None]
        if changed:
            conn.execute(
                update(t.prefiles)
                .where(t.prefiles.c.id == bindparam("row_id"))
                .values({name: bindparam(f"p_{name}") for name in plan_row(None)}),
                [
                    {"row_id": p.id, **{f"p_{k}": v for k, v in plan_row(p.plan).items()}}
                    for p in changed
                ],
            )
        _end(conn, t.prefiles, ((p.id, p.last_seen) for p in changes.prefiles.ended))

    @staticmethod
    def _write_transceivers(conn: Connection, changes: Changeset, snapshot_id: int) -> None:
        rows: list[tuple[Any, ...]] = []
        seen: set[tuple[str, int]] = set()
        for link in changes.transceivers:
            callsign = link.station.callsign
            pilot_id = link.pilot.id if link.pilot else None
            controller_id = link.controller.id if link.controller else None
            atis_id = link.atis.id if link.atis else None
            for tx in link.station.transceivers:
                if (callsign, tx.id) in seen:
                    continue  # the feed repeating a station would break the primary key
                seen.add((callsign, tx.id))
                rows.append(
                    (
                        snapshot_id,
                        callsign,
                        tx.id,
                        tx.frequency,
                        tx.latDeg,
                        tx.lonDeg,
                        tx.heightMslM,
                        tx.heightAglM,
                        pilot_id,
                        controller_id,
                        atis_id,
                    )
                )
        _bulk_insert(conn, t.transceivers, TRANSCEIVER_COLUMNS, rows)


TRANSCEIVER_COLUMNS = (
    "snapshot_id",
    "callsign",
    "transceiver_id",
    "frequency_hz",
    "latitude",
    "longitude",
    "height_msl_m",
    "height_agl_m",
    "pilot_session_id",
    "controller_session_id",
    "atis_session_id",
)
