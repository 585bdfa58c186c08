"""Airports: the live picture of one (reference data, aircraft on the ground, recent
departures and arrivals, inbound flights, ATC), its movements, its traffic per time bucket with
the peak hour, and the busiest airports. Public, like the sessions (CIDs and callsigns are
public on the network; no name is read).

``/api/airports/busiest`` is declared before ``/api/airports/{icao}``: routes match in
order, and ``busiest`` is a well-formed code.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status

from vatsim_collector.airports.reference import Airport
from vatsim_collector.api import airports as logic
from vatsim_collector.api.context import ApiContext, Context
from vatsim_collector.api.live_cache import MEDIA_TYPE, render_json
from vatsim_collector.api.models_airports import (
    AirportOut,
    AtcOut,
    BucketOut,
    BusiestOut,
    BusyAirportOut,
    CountsOut,
    InboundOut,
    MovementOut,
    MovementsOut,
    OnGroundOut,
    PeakHourOut,
    RecentOut,
    TrafficOut,
)
from vatsim_collector.api.models_airspace import From, Limit, Offset, To, unprocessable, window
from vatsim_collector.api.models_events import PaginationOut
from vatsim_collector.api.problems import problem_responses
from vatsim_collector.movements.model import KINDS
from vatsim_collector.store import queries_airports as q
from vatsim_collector.store.queries_airports import Counts
from vatsim_collector.tracking.live import LiveView

router = APIRouter(tags=["airports"])

# A month of one airport's movements is a few tens of thousands of rows at the busiest.
AIRPORT_MAX = timedelta(days=31)
RECENT = (timedelta(minutes=30), timedelta(minutes=60))
TICK = timedelta(microseconds=1)

Icao = Annotated[
    str,
    Path(
        pattern=r"^[A-Za-z0-9]{2,8}$",
        description="The airport's ICAO code as the reference has it; case-insensitive.",
    ),
]
_404_422_503 = problem_responses(
    status.HTTP_404_NOT_FOUND,
    status.HTTP_422_UNPROCESSABLE_CONTENT,
    status.HTTP_503_SERVICE_UNAVAILABLE,
)


def _airport(ctx: ApiContext, icao: str) -> Airport:
    found = ctx.airports.reference.get(icao.upper())
    if found is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"no airport {icao.upper()} in the reference"
        )
    return found


def _counts(counts: Counts) -> CountsOut:
    return CountsOut(
        departures=counts.departures,
        arrivals=counts.arrivals,
        touch_and_goes=counts.touch_and_goes,
        total=counts.total,
    )


def _blank(text: str | None) -> str | None:
    return text.strip().upper() or None if text else None


@router.get(
    "/api/airports/busiest",
    response_model=BusiestOut,
    summary="Airports by departures plus arrivals in a window",
    description="Most movements first (ties by code). The window defaults to the last 24"
    " hours and may span 31 days.",
    responses=problem_responses(
        status.HTTP_422_UNPROCESSABLE_CONTENT, status.HTTP_503_SERVICE_UNAVAILABLE
    ),
)
def busiest(
    ctx: Context,
    start: From = None,
    end: To = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Airports, 1-100.")] = 10,
) -> BusiestOut:
    start, end = window(ctx.clock(), start, end, maximum=AIRPORT_MAX)
    with ctx.db.read("api.airports_busiest") as conn:
        found = q.busiest(conn, start, end, limit)
    reference = ctx.airports.reference
    return BusiestOut(
        start=start,
        end=end,
        airports=[
            BusyAirportOut(
                icao=busy.airport,
                name=known.name if (known := reference.get(busy.airport)) else None,
                **_counts(busy.counts).model_dump(),
            )
            for busy in found
        ],
    )


@router.get(
    "/api/airports/{icao}",
    response_model=AirportOut,
    summary="An airport now: reference data, on the ground, recent movements, inbound, ATC",
    description="Aircraft on the ground are those the collector places there (slow, low and"
    " nearest to it); inbound flights are airborne, filed to the airport and due within the"
    " hour at their ground speed along the great circle. Departures and arrivals are counted"
    " back 30 and 60 minutes from the live snapshot's time. 404 for a code not in the"
    " reference.",
    responses=_404_422_503,
)
def airport(ctx: Context, request: Request, icao: Icao) -> Response:
    found = _airport(ctx, icao)
    sources = ctx.live_sources()
    view = sources[0]
    if view.snapshot_at is None:
        # No snapshot yet: the recent counts are of the clock's time, not of a view.
        return Response(render_json(airport_out(ctx, found, view)), media_type=MEDIA_TYPE)
    return ctx.live_cache.respond(
        request, sources, ("airport", found.icao), lambda: airport_out(ctx, found, view)
    )


def airport_out(ctx: ApiContext, found: Airport, view: LiveView) -> AirportOut:
    """The answer of ``/api/airports/{icao}`` for ``view``."""
    at = view.snapshot_at or ctx.clock()
    with ctx.db.read("api.airport") as conn:
        # (at - span, at]: a movement at the snapshot's own time is recent, one exactly half
        # an hour earlier is not. Times are stored to the microsecond.
        recent = [q.counts(conn, found.icao, at - span + TICK, at + TICK) for span in RECENT]
    radius = ctx.airport_radius_nm
    ground = logic.on_ground(ctx.airports, found, view, radius)
    coming = logic.inbound(ctx.airports, found, view, at, radius)
    return AirportOut(
        icao=found.icao,
        name=found.name,
        iata=found.iata or None,
        lat=found.lat,
        lon=found.lon,
        elevation_ft=found.elevation_ft,
        tz=found.tz,
        country=found.country,
        at=view.snapshot_at,
        on_ground=[
            OnGroundOut(
                cid=p.cid,
                callsign=p.callsign,
                aircraft=_blank(p.plan.aircraft_short) if p.plan else None,
                departure=_blank(p.plan.departure) if p.plan else None,
                arrival=_blank(p.plan.arrival) if p.plan else None,
                groundspeed=p.latest.groundspeed,
                state="stopped" if p.latest.groundspeed <= ctx.stopped_max_kt else "taxiing",
            )
            for p in ground
        ],
        departures=RecentOut(last_30_min=recent[0].departures, last_60_min=recent[1].departures),
        arrivals=RecentOut(last_30_min=recent[0].arrivals, last_60_min=recent[1].arrivals),
        inbound=[
            InboundOut(
                cid=i.pilot.cid,
                callsign=i.pilot.callsign,
                departure=_blank(i.pilot.plan.departure) if i.pilot.plan else None,
                altitude=i.pilot.latest.altitude,
                groundspeed=i.pilot.latest.groundspeed,
                distance_nm=round(i.distance_nm, 1),
                eta=i.eta,
            )
            for i in coming
        ],
        atc=[
            AtcOut(
                cid=c.cid,
                callsign=c.callsign,
                frequency=c.frequency,
                facility=c.facility,
                logon_time=c.logon_time,
            )
            for c in logic.atc(found, view)
        ],
    )


def _kinds(kind: list[str] | None) -> list[str] | None:
    if not kind:
        return None
    wanted = [k.strip() for item in kind for k in item.split(",") if k.strip()]
    if not wanted or any(k not in KINDS for k in wanted):
        # The value is not repeated: it is the caller's, and may be anything.
        raise unprocessable(f"kind must be one or more of {', '.join(KINDS)}")
    return sorted(set(wanted))


@router.get(
    "/api/airports/{icao}/movements",
    response_model=MovementsOut,
    summary="An airport's movements, newest first",
    description="`kind` filters (repeated, or a comma-separated list) among off_block,"
    " takeoff, landing, touch_and_go, go_around and on_block. The window defaults to the last"
    " 24 hours and may span 31 days. 404 for a code not in the reference.",
    responses=_404_422_503,
)
def movements(
    ctx: Context,
    icao: Icao,
    start: From = None,
    end: To = None,
    kind: Annotated[
        list[str] | None,
        Query(description="Movement kinds: repeated, or comma-separated."),
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> MovementsOut:
    found = _airport(ctx, icao)
    start, end = window(ctx.clock(), start, end, maximum=AIRPORT_MAX)
    kinds = _kinds(kind)
    # One snapshot for the count and the page.
    with ctx.db.read_consistent("api.airport_movements") as conn:
        total, rows = q.page(conn, found.icao, start, end, kinds, limit, offset)
    return MovementsOut(
        icao=found.icao,
        start=start,
        end=end,
        movements=[
            MovementOut(
                id=row.id,
                kind=row.kind,
                at=row.at,
                cid=row.cid,
                callsign=row.callsign,
                flight_id=row.flight_id,
                pilot_session_id=row.pilot_session_id,
                runway_heading=row.runway_heading,
                diversion=bool(row.diversion),
                filed_arrival=row.filed_arrival,
                bracket_from=row.bracket_from,
                bracket_to=row.bracket_to,
            )
            for row in rows
        ],
        pagination=PaginationOut(total=total, limit=limit, offset=offset),
    )


@router.get(
    "/api/airports/{icao}/traffic",
    response_model=TrafficOut,
    summary="An airport's departures and arrivals per time bucket, and its peak hour",
    description="Buckets of `bucket_minutes` (5 to 1440, dividing a day) aligned to UTC"
    " multiples of it, empty ones included; the peak hour is the 60 minutes with the most"
    " departures plus arrivals, starting at a UTC multiple of the bucket (of an hour for"
    " longer buckets). The window defaults to the last 24 hours and may span 31 days. 404"
    " for a code not in the reference.",
    responses=_404_422_503,
)
def traffic(
    ctx: Context,
    icao: Icao,
    start: From = None,
    end: To = None,
    bucket_minutes: Annotated[
        int, Query(ge=5, le=1440, description="Bucket length: 5 to 1440, dividing 1440.")
    ] = 60,
) -> TrafficOut:
    found = _airport(ctx, icao)
    if 1440 % bucket_minutes:
        raise unprocessable("bucket_minutes must divide a day (1440 minutes)")
    start, end = window(ctx.clock(), start, end, maximum=AIRPORT_MAX)
    with ctx.db.read("api.airport_traffic") as conn:
        moves = q.per_minute(conn, found.icao, start, end)
    peak = logic.peak_hour(moves, start, end, bucket_minutes)
    total = logic.totals(moves)
    return TrafficOut(
        icao=found.icao,
        start=start,
        end=end,
        bucket_minutes=bucket_minutes,
        totals=_counts(total),
        buckets=[
            BucketOut(start=b.start, **_counts(b.counts).model_dump())
            for b in logic.buckets(moves, start, end, bucket_minutes)
        ],
        peak_hour=None
        if peak is None
        else PeakHourOut(start=peak.start, end=peak.end, **_counts(peak.counts).model_dump()),
    )
