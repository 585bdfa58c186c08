"""Response models of the activity endpoints."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from vatsim_collector.api.models_events import PaginationOut

HOURS_DEFINITION = (
    "Hours on position: for each controller session, the time from the first snapshot it was"
    " seen in to the last, on a frequency and facility that count, cut to the window. Up to one"
    " poll interval shorter at each end than the network's own connection time."
)


class ControllerActivityRowOut(BaseModel):
    key: str = Field(description="The group: a CID, a callsign, a facility name or a UTC day.")
    cid: int | None = None
    callsign: str | None = None
    facility: int | None = None
    facility_name: str | None = None
    day: date | None = None
    hours: float = Field(description="Hours on position within the window, to 4 decimals.")
    sessions: int = Field(description="Sessions with time on position in the window.")
    first_seen: datetime = Field(description="Start of the group's first counted stretch.")
    last_seen: datetime = Field(description="End of the group's last counted stretch.")
    aircraft_handled: int = Field(
        description="Distinct flights in ATC contact with the group's controllers while they"
        " counted (frequency and range, see the README)."
    )


class ControllerActivityTotalsOut(BaseModel):
    hours: float
    sessions: int
    groups: int


class ControllerActivityOut(BaseModel):
    start: datetime = Field(alias="from", serialization_alias="from")
    end: datetime = Field(alias="to", serialization_alias="to")
    group_by: str
    include_observers: bool
    include_atis: bool
    definition: str = HOURS_DEFINITION
    totals: ControllerActivityTotalsOut
    rows: list[ControllerActivityRowOut]
    pagination: PaginationOut

    model_config = {"populate_by_name": True}


PILOT_DEFINITION = (
    "Hours online: for each pilot session, the time from the first snapshot it was seen in to"
    " the last, cut to the window. Hours airborne: within those sessions, from each take-off to"
    " the session's next landing (touch-and-goes do not end it; a session first seen in the air"
    " counts from its first sighting, one never landing again to its last), cut to the window."
    " Departures and arrivals: the airports of the take-offs and landings within the window, in"
    " time order."
)


class PilotActivityRowOut(BaseModel):
    cid: int
    hours_online: float = Field(description="Hours connected as a pilot, to 4 decimals.")
    hours_airborne: float = Field(description="Hours in the air, to 4 decimals.")
    flights: int = Field(description="Distinct flights with time online in the window.")
    sessions: int = Field(description="Pilot sessions with time online in the window.")
    departures: list[str] = Field(description="ICAO codes of the take-offs, in time order.")
    arrivals: list[str] = Field(description="ICAO codes of the landings, in time order.")
    first_seen: datetime = Field(description="Start of the member's first counted session.")
    last_seen: datetime = Field(description="End of the member's last counted session.")


class PilotActivityTotalsOut(BaseModel):
    """Over every member in the window, not the page (time in the air is per row only)."""

    hours_online: float
    sessions: int
    flights: int
    pilots: int


class PilotActivityOut(BaseModel):
    start: datetime = Field(alias="from", serialization_alias="from")
    end: datetime = Field(alias="to", serialization_alias="to")
    definition: str = PILOT_DEFINITION
    totals: PilotActivityTotalsOut
    rows: list[PilotActivityRowOut]
    pagination: PaginationOut

    model_config = {"populate_by_name": True}
