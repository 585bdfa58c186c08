"""Live controllers and ATIS stations (from memory)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from vatsim_collector.api.context import ApiContext, Context
from vatsim_collector.api.models import ControllerOut, ControllersOut
from vatsim_collector.tracking.live import LiveView
from vatsim_collector.tracking.state import ControllerSession, Kind

router = APIRouter(tags=["controllers"])


def _controller_out(session: ControllerSession) -> ControllerOut:
    return ControllerOut(
        callsign=session.callsign,
        cid=session.cid,
        session_id=session.id,
        kind="atis" if session.kind is Kind.ATIS else "controller",
        frequency=session.frequency,
        facility=session.facility,
        rating=session.latest.rating,
        is_observer=session.is_observer,
        is_supervisor=session.is_supervisor,
        latitude=session.latitude,
        longitude=session.longitude,
        logon_time=session.logon_time,
        last_seen=session.last_seen,
        atis_code=session.atis_code if session.kind is Kind.ATIS else None,
    )


@router.get(
    "/api/controllers",
    response_model=ControllersOut,
    summary="Controllers and ATIS stations online, sorted by callsign",
    description="Observers are included and flagged with `is_observer`; positions are the"
    " centroid of the station's transceivers and null when none were reported.",
)
async def list_controllers(ctx: Context, request: Request) -> Response:
    return await controllers_answer(ctx, request)


async def controllers_answer(ctx: ApiContext, request: Request) -> Response:
    """``/api/controllers`` from the live cache (the route's, and ``LiveFastPath``'s)."""
    sources = ctx.live_sources()
    return await ctx.live_cache.respond_async(
        request, sources, "controllers", lambda: controllers_out(sources[0])
    )


def controllers_out(live: LiveView) -> ControllersOut:
    """The answer of ``/api/controllers`` for ``live``."""
    sessions = [*live.controllers, *live.atis]
    sessions.sort(key=lambda s: (s.callsign, s.cid, s.logon_time))
    return ControllersOut(controllers=[_controller_out(s) for s in sessions])
