"""The database service's figures: query statistics, storage and the health monitor.

Operational detail rather than public data: every route needs a key (read is enough).
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from vatsim_collector.api.auth import ReadAccess
from vatsim_collector.api.context import Context
from vatsim_collector.api.models_database import (
    DatabaseHealthOut,
    DatabaseStatsOut,
    PoolOut,
    QueryStatsOut,
    SlowQueryOut,
    StorageOut,
    TableOut,
    TransitionOut,
)
from vatsim_collector.api.problems import problem_responses
from vatsim_collector.store.manager import PoolStatus

router = APIRouter(tags=["database"], dependencies=[ReadAccess])


def _pool(pool: PoolStatus) -> PoolOut:
    return PoolOut(
        size=pool.size,
        checked_out=pool.checked_out,
        overflow=pool.overflow,
        waiting=pool.waiting,
        capacity=pool.capacity,
        saturation=round(pool.saturation, 4),
    )


@router.get(
    "/api/database/service/stats",
    response_model=DatabaseStatsOut,
    summary="Pool status, per-query counts and latencies, slow queries, table sizes and growth",
    responses=problem_responses(status.HTTP_503_SERVICE_UNAVAILABLE),
)
def database_stats(ctx: Context) -> DatabaseStatsOut:
    db = ctx.db
    storage = db.storage_stats()
    return DatabaseStatsOut(
        backend=db.backend,
        pool=_pool(db.pool_status()),
        queries={
            name: QueryStatsOut.model_validate(summary)
            for name, summary in db.query_summaries().items()
        },
        slow_query_threshold_ms=db.queries.slow_query_ms,
        slow_query_log_size=db.queries.slow_log_size,
        slow_queries=[
            SlowQueryOut(name=q.name, at=q.at, duration_ms=round(q.duration_ms, 3), failed=q.failed)
            for q in db.slow_queries()
        ],
        storage=StorageOut(
            measured_at=storage.measured_at,
            total_bytes=storage.total_bytes,
            growth_bytes_per_hour=storage.growth_bytes_per_hour,
            growth_rows_per_hour=storage.growth_rows_per_hour,
            tables=[
                TableOut(name=t.name, rows_estimate=t.rows_estimate, bytes=t.bytes)
                for t in storage.tables
            ],
        ),
    )


@router.get(
    "/api/database/service/health",
    response_model=DatabaseHealthOut,
    summary="The health monitor's verdict with every figure behind it",
    responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"model": DatabaseHealthOut}},
)
def database_health(ctx: Context, response: Response) -> DatabaseHealthOut:
    report = ctx.health_verdict(response)
    return DatabaseHealthOut(
        status=report.status.value,
        reasons=list(report.reasons),
        checked_at=report.checked_at,
        latency_ms=report.latency_ms,
        pool=_pool(report.pool),
        last_snapshot_at=report.last_snapshot_at,
        freshness_seconds=report.freshness_seconds,
        backlog=report.backlog,
        free_disk_bytes=report.free_disk_bytes,
        transitions=[
            TransitionOut(
                at=change.at,
                previous=None if change.previous is None else change.previous.value,
                current=change.current.value,
                reasons=list(change.reasons),
            )
            for change in reversed(ctx.health.transitions)
        ],
    )
