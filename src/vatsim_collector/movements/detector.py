"""The movement detector: per pilot session, samples in, movements out.

Every snapshot, all present pilots are classified at once (``classify.py``): stopped, taxiing or
rolling on the ground near an airport, or in the air. Each session then runs a small state
machine over its own samples:

- **Phases with dwell.** A session is on the ground or in the air. A change counts once the new
  phase has lasted ``dwell_samples`` samples; a shorter excursion is noise and changes nothing.
  The movement's bracket is the last sample of the old phase and the first of the new one, and
  its time the middle of the two, so a missed snapshot widens the bracket but hides nothing.
- **Takeoff, touchdown, landing, touch-and-go.** Air after ground is a takeoff from the airport
  of the last ground sample. Ground after air is a touchdown; it becomes a landing once the
  aircraft stops, once ``touch_and_go_seconds`` pass on the ground, or when the session ends,
  and a touch-and-go when the aircraft is airborne again sooner without having stopped. A single
  ground sample between two air samples is a touch-and-go when both air samples are low over
  that airport (``touch_and_go_height_ft``), and noise otherwise.
- **Off-block and on-block.** On the ground the aircraft is stopped or moving, again with the
  dwell. A session seen stopped at its first sample is parked; its first taxi is the off-block.
  Stopped for ``on_block_seconds`` after a landing (or stopped when the session ends) is the
  on-block, at the start of that stop.
- **Go-around.** Airborne, having been above ``go_around_height_ft`` over the field (or away
  from any airport), a descent below it near an airport starts a watch of the lowest sample; a
  climb of ``go_around_climb_ft`` above it for the dwell, without touching down, is a go-around
  at the lowest sample.
- **Diversion.** A landing at a known airport other than the filed arrival (when that is a known
  airport code) is a diversion.

The state of each session is small and changes only around movements; ``DetectorStep.saved``
lists the sessions whose state changed, for the caller to persist in the same transaction.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from vatsim_collector.airports.nearest import AirportIndex
from vatsim_collector.movements.classify import (
    NOT_QUIET,
    QUIET_HIGH,
    QUIET_MOVING,
    QUIET_STOPPED,
    Columns,
    classify,
)
from vatsim_collector.movements.model import Movement, MovementKind, PilotSample
from vatsim_collector.movements.rules import MovementRules
from vatsim_collector.movements.state import (
    AIR,
    AIRBORNE,
    GROUND,
    ROLL,
    STOPPED,
    UNKNOWN,
    Obs,
    Touchdown,
    TrackState,
    decode,
    encode,
)

__all__ = ["DetectorStep", "MovementDetector", "RestoredSession"]

# Shorter than this between two samples, a track says nothing reliable about a direction.
_MIN_TRACK_NM = 0.2
_EARTH_NM = 6_371_008.8 / 1852.0
# On the runway an aircraft's altitude holds within this; a bigger drop is a descent.
_LEVEL_FT = 15.0
# A fast sample this much higher than the ground sample before it is climbing away (a runway's
# slope adds less between two snapshots).
_CLIMB_FT = 30.0
# Feet per second of descent per knot of ground speed on a 3-degree approach path.
_GLIDE_FT_PER_S_PER_KT = 1852.0 / 0.3048 / 3600.0 * math.tan(math.radians(3.0))


@dataclass
class DetectorStep:
    movements: list[Movement] = field(default_factory=list)
    # Sessions whose persisted state changed: (key, ref, state as JSON text).
    saved: list[tuple[Hashable, object, str]] = field(default_factory=list)
    # Sessions whose state is gone (they ended): (key, ref).
    dropped: list[tuple[Hashable, object]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RestoredSession:
    """An open session as the database has it: its last sample, when that was, and the state
    last saved for it (None: none saved, e.g. stored before movements existed)."""

    sample: PilotSample
    seen_at: datetime
    state: str | None


def _middle(a: datetime, b: datetime) -> datetime:
    return a + (b - a) / 2


def _clamped(at: datetime, low: datetime, high: datetime) -> datetime:
    return min(max(at, low), high)


def _touchdown_time(before: Obs, first: Obs) -> datetime:
    """Between the last sample in the air and the first on the ground: down the usual 3-degree
    approach path from ``before`` to ``first``'s altitude, the middle when that says nothing."""
    drop = before.alt - first.alt
    if drop <= 0 or before.gs <= 0:
        return _middle(before.at, first.at)
    seconds = drop / (before.gs * _GLIDE_FT_PER_S_PER_KT)
    return _clamped(before.at + timedelta(seconds=seconds), before.at, first.at)


