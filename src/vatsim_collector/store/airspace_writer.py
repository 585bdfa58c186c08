"""Writes one snapshot's airspace changes, in the snapshot's transaction, after its sessions
(whose ids the rows refer to) have been written.

Open rows are found again by their natural keys -- (session, sector, entry time) and
(pilot session, controller session, start time) -- so the engine's state needs no row ids.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, bindparam, insert, update

from vatsim_collector.airspace.engine import AirspaceChanges, OpenContact, OpenOccupancy
from vatsim_collector.airspace.live import FrequencyChange, LiveChanges
from vatsim_collector.store import schema as t

__all__ = ["write_airspace", "write_changes"]

_occ = t.sector_occupancy
_con = t.contact_intervals


def _id(value: int | None, what: str) -> int:
    if value is None:
        raise ValueError(f"{what} has no id: write the sessions before the airspace rows")
    return value


def _occupancy_row(o: OpenOccupancy) -> dict[str, Any]:
    return {
        "pilot_session_id": _id(o.pilot.id, "pilot session"),
        "flight_id": _id(o.pilot.flight.id, "flight"),
        "sector": o.sector,
        "entered_at": o.entered_at,
        "entry_latitude": o.entry.latitude,
        "entry_longitude": o.entry.longitude,
        "entry_altitude": o.entry.altitude,
    }


def _exit_row(o: OpenOccupancy) -> dict[str, Any]:
    return {
        "k_session": _id(o.pilot.id, "pilot session"),
        "k_sector": o.sector,
        "k_entered": o.entered_at,
        "exited_at": o.last_inside_at,
        "exit_latitude": o.last_inside.latitude,
        "exit_longitude": o.last_inside.longitude,
        "exit_altitude": o.last_inside.altitude,
    }


def _contact_row(c: OpenContact) -> dict[str, Any]:
    return {
        "pilot_session_id": _id(c.pilot.id, "pilot session"),
        "flight_id": _id(c.pilot.flight.id, "flight"),
        "controller_session_id": _id(c.controller.id, "controller session"),
        "frequency_hz": c.frequency_hz,
        "started_at": c.started_at,
    }


def _frequency_row(f: FrequencyChange) -> dict[str, Any]:
    return {
        "controller_session_id": _id(f.controller.id, "controller session"),
        "first_seen_at": f.at,
        "frequency": f.frequency,
        "facility": f.facility,
    }


_EXIT = (
    update(_occ)
    .where(
        and_(
            _occ.c.pilot_session_id == bindparam("k_session"),
            _occ.c.sector == bindparam("k_sector"),
            _occ.c.entered_at == bindparam("k_entered"),
        )
    )
    .values(
        exited_at=bindparam("exited_at"),
        exit_latitude=bindparam("exit_latitude"),
        exit_longitude=bindparam("exit_longitude"),
        exit_altitude=bindparam("exit_altitude"),
    )
)

_END = (
    update(_con)
    .where(
        and_(
            _con.c.pilot_session_id == bindparam("k_pilot"),
            _con.c.controller_session_id == bindparam("k_controller"),
            _con.c.started_at == bindparam("k_started"),
        )
    )
    .values(ended_at=bindparam("ended_at"))
)


def write_airspace(conn: Connection, changes: AirspaceChanges) -> None:
    if changes.entered:
        conn.execute(insert(_occ), [_occupancy_row(o) for o in changes.entered])
    if changes.exited:
        conn.execute(_EXIT, [_exit_row(o) for o in changes.exited])
    if changes.contacts_started:
        conn.execute(insert(_con), [_contact_row(c) for c in changes.contacts_started])
    if changes.contacts_ended:
        conn.execute(
            _END,
            [
                {
                    "k_pilot": _id(c.pilot.id, "pilot session"),
                    "k_controller": _id(c.controller.id, "controller session"),
                    "k_started": c.started_at,
                    "ended_at": c.last_contact_at,
                }
                for c in changes.contacts_ended
            ],
        )


def write_changes(conn: Connection, live: LiveChanges) -> None:
    if live.frequencies:
        conn.execute(
            insert(t.controller_frequencies), [_frequency_row(f) for f in live.frequencies]
        )
    write_airspace(conn, live.airspace)
