"""The outcome of applying one snapshot: everything the writer must persist, and nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from vatsim_collector.feed.models import FlightPlan, Snapshot, StationTransceivers
from vatsim_collector.tracking.state import ControllerSession, Flight, PilotSession, PrefileEntry


@dataclass
class LinkedTransceivers:
    station: StationTransceivers
    pilot: PilotSession | None = None
    controller: ControllerSession | None = None
    atis: ControllerSession | None = None


@dataclass
class Changeset:
    snapshot: Snapshot
    at: datetime
    new_flights: list[Flight] = field(default_factory=list)
    # Flights whose departure/arrival or end time changed (a plan amendment, an end, a resume).
    changed_flights: list[Flight] = field(default_factory=list)
    opened_pilots: list[PilotSession] = field(default_factory=list)
    present_pilots: list[PilotSession] = field(default_factory=list)
    # Ended sessions whose connection (same key) came back: stored rows to mark open again.
    resumed_pilots: list[PilotSession] = field(default_factory=list)
    closed_pilots: list[PilotSession] = field(default_factory=list)
    plan_revisions: list[tuple[PilotSession, FlightPlan]] = field(default_factory=list)
    # The same revisions seen from the flight: its first plan, and changes to its plan.
    filed_plans: list[tuple[PilotSession, FlightPlan]] = field(default_factory=list)
    amended_plans: list[tuple[PilotSession, FlightPlan, FlightPlan]] = field(default_factory=list)
    opened_controllers: list[ControllerSession] = field(default_factory=list)
    present_controllers: list[ControllerSession] = field(default_factory=list)
    resumed_controllers: list[ControllerSession] = field(default_factory=list)
    closed_controllers: list[ControllerSession] = field(default_factory=list)
    # Frequency, facility or transceiver-derived position changed.
    changed_controllers: list[ControllerSession] = field(default_factory=list)
    opened_atis: list[ControllerSession] = field(default_factory=list)
    present_atis: list[ControllerSession] = field(default_factory=list)
    resumed_atis: list[ControllerSession] = field(default_factory=list)
    closed_atis: list[ControllerSession] = field(default_factory=list)
    # ATIS whose letter or text changed, including the first time it is seen.
    atis_revisions: list[ControllerSession] = field(default_factory=list)
    new_prefiles: list[PrefileEntry] = field(default_factory=list)
    present_prefiles: list[PrefileEntry] = field(default_factory=list)
    changed_prefiles: list[PrefileEntry] = field(default_factory=list)
    ended_prefiles: list[PrefileEntry] = field(default_factory=list)
    transceivers: list[LinkedTransceivers] = field(default_factory=list)

    _flight_marks: set[int] = field(default_factory=set, repr=False)

    def add_new_flight(self, flight: Flight) -> None:
        self.new_flights.append(flight)
        self._flight_marks.add(id(flight))

    def mark_flight_changed(self, flight: Flight) -> None:
        """Record that an already stored flight needs an update (once per snapshot)."""
        if id(flight) not in self._flight_marks:
            self._flight_marks.add(id(flight))
            self.changed_flights.append(flight)

    @property
    def transceiver_count(self) -> int:
        return sum(len(t.station.transceivers) for t in self.transceivers)
