"""Wires settings into a running service: database, ingestor, feed poller and API.

The poller lives in the API's lifespan, so uvicorn's own SIGINT/SIGTERM handling stops it in
order: stop polling, let the in-flight ingest commit, close the HTTP client, then the engine.

``serve`` (``build_api_node``, ``run_api_node``) runs the API alone on a database a leader
writes: no poller, no migrations, no retention; a ``Follower`` keeps its live view current.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypedDict

import httpx2
import structlog
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from vatsim_collector.airports.nearest import AirportIndex
from vatsim_collector.airports.setup import shared_airport_index
from vatsim_collector.airspace.setup import Airspace, build_airspace
from vatsim_collector.api import create_app
from vatsim_collector.api.context import ErrorLayer
from vatsim_collector.api.metrics import install_metrics, install_relay_metrics
from vatsim_collector.brokers.nats.connection import NatsConnection
from vatsim_collector.brokers.nats.health import OutboxHealth
from vatsim_collector.brokers.nats.relay import OutboxRelay
from vatsim_collector.brokers.nats.stream import events_stream
from vatsim_collector.cluster.leadership import Elector, LeadershipListener, Observation
from vatsim_collector.cluster.node import Node, Role
from vatsim_collector.cluster.registry import NodeRegistry
from vatsim_collector.config import Settings
from vatsim_collector.errors.exceptions import CollectorError, StorageUnavailable
from vatsim_collector.errors.manager import ErrorManager
from vatsim_collector.errors.registry import BreakerRegistry
from vatsim_collector.errors.retry import RetryPolicy
from vatsim_collector.feed.client import FeedClient, redact_url
from vatsim_collector.feed.schedule import FixedRateSchedule
from vatsim_collector.logsetup import uvicorn_log_config
from vatsim_collector.pipeline.event_layer import (
    STOP_TIMEOUT_SECONDS,
    EventLayer,
    build_event_layer,
)
from vatsim_collector.pipeline.follower import Follower
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.pipeline.ingest_setup import open_ingestor
from vatsim_collector.pipeline.poller import Poller
from vatsim_collector.pipeline.spool import SnapshotSpool
from vatsim_collector.pipeline.worker import consumer_reader
from vatsim_collector.simulator.server import SimulatedNetwork
from vatsim_collector.simulator.thread import running_simulator
from vatsim_collector.store.archive import DayArchive
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.engine import sqlite_path
from vatsim_collector.store.error_records import ErrorRecordStore
from vatsim_collector.store.health import HealthLimits, HealthMonitor
from vatsim_collector.store.leader_lock import LeaderLock, SqliteFileLock
from vatsim_collector.store.migrate import SchemaNotCurrent, require_current_schema
from vatsim_collector.store.retention import RetentionJob, RetentionPolicy, run_periodically

log = structlog.get_logger(__name__)


def health_limits(settings: Settings) -> HealthLimits:
    return HealthLimits(
        stale_after_seconds=settings.stale_after_seconds,
        latency_degraded_ms=settings.health_latency_degraded_ms,
        pool_saturation_degraded=settings.health_pool_saturation_degraded,
        min_free_disk_bytes=int(settings.health_min_free_disk_mb * 1024**2),
    )


@dataclass
class Components:
    """Everything the service runs, built from settings and wired, not yet started."""

    settings: Settings
    airspace: Airspace
    ingestor: Ingestor
    engine: Engine
    monitor: HealthMonitor
    errors: ErrorManager
    breakers: BreakerRegistry
    client: FeedClient
    events: EventLayer
    poller: Poller
    node: Node
    elector: Elector
    # Held for the process's life on SQLite: a second collector on the file is refused.
    file_lock: SqliteFileLock | None = None
    # This node's heartbeat, breaker states and the resets other nodes ask of it.
    node_registry: NodeRegistry | None = None
    # With NATS: the connection, and the relay that publishes the outbox to the stream (only
    # while this node leads).
    nats: NatsConnection | None = None
    relay: OutboxRelay | None = None
    # The airport index of the airport endpoints (the reference with VATSIM_AIRPORTS_FILE).
    airports: AirportIndex | None = None


def build_elector(
    settings: Settings, db: DatabaseService
) -> tuple[Node, Elector, SqliteFileLock | None]:
    """This node and its elector. On SQLite, refuses (``DatabaseInUse``) when another
    collector already runs on the file."""
    node = Node(settings.node, Role.STANDBY)
    file_lock: SqliteFileLock | None = None
    lock: LeaderLock | None = None
    if db.engine.dialect.name == "postgresql":
        lock = LeaderLock(db.engine, lease_seconds=settings.leader_lease_seconds)
    else:
        path = sqlite_path(settings.database_url)
        if path is not None:
            file_lock = SqliteFileLock(path)
            file_lock.acquire()
    elector = Elector(db, node, lock, lease_seconds=settings.leader_lease_seconds)
    return node, elector, file_lock


def build_node_registry(
    settings: Settings,
    node: Node,
    breakers: BreakerRegistry,
    db: DatabaseService,
    errors: ErrorManager | None = None,
) -> NodeRegistry:
    """The heartbeat of ``node`` in ``cluster_nodes``, every ``VATSIM_NODE_HEARTBEAT_SECONDS``;
    run it with ``NodeRegistry.run`` (``run`` does in ``run_components``; ``serve`` and
    ``worker`` can too)."""
    return NodeRegistry(db, node, breakers, interval=settings.node_heartbeat_seconds, errors=errors)


def build_components(
    settings: Settings, *, transport: httpx2.AsyncBaseTransport | None = None
) -> Components:
    airspace = build_airspace(settings)
    airports = shared_airport_index(settings)
    db = DatabaseService.from_settings(settings)
    # Before the migrations: a second collector on a SQLite file must not even migrate it.
    node, elector, file_lock = build_elector(settings, db)
    try:
        ingestor, engine = open_ingestor(settings, airspace, db)
    except BaseException:
        if file_lock is not None:
            file_lock.release()
        raise
    # Every snapshot transaction checks that this node still leads with its epoch.
    ingestor.fence = elector.fence
    if elector.lead_if_free():
        # Rebuilt again under the claimed epoch: a previous leader may have committed more
        # between the first restore and the claim.
        ingestor.restore()
    spool = SnapshotSpool(
        settings.spool_dir,
        max_entries=settings.spool_max_snapshots,
        max_bytes=settings.spool_max_bytes,
    )
    # Snapshots waiting behind the one being stored, in memory and spooled (the poller is
    # made below).
    monitor = HealthMonitor(
        ingestor.db, limits=health_limits(settings), backlog=lambda: poller.waiting
    )
    errors = ErrorManager(
        ErrorRecordStore(ingestor.db), window_size=settings.error_window_size, node=node.name
    )
    breakers = BreakerRegistry.from_settings(settings)
    client = FeedClient(
        settings,
        transport=transport,
        status_breaker=breakers.get_or_create("feed.status"),
        transceivers_breaker=breakers.get_or_create("feed.transceivers"),
    )
    events = build_event_layer(settings, ingestor.db, errors=errors, breakers=breakers)
    poller = Poller(
        client,
        ingestor,
        FixedRateSchedule(client.poll_interval),
        spool,
        errors=errors,
        breakers=breakers,
        retry=retry_policy(settings),
        bus=events.bus,
        pending_in_memory=settings.pending_in_memory,
        cadence=settings.feed_cadence_seconds,
        elector=elector,
        standby_poll=settings.standby_poll,
        gap_fill_seconds=settings.gap_fill_seconds,
        follower=Follower(ingestor, interval=settings.follow_interval, errors=errors),
    )
    elector.listener = poller
    c = Components(
        settings,
        airspace,
        ingestor,
        engine,
        monitor,
        errors,
        breakers,
        client,
        events,
        poller,
        node,
        elector,
        file_lock,
        build_node_registry(settings, node, breakers, ingestor.db, errors),
        airports=airports,
    )
    if settings.nats_enabled:
        wire_relay(c)
    return c


def wire_relay(c: Components) -> None:
    """The NATS connection and the outbox relay, which runs while this node leads; its health
    check; and a wake-up after each ingest so that a committed snapshot's events go out
    without waiting for the idle poll."""
    settings = c.settings
    c.nats = NatsConnection.from_settings(settings)
    relay = OutboxRelay.from_settings(settings, c.ingestor.db, c.nats, events_stream(settings))
    c.relay = relay
    c.monitor.checks.append(
        OutboxHealth(c.ingestor.db, c.nats, backlog_degraded=settings.outbox_backlog_degraded)
    )
    c.poller.ingest_observers.append(lambda _outcome, _seconds: relay.wake())
    if c.elector.listener is not None:
        c.elector.listener = LeadershipListeners(c.elector.listener, relay)


class LeadershipListeners:
    """Tells several listeners of the elector, in order: the poller first (it catches up and
    fills the gap before anything is relayed), then the relay."""

    def __init__(self, *listeners: LeadershipListener) -> None:
        self.listeners = listeners

    async def promote(self, epoch: int) -> None:
        for listener in self.listeners:
            await listener.promote(epoch)

    async def demote(self, reason: str) -> None:
        for listener in self.listeners:
            await listener.demote(reason)

    async def observe(self, observation: Observation) -> None:
        for listener in self.listeners:
            await listener.observe(observation)


@asynccontextmanager
async def run_components(c: Components, app: FastAPI) -> AsyncIterator[None]:
    """Start the collector's loops beside the API, and stop them in order when it stops:
    polling, the in-flight ingest, the handlers, the background jobs, the HTTP client, the
    engine."""
    settings, poller = c.settings, c.poller
    stop_background = asyncio.Event()
    retention = RetentionJob(
        c.ingestor.db,
        RetentionPolicy.from_settings(settings),
        chunk_rows=settings.retention_chunk_rows,
        # The ingestor's own manager, so a dropped day is known to need recreating.
        partitions=c.ingestor.partitions,
        ahead_days=settings.partitions_ahead_days,
        archive=DayArchive.from_settings(settings),
    )
    background = [
        asyncio.create_task(
            c.monitor.run(settings.health_interval, stop_background), name="health"
        ),
        asyncio.create_task(
            run_periodically(retention, settings.retention_interval, stop_background),
            name="retention",
        ),
        asyncio.create_task(
            c.errors.run_flusher(settings.error_flush_interval, stop_background),
            name="error-records",
        ),
    ]
    if c.node_registry is not None:
        background.append(
            asyncio.create_task(c.node_registry.run(stop_background), name="node-heartbeat")
        )
    await c.events.start()
    if c.nats is not None and c.relay is not None:
        await c.nats.start()
        if c.elector.leading:  # led from the start (lead_if_free); later: promote, demote
            c.relay.start()
    task = asyncio.create_task(poller.run(), name="poller")
    # Stopped after the poller: the last snapshot in flight still commits with the epoch.
    stop_election = asyncio.Event()
    election = asyncio.create_task(c.elector.run(stop_election), name="election")

    def collection_ended(done: asyncio.Task[None]) -> None:
        # The poller survives every failure it can; if it ends by itself, collection has
        # stopped: stop the service, so a supervisor restarts it (run_service exits 3).
        if poller.fatal is None and not done.cancelled() and done.exception() is not None:
            poller.fatal = f"the collection loop died: {type(done.exception()).__name__}"
        if poller.fatal is not None:
            log.critical("collection stopped; shutting down", reason=poller.fatal)
            request_exit = getattr(app.state, "request_exit", None)
            if request_exit is not None:
                request_exit()

    task.add_done_callback(collection_ended)
    log.info(
        "collector started", feed=redact_url(settings.status_url), interval=c.client.poll_interval
    )
    try:
        yield
    finally:
        poller.stop()
        try:
            await asyncio.wait_for(task, STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            log.error("poller did not stop in time", timeout=STOP_TIMEOUT_SECONDS)
        stop_election.set()
        await asyncio.gather(election, return_exceptions=True)
        # Handlers finish what the last snapshots published; what they cannot finish in
        # time is dead-lettered, to be replayed.
        await c.events.stop(STOP_TIMEOUT_SECONDS)
        # What the relay has not published stays in the outbox for the next leader.
        if c.relay is not None:
            await c.relay.stop(STOP_TIMEOUT_SECONDS)
        if c.nats is not None:
            await c.nats.close()
        stop_background.set()
        await asyncio.gather(*background, return_exceptions=True)
        await c.client.aclose()
        c.engine.dispose()
        if c.file_lock is not None:
            c.file_lock.release()
        log.info("collector stopped", **c.ingestor.stats.as_dict())


class ApiAccess(TypedDict):
    api_keys: list[tuple[str, str]]
    public_read: bool
    cors_origins: list[str]
    rate_limit_per_minute: int
    max_request_bytes: int
    trusted_proxies: str
    api_docs: bool


def api_access(settings: Settings) -> ApiAccess:
    """The API's access and limit settings, the same on every kind of node."""
    return {
        "api_keys": settings.api_key_entries,
        "public_read": settings.public_read,
        "cors_origins": settings.cors_origin_list,
        "rate_limit_per_minute": settings.rate_limit_per_minute,
        "max_request_bytes": settings.max_request_bytes,
        "trusted_proxies": settings.trusted_proxies,
        "api_docs": settings.api_docs,
    }


