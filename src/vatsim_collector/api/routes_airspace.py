"""Sectors, their occupancy, ATC coverage (from the database) and transceivers (the live view).

Public like ``/api/flights``. Time windows are bounded because every one of these reads scales
with the window: a caller cannot make the database scan a year of positions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status

from vatsim_collector.airspace.sectors import SectorSet
from vatsim_collector.api.context import ApiContext, Context, loaded_sectors
from vatsim_collector.api.models_airspace import (
    HOUR,
    NAME_PATTERN,
    BusiestSectorsOut,
    BusySectorOut,
    CoverageOut,
    From,
    HourCoverageOut,
    Limit,
    NamePrefix,
    OccupancyHourOut,
    OccupancyOut,
    Offset,
    PointOut,
    SectorCollectionOut,
    SectorCoverageOut,
    SectorOccupancyOut,
    SectorOut,
    SectorsOut,
    StationOut,
    To,
    TransceiverOut,
    TransceiversOut,
    hours_of,
    mhz,
    window,
)
from vatsim_collector.api.models_events import PaginationOut
from vatsim_collector.api.problems import problem_responses
from vatsim_collector.api.sector_geojson import (
    GEOJSON_MAX_AGE_SECONDS,
    TOLERANCE_DECIMALS,
    geojson_cache,
    sector_collection,
)
from vatsim_collector.feed.models import StationTransceivers
from vatsim_collector.store import queries_airspace as q

router = APIRouter(tags=["airspace"])

OCCUPANCY_MAX = timedelta(days=31)
COVERAGE_MAX = timedelta(days=7)

SectorName = Annotated[
    str, Path(max_length=32, pattern=NAME_PATTERN, description="A sector name, e.g. EGTT.")
]

_503 = problem_responses(status.HTTP_503_SERVICE_UNAVAILABLE)
_404_503 = problem_responses(status.HTTP_404_NOT_FOUND, status.HTTP_503_SERVICE_UNAVAILABLE)


def _sector_named(ctx: ApiContext, name: str) -> str:
    """The stored name for ``name``; case is forgiven like callsigns (VATSpy ids are upper)."""
    sectors = loaded_sectors(ctx)
    for candidate in (name, name.upper()):
        if sectors.by_name(candidate):
            return candidate
    raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no sector named {name}")


def _limit(values: list[float | None], pick: Callable[[list[float]], float]) -> float | None:
    """The outermost limit over a name's polygons; unbounded if any polygon is."""
    bounded = [v for v in values if v is not None]
    return pick(bounded) if len(bounded) == len(values) else None


@router.get(
    "/api/sectors",
    response_model=SectorsOut,
    summary="Sectors of the loaded sector set, by name, with the pilots inside each now",
    description="One row per name: a name may have several polygons (`features`).",
    responses=_503,
)
def list_sectors(
    ctx: Context, name: NamePrefix = None, limit: Limit = 50, offset: Offset = 0
) -> SectorsOut:
    sectors = loaded_sectors(ctx)
    names = sectors.names()
    if name is not None:
        prefix = name.upper()
        names = [n for n in names if n.upper().startswith(prefix)]
    page = names[offset : offset + limit]
    with ctx.db.read("api.sectors") as conn:
        current = q.open_counts(conn, page)
    rows = []
    for sector_name in page:
        parts = sectors.by_name(sector_name)
        rows.append(
            SectorOut(
                name=sector_name,
                features=len(parts),
                lower_ft=_limit([p.lower_ft for p in parts], min),
                upper_ft=_limit([p.upper_ft for p in parts], max),
                current=current.get(sector_name, 0),
            )
        )
    return SectorsOut(
        sectors=rows, pagination=PaginationOut(total=len(names), limit=limit, offset=offset)
    )


def occupancy_out(row: q.OccupancyRow) -> OccupancyOut:
    exit_point = None
    if (
        row.exited_at is not None
        and row.exit_latitude is not None
        and row.exit_longitude is not None
        and row.exit_altitude is not None
    ):
        exit_point = PointOut(
            latitude=row.exit_latitude, longitude=row.exit_longitude, altitude=row.exit_altitude
        )
    return OccupancyOut(
        id=row.id,
        sector=row.sector,
        flight_id=row.flight_id,
        pilot_session_id=row.pilot_session_id,
        callsign=row.callsign,
        entered_at=row.entered_at,
        entry=PointOut(
            latitude=row.entry_latitude,
            longitude=row.entry_longitude,
            altitude=row.entry_altitude,
        ),
        exited_at=row.exited_at,
        exit=exit_point,
    )


