"""Sector occupancy and ATC contact intervals, advanced one snapshot at a time.

The rules are in docs/architecture.md, "Invariants".

The engine sees neutral observations -- a pilot's position and radios, a controller's radio --
so live ingest (from a changeset) and ``recompute`` (from stored rows) drive the very same rules
and so store the very same rows.

* **Occupancy**: a pilot session enters the most specific sector containing it on its first
  snapshot inside; it leaves once it has been seen outside for ``exit_after`` consecutive
  snapshots of its own (a snapshot it is missing from says nothing), or when the session ends.
  The exit is the last snapshot inside: its time, position and altitude. Back inside before
  that, nothing happened.
* **Contact**: a (pilot session, controller session) pair matched at a snapshot (see
  ``tracking.contacts``) starts an interval; the first snapshot the pilot is seen without that
  match ends it at its last matched snapshot, as does the end of either session. A snapshot
  without transceivers gives a pilot no radios: no contact, never "unknown".

Rows are written only at starts and ends. What an open row needs between them (last time
inside, outside count, last contact) is rebuilt on restart from the last positions and the
sessions' last-seen times (``store.airspace_restore``).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, NamedTuple, Protocol

from vatsim_collector.airspace.contacts import (
    ContactRanges,
    ControllerRadio,
    PilotRadio,
    match_contacts,
)
from vatsim_collector.tracking.state import Flight

if TYPE_CHECKING:
    from vatsim_collector.airspace.sectors import SectorSet

__all__ = [
    "AirspaceChanges",
    "AirspaceEngine",
    "AirspaceState",
    "ControllerObservation",
    "ControllerRef",
    "OpenContact",
    "OpenOccupancy",
    "PilotObservation",
    "PilotRef",
]

Key = Hashable


class PilotRef(Protocol):
    """What rows and events need of a pilot session (a live ``PilotSession`` is one)."""

    @property
    def id(self) -> int | None: ...
    @property
    def cid(self) -> int: ...
    @property
    def callsign(self) -> str: ...
    @property
    def flight(self) -> Flight: ...


class ControllerRef(Protocol):
    @property
    def id(self) -> int | None: ...
    @property
    def callsign(self) -> str: ...


class Point(NamedTuple):
    # A tuple, not a frozen dataclass: a snapshot makes one per pilot, and this is the cheap
    # immutable record.
    latitude: float
    longitude: float
    altitude: int


@dataclass(slots=True)
class PilotObservation:
    key: Key
    ref: PilotRef
    point: Point
    radios_hz: tuple[int, ...]


@dataclass(slots=True)
class ControllerObservation:
    key: Key
    ref: ControllerRef
    radio: ControllerRadio


@dataclass(eq=False)
class OpenOccupancy:
    pilot: PilotRef
    sector: str
    entered_at: datetime
    entry: Point
    last_inside_at: datetime
    last_inside: Point
    outside: int = 0


@dataclass(eq=False)
class OpenContact:
    pilot: PilotRef
    controller: ControllerRef
    frequency_hz: int
    started_at: datetime
    last_contact_at: datetime


@dataclass
class AirspaceState:
    occupancy: dict[Key, dict[str, OpenOccupancy]] = field(default_factory=dict)
    contacts: dict[tuple[Key, Key], OpenContact] = field(default_factory=dict)
    # Each pilot's open contacts, so a pilot's snapshot touches only its own.
    contacts_of: dict[Key, dict[Key, OpenContact]] = field(default_factory=dict)


@dataclass
class AirspaceChanges:
    entered: list[OpenOccupancy] = field(default_factory=list)
    exited: list[OpenOccupancy] = field(default_factory=list)
    contacts_started: list[OpenContact] = field(default_factory=list)
    contacts_ended: list[OpenContact] = field(default_factory=list)


class AirspaceEngine:
    def __init__(
        self,
        sectors: SectorSet | None,
        *,
        ranges: ContactRanges | None = None,
        exit_after: int = 4,
        state: AirspaceState | None = None,
    ) -> None:
        if exit_after < 1:
            raise ValueError("exit_after must be at least 1")
        self.sectors = sectors
        self.ranges = ranges if ranges is not None else ContactRanges()
        self.exit_after = exit_after
        self.state = state if state is not None else AirspaceState()

    @cached_property
    def _names(self) -> list[str]:
        # Read on first use: a deferred sector set is loaded by the first snapshot with pilots.
        return [s.name for s in self.sectors.sectors] if self.sectors is not None else []

    def step(
        self,
        at: datetime,
        pilots: Sequence[PilotObservation],
        controllers: Sequence[ControllerObservation],
        *,
        ended_pilots: Sequence[Key] = (),
        ended_controllers: Sequence[Key] = (),
    ) -> AirspaceChanges:
        changes = AirspaceChanges()
        for key in ended_pilots:
            self._end_pilot(key, changes)
        for key in ended_controllers:
            self._end_controller(key, changes)
        if self.sectors is not None and pilots:
            self._sectors(at, pilots, changes)
        self._contacts(at, pilots, controllers, changes)
        return changes

    # -- sessions ending ---------------------------------------------------------------------

    def _end_pilot(self, key: Key, changes: AirspaceChanges) -> None:
        for occupancy in self.state.occupancy.pop(key, {}).values():
            changes.exited.append(occupancy)
        for controller_key, contact in self.state.contacts_of.pop(key, {}).items():
            del self.state.contacts[(key, controller_key)]
            changes.contacts_ended.append(contact)

    def _end_controller(self, key: Key, changes: AirspaceChanges) -> None:
        for pair in [p for p in self.state.contacts if p[1] == key]:
            contact = self.state.contacts.pop(pair)
            del self.state.contacts_of[pair[0]][key]
            if not self.state.contacts_of[pair[0]]:
                del self.state.contacts_of[pair[0]]
            changes.contacts_ended.append(contact)

    # -- sectors -----------------------------------------------------------------------------

    def _sectors(
        self, at: datetime, pilots: Sequence[PilotObservation], changes: AirspaceChanges
    ) -> None:
        import numpy as np  # imported on use: a command with no pilot to place never pays for numpy

        assert self.sectors is not None
        lons = np.fromiter((p.point.longitude for p in pilots), float, len(pilots))
        lats = np.fromiter((p.point.latitude for p in pilots), float, len(pilots))
        alts = np.fromiter((p.point.altitude for p in pilots), float, len(pilots))
        found = self.sectors.assign(lons, lats, alts).tolist()
        names = self._names
        table = self.state.occupancy
        exit_after = self.exit_after
        for pilot, index in zip(pilots, found, strict=True):
            sector = names[index] if index >= 0 else None
            open_here = table.get(pilot.key)
            if open_here is not None and len(open_here) == 1 and sector in open_here:
                # The common case by far: still in the one sector it is in.
                same = open_here[sector]
                same.outside = 0
                same.last_inside_at = at
                same.last_inside = pilot.point
                continue
            if open_here:
                for name in list(open_here):
                    if name == sector:
                        continue
                    occupancy = open_here[name]
                    occupancy.outside += 1
                    if occupancy.outside >= exit_after:
                        del open_here[name]
                        changes.exited.append(occupancy)
            if sector is None:
                if open_here is not None and not open_here:
                    del table[pilot.key]
                continue
            if open_here is None:
                open_here = table[pilot.key] = {}
            current = open_here.get(sector)
            if current is None:
                current = OpenOccupancy(
                    pilot=pilot.ref,
                    sector=sector,
                    entered_at=at,
                    entry=pilot.point,
                    last_inside_at=at,
                    last_inside=pilot.point,
                )
                open_here[sector] = current
                changes.entered.append(current)
            else:
                current.outside = 0
                current.last_inside_at = at
                current.last_inside = pilot.point

    # -- contacts ----------------------------------------------------------------------------

    def _contacts(
        self,
        at: datetime,
        pilots: Sequence[PilotObservation],
        controllers: Sequence[ControllerObservation],
        changes: AirspaceChanges,
    ) -> None:
        radios = [
            PilotRadio(p.key, p.point.latitude, p.point.longitude, p.radios_hz)
            for p in pilots
            if p.radios_hz
        ]
        by_key = {c.key: c for c in controllers}
        matched: dict[Key, dict[Key, int]] = {}
        if radios and controllers:
            for found in match_contacts(radios, [c.radio for c in controllers], self.ranges):
                matched.setdefault(found.pilot, {})[found.controller] = found.frequency_hz
        state = self.state
        nothing: dict[Key, int] = {}
        for pilot in pilots:
            mine = state.contacts_of.get(pilot.key)
            now = matched.get(pilot.key, nothing)
            if not now and not mine:
                continue
            if mine:
                for controller_key in [k for k in mine if k not in now]:
                    ended = mine.pop(controller_key)
                    del state.contacts[(pilot.key, controller_key)]
                    changes.contacts_ended.append(ended)
            for controller_key, frequency in now.items():
                if mine is None:
                    mine = state.contacts_of[pilot.key] = {}
                contact_now = mine.get(controller_key)
                if contact_now is not None:
                    contact_now.last_contact_at = at
                    continue
                opened = OpenContact(
                    pilot=pilot.ref,
                    controller=by_key[controller_key].ref,
                    frequency_hz=frequency,
                    started_at=at,
                    last_contact_at=at,
                )
                mine[controller_key] = opened
                state.contacts[(pilot.key, controller_key)] = opened
                changes.contacts_started.append(opened)
            if mine is not None and not mine:
                del state.contacts_of[pilot.key]

    # -- restoring ---------------------------------------------------------------------------

    def restore_occupancy(self, key: Key, occupancy: OpenOccupancy) -> None:
        self.state.occupancy.setdefault(key, {})[occupancy.sector] = occupancy

    def restore_contact(self, pilot_key: Key, controller_key: Key, contact: OpenContact) -> None:
        self.state.contacts[(pilot_key, controller_key)] = contact
        self.state.contacts_of.setdefault(pilot_key, {})[controller_key] = contact

    def classify(self, points: Sequence[Point]) -> list[str | None]:
        """The sector of each point, as :meth:`step` would decide it (for restoring)."""
        if self.sectors is None or not points:
            return [None] * len(points)
        import numpy as np  # imported on use: a command with no pilot to place never pays for numpy

        found = self.sectors.assign(
            np.fromiter((p.longitude for p in points), float, len(points)),
            np.fromiter((p.latitude for p in points), float, len(points)),
            np.fromiter((p.altitude for p in points), float, len(points)),
        ).tolist()
        return [self._names[i] if i >= 0 else None for i in found]
