"""``GET /metrics``: the collector's figures in the Prometheus text format.

The metrics live on ``app.state.metrics``, put there by
:func:`vatsim_collector.api.metrics.install_metrics`; the route only renders them.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import PlainTextResponse

from vatsim_collector.api.metrics import CONTENT_TYPE, ServiceMetrics

router = APIRouter(tags=["observability"])


@router.get(
    "/metrics",
    # Documents the 200 as text/plain; the answer carries the exposition format's version too.
    response_class=PlainTextResponse,
    summary="Prometheus metrics: polls, ingest, sessions, event bus, breakers, database, errors",
    responses={
        200: {
            "description": "Prometheus text exposition format 0.0.4.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        503: {"description": "Metrics are not installed on this app."},
    },
)
async def metrics(request: Request) -> Response:
    # Async on purpose: the event bus's counters are read on the event loop that updates them.
    found = getattr(request.app.state, "metrics", None)
    if not isinstance(found, ServiceMetrics):
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="metrics are not installed on this app",
        )
    return Response(content=await found.render(), media_type=CONTENT_TYPE)
