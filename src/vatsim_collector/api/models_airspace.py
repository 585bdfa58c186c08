"""Request parameters and response models of the airspace and summary endpoints.

The paging and window parameters, and the checks on them, are shared by both routers so both
areas validate alike. Windows are echoed back as ``from``/``to`` (Python keywords, hence the
aliases) so a client that relied on the defaults learns which window it was answered for.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from vatsim_collector.api.models_events import PaginationOut
from vatsim_collector.api.models_movements import FlightMovementsOut

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


# -- request parameters --------------------------------------------------------------------

NAME_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"

Limit = Annotated[int, Query(ge=1, le=500, description="Page size, 1-500.")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="Items to skip.")]
From = Annotated[
    datetime | None,
    Query(alias="from", description="Inclusive; ISO 8601 with a UTC offset, e.g. ...T12:00:00Z."),
]
To = Annotated[
    datetime | None,
    Query(alias="to", description="Exclusive; ISO 8601 with a UTC offset."),
]
NamePrefix = Annotated[
    str | None,
    Query(
        max_length=32,
        pattern=NAME_PATTERN,
        description="Prefix, case-insensitive: 1-32 of A-Z, a-z, 0-9, '_' and '-'.",
    ),
]


def unprocessable(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=detail)


def utc(moment: datetime | None) -> datetime | None:
    """``moment`` in UTC. A naive time is refused, not read as UTC: guessing would shift every
    result by the caller's offset without anyone noticing."""
    if moment is None:
        return None
    if moment.utcoffset() is None:
        raise unprocessable("from and to need a UTC offset, e.g. 2024-05-01T12:00:00Z")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00+14:00 is a valid time, but in UTC it is before the year 1.
        raise unprocessable("times must lie between the years 1 and 9999 in UTC") from None


