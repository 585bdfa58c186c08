"""The detector's state of one pilot session, as it is kept in memory and in ``movement_state``.

Everything the state machine needs to continue after a restart is here, except the session's
last sample, which the database has anyway (its latest position and last-seen time): so the
state only changes, and is only written, around movements, not at every snapshot.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

__all__ = ["AIR", "GROUND", "ROLL", "STOPPED", "TAXI", "Obs", "Touchdown", "TrackState"]

# Sample classes, ground ones first (a class below AIR is on the ground).
STOPPED = 0  # on the ground, not moving
TAXI = 1  # on the ground, moving no faster than a fast taxi
ROLL = 2  # on the runway, faster than a taxi: a take-off or landing roll
AIR = 3

# Confirmed phases.
UNKNOWN = 0
GROUND = 1
AIRBORNE = 2


class Obs(msgspec.Struct, array_like=True, frozen=True):
    """One sample as the detector saw it: where, how high above which airport, how fast."""

    at: datetime
    lat: float
    lon: float
    alt: float
    gs: float
    hdg: float
    cls: int
    airport: str | None  # the nearest airport within the radius
    height: float | None  # above that airport's elevation


class Touchdown(msgspec.Struct, array_like=True):
    """A touchdown not yet known to be a landing or the first half of a touch-and-go."""

    airport: str | None
    at: datetime
    bracket_from: datetime
    bracket_to: datetime
    heading: int | None
    filed_arrival: str | None


class TrackState(msgspec.Struct, kw_only=True):
    phase: int = UNKNOWN
    # While samples of the other phase accumulate (``run``, fewer than the dwell): the last
    # sample of the confirmed phase, which opens the movement's bracket.
    bracket: Obs | None = None
    run: list[Obs] = msgspec.field(default_factory=list)
    # On the ground: stopped or moving, with the same dwell for a change.
    still: bool = False
    still_bracket: Obs | None = None
    still_run: list[Obs] = msgspec.field(default_factory=list)
    stop_from: Obs | None = None  # the last moving sample before the current stop
    stop_since: Obs | None = None  # the first sample of the current stop
    # At the gate (seen stopped at logon, or on block): the next taxi is an off-block.
    parked: bool = False
    # Landed and not on block yet.
    landed: bool = False
    touchdown: Touchdown | None = None
    # Go-around watch: flew above the go-around height since the last low approach, the
    # lowest sample of the approach being watched, and the climbing samples seen since.
    was_high: bool = False
    ga_low: Obs | None = None
    ga_climb: Obs | None = None
    ga_climbs: int = 0


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(TrackState)


def encode(state: TrackState) -> str:
    return _encoder.encode(state).decode()


def decode(text: str) -> TrackState:
    return _decoder.decode(text)