def build_service_app(
    settings: Settings, *, transport: httpx2.AsyncBaseTransport | None = None
) -> FastAPI:
    c = build_components(settings, transport=transport)
    app = create_app(
        c.ingestor,
        stale_after=settings.stale_after_seconds,
        lifespan=lambda app: run_components(c, app),
        health=c.monitor,
        errors=ErrorLayer(
            manager=c.errors, breakers=c.breakers, poller=c.poller, cluster=c.node_registry
        ),
        events=c.events,
        sectors=c.airspace.sectors,
        **api_access(settings),
        node=c.node,
        airports=c.airports,
        airport_radius_nm=settings.airport_radius_nm,
        stopped_max_kt=settings.movement_stopped_max_kt,
        archive=DayArchive.from_settings(settings),
    )
    app.state.poller = c.poller
    if c.relay is not None:
        install_relay_metrics(app, c.relay)
    if c.nats is not None:
        # The handlers' JetStream consumers (workers run them): pending, redelivered.
        install_metrics(app).watch_consumers(consumer_reader(settings, c.nats.jetstream))
    return app


def retry_policy(settings: Settings) -> RetryPolicy:
    # Retries must finish well inside one poll interval, or cycles would pile up.
    budget = max(settings.poll_interval * 0.8, settings.retry_initial)
    return RetryPolicy(
        attempts=settings.retry_attempts,
        initial=settings.retry_initial,
        maximum=max(settings.retry_max, settings.retry_initial),
        total=budget,
    )


