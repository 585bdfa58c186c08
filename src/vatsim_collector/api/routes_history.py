"""The small public reads the dashboard needs beside the data endpoints.

Counts over time from the ``snapshots`` table, the busiest sectors now, the loaded sector set as
simplified GeoJSON, and circuit breaker states with an error count per category. All of it is
public: nothing here carries a message, a context, a name or a secret.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import numpy as np
import shapely
from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import distinct, func, select

from vatsim_collector.airspace.sectors import SectorSet
from vatsim_collector.api.context import Context, loaded_sectors
from vatsim_collector.api.problems import problem_responses
from vatsim_collector.store import schema as t

router = APIRouter(tags=["dashboard"])

ERROR_WINDOW_HOURS = 1.0
# Tolerances are rounded to this many decimals, so near-equal requests share one cache entry.
TOLERANCE_DECIMALS = 3
COORDINATE_DECIMALS = 3
# Each entry is the whole collection (hundreds of kB): keep only the few tolerances in use.
GEOJSON_CACHE_SIZE = 4
GEOJSON_MAX_AGE_SECONDS = 3600

_503 = problem_responses(status.HTTP_503_SERVICE_UNAVAILABLE)


# -- responses ---------------------------------------------------------------------------------


class CountsPointOut(BaseModel):
    at: datetime = Field(description="Start of the bucket (UTC), aligned to the bucket size.")
    pilots: int = Field(description="Most pilots in one snapshot of the bucket.")
    controllers: int = Field(
        description="Most controller connections in one snapshot of the bucket: the feed's"
        " `controllers` array, observers included (ATIS excluded)."
    )
    snapshots: int = Field(description="Accepted snapshots in the bucket.")


class CountsOut(BaseModel):
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    start: datetime = Field(alias="from", description="Inclusive, UTC: `hours` before now.")
    end: datetime = Field(alias="to", description="Now, UTC.")
    bucket_minutes: int
    points: list[CountsPointOut] = Field(
        description="Buckets holding at least one accepted snapshot, oldest first. A bucket"
        " without snapshots (the collector was not running) is absent, not zero."
    )


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


class BreakerStateOut(BaseModel):
    name: str
    state: Literal["closed", "open", "half_open"]


class ErrorSummaryOut(BaseModel):
    hours: float = Field(description="Length of the window ending now.")
    total: int
    by_category: dict[str, int] = Field(description="Every category, zero-filled.")
    by_severity: dict[str, int] = Field(description="Every severity, zero-filled.")


class ServiceStateOut(BaseModel):
    breakers: list[BreakerStateOut] = Field(
        description="Every circuit breaker by name; empty when the error layer is not running."
    )
    errors: ErrorSummaryOut | None = Field(
        description="Errors recorded during the last hour; null when the error layer is not"
        " running in this process."
    )


# -- counts over time --------------------------------------------------------------------------


@router.get(
    "/api/history/counts",
    response_model=CountsOut,
    summary="Pilots and controllers online over the last hours, per time bucket",
    description="From the accepted snapshots stored since `hours` before now, grouped into"
    " buckets of `bucket_minutes` aligned to the epoch (so to UTC hours for divisors of 60);"
    " each bucket gives the largest count seen in one of its snapshots.",
    responses=_503,
)
def history_counts(
    ctx: Context,
    hours: Annotated[int, Query(ge=1, le=168, description="Window length, 1-168.")] = 24,
    bucket_minutes: Annotated[
        int, Query(ge=1, le=360, description="Bucket size in minutes, 1-360.")
    ] = 10,
) -> CountsOut:
    end = ctx.clock().astimezone(UTC)
    start = end - timedelta(hours=hours)
    size_ms = bucket_minutes * 60_000
    s = t.snapshots
    # Snapshot ids are update_timestamp in epoch milliseconds: integer division buckets them
    # in SQL on both backends, and the status/update_timestamp index bounds the scan.
    bucket = (s.c.id // size_ms).label("bucket")
    query = (
        select(
            bucket,
            func.max(s.c.pilots),
            func.max(s.c.controllers),
            func.count(),
        )
        .where(s.c.status == "accepted", s.c.update_timestamp >= start)
        .group_by(bucket)
        .order_by(bucket)
    )
    with ctx.db.read("api.history_counts") as conn:
        rows = conn.execute(query).all()
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return CountsOut(
        start=start,
        end=end,
        bucket_minutes=bucket_minutes,
        points=[
            CountsPointOut(
                at=epoch + timedelta(milliseconds=int(index) * size_ms),
                pilots=int(pilots),
                controllers=int(controllers),
                snapshots=int(n),
            )
            for index, pilots, controllers, n in rows
        ],
    )


# -- sectors -----------------------------------------------------------------------------------


@router.get(
    "/api/sectors/busiest",
    response_model=BusiestSectorsOut,
    summary="The sectors with the most pilots inside now",
    description="Counts as `current` in `/api/sectors`; sectors of the loaded set only.",
    responses=_503,
)
def busiest_sectors(
    ctx: Context,
    limit: Annotated[int, Query(ge=1, le=500, description="How many, 1-500.")] = 10,
) -> BusiestSectorsOut:
    sectors = loaded_sectors(ctx)
    so = t.sector_occupancy
    with ctx.db.read("api.sectors_busiest") as conn:
        rows = conn.execute(
            select(so.c.sector, func.count(distinct(so.c.pilot_session_id)))
            .where(so.c.exited_at.is_(None))
            .group_by(so.c.sector)
        ).all()
    # At most one row per sector name: ranking in Python keeps the tie order exact everywhere.
    ranked = sorted(
        ((str(name), int(n)) for name, n in rows if sectors.by_name(name)),
        key=lambda row: (-row[1], row[0]),
    )
    return BusiestSectorsOut(
        sectors=[BusySectorOut(name=name, current=n) for name, n in ranked[:limit]]
    )


class _GeoJsonCache:
    """Serialised collections by tolerance, least recently used evicted first."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: OrderedDict[float, bytes] = OrderedDict()

    def get(self, tolerance: float) -> bytes | None:
        with self.lock:
            body = self.entries.get(tolerance)
            if body is not None:
                self.entries.move_to_end(tolerance)
            return body

    def put(self, tolerance: float, body: bytes) -> None:
        with self.lock:
            self.entries[tolerance] = body
            self.entries.move_to_end(tolerance)
            while len(self.entries) > GEOJSON_CACHE_SIZE:
                self.entries.popitem(last=False)


