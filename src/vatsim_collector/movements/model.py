"""What the detector takes (one pilot in one snapshot) and what it finds (a movement)."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple

__all__ = ["KINDS", "Movement", "MovementKind", "PilotSample"]

MovementKind = Literal["off_block", "takeoff", "landing", "touch_and_go", "go_around", "on_block"]
KINDS: tuple[MovementKind, ...] = (
    "off_block",
    "takeoff",
    "landing",
    "touch_and_go",
    "go_around",
    "on_block",
)


class PilotSample(NamedTuple):
    """One pilot session as one snapshot shows it. ``ref`` is the caller's handle on the
    session (the live ``PilotSession``, or recompute's own), handed back on its movements.
    A named tuple: one is built per pilot per snapshot, so it must be cheap."""

    key: Hashable
    ref: object
    latitude: float
    longitude: float
    altitude_ft: float
    groundspeed_kt: float
    heading_deg: float
    # The filed arrival in force at this snapshot (ICAO code as filed), for diversions.
    filed_arrival: str | None = None


@dataclass(frozen=True, slots=True)
class Movement:
    kind: MovementKind
    key: Hashable
    ref: object
    # ICAO code of the nearest airport within the radius; None when there was none.
    airport: str | None
    # The estimate, between the last sample before the movement and the first one after it.
    at: datetime
    bracket_from: datetime
    bracket_to: datetime
    # True track in whole degrees when the samples around it show the runway's direction.
    runway_heading: int | None = None
    # A landing away from the filed arrival (only landings can be diversions).
    diversion: bool = False
    filed_arrival: str | None = None