class CollectionStopped(CollectorError, RuntimeError, wrapper=True):
    """The collection loop died; the service stopped so that a supervisor restarts it."""


def run_service(settings: Settings, *, transport: httpx2.AsyncBaseTransport | None = None) -> None:
    """Serve until stopped. Raises ``CollectionStopped`` if it stopped because collection
    died, so the process exits non-zero."""
    app = build_service_app(settings, transport=transport)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.api_host,
            port=settings.api_port,
            log_level=settings.log_level.lower(),
            log_config=uvicorn_log_config(),
            access_log=False,
            # Forwarded headers are believed only from VATSIM_TRUSTED_PROXIES, by the app
            # (api/forwarded.py); uvicorn would believe them from any loopback peer.
            proxy_headers=False,
        )
    )

    def request_exit() -> None:
        server.should_exit = True

    app.state.request_exit = request_exit
    server.run()
    poller = app.state.poller
    if poller.fatal is not None:
        raise CollectionStopped(poller.fatal)


def run_demo(settings: Settings, *, speed: float, seed: int) -> None:
    """Serve the simulator on a free local port and collect from it: no network needed."""
    from datetime import UTC, datetime

    network = SimulatedNetwork(seed=seed, start=datetime.now(UTC).replace(microsecond=0))
    with running_simulator(network=network, speed=speed) as base_url:
        demo = settings.model_copy(update={"status_url": f"{base_url}/status.json"})
        log.info(
            "demo feed",
            url=redact_url(demo.status_url),
            api=f"http://{demo.api_host}:{demo.api_port}",
        )
        run_service(demo)