def _lift_off_time(before: Obs, first: Obs, second: Obs | None) -> datetime:
    """Between the last sample on the ground and the first in the air: back down the climb the
    first two samples in the air show, to the ground's altitude; the middle without them."""
    if second is None or second.at <= first.at:
        return _middle(before.at, first.at)
    rate = (second.alt - first.alt) / (second.at - first.at).total_seconds()
    gained = first.alt - before.alt
    if rate <= 0 or gained <= 0:
        return _middle(before.at, first.at)
    return _clamped(first.at - timedelta(seconds=gained / rate), before.at, first.at)


def _track_deg(a: Obs, b: Obs) -> int | None:
    """The true track from ``a`` to ``b`` in whole degrees, if they are far enough apart."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dl = math.radians(b.lon - a.lon)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    if 2 * _EARTH_NM * math.asin(min(1.0, math.sqrt(h))) < _MIN_TRACK_NM:
        return None
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return round(math.degrees(math.atan2(y, x))) % 360


def _runway_heading(air: Obs, ground: Obs) -> int | None:
    """On the runway at speed, the aircraft's heading is the runway's; otherwise the track
    between the sample on the ground and the one in the air, when it shows one."""
    if ground.cls == ROLL:
        return round(ground.hdg) % 360
    return _track_deg(ground, air) if air.at > ground.at else _track_deg(air, ground)


class _Track:
    """One session: its state, its last sample, and what this step found for it."""

    __slots__ = ("_prev", "_prev_at", "arrival", "dirty", "found", "key", "quiet", "ref", "state")

    def __init__(self, key: Hashable, ref: object, state: TrackState, prev: Obs | None) -> None:
        self.key = key
        self.ref = ref
        self.state = state
        self._prev: Obs | Columns | None = prev
        self._prev_at = 0
        self.arrival: str | None = None  # the filed arrival at the last sample
        self.dirty = False
        self.found: list[Movement] = []
        # The kind of sample (classify.QUIET_*) that changes nothing but the last sample.
        self.quiet = NOT_QUIET

    @property
    def prev(self) -> Obs | None:
        """The session's last sample; kept as a row of its snapshot's columns until needed,
        since most sessions' last samples never are."""
        prev = self._prev
        if isinstance(prev, Columns):
            prev = self._prev = prev.obs(self._prev_at)
        return prev

    @prev.setter
    def prev(self, obs: Obs | None) -> None:
        self._prev = obs

    def seen(self, columns: Columns, i: int) -> None:
        self._prev = columns
        self._prev_at = i


def _quiet_kind(st: TrackState) -> int:
    """Which kind of sample leaves this state as it is: most aircraft, cruising or parked, get
    such a sample snapshot after snapshot, and skip the state machine."""
    if st.run:
        return NOT_QUIET
    if st.phase == AIRBORNE:
        return QUIET_HIGH if st.ga_low is None and st.was_high else NOT_QUIET
    if st.phase != GROUND or st.still_run or st.touchdown is not None:
        return NOT_QUIET
    if st.still:
        return NOT_QUIET if st.landed else QUIET_STOPPED
    return QUIET_MOVING


