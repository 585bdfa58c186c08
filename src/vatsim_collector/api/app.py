"""The REST API app factory. No module-level app, engine or settings: build one per ingestor.

Live data (``/api/flights``, ``/api/controllers``, ``/api/status``, ``/api/transceivers``) is
read from the ingestor's live view: the one it ingests on the leader, the one a
``pipeline.follower.Follower`` rebuilds from the database on any other node. History (tracks,
summaries, sector occupancy, coverage) comes from the database via the ingestor's
DatabaseService.
Errors are RFC 9457 problem documents (``api/problems.py``) without stack traces: a database
failure is a 503, anything unexpected a 500; the exception is logged, not returned. API keys and
roles are in ``api/auth.py``, body size and rate limits in ``api/limits.py``.
"""

from __future__ import annotations

import gc
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime

import structlog
from fastapi import FastAPI, status
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Receive, Scope, Send

from vatsim_collector.airports.nearest import AirportIndex
from vatsim_collector.airports.setup import packaged_airport_index
from vatsim_collector.airspace.sectors import SectorSet
from vatsim_collector.api import (
    routes_activity,
    routes_airports,
    routes_airspace,
    routes_controllers,
    routes_database,
    routes_errors,
    routes_events,
    routes_flights,
    routes_history,
    routes_members,
    routes_metrics,
    routes_privacy,
    routes_reports,
    routes_status,
    routes_summaries,
    routes_web,
)
from vatsim_collector.api.auth import KeyRing, PublicReadGate, read_security, security_schemes
from vatsim_collector.api.context import ApiContext, ErrorLayer, single_process_node
from vatsim_collector.api.forwarded import ForwardedClient, TrustedProxies
from vatsim_collector.api.headers import SecurityHeaders
from vatsim_collector.api.limits import BodySizeLimit, RateLimit
from vatsim_collector.api.live_cache import LiveFastPath
from vatsim_collector.api.metrics import install_metrics
from vatsim_collector.api.problems import (
    ProblemDocs,
    document_problems,
    install_problem_handlers,
    problem_response,
)
from vatsim_collector.api.redirects import install_relative_slash_redirects
from vatsim_collector.api.routes_docs import ASSET_PATHS as DOCS_PATHS
from vatsim_collector.api.routes_docs import install_docs
from vatsim_collector.api.status_cache import LeadershipReading, StatusCache
from vatsim_collector.cluster.node import Node
from vatsim_collector.pipeline.event_layer import EventLayer
from vatsim_collector.pipeline.ingest import Ingestor
from vatsim_collector.store.archive import DayArchive
from vatsim_collector.store.health import HealthLimits, HealthMonitor

log = structlog.get_logger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


# Paths for load balancers, never limited or closed.
UNLIMITED_PATHS = ("/health",)
CORS_METHODS = ("GET", "POST", "DELETE")
CORS_HEADERS = ("X-API-Key", "Authorization", "Content-Type")