# ----- serve: the API alone, on the database a leader writes ---------------------------------


class DatabaseUnreachable(StorageUnavailable):
    """``serve`` could not reach the database to check its schema; it did not start."""


@dataclass
class ApiNode:
    """What ``serve`` runs: the API over the shared database, with its live view following
    the leader's commits. It never ingests, migrates, or runs retention."""

    settings: Settings
    airspace: Airspace
    ingestor: Ingestor
    follower: Follower
    monitor: HealthMonitor
    errors: ErrorManager
    breakers: BreakerRegistry
    events: EventLayer
    node: Node
    # Its heartbeat in cluster_nodes: its breakers, visible from every node.
    registry: NodeRegistry
    airports: AirportIndex | None = None


def open_shared_database(settings: Settings) -> DatabaseService:
    """The database a leader writes, checked to be at this code's schema; never created or
    migrated here. Raises ``SchemaNotCurrent`` (naming ``db upgrade``) or
    ``DatabaseUnreachable``."""
    path = sqlite_path(settings.database_url)
    if path is not None and not path.is_file():
        # Connecting would create an empty file: this node only reads what a collector wrote.
        raise SchemaNotCurrent(
            f"no database file at {path}: `serve` reads the database a collector writes;"
            " start `vatsim-collector run` on it first, or point --database-url at it"
        )
    db = DatabaseService.from_settings(settings)
    try:
        require_current_schema(db.engine)
    except SQLAlchemyError as exc:
        db.dispose()
        cause = getattr(exc, "orig", None) or exc
        # The driver's class name only: its message may carry the host or user.
        raise DatabaseUnreachable(
            f"the database cannot be reached ({type(cause).__name__}); `serve` did not start"
        ) from exc
    except BaseException:
        db.dispose()
        raise
    return db


