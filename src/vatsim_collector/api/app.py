"""The REST API app factory. No module-level app, engine or settings: build one per ingestor.

Live data (``/api/flights``, ``/api/controllers``, ``/api/status``, ``/api/transceivers``) is
read from the ingestor's in-memory state; history (tracks, summaries, sector occupancy, coverage)
from the database via the ingestor's DatabaseService.
Errors are always JSON ``{"detail": ...}`` without stack traces: a database failure is a 503,
anything unexpected a 500; the exception is logged, not returned.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime

import structlog
from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from vatsim_collector.api import (
    routes_airspace,
    routes_controllers,
    routes_database,
    routes_errors,
    routes_events,
    routes_flights,
    routes_status,
    routes_summaries,
)
from vatsim_collector.api.context import ApiContext, ErrorLayer
from vatsim_collector.events.layer import EventLayer
from vatsim_collector.ingest import Ingestor
from vatsim_collector.store.health import HealthLimits, HealthMonitor
from vatsim_collector.tracking.sectors import SectorSet

log = structlog.get_logger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("database error in API", path=request.url.path, error=type(exc).__name__)
    return JSONResponse(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        content={"detail": "database unavailable; try again later"},
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error in API", path=request.url.path, exc_info=exc)
    return JSONResponse(
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
        content={"detail": "internal server error"},
    )


def create_app(
    ingestor: Ingestor,
    *,
    stale_after: float,
    clock: Callable[[], datetime] | None = None,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    health: HealthMonitor | None = None,
    errors: ErrorLayer | None = None,
    events: EventLayer | None = None,
    sectors: SectorSet | None = None,
    api_keys: Sequence[str] = (),
) -> FastAPI:
    """Build the API for ``ingestor``.

    ``stale_after``: seconds after which the latest snapshot's ``general.update_timestamp``
    counts as stale (health degraded). ``clock`` returns the current aware UTC time; tests
    inject one. ``lifespan`` runs the collector beside the API when the service starts it.
    """
    if stale_after <= 0:
        raise ValueError(f"stale_after must be positive, got {stale_after!r}")
    app = FastAPI(
        title="vatsim-collector",
        version="0.1.0",
        description="Live VATSIM state and recorded history. Names are never returned.",
        lifespan=lifespan,
    )
    now = clock or _utc_now
    monitor = health or HealthMonitor(
        ingestor.db, limits=HealthLimits(stale_after_seconds=stale_after), clock=now
    )
    app.state.api_context = ApiContext(
        ingestor=ingestor,
        stale_after=stale_after,
        clock=now,
        health=monitor,
        errors=errors,
        events=events,
        sectors=sectors,
    )
    app.state.api_keys = tuple(key.encode() for key in api_keys)
    app.add_exception_handler(SQLAlchemyError, _database_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.include_router(routes_status.router)
    # Before the flights router: /api/flights/summaries must not be taken for a flight id.
    app.include_router(routes_summaries.router)
    app.include_router(routes_flights.router)
    app.include_router(routes_airspace.router)
    app.include_router(routes_controllers.router)
    app.include_router(routes_database.router)
    app.include_router(routes_errors.router)
    app.include_router(routes_events.router)
    return app