def aware_range(
    start: datetime | None, end: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """Both bounds in UTC (see ``utc``); ``to`` after ``from`` when both are given."""
    start, end = utc(start), utc(end)
    if start is not None and end is not None and end <= start:
        raise unprocessable("to must be after from")
    return start, end


def window(
    now: datetime,
    start: datetime | None,
    end: datetime | None,
    *,
    maximum: timedelta,
    default: timedelta = DAY,
) -> tuple[datetime, datetime]:
    """``to`` defaults to now and ``from`` to ``default`` before ``to``."""
    start, end = aware_range(start, end)
    end = end if end is not None else now.astimezone(UTC)
    if start is None:
        try:
            start = end - default
        except OverflowError:
            raise unprocessable(
                f"from, by default {default.total_seconds() / 3600:g} h before to, would lie"
                " before the year 1; give from"
            ) from None
    if end <= start:
        raise unprocessable("to (now when not given) must be after from")
    if end - start > maximum:
        raise unprocessable(
            f"the window from {start.isoformat()} to {end.isoformat()} is"
            f" longer than the maximum of {maximum.days} days"
        )
    return start, end


def hours_of(start: datetime, end: datetime) -> list[datetime]:
    """Every UTC hour that meets ``[start, end)``."""
    first = start.replace(minute=0, second=0, microsecond=0)
    # Counted, not stepped to: the step after 9999-12-31 23:00 cannot be represented.
    count = -((first - end) // HOUR)
    return [first + k * HOUR for k in range(count)]


def mhz(hz: int) -> str:
    return f"{hz / 1e6:.3f}"


# -- responses -----------------------------------------------------------------------------


class _Window(BaseModel):
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    start: datetime = Field(alias="from", description="Inclusive, UTC.")
    end: datetime = Field(alias="to", description="Exclusive, UTC.")


# -- sectors -------------------------------------------------------------------------------


class SectorOut(BaseModel):
    name: str
    features: int = Field(description="Polygons in the sector file carrying this name.")
    lower_ft: float | None = Field(
        description="Lowest lower limit over its polygons; null when one has none."
    )
    upper_ft: float | None = Field(
        description="Highest upper limit over its polygons; null when one has none."
    )
    current: int = Field(description="Pilot sessions inside it now (open occupancy rows).")


class SectorsOut(BaseModel):
    sectors: list[SectorOut]
    pagination: PaginationOut


class PointOut(BaseModel):
    latitude: float
    longitude: float
    altitude: int


class OccupancyOut(BaseModel):
    id: int
    sector: str
    flight_id: int
    pilot_session_id: int
    callsign: str
    entered_at: datetime = Field(description="The first snapshot inside.")
    entry: PointOut
    exited_at: datetime | None = Field(
        description="The last snapshot inside; null while the aircraft is still inside."
    )
    exit: PointOut | None


class OccupancyHourOut(BaseModel):
    hour: datetime = Field(description="Start of the UTC hour.")
    aircraft: int = Field(description="Distinct flights inside at some time of the hour.")
    entries: int = Field(description="Entries into the sector during the hour.")


class SectorOccupancyOut(_Window):
    sector: str
    current: list[OccupancyOut] = Field(description="Open occupancies now, oldest entry first.")
    visits: list[OccupancyOut] = Field(
        description="Occupancies overlapping the window, by entry time (this page)."
    )
    hourly: list[OccupancyHourOut] = Field(
        description="Every UTC hour meeting the window, counted over all visits (not the page)."
    )
    pagination: PaginationOut


# -- coverage ------------------------------------------------------------------------------


class HourCoverageOut(BaseModel):
    hour: datetime = Field(description="Start of the UTC hour.")
    samples: int
    covered: int
    coverage: float | None = Field(description="covered / samples; null without samples.")


class SectorCoverageOut(BaseModel):
    sector: str
    samples: int
    covered: int
    coverage: float | None = Field(description="covered / samples; null without samples.")


class CoverageOut(_Window):
    sector: str | None = Field(description="The sector asked for, if any.")
    samples: int = Field(description="Stored positions in the window (inside `sector`, if given).")
    covered: int = Field(description="Samples in contact with ATC at their snapshot time.")
    coverage: float | None = Field(description="covered / samples; null without samples.")
    hourly: list[HourCoverageOut] = Field(description="Every UTC hour meeting the window.")
    by_sector: list[SectorCoverageOut] = Field(
        description="Per sector the samples were in (a sample may be in two during a"
        " handover); empty when `sector` was given."
    )


# -- transceivers --------------------------------------------------------------------------


class TransceiverOut(BaseModel):
    id: int
    frequency_hz: int
    frequency: str = Field(description="MHz, three decimals, e.g. 118.505.")
    latitude: float | None
    longitude: float | None
    height_msl_m: float | None
    height_agl_m: float | None


class StationOut(BaseModel):
    callsign: str
    transceivers: list[TransceiverOut]


class TransceiversOut(BaseModel):
    transceivers: list[StationOut]
    updated_at: datetime | None = Field(
        description="update_timestamp of the latest accepted snapshot; null before the first."
    )
    pagination: PaginationOut


# -- summaries -----------------------------------------------------------------------------


class ControllerWorkedOut(BaseModel):
    controller_session_id: int
    callsign: str
    minutes: float


class SectorMinutesOut(BaseModel):
    sector: str
    minutes: float


class FlightSummaryOut(BaseModel):
    flight_id: int
    cid: int
    callsign: str
    departure: str | None
    arrival: str | None
    aircraft: str | None
    started_at: datetime
    ended_at: datetime
    online_minutes: float
    airborne_minutes: float
    distance_nm: float
    max_altitude: int | None
    coverage: float | None = Field(description="Share of online time in contact with ATC.")
    airborne_coverage: float | None
    controllers: list[ControllerWorkedOut]
    sectors: list[SectorMinutesOut]
    computed_at: datetime
    movements: FlightMovementsOut = Field(
        description="The flight's takeoffs, landings and block times as detected (movements);"
        " its airborne_minutes run from takeoff to landing, the summary's own count positions"
        " faster than 50 kt."
    )


class FlightSummariesOut(BaseModel):
    summaries: list[FlightSummaryOut]
    pagination: PaginationOut


class FlightRecordOut(FlightMovementsOut):
    """The flight as recorded, with its movements summed up (fields of FlightMovementsOut)."""

    id: int
    cid: int
    callsign: str
    departure: str | None
    arrival: str | None
    started_at: datetime
    ended_at: datetime | None = Field(description="Null while the flight is on.")


class PilotSessionOut(BaseModel):
    id: int
    logon_time: datetime
    first_seen_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None


class ContactOut(BaseModel):
    id: int
    pilot_session_id: int
    controller_session_id: int
    callsign: str = Field(description="The controller's callsign.")
    frequency_hz: int
    frequency: str = Field(description="MHz, three decimals, e.g. 118.505.")
    started_at: datetime
    ended_at: datetime | None = Field(description="Null while in contact.")


class FlightDetailOut(BaseModel):
    flight: FlightRecordOut
    sessions: list[PilotSessionOut]
    summary: FlightSummaryOut | None = Field(description="Null while the flight is on.")
    contacts: list[ContactOut]
    sectors: list[OccupancyOut]


class HourlyControllerOut(BaseModel):
    hour: datetime
    online_minutes: float
    contact_minutes: float
    aircraft: int


class AircraftHandledOut(BaseModel):
    flight_id: int
    callsign: str
    minutes: float


class ControllerSummaryOut(BaseModel):
    controller_session_id: int
    cid: int
    callsign: str
    facility: int
    started_at: datetime
    ended_at: datetime
    duration_minutes: float
    frequencies: list[str]
    aircraft_handled: int
    peak_concurrent: int
    hourly: list[HourlyControllerOut]
    per_aircraft: list[AircraftHandledOut]
    computed_at: datetime


class ControllerSummariesOut(BaseModel):
    summaries: list[ControllerSummaryOut]
    pagination: PaginationOut


class BusySectorOut(BaseModel):
    name: str
    current: int = Field(description="Pilot sessions inside it now (open occupancy rows).")


class BusiestSectorsOut(BaseModel):
    sectors: list[BusySectorOut] = Field(
        description="Sectors with at least one pilot inside, most pilots first, then by name."
    )


class PolygonOut(BaseModel):
    type: Literal["Polygon"]
    coordinates: list[list[tuple[float, float]]]


class MultiPolygonOut(BaseModel):
    type: Literal["MultiPolygon"]
    coordinates: list[list[list[tuple[float, float]]]]


class SectorPropertiesOut(BaseModel):
    name: str
    lower_ft: float | None
    upper_ft: float | None


class SectorFeatureOut(BaseModel):
    type: Literal["Feature"] = "Feature"
    properties: SectorPropertiesOut
    geometry: Annotated[PolygonOut | MultiPolygonOut, Field(discriminator="type")]


class SectorCollectionOut(BaseModel):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    simplify: float = Field(description="The tolerance applied, in degrees.")
    features: list[SectorFeatureOut] = Field(
        description="One feature per polygon of the sector set; a name may have several."
    )