def build_api_node(settings: Settings) -> ApiNode:
    db = open_shared_database(settings)
    try:
        airspace = build_airspace(settings)
        airports = shared_airport_index(settings)
    except BaseException:
        db.dispose()
        raise
    ingestor = Ingestor(
        db,
        IngestConfig.from_settings(settings),
        airspace=airspace.engine,
        boundary=airspace.boundary,
    )
    node = Node(settings.node, Role.API)
    errors = ErrorManager(
        ErrorRecordStore(db), window_size=settings.error_window_size, node=node.name
    )
    breakers = BreakerRegistry.from_settings(settings)
    follower = Follower(ingestor, interval=settings.follow_interval, errors=errors)
    registry = build_node_registry(settings, node, breakers, db, errors)
    return ApiNode(
        settings=settings,
        airspace=airspace,
        ingestor=ingestor,
        follower=follower,
        monitor=HealthMonitor(db, limits=health_limits(settings)),
        errors=errors,
        breakers=breakers,
        events=build_event_layer(settings, db, errors=errors, breakers=breakers),
        node=node,
        registry=registry,
        airports=airports,
    )


@asynccontextmanager
async def run_api_node(n: ApiNode) -> AsyncIterator[None]:
    """The follower and the background jobs beside the API; stopped in order with it."""
    settings = n.settings
    # The live view is the database's before the first request, not an empty one.
    try:
        await asyncio.to_thread(n.follower.refresh_once)
    except StorageUnavailable as exc:
        log.warning("live view not loaded yet; the follower retries", error=str(exc))
    stop = asyncio.Event()
    background = [
        asyncio.create_task(n.follower.run(stop), name="follower"),
        asyncio.create_task(n.monitor.run(settings.health_interval, stop), name="health"),
        asyncio.create_task(
            n.errors.run_flusher(settings.error_flush_interval, stop), name="error-records"
        ),
        asyncio.create_task(n.registry.run(stop), name="node-heartbeat"),
    ]
    # Dead letters replayed through this node are delivered by its own handlers.
    await n.events.start()
    log.info(
        "api node started",
        node=n.node.name,
        database=n.ingestor.db.manager.url,
        follow_interval=n.follower.interval,
    )
    try:
        yield
    finally:
        await n.events.stop(STOP_TIMEOUT_SECONDS)
        stop.set()
        await asyncio.gather(*background, return_exceptions=True)
        n.ingestor.db.dispose()
        log.info("api node stopped", node=n.node.name)


def build_api_node_app(n: ApiNode) -> FastAPI:
    settings = n.settings
    return create_app(
        n.ingestor,
        stale_after=settings.stale_after_seconds,
        lifespan=lambda app: run_api_node(n),
        health=n.monitor,
        errors=ErrorLayer(manager=n.errors, breakers=n.breakers, cluster=n.registry),
        events=n.events,
        sectors=n.airspace.sectors,
        **api_access(settings),
        node=n.node,
        airports=n.airports,
        airport_radius_nm=settings.airport_radius_nm,
        stopped_max_kt=settings.movement_stopped_max_kt,
        archive=DayArchive.from_settings(settings),
    )


def serve_api(settings: Settings) -> None:
    """``serve``: the API alone until stopped. Raises ``SchemaNotCurrent`` or
    ``DatabaseUnreachable`` before listening if the database is not one it can serve."""
    app = build_api_node_app(build_api_node(settings))
    uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.api_host,
            port=settings.api_port,
            log_level=settings.log_level.lower(),
            log_config=uvicorn_log_config(),
            access_log=False,
            proxy_headers=False,  # as in run_service: forwarded headers are the app's call
        )
    ).run()
