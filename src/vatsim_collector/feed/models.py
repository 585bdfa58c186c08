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

import msgspec


class FlightPlan(msgspec.Struct, frozen=True, gc=False):
    flight_rules: str = ""
    aircraft: str = ""
    aircraft_faa: str = ""
    aircraft_short: str = ""
    departure: str = ""
    arrival: str = ""
    alternate: str = ""
    cruise_tas: str = ""
    altitude: str = ""
    deptime: str = ""
    enroute_time: str = ""
    fuel_time: str = ""
    remarks: str = ""
    route: str = ""
    revision_id: int | None = None
    assigned_transponder: str | None = None


class Pilot(msgspec.Struct, gc=False):
    cid: int
    callsign: str
    logon_time: datetime
    latitude: float
    longitude: float
    name: str = ""
    server: str = ""
    pilot_rating: int = 0
    military_rating: int | None = None
    altitude: int = 0
    groundspeed: int = 0
    transponder: str = ""
    heading: int = 0
    qnh_i_hg: float | None = None
    qnh_mb: int | None = None
    flight_plan: FlightPlan | None = None
    last_updated: datetime | None = None


class Controller(msgspec.Struct, gc=False):
    cid: int
    callsign: str
    logon_time: datetime
    name: str = ""
    frequency: str = ""
    facility: int = 0
    rating: int = 0
    server: str = ""
    visual_range: int = 0
    text_atis: list[str] | None = None
    last_updated: datetime | None = None


class Atis(msgspec.Struct, gc=False):
    cid: int
    callsign: str
    logon_time: datetime
    name: str = ""
    frequency: str = ""
    facility: int = 0
    rating: int = 0
    server: str = ""
    visual_range: int = 0
    atis_code: str | None = None
    text_atis: list[str] | None = None
    last_updated: datetime | None = None


class Prefile(msgspec.Struct, gc=False):
    cid: int
    callsign: str
    name: str = ""
    flight_plan: FlightPlan | None = None
    last_updated: datetime | None = None


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


class Transceiver(msgspec.Struct, gc=False):
    id: int = 0
    frequency: int = 0
    latDeg: float | None = None
    lonDeg: float | None = None
    heightMslM: float | None = None
    heightAglM: float | None = None


class StationTransceivers(msgspec.Struct, gc=False):
    callsign: str
    transceivers: list[Transceiver] = []
