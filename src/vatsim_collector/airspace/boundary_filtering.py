"""Applies the optional boundary filter to a decoded snapshot before it is tracked.

It runs after the sanity gate, which must judge the whole network: a quiet region is not a
feed failure. Transceivers are kept only for the stations that are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from vatsim_collector.feed.models import Snapshot, StationTransceivers

if TYPE_CHECKING:  # a filter is built (and shapely imported) only when one is configured
    from vatsim_collector.airspace.boundary import BoundaryFilter

__all__ = ["Filtered", "within_boundary"]


@dataclass(frozen=True)
class Filtered:
    snapshot: Snapshot
    transceivers: list[StationTransceivers] | None
    pilots_dropped: int
    controllers_dropped: int
    atis_dropped: int


def within_boundary(
    snapshot: Snapshot,
    transceivers: list[StationTransceivers] | None,
    boundary: BoundaryFilter,
) -> Filtered:
    pilots = snapshot.pilots
    inside = boundary.pilots_inside(
        [p.longitude for p in pilots], [p.latitude for p in pilots]
    ).tolist()
    kept_pilots = [p for p, ok in zip(pilots, inside, strict=True) if ok]
    kept_controllers = [c for c in snapshot.controllers if boundary.controller_allowed(c.callsign)]
    kept_atis = [a for a in snapshot.atis if boundary.controller_allowed(a.callsign)]
    kept = msgspec.structs.replace(
        snapshot, pilots=kept_pilots, controllers=kept_controllers, atis=kept_atis
    )
    if transceivers is not None:
        callsigns = {p.callsign for p in kept_pilots}
        callsigns.update(c.callsign for c in kept_controllers)
        callsigns.update(a.callsign for a in kept_atis)
        transceivers = [s for s in transceivers if s.callsign in callsigns]
    return Filtered(
        snapshot=kept,
        transceivers=transceivers,
        pilots_dropped=len(pilots) - len(kept_pilots),
        controllers_dropped=len(snapshot.controllers) - len(kept_controllers),
        atis_dropped=len(snapshot.atis) - len(kept_atis),
    )
