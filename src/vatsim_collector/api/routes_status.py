"""Service health and the collector's status."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Response, status
from sqlalchemy.exc import SQLAlchemyError

from vatsim_collector.api import queries
from vatsim_collector.api.context import Context
from vatsim_collector.api.models import ErrorOut, Freshness, HealthOut, LiveCounts, StatusOut

log = structlog.get_logger(__name__)

router = APIRouter(tags=["status"])


@router.get(
    "/health",
    response_model=HealthOut,
    summary="Liveness and data freshness",
    responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"model": HealthOut}},
)
def health(ctx: Context, response: Response) -> HealthOut:
    try:
        with ctx.ingestor.engine.connect() as conn:
            queries.ping(conn)
    except SQLAlchemyError as exc:
        log.warning("health check: database unreachable", error=type(exc).__name__)
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return HealthOut(status="down", reasons=["database cannot be queried"])
    age = ctx.age_seconds()
    if age is None:
        return HealthOut(status="degraded", reasons=["no snapshot ingested yet"])
    if age > ctx.stale_after:
        return HealthOut(
            status="degraded",
            reasons=[
                f"last snapshot is {age:.0f} s old (limit {ctx.stale_after:g} s)",
            ],
        )
    return HealthOut(status="ok", reasons=[])


@router.get(
    "/api/status",
    response_model=StatusOut,
    summary="Latest snapshot, freshness, live counts and ingest counters",
    responses={status.HTTP_500_INTERNAL_SERVER_ERROR: {"model": ErrorOut}},
)
async def get_status(ctx: Context) -> StatusOut:
    view = ctx.ingestor.live
    age = ctx.age_seconds()
    freshness: Freshness = "none"
    if age is not None:
        freshness = "stale" if age > ctx.stale_after else "fresh"
    observers = sum(1 for c in view.controllers if c.is_observer)
    live = LiveCounts(
        pilots=len(view.pilots),
        controllers=len(view.controllers) - observers,
        observers=observers,
        atis=len(view.atis),
        prefiles=view.prefiles,
    )
    return StatusOut(
        last_snapshot_at=view.snapshot_at,
        age_seconds=None if age is None else round(age, 3),
        freshness=freshness,
        stale_after_seconds=ctx.stale_after,
        live=live,
        ingest=ctx.ingestor.stats.as_dict(),
    )
