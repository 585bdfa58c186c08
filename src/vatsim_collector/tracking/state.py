"""What the tracker remembers between snapshots: the open sessions, flights and prefiles.

These objects are shared by reference between the tracker (which decides), the writer (which
fills in database ids after insert) and the API (which reads live state). Only the ingest
task mutates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property

from vatsim_collector.feed.models import Atis, Controller, FlightPlan, Pilot

OBSERVER_FREQUENCY = "199.998"
# VATSIM rating ids 11 and 12 are SUP and ADM: network supervisors and administrators.
SUPERVISOR_RATINGS = frozenset({11, 12})

SessionKey = tuple[int, str, datetime]


class Kind(StrEnum):
    PILOT = "pilot"
    CONTROLLER = "controller"
    ATIS = "atis"


@dataclass(eq=False)
class Flight:
    cid: int
    callsign: str
    departure: str | None
    arrival: str | None
    started_at: datetime
    id: int | None = None
    ended_at: datetime | None = None
    # The flight's latest plan, across its sessions: what tells a plan filed for the first time
    # from an amendment, and a reconnect re-publishing the same plan from either.
    plan: FlightPlan | None = None


@dataclass(eq=False)
class PilotSession:
    cid: int
    callsign: str
    logon_time: datetime
    first_seen: datetime
    last_seen: datetime
    flight: Flight
    latest: Pilot
    plan: FlightPlan | None
    id: int | None = None
    missed: int = 0

    @cached_property
    def key(self) -> SessionKey:
        # Made once: asked for every pilot at every snapshot, and a session's identity never
        # changes.
        return (self.cid, self.callsign, self.logon_time)


@dataclass(eq=False)
class ControllerSession:
    """A controller or ATIS connection; ATIS stations use the same shape."""

    kind: Kind
    cid: int
    callsign: str
    logon_time: datetime
    first_seen: datetime
    last_seen: datetime
    latest: Controller | Atis
    frequency: str
    facility: int
    is_observer: bool
    is_supervisor: bool
    atis_code: str | None = None
    text_atis: tuple[str, ...] | None = None
    latitude: float | None = None
    longitude: float | None = None
    id: int | None = None
    missed: int = 0

    @property
    def key(self) -> SessionKey:
        return (self.cid, self.callsign, self.logon_time)


@dataclass(eq=False)
class PrefileEntry:
    cid: int
    callsign: str
    name: str
    plan: FlightPlan | None
    first_seen: datetime
    last_seen: datetime
    id: int | None = None
    missed: int = 0


def is_observer(callsign: str, facility: int, frequency: str) -> bool:
    return facility == 0 or frequency == OBSERVER_FREQUENCY or callsign.upper().endswith("_OBS")


def is_supervisor(callsign: str, rating: int) -> bool:
    return rating in SUPERVISOR_RATINGS or callsign.upper().endswith("_SUP")


def normalise_text_atis(lines: list[str] | None) -> tuple[str, ...] | None:
    """``null``, ``[]`` and ``[""]`` all mean "no ATIS text" in the feed."""
    if not lines:
        return None
    kept = tuple(lines)
    return None if all(not line.strip() for line in kept) else kept


@dataclass
class LiveState:
    pilots: dict[SessionKey, PilotSession] = field(default_factory=dict)
    # The open pilot session of each (cid, callsign); VATSIM allows only one at a time.
    pilot_by_ident: dict[tuple[int, str], PilotSession] = field(default_factory=dict)
    controllers: dict[SessionKey, ControllerSession] = field(default_factory=dict)
    atis: dict[SessionKey, ControllerSession] = field(default_factory=dict)
    prefiles: dict[tuple[int, str], PrefileEntry] = field(default_factory=dict)
    # Sessions ended recently, by key: the same connection reappearing after a feed gap longer
    # than the missed-snapshot rule is the same session resumed, not a new one.
    ended_pilots: dict[SessionKey, PilotSession] = field(default_factory=dict)
    ended_controllers: dict[SessionKey, ControllerSession] = field(default_factory=dict)
    ended_atis: dict[SessionKey, ControllerSession] = field(default_factory=dict)
    # Flights whose last session ended recently, by (cid, callsign): a reconnect may continue them.
    recent_flights: dict[tuple[int, str], Flight] = field(default_factory=dict)
    # Last plan of recently ended pilot sessions, to recognise the plan re-published as a prefile.
    recent_plans: dict[tuple[int, str], tuple[datetime, FlightPlan | None]] = field(
        default_factory=dict
    )
    last_snapshot_at: datetime | None = None
    last_accepted_clients: int | None = None