class MovementDetector:
    def __init__(self, airports: AirportIndex, rules: MovementRules) -> None:
        self.airports = airports
        self.rules = rules
        self._tracks: dict[Hashable, _Track] = {}

    # -- the public face ---------------------------------------------------------------------

    def step(
        self, at: datetime, samples: Sequence[PilotSample], ended: Sequence[Hashable] = ()
    ) -> DetectorStep:
        """One snapshot at ``at``: every present session's sample, and the keys of sessions
        that ended with it (a pending landing or on-block is decided for them now)."""
        out = DetectorStep()
        columns = classify(self.airports, self.rules, at, samples)
        tracks = self._tracks
        for i, (sample, kind) in enumerate(zip(samples, columns.kinds, strict=True)):
            track = tracks.get(sample.key)
            if track is None:
                track = _Track(sample.key, sample.ref, TrackState(), None)
                tracks[sample.key] = track
            track.ref = sample.ref
            track.arrival = sample.filed_arrival
            if track.quiet == kind:
                track.seen(columns, i)
                continue
            self._advance(track, columns.obs(i), sample.filed_arrival)
            track.quiet = _quiet_kind(track.state)
            self._collect(track, out)
        for key in ended:
            track = self._tracks.pop(key, None)
            if track is None:
                continue
            self._end(track)
            out.movements.extend(track.found)
            track.found = []
            out.dropped.append((key, track.ref))
        return out

    def restore(self, sessions: Iterable[RestoredSession]) -> None:
        """Forget everything, then continue each open session from what was stored."""
        self._tracks.clear()
        sessions = list(sessions)
        if not sessions:
            return
        # The last samples are classified as they were when they arrived: same rules, same
        # airports, each at its own time.
        for restored in sessions:
            obs = classify(self.airports, self.rules, restored.seen_at, [restored.sample]).obs(0)
            state = decode(restored.state) if restored.state is not None else TrackState()
            prev = obs if state.phase != UNKNOWN else None
            key = restored.sample.key
            track = _Track(key, restored.sample.ref, state, prev)
            track.arrival = restored.sample.filed_arrival
            track.quiet = _quiet_kind(state)
            self._tracks[key] = track

    def reset(self) -> None:
        self._tracks.clear()

    def state_of(self, key: Hashable) -> str | None:
        """The state a session would be saved with (tests compare live and restored ones)."""
        track = self._tracks.get(key)
        return None if track is None else encode(track.state)

    # -- bookkeeping -----------------------------------------------------------------------

    def _collect(self, track: _Track, out: DetectorStep) -> None:
        if track.found:
            out.movements.extend(track.found)
            track.found = []
        if track.dirty:
            out.saved.append((track.key, track.ref, encode(track.state)))
            track.dirty = False

    def _emit(
        self,
        track: _Track,
        kind: MovementKind,
        airport: str | None,
        at: datetime,
        bracket_from: datetime,
        bracket_to: datetime,
        *,
        heading: int | None = None,
        filed_arrival: str | None = None,
    ) -> None:
        diversion = False
        if kind == "landing" and airport is not None and filed_arrival:
            filed = filed_arrival.strip().upper()
            # Only a filed code the reference knows can be compared; anything else says nothing.
            diversion = filed in self.airports.reference and filed != airport
        track.found.append(
            Movement(
                kind=kind,
                key=track.key,
                ref=track.ref,
                airport=airport,
                at=at,
                bracket_from=bracket_from,
                bracket_to=bracket_to,
                runway_heading=heading,
                diversion=diversion,
                filed_arrival=filed_arrival,
            )
        )

    # -- the state machine -----------------------------------------------------------------

    def _advance(self, track: _Track, obs: Obs, filed_arrival: str | None) -> None:
        st = track.state
        if st.phase == UNKNOWN:
            self._first(track, obs)
            track.prev = obs
            return
        on_ground = obs.cls < AIR
        prev = track.prev
        if (
            obs.cls == ROLL
            and st.phase == GROUND
            and prev is not None
            and prev.cls < AIR
            and obs.alt > prev.alt + _CLIMB_FT
        ):
            # Fast and low, but higher than the ground it was on a moment ago: lifted off.
            on_ground = False
        if (st.phase == GROUND) == on_ground:
            if st.run:
                # The other phase did not last: noise, or a touch-and-go seen once.
                if st.phase == AIRBORNE:
                    self._maybe_brief_touch(track, st.run, obs)
                st.run = []
                st.bracket = None
                track.dirty = True
            if on_ground:
                self._ground(track, obs)
            else:
                self._air(track, obs)
        else:
            if not st.run:
                st.bracket = track.prev
            st.run.append(obs)
            track.dirty = True
            if len(st.run) >= self.rules.dwell_samples:
                if on_ground:
                    self._touch_down(track, filed_arrival)
                else:
                    self._take_off(track)
        track.prev = obs

    def _first(self, track: _Track, obs: Obs) -> None:
        st = track.state
        track.dirty = True
        if obs.cls < AIR:
            st.phase = GROUND
            st.still = obs.cls == STOPPED
            st.parked = st.still
            st.stop_since = obs if st.still else None
        else:
            st.phase = AIRBORNE
            st.was_high = self._high(obs)

    def _high(self, obs: Obs) -> bool:
        return obs.airport is None or (
            obs.height is not None and obs.height > self.rules.go_around_height_ft
        )

    def _elevation(self, icao: str) -> float | None:
        airport = self.airports.reference.get(icao)
        return None if airport is None else airport.elevation_ft

    def _maybe_brief_touch(self, track: _Track, run: list[Obs], after: Obs) -> None:
        """One ground sample between two air samples: a touch-and-go when the aircraft was low
        over that airport on both sides of it."""
        before, ground = track.state.bracket, run[0]
        if len(run) != 1 or before is None or ground.airport is None:
            return
        elevation = self._elevation(ground.airport)
        if elevation is None:
            return
        limit = self.rules.touch_and_go_height_ft
        if before.alt - elevation > limit or after.alt - elevation > limit:
            return
        self._emit(
            track,
            "touch_and_go",
            ground.airport,
            _touchdown_time(before, ground),
            before.at,
            ground.at,
            heading=_runway_heading(before, ground),
        )
        self._clear_go_around_watch(track.state, was_high=False)

    def _clear_go_around_watch(self, st: TrackState, *, was_high: bool) -> None:
        st.ga_low = None
        st.ga_climb = None
        st.ga_climbs = 0
        st.was_high = was_high

    def _touch_down(self, track: _Track, filed_arrival: str | None) -> None:
        st = track.state
        before, first = st.bracket, st.run[0]
        assert before is not None
        run = st.run
        if len(run) > 1 and first.cls == ROLL and run[1].alt < first.alt - _LEVEL_FT:
            # Still descending after the first low, fast sample: it was the flare, not the
            # runway. The wheels touched between it and the next one, where the descent ends.
            before, first = first, run[1]
        st.phase = GROUND
        st.run = []
        st.bracket = None
        st.touchdown = Touchdown(
            airport=first.airport or before.airport,
            at=_touchdown_time(before, first),
            bracket_from=before.at,
            bracket_to=first.at,
            heading=_runway_heading(before, first),
            filed_arrival=filed_arrival,
        )
        self._clear_go_around_watch(st, was_high=False)
        st.still, st.still_run, st.still_bracket = False, [], None
        st.stop_from = st.stop_since = None
        # The samples that confirmed the touchdown are the first of the ground phase.
        prev = before
        for obs in run:
            track.prev = prev
            self._ground(track, obs)
            prev = obs

    def _take_off(self, track: _Track) -> None:
        st = track.state
        before, first = st.bracket, st.run[0]
        assert before is not None
        lift_off = _lift_off_time(before, first, st.run[1] if len(st.run) > 1 else None)
        touchdown = st.touchdown
        if touchdown is not None and (
            (lift_off - touchdown.at).total_seconds() <= self.rules.touch_and_go_seconds
        ):
            # Back in the air without having stopped: one touch-and-go, at its touchdown.
            self._emit(
                track,
                "touch_and_go",
                touchdown.airport,
                touchdown.at,
                touchdown.bracket_from,
                touchdown.bracket_to,
                heading=touchdown.heading,
            )
        else:
            if touchdown is not None:
                self._land(track, touchdown)
            if st.parked and st.still:
                # Off the stand and airborne before a taxi lasted the dwell (snapshots missed):
                # it left the stand all the same, at the first sample that moved.
                start_from, start = (
                    (st.still_bracket, st.still_run[0]) if st.still_run else (before, first)
                )
                if start_from is not None:
                    self._off_block(track, start_from, start)
            self._emit(
                track,
                "takeoff",
                before.airport,
                lift_off,
                before.at,
                first.at,
                heading=_runway_heading(first, before),
            )
        run = st.run
        st.phase = AIRBORNE
        st.run = []
        st.bracket = None
        st.still, st.still_run, st.still_bracket = False, [], None
        st.stop_from = st.stop_since = None
        st.parked = st.landed = False
        st.touchdown = None
        self._clear_go_around_watch(st, was_high=any(self._high(o) for o in run))

    def _land(self, track: _Track, touchdown: Touchdown) -> None:
        self._emit(
            track,
            "landing",
            touchdown.airport,
            touchdown.at,
            touchdown.bracket_from,
            touchdown.bracket_to,
            heading=touchdown.heading,
            filed_arrival=touchdown.filed_arrival,
        )
        track.state.touchdown = None
        track.state.landed = True
        track.dirty = True

    def _ground(self, track: _Track, obs: Obs) -> None:
        st = track.state
        moving = obs.cls != STOPPED
        if moving != st.still:
            if st.still_run:  # a stop or a start that did not last
                st.still_run = []
                st.still_bracket = None
                track.dirty = True
        else:
            if not st.still_run:
                st.still_bracket = track.prev
            st.still_run.append(obs)
            track.dirty = True
            if len(st.still_run) >= self.rules.dwell_samples:
                self._stop_or_start(track)
        touchdown = st.touchdown
        if touchdown is not None and (
            (obs.at - touchdown.at).total_seconds() > self.rules.touch_and_go_seconds
        ):
            self._land(track, touchdown)
        self._maybe_on_block(track, obs.at)

    def _stop_or_start(self, track: _Track) -> None:
        st = track.state
        before, first = st.still_bracket, st.still_run[0]
        st.still_run = []
        st.still_bracket = None
        if st.still:  # moving again
            st.still = False
            st.stop_from = st.stop_since = None
            if st.parked and before is not None:
                st.parked = False
                self._off_block(track, before, first)
            return
        st.still = True
        st.stop_from = before
        st.stop_since = first
        if st.touchdown is not None:  # stopped after touching down: a full-stop landing
            self._land(track, st.touchdown)

    def _off_block(self, track: _Track, stopped: Obs, moving: Obs) -> None:
        """Off the stand between the last stopped sample and the first moving one."""
        airport = stopped.airport or moving.airport
        at = _middle(stopped.at, moving.at)
        self._emit(track, "off_block", airport, at, stopped.at, moving.at)

    def _maybe_on_block(self, track: _Track, now: datetime | None) -> None:
        """On block once stopped long enough after landing; ``now`` None: the session ended,
        stopped, so it is on block whatever the time."""
        st = track.state
        if not st.landed or not st.still or st.stop_since is None:
            return
        since = st.stop_since
        if now is not None and (now - since.at).total_seconds() < self.rules.on_block_seconds:
            return
        start = st.stop_from.at if st.stop_from is not None else since.at
        self._emit(track, "on_block", since.airport, _middle(start, since.at), start, since.at)
        st.landed = False
        st.parked = True
        track.dirty = True

    def _air(self, track: _Track, obs: Obs) -> None:
        st = track.state
        rules = self.rules
        high = self._high(obs)
        low = st.ga_low
        if low is None:
            if high:
                if not st.was_high:
                    st.was_high = True
                    track.dirty = True
            elif st.was_high:
                # Came down from above the go-around height near an airport: watch it.
                st.ga_low, st.ga_climb, st.ga_climbs = obs, None, 0
                st.was_high = False
                track.dirty = True
            return
        track.dirty = True
        if obs.airport is None:  # left the airport's surroundings: not an approach any more
            self._clear_go_around_watch(st, was_high=True)
        elif obs.alt < low.alt:
            st.ga_low, st.ga_climb, st.ga_climbs = obs, None, 0
        elif obs.alt >= low.alt + rules.go_around_climb_ft:
            if st.ga_climb is None:
                st.ga_climb = obs
            st.ga_climbs += 1
            if st.ga_climbs >= rules.dwell_samples:
                climb = st.ga_climb
                self._emit(track, "go_around", low.airport, low.at, low.at, climb.at)
                self._clear_go_around_watch(st, was_high=high)
        else:
            st.ga_climb, st.ga_climbs = None, 0

    def _end(self, track: _Track) -> None:
        """The session ended: what was pending is decided with what was seen."""
        st = track.state
        if st.run:
            # The last samples were of the other phase, fewer than the dwell: the session
            # ended in that phase (a takeoff or touchdown just before disconnecting).
            if st.phase == GROUND:
                self._take_off(track)
            else:
                self._touch_down(track, track.arrival)
        if st.phase != GROUND:
            return
        if st.still_run and not st.still and st.still_run[-1].cls == STOPPED:
            # Stopped at the last samples, fewer than the dwell: stopped all the same.
            st.still = True
            st.stop_from = st.still_bracket
            st.stop_since = st.still_run[0]
        if st.touchdown is not None:
            self._land(track, st.touchdown)
        self._maybe_on_block(track, None)
