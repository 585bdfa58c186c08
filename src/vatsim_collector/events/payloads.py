"""The payload of each domain event type. The msgspec tag of a payload *is* its event type.

Payloads carry ids and facts, never members' names: events are logged and may be replayed to
handlers long after the fact, and names are personal data (docs/architecture.md).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec

__all__ = [
    "AtisChanged",
    "ContactEnded",
    "ContactStarted",
    "ControllerConnected",
    "ControllerDisconnected",
    "EventLogGap",
    "EventType",
    "FlightDeparted",
    "FlightDiverted",
    "FlightGoAround",
    "FlightLanded",
    "FlightTouchAndGo",
    "FlightplanAmended",
    "FlightplanFiled",
    "Payload",
    "PilotConnected",
    "PilotDisconnected",
    "SectorEntered",
    "SectorExited",
    "SnapshotReceived",
]


class EventType(StrEnum):
    SNAPSHOT_RECEIVED = "snapshot.received"
    PILOT_CONNECTED = "pilot.connected"
    PILOT_DISCONNECTED = "pilot.disconnected"
    FLIGHTPLAN_FILED = "flightplan.filed"
    FLIGHTPLAN_AMENDED = "flightplan.amended"
    CONTROLLER_CONNECTED = "controller.connected"
    CONTROLLER_DISCONNECTED = "controller.disconnected"
    ATIS_CHANGED = "atis.changed"
    SECTOR_ENTERED = "sector.entered"
    SECTOR_EXITED = "sector.exited"
    CONTACT_STARTED = "contact.started"
    CONTACT_ENDED = "contact.ended"
    FLIGHT_DEPARTED = "flight.departed"
    FLIGHT_LANDED = "flight.landed"
    FLIGHT_TOUCH_AND_GO = "flight.touch_and_go"
    FLIGHT_GO_AROUND = "flight.go_around"
    FLIGHT_DIVERTED = "flight.diverted"
    EVENTLOG_GAP = "eventlog.gap"


class _Payload(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", gc=False):
    pass


class SnapshotReceived(_Payload, frozen=True, tag=EventType.SNAPSHOT_RECEIVED.value):
    """A new snapshot was accepted (``ingested``) or held back by the sanity gate
    (``quarantined``); duplicates and undecodable documents publish nothing."""

    snapshot_id: int
    update_timestamp: datetime
    outcome: str
    pilots: int
    controllers: int
    atis: int
    prefiles: int
    transceivers: int | None


class PilotConnected(_Payload, frozen=True, tag=EventType.PILOT_CONNECTED.value):
    """A pilot connection appeared, or one ended by the missed-snapshot rule came back
    (``resumed``: the same session continues)."""

    session_id: int
    flight_id: int
    cid: int
    callsign: str
    logon_time: datetime
    latitude: float
    longitude: float
    altitude: int
    departure: str | None
    arrival: str | None
    resumed: bool = False


class PilotDisconnected(_Payload, frozen=True, tag=EventType.PILOT_DISCONNECTED.value):
    """A pilot session ended: missing for N snapshots, or replaced by a new logon of the
    same callsign. ``last_seen`` is the end time."""

    session_id: int
    flight_id: int
    cid: int
    callsign: str
    logon_time: datetime
    first_seen: datetime
    last_seen: datetime


class _Plan(_Payload, frozen=True):
    session_id: int
    flight_id: int
    cid: int
    callsign: str
    flight_rules: str
    aircraft: str
    departure: str
    arrival: str
    alternate: str
    altitude: str
    route: str
    revision_id: int | None


class FlightplanFiled(_Plan, frozen=True, tag=EventType.FLIGHTPLAN_FILED.value):
    """A flight has a plan for the first time."""


class FlightplanAmended(_Plan, frozen=True, tag=EventType.FLIGHTPLAN_AMENDED.value):
    """A flight's plan differs from its previous one; ``changed`` names the fields."""

    changed: tuple[str, ...]


class ControllerConnected(_Payload, frozen=True, tag=EventType.CONTROLLER_CONNECTED.value):
    session_id: int
    cid: int
    callsign: str
    logon_time: datetime
    frequency: str
    facility: int
    rating: int
    observer: bool
    supervisor: bool
    resumed: bool = False


