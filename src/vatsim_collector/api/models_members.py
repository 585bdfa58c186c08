"""Response models of one member's history (no names: they are never returned)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from vatsim_collector.api.models_events import PaginationOut
from vatsim_collector.api.models_movements import FlightMovementsOut


class PilotTotalsOut(BaseModel):
    hours: float = Field(description="Seen online as a pilot, first to last snapshot per session.")
    sessions: int
    flights: int
    first_seen: datetime | None
    last_seen: datetime | None


class PositionHoursOut(BaseModel):
    callsign: str
    hours: float = Field(description="Hours on position, as /api/activity/controllers counts.")
    sessions: int
    last_seen: datetime


class ControllerTotalsOut(BaseModel):
    hours: float
    sessions: int
    first_seen: datetime | None
    last_seen: datetime | None
    positions: list[PositionHoursOut] = Field(description="Most hours first.")


class MemberOut(BaseModel):
    cid: int
    last_seen: datetime | None = Field(description="The last snapshot the member was seen in.")
    pilot: PilotTotalsOut
    controller: ControllerTotalsOut


class MemberFlightOut(FlightMovementsOut):
    """One flight, with its movements summed up (fields of FlightMovementsOut)."""

    flight_id: int
    callsign: str
    departure: str | None = Field(description="As filed.")
    arrival: str | None = Field(description="As filed.")
    started_at: datetime
    ended_at: datetime | None
    sessions: int = Field(description="Connections the flight was made of (reconnects).")
    hours: float = Field(description="Seen time over its sessions.")


class MemberFlightsOut(BaseModel):
    cid: int
    flights: list[MemberFlightOut]
    pagination: PaginationOut


class MemberStationSessionOut(BaseModel):
    session_id: int
    atis: bool
    callsign: str
    facility: int
    frequency: str | None
    logon_time: datetime
    first_seen: datetime
    last_seen: datetime
    ended_at: datetime | None = Field(description="Null while online.")


class MemberStationSessionsOut(BaseModel):
    cid: int
    sessions: list[MemberStationSessionOut]
    pagination: PaginationOut