def _geojson_cache(request: Request) -> _GeoJsonCache:
    # Two first requests racing may each build a cache; one wins and the other's work is lost.
    cache = getattr(request.app.state, "sector_geojson_cache", None)
    if not isinstance(cache, _GeoJsonCache):
        cache = _GeoJsonCache()
        request.app.state.sector_geojson_cache = cache
    return cache


def _rounded(coordinates: np.ndarray[Any, np.dtype[np.float64]]) -> Any:
    return np.round(coordinates, COORDINATE_DECIMALS)


def sector_collection(sectors: SectorSet, tolerance: float) -> SectorCollectionOut:
    features = []
    for sector in sectors.sectors:
        geometry = shapely.simplify(sector.geometry, tolerance, preserve_topology=True)
        geometry = shapely.transform(geometry, _rounded)
        if geometry.is_empty or not isinstance(geometry, shapely.Polygon | shapely.MultiPolygon):
            continue
        features.append(
            SectorFeatureOut.model_validate(
                {
                    "properties": {
                        "name": sector.name,
                        "lower_ft": sector.lower_ft,
                        "upper_ft": sector.upper_ft,
                    },
                    "geometry": shapely.geometry.mapping(geometry),
                }
            )
        )
    return SectorCollectionOut(simplify=tolerance, features=features)


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
    cache = _geojson_cache(request)
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


# -- breakers and errors -----------------------------------------------------------------------


@router.get(
    "/api/status/breakers",
    response_model=ServiceStateOut,
    summary="Circuit breaker states and error counts of the last hour",
    description="The public part of `/api/errors/circuit-breakers` and `/api/errors/analytics`:"
    " names, states and counts only, no messages or contexts.",
)
def service_state(ctx: Context) -> ServiceStateOut:
    layer = ctx.errors
    if layer is None:
        return ServiceStateOut(breakers=[], errors=None)
    breakers = [
        BreakerStateOut(name=s.name, state=s.state.value) for s in layer.breakers.snapshots()
    ]
    data = layer.manager.analytics(ERROR_WINDOW_HOURS)
    return ServiceStateOut(
        breakers=breakers,
        errors=ErrorSummaryOut(
            hours=ERROR_WINDOW_HOURS,
            total=int(data["total"]),
            by_category={str(k): int(v) for k, v in data["by_category"].items()},
            by_severity={str(k): int(v) for k, v in data["by_severity"].items()},
        ),
    )
