"""Counts over time from the ``snapshots`` table: the dashboard's 24-hour chart.

Public: nothing here carries a message, a context, a name or a secret.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, status

from vatsim_collector.api.context import Context
from vatsim_collector.api.models_history import CountsOut, CountsPointOut
from vatsim_collector.api.problems import problem_responses
from vatsim_collector.store.queries_history import counts_per_bucket

router = APIRouter(tags=["dashboard"])

_503 = problem_responses(status.HTTP_503_SERVICE_UNAVAILABLE)


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
    with ctx.db.read("api.history_counts") as conn:
        rows = counts_per_bucket(conn, start, size_ms)
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
