"""Error analytics and circuit breakers: not public data, so every route needs an admin key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status

from vatsim_collector.api.auth import AdminAccess
from vatsim_collector.api.context import Context, ErrorLayer
from vatsim_collector.api.models_errors import BreakerOut, BreakersOut, ErrorAnalyticsOut
from vatsim_collector.api.problems import problem_responses

router = APIRouter(
    tags=["errors"],
    dependencies=[AdminAccess],
    # 401, 403 and the limits' answers are documented app-wide (problems.document_problems).
    responses=problem_responses(status.HTTP_503_SERVICE_UNAVAILABLE),
)


def _layer(ctx: Context) -> ErrorLayer:
    if ctx.errors is None:
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="the error layer is not running in this process",
        )
    return ctx.errors


@router.get(
    "/api/errors/analytics",
    response_model=ErrorAnalyticsOut,
    summary="Errors over the last hours: totals, breakdowns, top errors, recovery, time series",
)
def error_analytics(
    ctx: Context,
    hours: Annotated[float, Query(gt=0, le=24 * 90, description="Window length.")] = 24,
    bucket_minutes: Annotated[int | None, Query(ge=1, le=24 * 60)] = None,
) -> ErrorAnalyticsOut:
    data = _layer(ctx).manager.analytics(hours, bucket_minutes=bucket_minutes)
    return ErrorAnalyticsOut.model_validate(data)


@router.get(
    "/api/errors/circuit-breakers",
    response_model=BreakersOut,
    summary="Every circuit breaker: state, failures, last failure and success, next probe",
)
def circuit_breakers(ctx: Context) -> BreakersOut:
    snapshots = _layer(ctx).breakers.snapshots()
    return BreakersOut(breakers=[BreakerOut.model_validate(s.as_dict()) for s in snapshots])


@router.post(
    "/api/errors/circuit-breakers/{name}/reset",
    response_model=BreakerOut,
    summary="Close a breaker now (for when the dependency is known to be back)",
    responses=problem_responses(status.HTTP_404_NOT_FOUND),
)
def reset_circuit_breaker(
    ctx: Context,
    name: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z0-9_.:-]+$")],
) -> BreakerOut:
    registry = _layer(ctx).breakers
    breaker = registry.get(name)
    if breaker is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no circuit breaker named {name}")
    registry.reset(name)
    return BreakerOut.model_validate(breaker.snapshot().as_dict())