def occupancy_hours(
    spans: list[q.Span], start: datetime, end: datetime, now: datetime
) -> list[OccupancyHourOut]:
    """Difference arrays over hours, so a week-long visit costs as much as a short one. A visit
    still open is taken to last until now (or the window's end, if earlier)."""
    hours = hours_of(start, end)
    base, count = hours[0], len(hours)
    entries = [0] * count
    runs: dict[int, list[tuple[int, int]]] = defaultdict(list)
    open_until = min(now, end)
    for span in spans:
        if start <= span.entered_at < end:
            entries[(span.entered_at - base) // HOUR] += 1
        first = max(span.entered_at, start)
        last = span.exited_at if span.exited_at is not None else open_until
        if last < first:
            continue
        j = count - 1 if last >= end else (last - base) // HOUR
        runs[span.flight_id].append(((first - base) // HOUR, j))
    aircraft = [0] * (count + 1)
    for flight_runs in runs.values():
        counted_through = -1  # a flight in the sector twice in one hour counts once there
        for i, j in sorted(flight_runs):
            i = max(i, counted_through + 1)
            if i <= j:
                aircraft[i] += 1
                aircraft[j + 1] -= 1
                counted_through = j
    out, running = [], 0
    for k, hour in enumerate(hours):
        running += aircraft[k]
        out.append(OccupancyHourOut(hour=hour, aircraft=running, entries=entries[k]))
    return out


@router.get(
    "/api/sectors/{name}/occupancy",
    response_model=SectorOccupancyOut,
    summary="Who is in a sector now, who was in it during a window, and hourly counts",
    description="Window: `from` (default `to` minus 24 h) to `to` (default now), at most 31"
    " days. A visit overlaps the window when it entered before `to` and had not exited before"
    " `from`. `hourly` counts, per UTC hour, the distinct flights inside at some time of the"
    " hour and the entries during it; visits still open count until now.",
    responses=_404_503,
)
def sector_occupancy(
    ctx: Context,
    name: SectorName,
    start: From = None,
    end: To = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> SectorOccupancyOut:
    sector = _sector_named(ctx, name)
    now = ctx.clock().astimezone(UTC)
    start, end = window(now, start, end, maximum=OCCUPANCY_MAX)
    with ctx.db.read("api.sector_occupancy") as conn:
        current = q.current_occupancy(conn, sector)
        total, visits = q.visits(conn, sector, start, end, limit, offset)
        spans = q.visit_spans(conn, sector, start, end)
    return SectorOccupancyOut(
        sector=sector,
        start=start,
        end=end,
        current=[occupancy_out(r) for r in current],
        visits=[occupancy_out(r) for r in visits],
        hourly=occupancy_hours(spans, start, end, now),
        pagination=PaginationOut(total=total, limit=limit, offset=offset),
    )


def _share(covered: int, samples: int) -> float | None:
    return covered / samples if samples else None


@router.get(
    "/api/coverage",
    response_model=CoverageOut,
    summary="Share of flight time with ATC, by hour and by sector",
    description="A *sample* is one stored position: one pilot at one snapshot whose time `t`"
    " is in [`from`, `to`). It is *covered* when a contact interval of that pilot session"
    " contains `t` (`started_at <= t` and `ended_at >= t` or still open). `coverage` ="
    " covered / samples, null without samples. The sector of a sample is any occupancy of its"
    " session with `entered_at <= t` and `exited_at >= t` or still open; `by_sector` counts a"
    " sample once in each such sector. With `sector`, only samples inside that sector count and"
    " `by_sector` is empty. Window: `from` (default `to` minus 24 h) to `to` (default now), at"
    " most 7 days.",
    responses=_404_503,
)
def coverage(
    ctx: Context,
    start: From = None,
    end: To = None,
    sector: Annotated[
        str | None,
        Query(max_length=32, pattern=NAME_PATTERN, description="Only samples inside it."),
    ] = None,
) -> CoverageOut:
    name = None if sector is None else _sector_named(ctx, sector)
    start, end = window(ctx.clock(), start, end, maximum=COVERAGE_MAX)
    with ctx.db.read("api.coverage") as conn:
        per_snapshot = q.coverage_by_snapshot(conn, start, end, name)
        per_sector = [] if name is not None else q.coverage_by_sector(conn, start, end)
    hours = hours_of(start, end)
    samples, covered = [0] * len(hours), [0] * len(hours)
    for row in per_snapshot:
        k = (row.key - hours[0]) // HOUR
        samples[k] += row.samples
        covered[k] += row.covered
    total, total_covered = sum(samples), sum(covered)
    return CoverageOut(
        start=start,
        end=end,
        sector=name,
        samples=total,
        covered=total_covered,
        coverage=_share(total_covered, total),
        hourly=[
            HourCoverageOut(hour=h, samples=n, covered=c, coverage=_share(c, n))
            for h, n, c in zip(hours, samples, covered, strict=True)
        ],
        by_sector=[
            SectorCoverageOut(
                sector=r.key,
                samples=r.samples,
                covered=r.covered,
                coverage=_share(r.covered, r.samples),
            )
            for r in per_sector
        ],
    )


def _station_out(station: StationTransceivers) -> StationOut:
    return StationOut(
        callsign=station.callsign,
        transceivers=[
            TransceiverOut(
                id=x.id,
                frequency_hz=x.frequency,
                frequency=mhz(x.frequency),
                latitude=x.latDeg,
                longitude=x.lonDeg,
                height_msl_m=x.heightMslM,
                height_agl_m=x.heightAglM,
            )
            for x in station.transceivers
        ],
    )


@router.get(
    "/api/transceivers",
    response_model=TransceiversOut,
    summary="Each station's radios in the latest transceivers document, sorted by callsign",
    description="The latest accepted snapshot's document, as stored: the same from every"
    " node. Stations listed without radios are left out. Empty when that snapshot came"
    " without its transceivers document.",
)
async def list_transceivers(
    ctx: Context,
    request: Request,
    callsign: NamePrefix = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Response:
    sources = ctx.live_sources()
    view, document = sources
    return await ctx.live_cache.respond_async(
        request,
        sources,
        ("transceivers", callsign, limit, offset),
        lambda: transceivers_out(view.snapshot_at, document, callsign, limit, offset),
    )


def transceivers_out(
    updated_at: datetime | None,
    document: list[StationTransceivers] | None,
    callsign: str | None,
    limit: int,
    offset: int,
) -> TransceiversOut:
    """The answer of ``/api/transceivers`` for the latest document and a page of it."""
    latest: dict[str, StationTransceivers] = {}
    for station in document or []:
        latest[station.callsign] = station  # listed twice: the later entry wins
    # A station without radios says nothing, and stores nothing a node that did not fetch
    # the document could rebuild it from.
    names = sorted(name for name, station in latest.items() if station.transceivers)
    if callsign is not None:
        prefix = callsign.upper()
        names = [n for n in names if n.upper().startswith(prefix)]
    return TransceiversOut(
        transceivers=[_station_out(latest[n]) for n in names[offset : offset + limit]],
        updated_at=updated_at,
        pagination=PaginationOut(total=len(names), limit=limit, offset=offset),
    )


@router.get(
    "/api/sectors/busiest",
    response_model=BusiestSectorsOut,
    summary="The sectors with the most pilots inside now",
    description="Counts as `current` in `/api/sectors`; sectors of the loaded set only.",
    responses=_503,
)
def busiest_sectors(
    ctx: Context,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500, description="How many, 1-500.")] = 10,
) -> Response:
    sectors = loaded_sectors(ctx)
    # The database is read after the view: it holds that snapshot or a newer one, whose view
    # replaces this one (and what was rendered from it) as soon as it is published.
    return ctx.live_cache.respond(
        request,
        ctx.live_sources(),
        ("sectors/busiest", limit),
        lambda: busiest_sectors_out(ctx, sectors, limit),
    )


def busiest_sectors_out(ctx: ApiContext, sectors: SectorSet, limit: int) -> BusiestSectorsOut:
    """The answer of ``/api/sectors/busiest``: the stored occupancy of now."""
    with ctx.db.read("api.sectors_busiest") as conn:
        rows = q.pilots_inside_now(conn)
    # At most one row per sector name: ranking in Python keeps the tie order exact everywhere.
    ranked = sorted(
        ((name, n) for name, n in rows if sectors.by_name(name)),
        key=lambda row: (-row[1], row[0]),
    )
    return BusiestSectorsOut(
        sectors=[BusySectorOut(name=name, current=n) for name, n in ranked[:limit]]
    )


@router.get(
    "/api/sectors/geojson",
    response_model=SectorCollectionOut,
    summary="The loaded sector set as a simplified GeoJSON FeatureCollection",
    description="Each polygon simplified with tolerance `simplify` degrees (topology"
    " preserved; rounded to 3 decimals), coordinates rounded to 3 decimals. For drawing,"
    " not for containment tests: the collector assigns aircraft with the full polygons.",
    responses=_503,
)
def sectors_geojson(
    ctx: Context,
    request: Request,
    simplify: Annotated[
        float,
        Query(ge=0, le=1, allow_inf_nan=False, description="Tolerance in degrees, 0-1."),
    ] = 0.05,
) -> Response:
    sectors = loaded_sectors(ctx)
    tolerance = round(simplify, TOLERANCE_DECIMALS)
    cache = geojson_cache(request)
    body = cache.get(tolerance)
    if body is None:
        body = sector_collection(sectors, tolerance).model_dump_json().encode()
        cache.put(tolerance, body)
    # The sector set is loaded once per process, so the answer only changes on a restart.
    return Response(
        content=body,
        media_type="application/json",
        headers={"Cache-Control": f"public, max-age={GEOJSON_MAX_AGE_SECONDS}"},
    )
