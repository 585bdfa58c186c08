"""Mapping of feed and tracking objects to table rows."""

from __future__ import annotations

from typing import Any

from vatsim_collector.feed.models import FlightPlan, Pilot
from vatsim_collector.tracking.state import ControllerSession, PilotSession

PLAN_FIELDS = (
    "flight_rules",
    "aircraft",
    "aircraft_faa",
    "aircraft_short",
    "departure",
    "arrival",
    "alternate",
    "cruise_tas",
    "altitude",
    "deptime",
    "enroute_time",
    "fuel_time",
    "remarks",
    "route",
    "revision_id",
    "assigned_transponder",
)


def plan_row(plan: FlightPlan | None) -> dict[str, Any]:
    if plan is None:
        return dict.fromkeys(PLAN_FIELDS)
    return {name: getattr(plan, name) for name in PLAN_FIELDS}


def plan_from_row(row: Any) -> FlightPlan | None:
    mapping = row._mapping
    if all(mapping[name] is None for name in PLAN_FIELDS):
        return None
    return FlightPlan(**{name: mapping[name] for name in PLAN_FIELDS if mapping[name] is not None})


def squawk(code: str) -> int | None:
    code = code.strip()
    if len(code) == 4 and code.isdigit():
        return int(code)
    return None


def squawk_text(value: int | None) -> str:
    return "" if value is None else f"{value:04d}"


POSITION_COLUMNS = (
    "snapshot_id",
    "pilot_session_id",
    "latitude",
    "longitude",
    "altitude",
    "groundspeed",
    "heading",
    "transponder",
    "qnh_mb",
)


def position_row(snapshot_id: int, session_id: int, pilot: Pilot) -> tuple[Any, ...]:
    """A positions row in ``POSITION_COLUMNS`` order."""
    return (
        snapshot_id,
        session_id,
        pilot.latitude,
        pilot.longitude,
        pilot.altitude,
        pilot.groundspeed,
        pilot.heading,
        squawk(pilot.transponder),
        pilot.qnh_mb,
    )


def pilot_session_row(session: PilotSession, store_names: bool) -> dict[str, Any]:
    pilot = session.latest
    assert session.flight.id is not None
    return {
        "cid": session.cid,
        "callsign": session.callsign,
        "logon_time": session.logon_time,
        "first_seen_at": session.first_seen,
        "last_seen_at": session.last_seen,
        "ended_at": None,
        "name": pilot.name if store_names else None,
        "server": pilot.server,
        "flight_id": session.flight.id,
        "pilot_rating": pilot.pilot_rating,
        "military_rating": pilot.military_rating,
    }


def controller_session_row(session: ControllerSession, store_names: bool) -> dict[str, Any]:
    record = session.latest
    return {
        "cid": session.cid,
        "callsign": session.callsign,
        "logon_time": session.logon_time,
        "first_seen_at": session.first_seen,
        "last_seen_at": session.last_seen,
        "ended_at": None,
        "name": record.name if store_names else None,
        "server": record.server,
        "frequency": session.frequency,
        "facility": session.facility,
        "rating": record.rating,
        "visual_range": record.visual_range,
        "is_observer": session.is_observer,
        "is_supervisor": session.is_supervisor,
        "latitude": session.latitude,
        "longitude": session.longitude,
    }
