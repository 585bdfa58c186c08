"""Typed shapes of the VATSIM v3 documents.

Every key the feed has ever dropped or added is optional here and unknown keys are ignored
(msgspec's default), because the feed's schema drifts: ``revision_id`` and
``assigned_transponder`` are missing from older files, ``military_rating`` is new. The few
fields without defaults are those without which a record has no identity at all.

``gc=False``: a snapshot decodes into thousands of these, none of which can form a reference
cycle; leaving them out of the cyclic garbage collector's bookkeeping keeps its passes short.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from vatsim_collector.feed.limits import bound, items_bound

# A time without a zone cannot be compared with the snapshot's: such a record is malformed.
_AWARE = msgspec.Meta(tz=True)


class FlightPlan(msgspec.Struct, frozen=True, gc=False):
    flight_rules: Annotated[str, bound("FlightPlan.flight_rules")] = ""
    aircraft: Annotated[str, bound("FlightPlan.aircraft")] = ""
    aircraft_faa: Annotated[str, bound("FlightPlan.aircraft_faa")] = ""
    aircraft_short: Annotated[str, bound("FlightPlan.aircraft_short")] = ""
    departure: Annotated[str, bound("FlightPlan.departure")] = ""
    arrival: Annotated[str, bound("FlightPlan.arrival")] = ""
    alternate: Annotated[str, bound("FlightPlan.alternate")] = ""
    cruise_tas: Annotated[str, bound("FlightPlan.cruise_tas")] = ""
    altitude: Annotated[str, bound("FlightPlan.altitude")] = ""
    deptime: Annotated[str, bound("FlightPlan.deptime")] = ""
    enroute_time: Annotated[str, bound("FlightPlan.enroute_time")] = ""
    fuel_time: Annotated[str, bound("FlightPlan.fuel_time")] = ""
    remarks: Annotated[str, bound("FlightPlan.remarks")] = ""
    route: Annotated[str, bound("FlightPlan.route")] = ""
    revision_id: Annotated[int, bound("FlightPlan.revision_id")] | None = None
    assigned_transponder: Annotated[str, bound("FlightPlan.assigned_transponder")] | None = None


class Pilot(msgspec.Struct, gc=False):
    cid: Annotated[int, bound("Pilot.cid")]
    callsign: Annotated[str, bound("Pilot.callsign")]
    logon_time: Annotated[datetime, _AWARE]
    latitude: Annotated[float, bound("Pilot.latitude")]
    longitude: Annotated[float, bound("Pilot.longitude")]
    name: Annotated[str, bound("Pilot.name")] = ""
    server: Annotated[str, bound("Pilot.server")] = ""
    pilot_rating: Annotated[int, bound("Pilot.pilot_rating")] = 0
    military_rating: Annotated[int, bound("Pilot.military_rating")] | None = None
    altitude: Annotated[int, bound("Pilot.altitude")] = 0
    groundspeed: Annotated[int, bound("Pilot.groundspeed")] = 0
    transponder: Annotated[str, bound("Pilot.transponder")] = ""
    heading: Annotated[int, bound("Pilot.heading")] = 0
    qnh_i_hg: Annotated[float, bound("Pilot.qnh_i_hg")] | None = None
    qnh_mb: Annotated[int, bound("Pilot.qnh_mb")] | None = None
    flight_plan: FlightPlan | None = None
    last_updated: Annotated[datetime, _AWARE] | None = None


class Controller(msgspec.Struct, gc=False):
    cid: Annotated[int, bound("Controller.cid")]
    callsign: Annotated[str, bound("Controller.callsign")]
    logon_time: Annotated[datetime, _AWARE]
    name: Annotated[str, bound("Controller.name")] = ""
    frequency: Annotated[str, bound("Controller.frequency")] = ""
    facility: Annotated[int, bound("Controller.facility")] = 0
    rating: Annotated[int, bound("Controller.rating")] = 0
    server: Annotated[str, bound("Controller.server")] = ""
    visual_range: Annotated[int, bound("Controller.visual_range")] = 0
    text_atis: (
        Annotated[
            list[Annotated[str, bound("Controller.text_atis")]], items_bound("Controller.text_atis")
        ]
        | None
    ) = None
    last_updated: Annotated[datetime, _AWARE] | None = None


class Atis(msgspec.Struct, gc=False):
    cid: Annotated[int, bound("Atis.cid")]
    callsign: Annotated[str, bound("Atis.callsign")]
    logon_time: Annotated[datetime, _AWARE]
    name: Annotated[str, bound("Atis.name")] = ""
    frequency: Annotated[str, bound("Atis.frequency")] = ""
    facility: Annotated[int, bound("Atis.facility")] = 0
    rating: Annotated[int, bound("Atis.rating")] = 0
    server: Annotated[str, bound("Atis.server")] = ""
    visual_range: Annotated[int, bound("Atis.visual_range")] = 0
    atis_code: Annotated[str, bound("Atis.atis_code")] | None = None
    text_atis: (
        Annotated[list[Annotated[str, bound("Atis.text_atis")]], items_bound("Atis.text_atis")]
        | None
    ) = None
    last_updated: Annotated[datetime, _AWARE] | None = None


class Prefile(msgspec.Struct, gc=False):
    cid: Annotated[int, bound("Prefile.cid")]
    callsign: Annotated[str, bound("Prefile.callsign")]
    name: Annotated[str, bound("Prefile.name")] = ""
    flight_plan: FlightPlan | None = None
    last_updated: Annotated[datetime, _AWARE] | None = None


class General(msgspec.Struct, gc=False):
    version: int
    update_timestamp: datetime
    reload: int | None = None
    update: str = ""
    connected_clients: int | None = None
    unique_users: int | None = None


class Snapshot(msgspec.Struct, gc=False):
    general: General
    pilots: list[Pilot] = []
    controllers: list[Controller] = []
    atis: list[Atis] = []
    prefiles: list[Prefile] = []

    @property
    def update_timestamp(self) -> datetime:
        return self.general.update_timestamp

    @property
    def client_count(self) -> int:
        return len(self.pilots) + len(self.controllers) + len(self.atis)


def nearest_micro_degree(degrees: float) -> float:
    """``degrees`` to the nearest 1e-6 degree: the precision PostgreSQL keeps coordinates at
    (``store.types.MicroDegrees``). Idempotent; a value of at most six decimals is unchanged."""
    return round(degrees * 1_000_000) / 1_000_000


class Transceiver(msgspec.Struct, gc=False):
    id: Annotated[int, bound("Transceiver.id")] = 0
    frequency: Annotated[int, bound("Transceiver.frequency")] = 0
    latDeg: Annotated[float, bound("Transceiver.latDeg")] | None = None
    lonDeg: Annotated[float, bound("Transceiver.lonDeg")] | None = None
    heightMslM: Annotated[float, bound("Transceiver.heightMslM")] | None = None
    heightAglM: Annotated[float, bound("Transceiver.heightAglM")] | None = None

    def __post_init__(self) -> None:
        # The transceivers feed sends coordinates with up to 15 decimals; stored, they keep 6.
        # Kept at that precision from the start, what the leader serves live is what a
        # follower, a restart and `recompute` read back (pilots' positions come with 5).
        if self.latDeg is not None:
            self.latDeg = nearest_micro_degree(self.latDeg)
        if self.lonDeg is not None:
            self.lonDeg = nearest_micro_degree(self.lonDeg)


class StationTransceivers(msgspec.Struct, gc=False):
    callsign: Annotated[str, bound("StationTransceivers.callsign")]
    transceivers: list[Transceiver] = []
