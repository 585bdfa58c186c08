"""The outcome of applying one snapshot: everything the writer must persist, and nothing else.

Grouped per kind: the sessions of pilots, controllers and ATIS share one lifecycle (opened,
present, resumed, closed), so the tracker, the writer and the stats handle them in one loop;
what only one kind has (plans, ATIS revisions, station updates) sits in that kind's group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from vatsim_collector.feed.models import FlightPlan, Snapshot, StationTransceivers
from vatsim_collector.tracking.state import (
    ControllerSession,
    Flight,
    Kind,
    PilotSession,
    PrefileEntry,
)

S = TypeVar("S", PilotSession, ControllerSession)


@dataclass
class LinkedTransceivers:
    station: StationTransceivers
    pilot: PilotSession | None = None
    controller: ControllerSession | None = None
    atis: ControllerSession | None = None


@dataclass
class SessionChanges(Generic[S]):
    """One kind's sessions in one snapshot."""

    kind: Kind
    opened: list[S] = field(default_factory=list)
    present: list[S] = field(default_factory=list)
    # Ended sessions whose connection (same key) came back: stored rows to mark open again.
    resumed: list[S] = field(default_factory=list)
    closed: list[S] = field(default_factory=list)


@dataclass
class PilotChanges(SessionChanges[PilotSession]):
    plan_revisions: list[tuple[PilotSession, FlightPlan]] = field(default_factory=list)
    # The same revisions seen from the flight: its first plan, and changes to its plan.
    filed_plans: list[tuple[PilotSession, FlightPlan]] = field(default_factory=list)
    amended_plans: list[tuple[PilotSession, FlightPlan, FlightPlan]] = field(default_factory=list)


@dataclass
class StationChanges(SessionChanges[ControllerSession]):
    """Controllers, or ATIS stations (which have the same shape)."""

    # Frequency, facility or transceiver-derived position changed: stored rows to update.
    changed: list[ControllerSession] = field(default_factory=list)
    # ATIS whose letter or text changed, including the first time it is seen (never a
    # controller).
    revisions: list[ControllerSession] = field(default_factory=list)


@dataclass
class FlightChanges:
    new: list[Flight] = field(default_factory=list)
    # Flights whose departure/arrival or end time changed (a plan amendment, an end, a resume).
    changed: list[Flight] = field(default_factory=list)

    _marks: set[int] = field(default_factory=set, repr=False)

    def add_new(self, flight: Flight) -> None:
        self.new.append(flight)
        self._marks.add(id(flight))

    def mark_changed(self, flight: Flight) -> None:
        """Record that an already stored flight needs an update (once per snapshot)."""
        if id(flight) not in self._marks:
            self._marks.add(id(flight))
            self.changed.append(flight)


@dataclass
class PrefileChanges:
    new: list[PrefileEntry] = field(default_factory=list)
    present: list[PrefileEntry] = field(default_factory=list)
    changed: list[PrefileEntry] = field(default_factory=list)
    ended: list[PrefileEntry] = field(default_factory=list)


@dataclass
class Changeset:
    snapshot: Snapshot
    at: datetime
    pilots: PilotChanges = field(default_factory=lambda: PilotChanges(Kind.PILOT))
    controllers: StationChanges = field(default_factory=lambda: StationChanges(Kind.CONTROLLER))
    atis: StationChanges = field(default_factory=lambda: StationChanges(Kind.ATIS))
    flights: FlightChanges = field(default_factory=FlightChanges)
    prefiles: PrefileChanges = field(default_factory=PrefileChanges)
    transceivers: list[LinkedTransceivers] = field(default_factory=list)

    @property
    def sessions(self) -> tuple[PilotChanges, StationChanges, StationChanges]:
        """Every kind's session changes, pilots first."""
        return (self.pilots, self.controllers, self.atis)

    @property
    def transceiver_count(self) -> int:
        return sum(len(t.station.transceivers) for t in self.transceivers)
