"""Service health, the collector's status, and this node's place in the cluster."""

from __future__ import annotations

import math
from typing import Literal

from fastapi import APIRouter, Request, Response, status
from starlette.concurrency import run_in_threadpool

from vatsim_collector.api.cluster_breakers import breaker_view
from vatsim_collector.api.context import ApiContext, Context
from vatsim_collector.api.live_cache import Rendered, render_json
from vatsim_collector.api.models import (
    BreakerStateOut,
    ClusterOut,
    CollectionOut,
    ErrorSummaryOut,
    Freshness,
    HealthOut,
    LiveCounts,
    ServiceStateOut,
    StatusOut,
)
from vatsim_collector.api.models_errors import FeedHealthOut
from vatsim_collector.api.status_cache import Leadership
from vatsim_collector.store.health import HealthReport
from vatsim_collector.tracking.live import LiveView

router = APIRouter(tags=["status"])


@router.get(
    "/health",
    response_model=HealthOut,
    summary="Liveness and data freshness",
    responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"model": HealthOut}},
)
def health(ctx: Context, response: Response) -> HealthOut:
    report = ctx.health_verdict(response)
    return HealthOut(status=report.status.value, reasons=list(report.reasons))


def _feed_health(ctx: ApiContext, freshness: Freshness) -> FeedHealthOut:
    """The feed as the collector sees it: failing cycles, then the age of the data."""
    layer = ctx.errors
    poller = layer.poller if layer else None
    breakers = (
        {s.name: s.state.value for s in layer.breakers.snapshots() if s.name.startswith("feed.")}
        if layer
        else {}
    )
    failing_since = poller.feed_failing_since if poller else None
    state: Literal["ok", "stale", "failing", "unknown"]
    if failing_since is not None or "open" in breakers.values():
        state = "failing"
    elif freshness == "stale":
        state = "stale"  # answering 200 with old data is still unhealthy
    elif freshness == "fresh":
        state = "ok"
    else:
        state = "unknown"
    return FeedHealthOut(
        status=state,
        failing_since=failing_since,
        last_good_fetch_at=poller.last_good_fetch_at if poller else None,
        breakers=breakers,
    )


@router.get(
    "/api/status",
    response_model=StatusOut,
    summary="Latest snapshot, freshness, live counts, ingest counters and the cluster",
    description="The same snapshot and live counts from every node (a node that does not"
    " ingest follows the database); `ingest`, `collection` and `feed` are this node's own."
    " `age_seconds` is whole seconds; `cluster.leader` and `cluster.epoch` are read from the"
    " database at most once a second (and whenever this node's role or the live view changes)."
    " Served with an `ETag` (304 on `If-None-Match`) and gzip when accepted.",
)
async def get_status(ctx: Context, request: Request) -> Response:
    return await status_answer(ctx, request)


async def status_answer(ctx: ApiContext, request: Request) -> Response:
    """``/api/status`` (the route's, and ``LiveFastPath``'s): built and compared with the held
    bytes on the event loop when that reaches no database, else on the thread pool."""
    rendered = held_status(ctx)
    if rendered is None:
        rendered = await run_in_threadpool(status_rendered, ctx)
    if rendered.needs_gzip(request):
        await run_in_threadpool(rendered.gzipped)
    return rendered.response(request)


def status_rendered(ctx: ApiContext) -> Rendered:
    """The status answer as ``ctx`` stands now (``api/status_cache.py``): the held one when its
    bytes are these. May read the database (the leadership, a health probe)."""
    view = ctx.collector.live
    leadership = ctx.status_cache.leadership.current(ctx.db, ctx.node, view)
    return _kept(ctx, view, ctx.health_report(), leadership)


def held_status(ctx: ApiContext) -> Rendered | None:
    """``status_rendered`` if it needs no database (no leadership read or health probe due),
    else None: what the event loop may do itself."""
    view = ctx.collector.live
    leadership = ctx.status_cache.leadership.held(ctx.node, view)
    report = ctx.held_health_report()
    if leadership is None or report is None:
        return None
    return _kept(ctx, view, report, leadership)


def _kept(
    ctx: ApiContext, view: LiveView, report: HealthReport, leadership: Leadership
) -> Rendered:
    return ctx.status_cache.keep(render_json(status_out(ctx, view, report, leadership)))


def status_out(
    ctx: ApiContext, view: LiveView, report: HealthReport, leadership: Leadership
) -> StatusOut:
    """The status of ``ctx`` with ``view`` published, ``report`` the health verdict and
    ``leadership`` the cluster's leadership as last read."""
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
    node = ctx.node
    return StatusOut(
        last_snapshot_at=view.snapshot_at,
        # Whole seconds (rounded down): a finer age would make every answer a new one.
        age_seconds=None if age is None else float(math.floor(age)),
        freshness=freshness,
        stale_after_seconds=ctx.stale_after,
        live=live,
        health=HealthOut(status=report.status.value, reasons=list(report.reasons)),
        feed=_feed_health(ctx, freshness),
        ingest=ctx.collector.stats.as_dict(),
        collection=collection_state(ctx),
        cluster=ClusterOut(
            node=node.name, role=node.role.value, leader=leadership.leader, epoch=leadership.epoch
        ),
    )


def collection_state(ctx: ApiContext) -> CollectionOut:
    poller = ctx.poller
    if poller is None:
        return CollectionOut(
            status="absent",
            stopped_reason=None,
            missed_ticks=0,
            loop_errors=0,
            records_dropped=0,
            data_errors=0,
            pending=0,
        )
    stopped = ctx.collection_stopped()
    counters = poller.counters
    return CollectionOut(
        status="stopped" if stopped else "running",
        stopped_reason=stopped,
        missed_ticks=counters.missed_ticks,
        loop_errors=counters.loop_errors,
        records_dropped=ctx.collector.stats.records_dropped,
        data_errors=counters.data_errors,
        pending=poller.backlog,
    )


# Errors counted for the public breaker summary: the last hour.
ERROR_WINDOW_HOURS = 1.0


@router.get(
    "/api/status/breakers",
    response_model=ServiceStateOut,
    summary="Circuit breaker states and error counts of the last hour",
    description="The public part of `/api/errors/circuit-breakers` and `/api/errors/analytics`:"
    " every node's breaker names and states, error counts of every node, no messages or"
    " contexts.",
)
def service_state(ctx: Context) -> ServiceStateOut:
    layer = ctx.errors
    if layer is None:
        return ServiceStateOut(breakers=[], errors=None)
    view = breaker_view(layer)
    breakers = [BreakerStateOut(name=b.name, state=b.state, node=b.node) for b in view.breakers]
    data = layer.manager.analytics(ERROR_WINDOW_HOURS)
    return ServiceStateOut(
        node=view.node,
        breakers=breakers,
        errors=ErrorSummaryOut(
            hours=ERROR_WINDOW_HOURS,
            total=int(data["total"]),
            by_category={str(k): int(v) for k, v in data["by_category"].items()},
            by_severity={str(k): int(v) for k, v in data["by_severity"].items()},
        ),
    )
