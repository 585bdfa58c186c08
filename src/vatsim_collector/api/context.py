"""What the routes share: the database, the collector's live state, health, staleness, a clock,
and this node of the cluster.

``create_app`` stores one ``ApiContext`` on ``app.state``; routes receive it through the
``Context`` dependency, so two apps with different ingestors can live in one process.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Annotated, Protocol

from fastapi import Depends, HTTPException, Request, Response, status

from vatsim_collector.airports.nearest import AirportIndex
from vatsim_collector.airports.setup import packaged_airport_index
from vatsim_collector.airspace.sectors import SectorSet
from vatsim_collector.api.live_cache import LiveCache
from vatsim_collector.api.status_cache import StatusCache
from vatsim_collector.cluster.node import Node, Role
from vatsim_collector.cluster.registry import NodeRegistry
from vatsim_collector.errors.manager import ErrorManager
from vatsim_collector.errors.registry import BreakerRegistry
from vatsim_collector.errors.scrub import scrub_text
from vatsim_collector.feed.models import StationTransceivers
from vatsim_collector.pipeline.event_layer import EventLayer
from vatsim_collector.pipeline.ingest import IngestStats
from vatsim_collector.pipeline.poller import Poller
from vatsim_collector.store.archive import DayArchive
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.health import HealthMonitor, HealthReport, Verdict
from vatsim_collector.tracking.live import LiveView


@dataclass(frozen=True)
class ErrorLayer:
    """The error layer's parts the API reports on (absent in apps built without a poller)."""

    manager: ErrorManager
    breakers: BreakerRegistry
    poller: Poller | None = None
    # This node in the cluster: every node's breakers, resets for other nodes (None: this
    # process's breakers alone).
    cluster: NodeRegistry | None = None

    @property
    def node_name(self) -> str | None:
        """This process's node name, where it has one."""
        return self.cluster.node.name if self.cluster is not None else self.manager.node


class Collector(Protocol):
    """What the API reads of the running collector; the pipeline's ``Ingestor`` is one.

    ``live`` is replaced whole after each committed snapshot (readers never see half a view),
    and by ``forget`` to hide a member at once. On a node that does not ingest, a
    ``pipeline.follower.Follower`` replaces it, rebuilt from the database, after each snapshot
    the leader commits; ``stats`` are this process's own counters (zero there).
    """

    live: LiveView

    @property
    def stats(self) -> IngestStats: ...
    @property
    def last_transceivers(self) -> list[StationTransceivers] | None: ...
    def invalidate(self) -> None: ...


def single_process_node() -> Node:
    """The node of an app built without one: a single process that collects, so it leads;
    named as ``Settings.node`` names a node without ``VATSIM_NODE_NAME``."""
    return Node(name=f"{socket.gethostname()}-{os.getpid()}", role=Role.LEADER)


@dataclass(frozen=True)
class ApiContext:
    db: DatabaseService
    collector: Collector
    stale_after: float
    clock: Callable[[], datetime]
    health: HealthMonitor
    errors: ErrorLayer | None = None
    events: EventLayer | None = None
    sectors: SectorSet | None = None
    # A verdict older than this is re-probed on request (the monitor's loop may not run).
    health_max_age: float = 30.0
    # This process in the cluster: its name and role (the elector changes the role in place).
    node: Node = field(default_factory=single_process_node)
    # The airports (reference and nearest-airport lookup) and the radius within which an
    # aircraft is placed at one, as the collector's settings give them.
    airports: AirportIndex = field(default_factory=packaged_airport_index)
    airport_radius_nm: float = 5.0
    # At or below this ground speed an aircraft on the ground is stopped: the movement
    # detector's threshold (VATSIM_MOVEMENT_STOPPED_MAX_KT), so "stopped" means one thing.
    stopped_max_kt: float = 1.0
    # The Parquet archive (VATSIM_ARCHIVE_DIR), which forgetting a member reaches too.
    archive: DayArchive | None = None
    # The "now" answers rendered once per published view (api/live_cache.py).
    live_cache: LiveCache = field(default_factory=LiveCache)
    # /api/status's latest bytes and leadership read (api/status_cache.py).
    status_cache: StatusCache = field(default_factory=StatusCache)

    def live_sources(self) -> tuple[LiveView, list[StationTransceivers] | None]:
        """What the "now" answers are rendered from, as published at this moment: the live
        view and the transceivers document, each replaced whole, never changed in place."""
        collector = self.collector
        return collector.live, collector.last_transceivers

    def health_report(self) -> HealthReport:
        """The monitor's verdict, overruled by a collection loop that has died."""
        report = self.held_health_report()
        if report is not None:
            return report
        return self._overruled(self.health.probe())

    def held_health_report(self) -> HealthReport | None:
        """``health_report`` without probing (no database reached, so the event loop may ask):
        None when the monitor's verdict is missing or too old and a probe is due."""
        last = self.health.last
        if last is None or (self.clock() - last.checked_at).total_seconds() > self.health_max_age:
            return None
        return self._overruled(last)

    def _overruled(self, last: HealthReport) -> HealthReport:
        """``last``, or DOWN with the reason when the collection loop has died."""
        stopped = self.collection_stopped()
        if stopped is None:
            return last
        return replace(
            last, status=Verdict.DOWN, reasons=(f"collection stopped: {stopped}", *last.reasons)
        )

    @property
    def poller(self) -> Poller | None:
        return self.errors.poller if self.errors is not None else None

    def collection_stopped(self) -> str | None:
        """Why the poller's loop died, if it has (``Poller.fatal``), scrubbed of secrets."""
        # getattr: apps built around pollers without the attribute (older ones, test doubles).
        fatal = getattr(self.poller, "fatal", None)
        return scrub_text(fatal) if isinstance(fatal, str) and fatal else None

    def health_verdict(self, response: Response) -> HealthReport:
        """The current report, with HTTP 503 set on ``response`` when the service is down."""
        report = self.health_report()
        if report.status == "down":
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return report

    def age_seconds(self) -> float | None:
        """Seconds since the latest accepted snapshot's ``general.update_timestamp``."""
        last = self.collector.live.snapshot_at
        if last is None:
            return None
        return (self.clock() - last).total_seconds()


async def get_context(request: Request) -> ApiContext:
    # async: FastAPI runs a plain-def dependency on its thread pool, and that hop (a queue, a
    # thread switch, the GIL handed over twice) cost more than a cached answer (live_cache).
    context = request.app.state.api_context
    assert isinstance(context, ApiContext)
    return context


Context = Annotated[ApiContext, Depends(get_context)]


def loaded_sectors(ctx: ApiContext) -> SectorSet:
    """The process's sector set, or a 503 for the endpoints that need one."""
    if ctx.sectors is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="no sector set is loaded in this process; sector data is unavailable",
        )
    return ctx.sectors
