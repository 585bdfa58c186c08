"""The domain events of one committed snapshot, built from its changeset.

Built once the snapshot's rows are written, when every session and flight has its database
id (inside the snapshot's transaction, so the outbox can commit them with it), and published,
after the commit, in an order a reader can follow: the snapshot first, then pilots leaving
before pilots arriving (a new logon of a callsign ends the old one), then plans, controllers
and ATIS.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from vatsim_collector.airspace.engine import AirspaceChanges
from vatsim_collector.airspace.live import LiveChanges
from vatsim_collector.events.event import Event
from vatsim_collector.events.payloads import (
    AtisChanged,
    ContactEnded,
    ContactStarted,
    ControllerConnected,
    ControllerDisconnected,
    FlightDeparted,
    FlightDiverted,
    FlightGoAround,
    FlightLanded,
    FlightplanAmended,
    FlightplanFiled,
    FlightTouchAndGo,
    Payload,
    PilotConnected,
    PilotDisconnected,
    SectorEntered,
    SectorExited,
    SnapshotReceived,
)
from vatsim_collector.feed.models import FlightPlan, Snapshot
from vatsim_collector.movements.model import Movement
from vatsim_collector.tracking.changes import Changeset
from vatsim_collector.tracking.state import ControllerSession, PilotSession

__all__ = ["PIPELINE_SOURCE", "TRACKING_SOURCE", "domain_events", "snapshot_received"]

PIPELINE_SOURCE = "pipeline"
TRACKING_SOURCE = "tracking"

_PLAN_FIELDS = FlightPlan.__struct_fields__


def _stored(value: int | None, what: str) -> int:
    if value is None:
        raise ValueError(f"{what} has no database id: events are built once its rows are written")
    return value


def snapshot_received(
    snapshot: Snapshot,
    *,
    snapshot_id: int,
    outcome: str,
    transceivers: int | None,
) -> Event:
    payload = SnapshotReceived(
        snapshot_id=snapshot_id,
        update_timestamp=snapshot.update_timestamp,
        outcome=outcome,
        pilots=len(snapshot.pilots),
        controllers=len(snapshot.controllers),
        atis=len(snapshot.atis),
        prefiles=len(snapshot.prefiles),
        transceivers=transceivers,
    )
    return Event.create(payload, time=snapshot.update_timestamp, source=PIPELINE_SOURCE)


def _pilot_connected(session: PilotSession, *, resumed: bool) -> PilotConnected:
    latest = session.latest
    return PilotConnected(
        session_id=_stored(session.id, "pilot session"),
        flight_id=_stored(session.flight.id, "flight"),
        cid=session.cid,
        callsign=session.callsign,
        logon_time=session.logon_time,
        latitude=latest.latitude,
        longitude=latest.longitude,
        altitude=latest.altitude,
        departure=session.flight.departure,
        arrival=session.flight.arrival,
        resumed=resumed,
    )


def _pilot_disconnected(session: PilotSession) -> PilotDisconnected:
    return PilotDisconnected(
        session_id=_stored(session.id, "pilot session"),
        flight_id=_stored(session.flight.id, "flight"),
        cid=session.cid,
        callsign=session.callsign,
        logon_time=session.logon_time,
        first_seen=session.first_seen,
        last_seen=session.last_seen,
    )


def _plan_fields(session: PilotSession, plan: FlightPlan) -> dict[str, object]:
    return {
        "session_id": _stored(session.id, "pilot session"),
        "flight_id": _stored(session.flight.id, "flight"),
        "cid": session.cid,
        "callsign": session.callsign,
        "flight_rules": plan.flight_rules,
        "aircraft": plan.aircraft_short or plan.aircraft,
        "departure": plan.departure,
        "arrival": plan.arrival,
        "alternate": plan.alternate,
        "altitude": plan.altitude,
        "route": plan.route,
        "revision_id": plan.revision_id,
    }


def _changed(previous: FlightPlan, plan: FlightPlan) -> tuple[str, ...]:
    return tuple(f for f in _PLAN_FIELDS if getattr(previous, f) != getattr(plan, f))


def _controller_connected(session: ControllerSession, *, resumed: bool) -> ControllerConnected:
    return ControllerConnected(
        session_id=_stored(session.id, "controller session"),
        cid=session.cid,
        callsign=session.callsign,
        logon_time=session.logon_time,
        frequency=session.frequency,
        facility=session.facility,
        rating=session.latest.rating,
        observer=session.is_observer,
        supervisor=session.is_supervisor,
        resumed=resumed,
    )


def _controller_disconnected(session: ControllerSession) -> ControllerDisconnected:
    return ControllerDisconnected(
        session_id=_stored(session.id, "controller session"),
        cid=session.cid,
        callsign=session.callsign,
        logon_time=session.logon_time,
        first_seen=session.first_seen,
        last_seen=session.last_seen,
    )


def _atis_changed(session: ControllerSession) -> AtisChanged:
    return AtisChanged(
        session_id=_stored(session.id, "ATIS session"),
        cid=session.cid,
        callsign=session.callsign,
        frequency=session.frequency,
        atis_code=session.atis_code,
        text=session.text_atis,
    )


def _payloads(changes: Changeset, airspace: LiveChanges | None) -> list[Payload]:
    out: list[Payload] = [_pilot_disconnected(s) for s in changes.pilots.closed]
    out.extend(_pilot_connected(s, resumed=False) for s in changes.pilots.opened)
    out.extend(_pilot_connected(s, resumed=True) for s in changes.pilots.resumed)
    out.extend(FlightplanFiled(**_plan_fields(s, p)) for s, p in changes.pilots.filed_plans)  # type: ignore[arg-type]
    out.extend(
        FlightplanAmended(**_plan_fields(s, p), changed=_changed(prev, p))  # type: ignore[arg-type]
        for s, p, prev in changes.pilots.amended_plans
    )
    out.extend(_controller_disconnected(s) for s in changes.controllers.closed)
    out.extend(_controller_connected(s, resumed=False) for s in changes.controllers.opened)
    out.extend(_controller_connected(s, resumed=True) for s in changes.controllers.resumed)
    out.extend(_atis_changed(s) for s in changes.atis.revisions)
    if airspace is not None:
        out.extend(_airspace(airspace.airspace))
    return out


def _airspace(changes: AirspaceChanges) -> list[Payload]:
    out: list[Payload] = []
    for o in changes.exited:
        out.append(
            SectorExited(
                session_id=_stored(o.pilot.id, "pilot session"),
                flight_id=_stored(o.pilot.flight.id, "flight"),
                cid=o.pilot.cid,
                callsign=o.pilot.callsign,
                sector=o.sector,
                entered_at=o.entered_at,
                exited_at=o.last_inside_at,
                latitude=o.last_inside.latitude,
                longitude=o.last_inside.longitude,
                altitude=o.last_inside.altitude,
            )
        )
    for o in changes.entered:
        out.append(
            SectorEntered(
                session_id=_stored(o.pilot.id, "pilot session"),
                flight_id=_stored(o.pilot.flight.id, "flight"),
                cid=o.pilot.cid,
                callsign=o.pilot.callsign,
                sector=o.sector,
                latitude=o.entry.latitude,
                longitude=o.entry.longitude,
                altitude=o.entry.altitude,
            )
        )
    for c in changes.contacts_ended:
        out.append(
            ContactEnded(
                pilot_session_id=_stored(c.pilot.id, "pilot session"),
                flight_id=_stored(c.pilot.flight.id, "flight"),
                callsign=c.pilot.callsign,
                controller_session_id=_stored(c.controller.id, "controller session"),
                controller_callsign=c.controller.callsign,
                frequency_hz=c.frequency_hz,
                started_at=c.started_at,
                ended_at=c.last_contact_at,
            )
        )
    for c in changes.contacts_started:
        out.append(
            ContactStarted(
                pilot_session_id=_stored(c.pilot.id, "pilot session"),
                flight_id=_stored(c.pilot.flight.id, "flight"),
                callsign=c.pilot.callsign,
                controller_session_id=_stored(c.controller.id, "controller session"),
                controller_callsign=c.controller.callsign,
                frequency_hz=c.frequency_hz,
            )
        )
    return out


_MOVEMENT_EVENTS: dict[
    str, type[FlightDeparted | FlightLanded | FlightTouchAndGo | FlightGoAround]
] = {
    "takeoff": FlightDeparted,
    "landing": FlightLanded,
    "touch_and_go": FlightTouchAndGo,
    "go_around": FlightGoAround,
}


def _movements(movements: Sequence[Movement]) -> list[Payload]:
    """``flight.*`` events of the movements that have one (off- and on-block have none), in
    the detector's order; a diverted landing is followed by its ``flight.diverted``."""
    out: list[Payload] = []
    for m in movements:
        kind = _MOVEMENT_EVENTS.get(m.kind)
        if kind is None:
            continue
        session = m.ref
        if not isinstance(session, PilotSession):
            raise TypeError("a live movement's ref is its PilotSession")
        fields = {
            "session_id": _stored(session.id, "pilot session"),
            "flight_id": _stored(session.flight.id, "flight"),
            "cid": session.cid,
            "callsign": session.callsign,
            "airport": m.airport,
            "at": m.at,
            "runway_heading": m.runway_heading,
            "filed_arrival": m.filed_arrival,
            "diversion": m.diversion,
        }
        out.append(kind(**fields))  # type: ignore[arg-type]
        if m.kind == "landing" and m.diversion:
            out.append(FlightDiverted(**fields))  # type: ignore[arg-type]
    return out


def domain_events(
    changes: Changeset,
    airspace: LiveChanges | None = None,
    movements: Sequence[Movement] = (),
    *,
    correlation_id: str | None,
) -> list[Event]:
    """The events of one committed snapshot's changes, airspace analytics' and movements'
    included."""
    at: datetime = changes.at
    return [
        Event.create(p, time=at, source=TRACKING_SOURCE, correlation_id=correlation_id)
        for p in [*_payloads(changes, airspace), *_movements(movements)]
    ]
