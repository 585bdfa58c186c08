"""Turns each accepted snapshot into session, flight and plan changes against the live state.

Rules (docs/architecture.md): a session is ``(cid, callsign, logon_time)``; it ends after
being absent from ``missed_to_end`` consecutive accepted snapshots, at the time it was last
seen. A new
session continues the previous flight when cid, callsign, departure and arrival match and it
logged on within ``reconnect_window`` of that flight's end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from vatsim_collector.feed.models import (
    Atis,
    Controller,
    FlightPlan,
    Pilot,
    Prefile,
    Snapshot,
    StationTransceivers,
)
from vatsim_collector.tracking.changes import Changeset, LinkedTransceivers, S, StationChanges
from vatsim_collector.tracking.geodesy import transceiver_centroid
from vatsim_collector.tracking.state import (
    ControllerSession,
    Flight,
    LiveState,
    PilotSession,
    PrefileEntry,
    SessionKey,
    is_observer,
    is_supervisor,
    normalise_text_atis,
)


def _airport(code: str) -> str | None:
    code = code.strip().upper()
    return code or None


def route_of(plan: FlightPlan | None) -> tuple[str | None, str | None]:
    if plan is None:
        return (None, None)
    return (_airport(plan.departure), _airport(plan.arrival))


class Tracker:
    def __init__(
        self,
        state: LiveState,
        *,
        missed_to_end: int,
        reconnect_window: timedelta,
    ) -> None:
        self.state = state
        self.missed_to_end = missed_to_end
        self.reconnect_window = reconnect_window

    def apply(
        self, snapshot: Snapshot, transceivers: list[StationTransceivers] | None
    ) -> Changeset:
        at = snapshot.update_timestamp
        changes = Changeset(snapshot=snapshot, at=at)
        pilots_by_callsign = self._apply_pilots(snapshot.pilots, at, changes)
        controllers_by_callsign = self._apply_stations(
            snapshot.controllers,
            self.state.controllers,
            self.state.ended_controllers,
            changes.controllers,
            at,
        )
        atis_by_callsign = self._apply_stations(
            snapshot.atis, self.state.atis, self.state.ended_atis, changes.atis, at
        )
        self._apply_prefiles(snapshot.prefiles, at, changes)
        if transceivers is not None:
            self._link_transceivers(
                transceivers, pilots_by_callsign, controllers_by_callsign, atis_by_callsign, changes
            )
        self._forget_old(at)
        return changes

    # pilots -----------------------------------------------------------------------------

    def _apply_pilots(
        self, pilots: Iterable[Pilot], at: datetime, changes: Changeset
    ) -> dict[str, PilotSession]:
        live = self.state.pilots
        present: dict[SessionKey, PilotSession] = {}
        by_callsign: dict[str, PilotSession] = {}
        for pilot in pilots:
            key = (pilot.cid, pilot.callsign, pilot.logon_time)
            if key in present:
                continue  # the feed has repeated a record within one document; keep the first
            session = live.get(key)
            if session is None:
                ended = self.state.ended_pilots.pop(key, None)
                if ended is None:
                    session = self._open_pilot(pilot, at, changes)
                else:
                    session = self._resume_pilot(ended, changes)
            if session.first_seen != at:
                session.missed = 0
                session.last_seen = at
                session.latest = pilot
                if pilot.flight_plan != session.plan:
                    self._revise_plan(session, pilot.flight_plan, changes)
            present[key] = session
            by_callsign[pilot.callsign] = session
        changes.pilots.present = list(present.values())
        self._count_missing(live, present, lambda session: self._close_pilot(session, changes))
        return by_callsign

    def _open_pilot(self, pilot: Pilot, at: datetime, changes: Changeset) -> PilotSession:
        # VATSIM allows one connection per callsign: a new logon means the old one is gone,
        # even if it has not yet been missing long enough to be closed by the N-missed rule.
        other = self.state.pilot_by_ident.get((pilot.cid, pilot.callsign))
        if other is not None:
            self._close_pilot(other, changes)
        departure, arrival = route_of(pilot.flight_plan)
        flight = self._continued_flight(pilot, departure, arrival, changes)
        if flight is None:
            flight = Flight(
                cid=pilot.cid,
                callsign=pilot.callsign,
                departure=departure,
                arrival=arrival,
                started_at=min(pilot.logon_time, at),
            )
            changes.flights.add_new(flight)
        session = PilotSession(
            cid=pilot.cid,
            callsign=pilot.callsign,
            logon_time=pilot.logon_time,
            first_seen=at,
            last_seen=at,
            flight=flight,
            latest=pilot,
            plan=None,
        )
        self.state.pilots[session.key] = session
        self.state.pilot_by_ident[(session.cid, session.callsign)] = session
        changes.pilots.opened.append(session)
        if pilot.flight_plan is not None:
            self._revise_plan(session, pilot.flight_plan, changes)
        return session

    def _resume_pilot(self, session: PilotSession, changes: Changeset) -> PilotSession:
        other = self.state.pilot_by_ident.get((session.cid, session.callsign))
        if other is not None:
            self._close_pilot(other, changes)
        self.state.pilots[session.key] = session
        self.state.pilot_by_ident[(session.cid, session.callsign)] = session
        flight = session.flight
        if flight.ended_at is not None:
            flight.ended_at = None
            if self.state.recent_flights.get((session.cid, session.callsign)) is flight:
                del self.state.recent_flights[(session.cid, session.callsign)]
            changes.flights.mark_changed(flight)
        changes.pilots.resumed.append(session)
        return session

    def _continued_flight(
        self, pilot: Pilot, departure: str | None, arrival: str | None, changes: Changeset
    ) -> Flight | None:
        flight = self.state.recent_flights.get((pilot.cid, pilot.callsign))
        if flight is None or flight.ended_at is None:
            return None
        if (flight.departure, flight.arrival) != (departure, arrival):
            return None
        if pilot.logon_time - flight.ended_at > self.reconnect_window:
            return None
        del self.state.recent_flights[(pilot.cid, pilot.callsign)]
        flight.ended_at = None
        changes.flights.mark_changed(flight)
        return flight

    def _revise_plan(
        self, session: PilotSession, plan: FlightPlan | None, changes: Changeset
    ) -> None:
        session.plan = plan
        if plan is None:
            return  # a withdrawn plan is not a revision; the next filed plan will be
        changes.pilots.plan_revisions.append((session, plan))
        flight = session.flight
        previous = flight.plan
        if previous is None:
            changes.pilots.filed_plans.append((session, plan))
        elif previous != plan:
            changes.pilots.amended_plans.append((session, plan, previous))
        flight.plan = plan
        route = route_of(plan)
        if route != (flight.departure, flight.arrival):
            flight.departure, flight.arrival = route
            changes.flights.mark_changed(flight)

    def _close_pilot(self, session: PilotSession, changes: Changeset) -> None:
        del self.state.pilots[session.key]
        if self.state.pilot_by_ident.get((session.cid, session.callsign)) is session:
            del self.state.pilot_by_ident[(session.cid, session.callsign)]
        changes.pilots.closed.append(session)
        flight = session.flight
        flight.ended_at = session.last_seen
        changes.flights.mark_changed(flight)
        self.state.recent_flights[(session.cid, session.callsign)] = flight
        self.state.ended_pilots[session.key] = session
        self.state.recent_plans[(session.cid, session.callsign)] = (session.last_seen, session.plan)

    # controllers and ATIS ---------------------------------------------------------------

    def _apply_stations(
        self,
        records: Iterable[Controller | Atis],
        live: dict[SessionKey, ControllerSession],
        ended: dict[SessionKey, ControllerSession],
        changes: StationChanges,
        at: datetime,
    ) -> dict[str, ControllerSession]:
        present: dict[SessionKey, ControllerSession] = {}
        by_callsign: dict[str, ControllerSession] = {}
        for record in records:
            key = (record.cid, record.callsign, record.logon_time)
            if key in present:
                continue
            session = live.get(key) or ended.pop(key, None)
            if session is not None and key not in live:
                live[key] = session
                changes.resumed.append(session)
            if session is None:
                session = ControllerSession(
                    kind=changes.kind,
                    cid=record.cid,
                    callsign=record.callsign,
                    logon_time=record.logon_time,
                    first_seen=at,
                    last_seen=at,
                    latest=record,
                    frequency=record.frequency,
                    facility=record.facility,
                    is_observer=is_observer(record.callsign, record.facility, record.frequency),
                    is_supervisor=is_supervisor(record.callsign, record.rating),
                )
                live[key] = session
                changes.opened.append(session)
            else:
                session.missed = 0
                session.last_seen = at
                session.latest = record
                if (record.frequency, record.facility) != (session.frequency, session.facility):
                    session.frequency, session.facility = record.frequency, record.facility
                    changes.changed.append(session)
            if isinstance(record, Atis):
                code = (record.atis_code or "").strip() or None
                text = normalise_text_atis(record.text_atis)
                if session.first_seen == at or (code, text) != (
                    session.atis_code,
                    session.text_atis,
                ):
                    session.atis_code, session.text_atis = code, text
                    changes.revisions.append(session)
            present[key] = session
            by_callsign[record.callsign] = session
        changes.present.extend(present.values())

        def close(session: ControllerSession) -> None:
            del live[session.key]
            ended[session.key] = session
            changes.closed.append(session)

        self._count_missing(live, present, close)
        return by_callsign

    def _count_missing(
        self,
        live: dict[SessionKey, S],
        present: dict[SessionKey, S],
        close: Callable[[S], None],
    ) -> None:
        """One more miss for each live session not in the snapshot; close those missed enough."""
        for key, session in list(live.items()):
            if key in present:
                continue
            session.missed += 1
            if session.missed >= self.missed_to_end:
                close(session)

    # prefiles ---------------------------------------------------------------------------

    def _is_ghost(self, prefile: Prefile) -> bool:
        """A plan VATSIM re-publishes as a prefile for a pilot who is (or just was) online."""
        ident = (prefile.cid, prefile.callsign)
        if ident in self.state.pilot_by_ident:
            return True
        recent = self.state.recent_plans.get(ident)
        if recent is None:
            return False
        _, plan = recent
        return route_of(plan) == route_of(prefile.flight_plan)

    def _apply_prefiles(
        self, prefiles: Iterable[Prefile], at: datetime, changes: Changeset
    ) -> None:
        live = self.state.prefiles
        seen: set[tuple[int, str]] = set()
        for prefile in prefiles:
            ident = (prefile.cid, prefile.callsign)
            if ident in seen or self._is_ghost(prefile):
                continue
            seen.add(ident)
            entry = live.get(ident)
            if entry is None:
                entry = PrefileEntry(
                    cid=prefile.cid,
                    callsign=prefile.callsign,
                    name=prefile.name,
                    plan=prefile.flight_plan,
                    first_seen=at,
                    last_seen=at,
                )
                live[ident] = entry
                changes.prefiles.new.append(entry)
            else:
                entry.missed = 0
                entry.last_seen = at
                if prefile.flight_plan != entry.plan:
                    entry.plan = prefile.flight_plan
                    changes.prefiles.changed.append(entry)
            changes.prefiles.present.append(entry)
        for ident, entry in list(live.items()):
            if ident in seen:
                continue
            entry.missed += 1
            if entry.missed >= self.missed_to_end:
                del live[ident]
                changes.prefiles.ended.append(entry)

    # transceivers -----------------------------------------------------------------------

    def _link_transceivers(
        self,
        stations: list[StationTransceivers],
        pilots: dict[str, PilotSession],
        controllers: dict[str, ControllerSession],
        atis: dict[str, ControllerSession],
        changes: Changeset,
    ) -> None:
        moved: list[ControllerSession] = []
        for station in stations:
            link = LinkedTransceivers(
                station=station,
                pilot=pilots.get(station.callsign),
                controller=controllers.get(station.callsign),
                atis=atis.get(station.callsign),
            )
            changes.transceivers.append(link)
            if link.controller is not None:
                centre = transceiver_centroid(station)
                session = link.controller
                if centre is not None and centre != (session.latitude, session.longitude):
                    session.latitude, session.longitude = centre
                    moved.append(session)
        changed = changes.controllers.changed
        already = set(map(id, changed))
        changed.extend(s for s in moved if id(s) not in already)

    def _forget_old(self, at: datetime) -> None:
        horizon = at - self.reconnect_window
        for ended in (self.state.ended_pilots, self.state.ended_controllers, self.state.ended_atis):
            for key in [k for k, s in ended.items() if s.last_seen < horizon]:
                del ended[key]
        recent = self.state.recent_flights
        for ident in [k for k, f in recent.items() if f.ended_at is None or f.ended_at < horizon]:
            del recent[ident]
        plans = self.state.recent_plans
        for ident in [k for k, (ended, _) in plans.items() if ended < horizon]:
            del plans[ident]
