"""Live pilots (from memory) and flight tracks (from the database)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from sqlalchemy import Connection

from vatsim_collector.api.context import ApiContext, Context
from vatsim_collector.api.models import (
    FlightOut,
    FlightsOut,
    TrackOut,
    TrackPoint,
)
from vatsim_collector.api.problems import problem_responses
from vatsim_collector.feed.models import FlightPlan
from vatsim_collector.store import queries
from vatsim_collector.tracking.live import LiveView
from vatsim_collector.tracking.state import PilotSession

router = APIRouter(tags=["flights"])

CALLSIGN_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"
# Ids are BIGINT on PostgreSQL; a larger number could only ever be a 404 or a driver error.
MAX_ID = 2**63 - 1

CallsignParam = Annotated[
    str,
    Path(
        min_length=1,
        max_length=32,
        pattern=CALLSIGN_PATTERN,
        description="1-32 characters of A-Z, a-z, 0-9, '_' and '-'.",
    ),
]
FlightIdParam = Annotated[
    int | None,
    Query(gt=0, le=MAX_ID, description="A flight of this callsign; default its latest flight."),
]


def _code(value: str) -> str | None:
    value = value.strip().upper()
    return value or None


def _flight_out(session: PilotSession) -> FlightOut:
    pilot = session.latest
    plan: FlightPlan | None = session.plan
    return FlightOut(
        callsign=session.callsign,
        cid=session.cid,
        flight_id=session.flight.id,
        session_id=session.id,
        logon_time=session.logon_time,
        latitude=pilot.latitude,
        longitude=pilot.longitude,
        altitude=pilot.altitude,
        groundspeed=pilot.groundspeed,
        heading=pilot.heading,
        transponder=pilot.transponder,
        departure=None if plan is None else _code(plan.departure),
        arrival=None if plan is None else _code(plan.arrival),
        aircraft_short=None if plan is None else (plan.aircraft_short.strip() or None),
        last_seen=session.last_seen,
    )


@router.get(
    "/api/flights",
    response_model=FlightsOut,
    summary="Pilots in the latest accepted snapshot, sorted by callsign",
)
async def list_flights(ctx: Context, request: Request) -> Response:
    return await flights_answer(ctx, request)


async def flights_answer(ctx: ApiContext, request: Request) -> Response:
    """``/api/flights`` from the live cache (the route's, and ``LiveFastPath``'s)."""
    sources = ctx.live_sources()
    return await ctx.live_cache.respond_async(
        request, sources, "flights", lambda: flights_out(sources[0])
    )


def flights_out(view: LiveView) -> FlightsOut:
    """The answer of ``/api/flights`` for ``view``."""
    sessions = list(view.pilots)
    sessions.sort(key=lambda s: (s.callsign, s.cid, s.logon_time))
    return FlightsOut(flights=[_flight_out(s) for s in sessions])


def _find_flight(
    conn: Connection, callsign: str, flight_id: int | None
) -> queries.FlightRow | None:
    if flight_id is not None:
        flight = queries.flight_by_id(conn, flight_id)
        if flight is None or flight.callsign.upper() != callsign.upper():
            return None
        return flight
    flight = queries.latest_flight(conn, callsign)
    if flight is None and callsign != callsign.upper():
        # Callsigns are upper case on the network; accept "baw123" for "BAW123".
        flight = queries.latest_flight(conn, callsign.upper())
    return flight


@router.get(
    "/api/flights/{callsign}/track",
    response_model=TrackOut,
    summary="Positions of a flight in time order",
    description="The callsign's latest flight (highest start time), or the flight given by"
    " `flight_id`, which must belong to that callsign. Positions of all the flight's pilot"
    " sessions are included.",
    responses=problem_responses(status.HTTP_404_NOT_FOUND, status.HTTP_503_SERVICE_UNAVAILABLE),
)
def flight_track(
    ctx: Context, callsign: CallsignParam, flight_id: FlightIdParam = None
) -> TrackOut:
    with ctx.db.read("api.flight_track") as conn:
        flight = _find_flight(conn, callsign, flight_id)
        if flight is None:
            if flight_id is None:
                detail = f"no flight recorded for callsign {callsign}"
            else:
                detail = f"flight {flight_id} not found for callsign {callsign}"
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=detail)
        positions = queries.flight_track(conn, flight.id)
    return TrackOut(
        flight_id=flight.id,
        callsign=flight.callsign,
        departure=flight.departure,
        arrival=flight.arrival,
        positions=[
            TrackPoint(
                time=p.time,
                latitude=p.latitude,
                longitude=p.longitude,
                altitude=p.altitude,
                groundspeed=p.groundspeed,
                heading=p.heading,
            )
            for p in positions
        ],
    )
