"""Live ingest's side of the airspace engine: observations out of a changeset.

Also keeps each open controller session's last recorded (frequency, facility), so the frequency
history that ``recompute`` needs is written only when it changes.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime

from vatsim_collector.airspace.contacts import controller_radio
from vatsim_collector.airspace.engine import (
    AirspaceChanges,
    AirspaceEngine,
    ControllerObservation,
    PilotObservation,
    Point,
)
from vatsim_collector.feed.models import StationTransceivers
from vatsim_collector.tracking.changes import Changeset
from vatsim_collector.tracking.state import ControllerSession

__all__ = ["FrequencyChange", "LiveAirspace"]


@dataclass(frozen=True)
class FrequencyChange:
    controller: ControllerSession
    at: datetime
    frequency: str
    facility: int


@dataclass
class LiveChanges:
    airspace: AirspaceChanges
    frequencies: list[FrequencyChange] = field(default_factory=list)


def _radios(station: StationTransceivers) -> tuple[int, ...]:
    return tuple(dict.fromkeys(t.frequency for t in station.transceivers if t.frequency > 0))


class LiveAirspace:
    def __init__(self, engine: AirspaceEngine) -> None:
        self.engine = engine
        self.frequencies: dict[Hashable, tuple[str, int]] = {}

    def apply(self, changes: Changeset, *, transceivers_fetched: bool) -> LiveChanges:
        """Advance the engine by the changeset's snapshot. Without a transceivers document
        nobody has radios: no contact at that snapshot (what a recompute will see as well)."""
        pilot_radios: dict[int, tuple[int, ...]] = {}
        controller_stations: dict[int, StationTransceivers] = {}
        if transceivers_fetched:
            for link in changes.transceivers:
                if link.pilot is not None:
                    pilot_radios[id(link.pilot)] = _radios(link.station)
                elif link.controller is not None:
                    controller_stations[id(link.controller)] = link.station
        # One per pilot per snapshot: the point is made without the named tuple's Python-level
        # __new__ (a third of this loop's time), and the latest position is looked up once.
        make = tuple.__new__
        pilots = [
            PilotObservation(
                s.key,
                s,
                make(Point, ((p := s.latest).latitude, p.longitude, p.altitude)),
                pilot_radios.get(id(s), ()),
            )
            for s in changes.pilots.present
        ]
        controllers = [
            ControllerObservation(
                key=s.key,
                ref=s,
                radio=controller_radio(
                    s.key,
                    s.frequency,
                    s.facility,
                    s.callsign,
                    controller_stations.get(id(s)) if transceivers_fetched else None,
                ),
            )
            for s in changes.controllers.present
        ]
        airspace = self.engine.step(
            changes.at,
            pilots,
            controllers,
            ended_pilots=[s.key for s in changes.pilots.closed],
            ended_controllers=[s.key for s in changes.controllers.closed],
        )
        out = LiveChanges(airspace)
        for session in changes.controllers.closed:
            self.frequencies.pop(session.key, None)
        for session in changes.controllers.present:
            now = (session.frequency, session.facility)
            if self.frequencies.get(session.key) != now:
                self.frequencies[session.key] = now
                out.frequencies.append(
                    FrequencyChange(session, changes.at, session.frequency, session.facility)
                )
        return out