class _ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered as a problem like any other error."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" in headers and "access-control-request-method" in headers:
                response = self.preflight_response(request_headers=headers)
                if response.status_code >= status.HTTP_400_BAD_REQUEST:
                    response = problem_response(
                        response.status_code,
                        "CORS preflight refused: origin, method or headers not allowed",
                        instance=scope["path"],
                        headers={
                            name: value
                            for name, value in response.headers.items()
                            if name not in ("content-length", "content-type")
                        },
                    )
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _freezing_startup(
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan, after ``gc.freeze()``: what was built before serving (the airport
    reference, the sectors, the restored state, the modules) lives as long as the process, and
    the cyclic collector need not walk it again. Without this, a full collection, which a few
    requests that allocate much set off every so often, took about 60 ms on a day's database
    and was the whole of the activity endpoint's p99 (BENCHMARKS.md)."""

    @asynccontextmanager
    async def startup(app: FastAPI) -> AsyncIterator[None]:
        gc.freeze()
        if lifespan is None:
            yield
            return
        async with lifespan(app):
            yield

    return startup


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
    api_keys: Sequence[str | tuple[str, str]] = (),
    public_read: bool = True,
    cors_origins: Sequence[str] = (),
    rate_limit_per_minute: int = 0,
    max_request_bytes: int = 65536,
    limiter_clock: Callable[[], float] = time.monotonic,
    leadership_clock: Callable[[], float] = time.monotonic,
    trusted_proxies: TrustedProxies | str = "",
    api_docs: bool = False,
    node: Node | None = None,
    airports: AirportIndex | None = None,
    airport_radius_nm: float = 5.0,
    stopped_max_kt: float = 1.0,
    archive: DayArchive | None = None,
) -> FastAPI:
    """Build the API for ``ingestor``.

    ``stale_after``: seconds after which the latest snapshot's ``general.update_timestamp``
    counts as stale (health degraded). ``clock`` returns the current aware UTC time; tests
    inject one. ``lifespan`` runs the collector beside the API when the service starts it.

    ``api_keys``: ``(role, key)`` pairs, role ``read`` or ``admin``; a bare string is an admin
    key. ``public_read`` False asks for a key on public data too. ``cors_origins`` turns CORS
    on for those origins (``*``: any, without credentials). ``rate_limit_per_minute`` per key
    or client address, 0 for none (the service passes its setting, 600 by default);
    ``limiter_clock`` is the rate limit's monotonic clock in seconds, for tests;
    ``leadership_clock`` the one after which ``/api/status`` reads the leadership again
    (``api/status_cache.py``).

    ``trusted_proxies``: addresses or networks (comma-separated, or parsed) whose
    X-Forwarded-For is believed; none by default, and the server must not resolve forwarded
    headers itself (uvicorn: ``proxy_headers=False``). ``api_docs`` serves Swagger UI at
    ``/docs`` from the installed swagger-ui-bundle package; /openapi.json is always served.

    ``node``: this process in the cluster, reported by ``/api/status``; by default a single
    process that collects, hence the leader.

    ``airports``: the airport index of the airport endpoints (by default the packaged
    reference's), with ``airport_radius_nm`` the radius that places an aircraft at one and
    ``stopped_max_kt`` the ground speed at or below which one on the ground is stopped.

    ``archive``: the Parquet archive, if one is configured: forgetting a member reaches it.
    """
    if stale_after <= 0:
        raise ValueError(f"stale_after must be positive, got {stale_after!r}")
    app = FastAPI(
        title="vatsim-collector",
        version="0.1.0",
        description="Live VATSIM state and recorded history. Names are never returned.",
        lifespan=_freezing_startup(lifespan),
        # FastAPI's own pages load Swagger UI and ReDoc from a CDN: never used (routes_docs).
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    install_relative_slash_redirects(app)
    proxies = (
        trusted_proxies
        if isinstance(trusted_proxies, TrustedProxies)
        else TrustedProxies.parse(trusted_proxies)
    )
    now = clock or _utc_now
    monitor = health or HealthMonitor(
        ingestor.db, limits=HealthLimits(stale_after_seconds=stale_after), clock=now
    )
    app.state.api_context = ApiContext(
        db=ingestor.db,
        collector=ingestor,
        stale_after=stale_after,
        clock=now,
        health=monitor,
        errors=errors,
        events=events,
        sectors=sectors,
        node=node or single_process_node(),
        airports=airports or packaged_airport_index(),
        airport_radius_nm=airport_radius_nm,
        stopped_max_kt=stopped_max_kt,
        archive=archive,
        status_cache=StatusCache(leadership=LeadershipReading(clock=leadership_clock)),
    )
    ring = KeyRing(api_keys)
    app.state.key_ring = ring
    install_problem_handlers(app)
    # Innermost, so that every access rule and limit below runs first (api/live_cache.py).
    app.add_middleware(
        LiveFastPath,
        answers={
            "/api/flights": routes_flights.flights_answer,
            "/api/controllers": routes_controllers.controllers_answer,
            "/api/status": routes_status.status_answer,
        },
    )
    _install_limits(
        app,
        ring,
        public_read=public_read,
        cors_origins=cors_origins,
        rate_limit_per_minute=rate_limit_per_minute,
        max_request_bytes=max_request_bytes,
        limiter_clock=limiter_clock,
        proxies=proxies,
        api_docs=api_docs,
    )
    if api_docs:
        install_docs(app)
    app.include_router(routes_status.router)
    # Before the flights router: /api/flights/summaries must not be taken for a flight id.
    app.include_router(routes_summaries.router)
    app.include_router(routes_flights.router)
    # Before the airspace router: the fixed /api/sectors/busiest and /api/sectors/geojson.
    app.include_router(routes_history.router)
    app.include_router(routes_airspace.router)
    app.include_router(routes_controllers.router)
    app.include_router(routes_activity.router)
    app.include_router(routes_reports.router)
    # Its fixed /api/airports/busiest is declared before /api/airports/{icao}.
    app.include_router(routes_airports.router)
    app.include_router(routes_members.router)
    app.include_router(routes_database.router)
    app.include_router(routes_errors.router)
    app.include_router(routes_events.router)
    app.include_router(routes_privacy.router)
    # Open like the public data (the public-read gate closes it with the rest): scrapers
    # rarely carry keys, and no label names a member.
    app.include_router(routes_metrics.router)
    app.include_router(routes_web.router)
    install_metrics(app)
    return app


def _install_limits(
    app: FastAPI,
    ring: KeyRing,
    *,
    public_read: bool,
    cors_origins: Sequence[str],
    rate_limit_per_minute: int,
    max_request_bytes: int,
    limiter_clock: Callable[[], float],
    proxies: TrustedProxies,
    api_docs: bool,
) -> None:
    """Middleware, outermost first: security headers, CORS, forwarded client, rate limit,
    public-data gate, body size.

    Security headers outermost so that every answer carries them; CORS next so that browsers
    can read the 401, 413 and 429 answers too (and preflights cost no tokens); the client
    address resolved before the rate limit counts it; the rate limit before the gate so that
    guessing keys costs tokens.
    """
    if rate_limit_per_minute < 0:
        raise ValueError(f"rate_limit_per_minute must not be negative, got {rate_limit_per_minute}")
    # The docs stay readable with public data closed: they hold no data, and the page is where
    # a key is entered to try the API.
    docs = [app.openapi_url, *(DOCS_PATHS if api_docs else ())]
    always_open = [*UNLIMITED_PATHS, *(path for path in docs if path)]
    app.add_middleware(BodySizeLimit, max_bytes=max_request_bytes)
    if not public_read:
        if not ring.configured:
            log.warning("public data is closed and no API keys are configured: all of it is shut")
        app.add_middleware(PublicReadGate, ring=ring, always_open=always_open)
    if rate_limit_per_minute:
        app.add_middleware(
            RateLimit,
            per_minute=rate_limit_per_minute,
            ring=ring,
            clock=limiter_clock,
            exempt=UNLIMITED_PATHS,
        )
    if proxies:
        app.add_middleware(ForwardedClient, proxies=proxies)
    if cors_origins:
        any_origin = "*" in cors_origins
        app.add_middleware(
            _ProblemCORSMiddleware,
            allow_origins=["*"] if any_origin else list(cors_origins),
            allow_methods=CORS_METHODS,
            allow_headers=CORS_HEADERS,
            # Keys travel in headers, not cookies; credentials only for named origins, since
            # browsers refuse them with a wildcard anyway.
            allow_credentials=not any_origin,
            expose_headers=["Retry-After", "WWW-Authenticate"],
        )
    app.add_middleware(SecurityHeaders)
    document_problems(
        app,
        ProblemDocs(
            security_schemes=security_schemes(),
            read_security=None if public_read else read_security(),
            always_open=always_open,
            rate_limited=bool(rate_limit_per_minute),
            unlimited=UNLIMITED_PATHS,
            max_request_bytes=max_request_bytes,
        ),
    )