class ControllerDisconnected(_Payload, frozen=True, tag=EventType.CONTROLLER_DISCONNECTED.value):
    session_id: int
    cid: int
    callsign: str
    logon_time: datetime
    first_seen: datetime
    last_seen: datetime


class AtisChanged(_Payload, frozen=True, tag=EventType.ATIS_CHANGED.value):
    """An ATIS station's letter or text changed, or the station was seen for the first time."""

    session_id: int
    cid: int
    callsign: str
    frequency: str
    atis_code: str | None
    text: tuple[str, ...] | None


class SectorEntered(_Payload, frozen=True, tag=EventType.SECTOR_ENTERED.value):
    """A flight's first snapshot inside a sector (the most specific one containing it)."""

    session_id: int
    flight_id: int
    cid: int
    callsign: str
    sector: str
    latitude: float
    longitude: float
    altitude: int


class SectorExited(_Payload, frozen=True, tag=EventType.SECTOR_EXITED.value):
    """Outside the sector for N snapshots in a row, or the session ended. The exit is the last
    snapshot inside: ``exited_at`` and the position there."""

    session_id: int
    flight_id: int
    cid: int
    callsign: str
    sector: str
    entered_at: datetime
    exited_at: datetime
    latitude: float
    longitude: float
    altitude: int


class ContactStarted(_Payload, frozen=True, tag=EventType.CONTACT_STARTED.value):
    """A pilot tuned to a controller's frequency within its range (docs/architecture.md)."""

    pilot_session_id: int
    flight_id: int
    callsign: str
    controller_session_id: int
    controller_callsign: str
    frequency_hz: int


class ContactEnded(_Payload, frozen=True, tag=EventType.CONTACT_ENDED.value):
    """The contact's last snapshot was ``ended_at``."""

    pilot_session_id: int
    flight_id: int
    callsign: str
    controller_session_id: int
    controller_callsign: str
    frequency_hz: int
    started_at: datetime
    ended_at: datetime


class _Movement(_Payload, frozen=True):
    """A movement of a pilot session (movements/): ``airport`` is the nearest airport within
    the radius (null: none), ``at`` the estimated moment, ``runway_heading`` the true track in
    whole degrees when the samples show it, ``filed_arrival`` the plan's arrival then, and
    ``diversion`` whether a landing was away from it."""

    session_id: int
    flight_id: int
    cid: int
    callsign: str
    airport: str | None
    at: datetime
    runway_heading: int | None
    filed_arrival: str | None
    diversion: bool


class FlightDeparted(_Movement, frozen=True, tag=EventType.FLIGHT_DEPARTED.value):
    """A takeoff."""


class FlightLanded(_Movement, frozen=True, tag=EventType.FLIGHT_LANDED.value):
    """A landing (a full stop, or the aircraft left the runway's speed behind)."""


class FlightTouchAndGo(_Movement, frozen=True, tag=EventType.FLIGHT_TOUCH_AND_GO.value):
    """Touched down and took off again without stopping."""


class FlightGoAround(_Movement, frozen=True, tag=EventType.FLIGHT_GO_AROUND.value):
    """Descended low near an airport and climbed away without touching down."""


class FlightDiverted(_Movement, frozen=True, tag=EventType.FLIGHT_DIVERTED.value):
    """A landing away from the filed arrival; published after its ``flight.landed``."""


class EventLogGap(_Payload, frozen=True, tag=EventType.EVENTLOG_GAP.value):
    """Events missing from the event log from here: its queue was full when they were
    published, so they were shed. Written by the log itself (never published on the bus) with
    the correlation id of the snapshot they came from; ``lost`` counts them by type and
    ``first_time``/``last_time`` bound their network times. A back-fill from the log cannot
    replay them: the snapshot's stored rows still hold the facts."""

    snapshot_time: datetime | None
    first_time: datetime
    last_time: datetime
    events: int
    lost: dict[str, int]


Payload = (
    SnapshotReceived
    | PilotConnected
    | PilotDisconnected
    | FlightplanFiled
    | FlightplanAmended
    | ControllerConnected
    | ControllerDisconnected
    | AtisChanged
    | SectorEntered
    | SectorExited
    | ContactStarted
    | ContactEnded
    | FlightDeparted
    | FlightLanded
    | FlightTouchAndGo
    | FlightGoAround
    | FlightDiverted
    | EventLogGap
)
