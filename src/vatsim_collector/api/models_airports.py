"""Response models of the airport endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from vatsim_collector.api.models_events import PaginationOut

COUNT_DEFINITION = (
    "Departures are take-offs at the airport and arrivals landings; touch-and-goes are counted"
    " apart and are in neither; total is departures plus arrivals."
)


class RecentOut(BaseModel):
    last_30_min: int
    last_60_min: int


class OnGroundOut(BaseModel):
    cid: int
    callsign: str
    aircraft: str | None = Field(description="The filed aircraft's short type code.")
    departure: str | None
    arrival: str | None
    groundspeed: int
    state: Literal["stopped", "taxiing"] = Field(
        description="`stopped` at or below VATSIM_MOVEMENT_STOPPED_MAX_KT (1 kt) of ground"
        " speed, the movement detector's threshold; `taxiing` otherwise."
    )


class InboundOut(BaseModel):
    cid: int
    callsign: str
    departure: str | None
    altitude: int
    groundspeed: int
    distance_nm: float = Field(description="Great-circle distance to the airport.")
    eta: datetime = Field(description="Snapshot time plus distance over ground speed.")


class AtcOut(BaseModel):
    cid: int
    callsign: str
    frequency: str
    facility: int
    logon_time: datetime


class AirportOut(BaseModel):
    icao: str
    name: str
    iata: str | None
    lat: float
    lon: float
    elevation_ft: float
    tz: str
    country: str
    at: datetime | None = Field(
        description="The live snapshot's time (null before the first); the live parts are as"
        " of it, and the recent counts are counted back from it (from now without one)."
    )
    definition: str = COUNT_DEFINITION
    on_ground: list[OnGroundOut]
    departures: RecentOut
    arrivals: RecentOut
    inbound: list[InboundOut] = Field(
        description="Airborne flights filed to the airport due within the hour, soonest first."
    )
    atc: list[AtcOut] = Field(description="Controllers online now on the airport's positions.")


class MovementOut(BaseModel):
    id: int
    kind: str
    at: datetime
    cid: int
    callsign: str
    flight_id: int
    pilot_session_id: int
    runway_heading: int | None = Field(description="True degrees, when the track shows it.")
    diversion: bool = Field(description="A landing away from the filed arrival.")
    filed_arrival: str | None
    bracket_from: datetime = Field(description="The movement happened after this snapshot.")
    bracket_to: datetime = Field(description="... and by this one.")


class MovementsOut(BaseModel):
    icao: str
    start: datetime = Field(alias="from", serialization_alias="from")
    end: datetime = Field(alias="to", serialization_alias="to")
    movements: list[MovementOut]
    pagination: PaginationOut

    model_config = {"populate_by_name": True}


class CountsOut(BaseModel):
    departures: int
    arrivals: int
    touch_and_goes: int
    total: int


class BucketOut(CountsOut):
    start: datetime


class PeakHourOut(CountsOut):
    start: datetime
    end: datetime


class TrafficOut(BaseModel):
    icao: str
    start: datetime = Field(alias="from", serialization_alias="from")
    end: datetime = Field(alias="to", serialization_alias="to")
    bucket_minutes: int
    definition: str = COUNT_DEFINITION
    totals: CountsOut
    buckets: list[BucketOut] = Field(
        description="Every bucket meeting the window, empty ones too, aligned to UTC multiples"
        " of bucket_minutes; only movements within the window count."
    )
    peak_hour: PeakHourOut | None = Field(
        description="The 60 minutes with the most departures plus arrivals (see the README);"
        " null when there were none."
    )

    model_config = {"populate_by_name": True}


class BusyAirportOut(CountsOut):
    icao: str
    name: str | None


class BusiestOut(BaseModel):
    start: datetime = Field(alias="from", serialization_alias="from")
    end: datetime = Field(alias="to", serialization_alias="to")
    definition: str = COUNT_DEFINITION
    airports: list[BusyAirportOut]

    model_config = {"populate_by_name": True}
