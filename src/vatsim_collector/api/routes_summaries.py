"""Flight and controller summaries, and one flight with everything recorded about it.

``/api/flights/summaries`` is declared before ``/api/flights/{flight_id}``, and the app includes
this router before the live flights router: Starlette takes the first route whose path matches,
and "summaries" would otherwise be read as a (bad) flight id.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status

from vatsim_collector.api.context import Context
from vatsim_collector.api.flight_movements import movement_fields, movements_out
from vatsim_collector.api.models_airspace import (
    NAME_PATTERN,
    ContactOut,
    ControllerSummariesOut,
    ControllerSummaryOut,
    FlightDetailOut,
    FlightRecordOut,
    FlightSummariesOut,
    FlightSummaryOut,
    From,
    Limit,
    Offset,
    PilotSessionOut,
    To,
    aware_range,
    mhz,
)
from vatsim_collector.api.models_events import PaginationOut
from vatsim_collector.api.problems import problem_responses
from vatsim_collector.api.routes_airspace import occupancy_out
from vatsim_collector.api.routes_flights import MAX_ID
from vatsim_collector.store import queries_airspace as q
from vatsim_collector.store.queries_movements import FlightMovements, flight_movements

router = APIRouter(tags=["summaries"])

# CIDs are INTEGER columns: a larger number could never match, and would overflow PostgreSQL.
MAX_CID = 2**31 - 1


def _code(pattern: str, max_length: int, what: str) -> Any:
    return Query(
        max_length=max_length,
        pattern=pattern,
        description=f"{what}; exact match, case-insensitive.",
    )


Airport = Annotated[str | None, _code(r"^[A-Za-z0-9_-]{1,16}$", 16, "ICAO code, e.g. EGLL")]
Aircraft = Annotated[str | None, _code(r"^[A-Za-z0-9/_-]{1,32}$", 32, "Aircraft type, e.g. B738")]
Callsign = Annotated[str | None, _code(NAME_PATTERN, 32, "Callsign")]
Cid = Annotated[int | None, Query(ge=1, le=MAX_CID, description="VATSIM CID.")]
FlightId = Annotated[int, Path(gt=0, le=MAX_ID, description="A flight id (see track, flights).")]


def _upper(value: str | None) -> str | None:
    return None if value is None else value.upper()


def _flight_summary_out(row: dict[str, Any], moved: FlightMovements | None) -> FlightSummaryOut:
    decoded = {**row, "controllers": json.loads(row["controllers"])}
    decoded["sectors"] = json.loads(row["sectors"])
    decoded["movements"] = movements_out(moved)
    return FlightSummaryOut.model_validate(decoded)


def _controller_summary_out(row: dict[str, Any]) -> ControllerSummaryOut:
    decoded = {key: row[key] for key in row}
    for key in ("frequencies", "hourly", "per_aircraft"):
        decoded[key] = json.loads(row[key])
    return ControllerSummaryOut.model_validate(decoded)


@router.get(
    "/api/flights/summaries",
    response_model=FlightSummariesOut,
    summary="Summaries of ended flights, newest ended first",
    description="Filters combine with AND. `from`/`to` bound the flight's end time.",
    responses=problem_responses(status.HTTP_503_SERVICE_UNAVAILABLE),
)
def flight_summaries(
    ctx: Context,
    departure: Airport = None,
    arrival: Airport = None,
    aircraft: Aircraft = None,
    callsign: Callsign = None,
    cid: Cid = None,
    start: From = None,
    end: To = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> FlightSummariesOut:
    start, end = aware_range(start, end)
    with ctx.db.read("api.flight_summaries") as conn:
        page = q.flight_summaries(
            conn,
            departure=_upper(departure),
            arrival=_upper(arrival),
            aircraft=_upper(aircraft),
            callsign=_upper(callsign),
            cid=cid,
            start=start,
            end=end,
            limit=limit,
            offset=offset,
        )
        moved = flight_movements(conn, [row["flight_id"] for row in page.rows])
    return FlightSummariesOut(
        summaries=[_flight_summary_out(row, moved.get(row["flight_id"])) for row in page.rows],
        pagination=PaginationOut(total=page.total, limit=limit, offset=offset),
    )


@router.get(
    "/api/flights/{flight_id}",
    response_model=FlightDetailOut,
    summary="One flight: its sessions, summary, ATC contacts and sector visits",
    description="`summary` is null while the flight is on (and until it has been summarised);"
    " contacts and sector visits still open have a null end.",
    responses=problem_responses(status.HTTP_404_NOT_FOUND, status.HTTP_503_SERVICE_UNAVAILABLE),
)
def flight_detail(ctx: Context, flight_id: FlightId) -> FlightDetailOut:
    with ctx.db.read("api.flight_detail") as conn:
        flight = q.flight(conn, flight_id)
        if flight is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no flight {flight_id}")
        sessions = q.flight_sessions(conn, flight_id)
        # A summary of a flight that a reconnect has since continued is out of date.
        summary = None if flight["ended_at"] is None else q.flight_summary(conn, flight_id)
        contacts = q.flight_contacts(conn, flight_id)
        sectors = q.flight_occupancy(conn, flight_id)
        moved = flight_movements(conn, [flight_id]).get(flight_id)
    return FlightDetailOut(
        flight=FlightRecordOut.model_validate({**flight, **movement_fields(moved)}),
        sessions=[PilotSessionOut.model_validate(s) for s in sessions],
        summary=None if summary is None else _flight_summary_out(summary, moved),
        contacts=[
            ContactOut.model_validate({**c, "frequency": mhz(c["frequency_hz"])}) for c in contacts
        ],
        sectors=[occupancy_out(row) for row in sectors],
    )


@router.get(
    "/api/controller-summaries",
    response_model=ControllerSummariesOut,
    summary="Summaries of ended controller sessions, newest ended first",
    description="Observers have none. Filters combine with AND. `from`/`to` bound the session's"
    " end time.",
    responses=problem_responses(status.HTTP_503_SERVICE_UNAVAILABLE),
)
def controller_summaries(
    ctx: Context,
    callsign: Callsign = None,
    cid: Cid = None,
    facility: Annotated[int | None, Query(ge=0, le=99, description="Facility code.")] = None,
    start: From = None,
    end: To = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> ControllerSummariesOut:
    start, end = aware_range(start, end)
    with ctx.db.read("api.controller_summaries") as conn:
        page = q.controller_summaries(
            conn,
            callsign=_upper(callsign),
            cid=cid,
            facility=facility,
            start=start,
            end=end,
            limit=limit,
            offset=offset,
        )
    return ControllerSummariesOut(
        summaries=[_controller_summary_out(row) for row in page.rows],
        pagination=PaginationOut(total=page.total, limit=limit, offset=offset),
    )
