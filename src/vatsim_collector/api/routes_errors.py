"""Error analytics and circuit breakers: not public data, so every route needs an admin key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from vatsim_collector.api.auth import AdminAccess
from vatsim_collector.api.cluster_breakers import breaker_out, breaker_view
from vatsim_collector.api.context import Context, ErrorLayer
from vatsim_collector.api.models_errors import BreakerResetOut, BreakersOut, ErrorAnalyticsOut
from vatsim_collector.api.problems import problem_responses
from vatsim_collector.cluster.registry import UnknownBreaker, UnknownNode
from vatsim_collector.config import NODE_NAME_PATTERN

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
    description="Every node's error records (they share the database), broken down by node"
    " too; `node` limits the figures to the records one node raised.",
)
def error_analytics(
    ctx: Context,
    hours: Annotated[float, Query(gt=0, le=24 * 90, description="Window length.")] = 24,
    bucket_minutes: Annotated[int | None, Query(ge=1, le=24 * 60)] = None,
    node: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=64,
            pattern=NODE_NAME_PATTERN,
            description="Only this node's records.",
        ),
    ] = None,
) -> ErrorAnalyticsOut:
    data = _layer(ctx).manager.analytics(hours, bucket_minutes=bucket_minutes, node=node)
    return ErrorAnalyticsOut.model_validate(data)


@router.get(
    "/api/errors/circuit-breakers",
    response_model=BreakersOut,
    summary="Every circuit breaker of every node: state, failures, last failure and success,"
    " next probe",
)
def circuit_breakers(ctx: Context) -> BreakersOut:
    view = breaker_view(_layer(ctx))
    return BreakersOut(
        node=view.node, breakers=view.breakers, nodes=view.nodes, complete=view.complete
    )


@router.post(
    "/api/errors/circuit-breakers/{name}/reset",
    response_model=BreakerResetOut,
    summary="Close a breaker now (for when the dependency is known to be back)",
    description="Without `node`, or naming the node that answers, the breaker is closed at"
    " once (200). Naming another node asks that node to close it: it does so on its next"
    " heartbeat (202, with the state it last reported).",
    responses={
        status.HTTP_202_ACCEPTED: {
            "model": BreakerResetOut,
            "description": "Asked of the owning node; applied within one heartbeat.",
        },
        **problem_responses(status.HTTP_404_NOT_FOUND),
    },
)
def reset_circuit_breaker(
    ctx: Context,
    response: Response,
    name: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z0-9_.:-]+$")],
    node: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=64,
            pattern=NODE_NAME_PATTERN,
            description="The node that owns the breaker.",
        ),
    ] = None,
) -> BreakerResetOut:
    layer = _layer(ctx)
    cluster = layer.cluster
    if cluster is None:
        if node is not None and node != layer.node_name:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no node named {node}")
        breaker = layer.breakers.get(name)
        if breaker is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, detail=f"no circuit breaker named {name}"
            )
        breaker.reset()
        shown = breaker_out(breaker.snapshot(), layer.node_name)
        return BreakerResetOut.model_validate({**shown.model_dump(), "applied": True})
    try:
        outcome = cluster.reset(node if node is not None else cluster.node.name, name)
    except UnknownNode:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no node named {node}") from None
    except UnknownBreaker as exc:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail=f"no circuit breaker named {name}"
            + ("" if exc.node == cluster.node.name else f" on node {exc.node}"),
        ) from None
    shown = breaker_out(outcome.breaker, outcome.node.name, outcome.node)
    if not outcome.applied:
        response.status_code = status.HTTP_202_ACCEPTED
    return BreakerResetOut.model_validate({**shown.model_dump(), "applied": outcome.applied})
