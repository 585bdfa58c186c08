"""Response models of the event traffic report."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

REPORT_DEFINITION = (
    "Departures are takeoffs and arrivals landings detected at the airport in the window"
    " (touch-and-goes, go-arounds and block times are not counted); an hour row counts only the"
    " part of the hour inside the window. A flight was in contact with ATC when one of its"
    " sessions with such a movement had a contact with any controller overlapping the window."
    " Position hours are counted as in /api/activity/controllers (observers left out)."
)


class ReportHourOut(BaseModel):
    hour: datetime = Field(description="Start of the UTC clock hour.")
    departures: int
    arrivals: int
    total: int = Field(description="Departures plus arrivals.")


class PeakRateOut(BaseModel):
    start: datetime = Field(description="Start of the busiest quarter hour (aligned, UTC).")
    movements: int = Field(description="Departures plus arrivals in that quarter hour.")
    per_hour: int = Field(description="The quarter hour's movements times 4.")


class AtcContactOut(BaseModel):
    flights: int = Field(description="Flights with a takeoff or landing here in the window.")
    in_contact: int = Field(description="Of those, flights in contact with any ATC.")
    share: float | None = Field(description="in_contact / flights, to 4 decimals; null: none.")


class PositionHoursOut(BaseModel):
    callsign: str
    hours: float = Field(description="Hours on position within the window, to 4 decimals.")
    sessions: int


class SectorCountOut(BaseModel):
    sector: str
    pilot_sessions: int = Field(
        description="Distinct sessions of this report's flights in the sector in the window."
    )


class AirportReportOut(BaseModel):
    icao: str
    name: str
    iata: str | None
    departures: int
    arrivals: int
    total: int
    peak_hour: ReportHourOut | None = Field(
        description="The clock hour with most movements (the earliest of equals); null: none."
    )
    peak_15_minutes: PeakRateOut | None = Field(
        description="The aligned quarter hour with most movements; null: none."
    )
    atc_contact: AtcContactOut
    position_hours: float = Field(description="Hours on all the airport's positions.")
    positions: list[PositionHoursOut] = Field(
        description="The airport's positions (delivery, ground, tower, approach, departure,"
        " apron) staffed in the window, most hours first."
    )
    busiest_sectors: list[SectorCountOut] = Field(
        description="Up to 5 sectors with the most of these flights' sessions."
    )
    hours: list[ReportHourOut] = Field(description="Every UTC hour the window touches.")


class TrafficReportOut(BaseModel):
    start: datetime = Field(alias="from", serialization_alias="from")
    end: datetime = Field(alias="to", serialization_alias="to")
    definition: str = REPORT_DEFINITION
    airports: list[AirportReportOut]

    model_config = {"populate_by_name": True}
