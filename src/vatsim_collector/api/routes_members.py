"""One member's history: totals, flights, controller and ATIS sessions. Public like the
sessions themselves (a CID is public on the network); names are never read.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status

from vatsim_collector.api.activity import GroupBy, group, key_of
from vatsim_collector.api.context import Context
from vatsim_collector.api.flight_movements import movement_fields
from vatsim_collector.api.models_airspace import Limit, Offset
from vatsim_collector.api.models_events import PaginationOut
from vatsim_collector.api.models_members import (
    ControllerTotalsOut,
    MemberFlightOut,
    MemberFlightsOut,
    MemberOut,
    MemberStationSessionOut,
    MemberStationSessionsOut,
    PilotTotalsOut,
    PositionHoursOut,
)
from vatsim_collector.api.problems import problem_responses
from vatsim_collector.feed.limits import FEED_EPOCH
from vatsim_collector.store import queries_members as q
from vatsim_collector.store.queries_activity import ActivityFilter, aircraft_handled, stretches
from vatsim_collector.store.queries_movements import flight_movements

router = APIRouter(tags=["members"])

Cid = Annotated[int, Path(ge=1, le=99_999_999, description="The member's VATSIM CID.")]
_404_503 = problem_responses(status.HTTP_404_NOT_FOUND, status.HTTP_503_SERVICE_UNAVAILABLE)


def _unknown(cid: int) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no member {cid} was ever seen")


@router.get(
    "/api/members/{cid}",
    response_model=MemberOut,
    summary="A member's totals: pilot hours, controller hours per position, last seen",
    description="Over everything stored. Controller hours count as `/api/activity/controllers`"
    " counts them (observers, supervisor connections, ATIS and 199.998 left out).",
    responses=_404_503,
)
def member(ctx: Context, cid: Cid) -> MemberOut:
    everything = ActivityFilter(FEED_EPOCH, ctx.clock() + timedelta(days=1), cid=cid)
    with ctx.db.read("api.member") as conn:
        known = q.ever_seen(conn, cid)
        if known:
            pilot = q.pilot_totals(conn, cid)
            pieces = stretches(conn, everything)
            aircraft = aircraft_handled(
                conn,
                [(key_of(p, GroupBy.POSITION), p) for p in pieces],
                window=(everything.start, everything.end),
                session_key="callsign",
            )
    # Raised outside the read: an unknown member is no failed database operation.
    if not known:
        raise _unknown(cid)
    positions = group(pieces, aircraft, GroupBy.POSITION)
    sessions = {(p.atis, p.session_id) for p in pieces}
    controller_first = min((p.start for p in pieces), default=None)
    controller_last = max((p.end for p in pieces), default=None)
    seen = [x for x in (pilot.last_seen, controller_last) if x is not None]
    return MemberOut(
        cid=cid,
        last_seen=max(seen, default=None),
        pilot=PilotTotalsOut(
            hours=round(pilot.seconds / 3600, 4),
            sessions=pilot.sessions,
            flights=pilot.flights,
            first_seen=pilot.first_seen,
            last_seen=pilot.last_seen,
        ),
        controller=ControllerTotalsOut(
            hours=round(sum(p.seconds for p in pieces) / 3600, 4),
            sessions=len(sessions),
            first_seen=controller_first,
            last_seen=controller_last,
            positions=[
                PositionHoursOut(
                    callsign=g.key,
                    hours=round(g.seconds / 3600, 4),
                    sessions=len(g.sessions),
                    last_seen=g.last or datetime.min.replace(tzinfo=UTC),
                )
                for g in positions
            ],
        ),
    )


@router.get(
    "/api/members/{cid}/flights",
    response_model=MemberFlightsOut,
    summary="A member's flights, newest first",
    responses=_404_503,
)
def member_flights(
    ctx: Context, cid: Cid, limit: Limit = 50, offset: Offset = 0
) -> MemberFlightsOut:
    with ctx.db.read("api.member_flights") as conn:
        known = q.ever_seen(conn, cid)
        if known:
            total, rows = q.flights(conn, cid, limit, offset)
            seconds = q.flight_seconds(conn, [row.id for row in rows])
            moved = flight_movements(conn, [row.id for row in rows])
    if not known:
        raise _unknown(cid)
    return MemberFlightsOut(
        cid=cid,
        flights=[
            MemberFlightOut(
                flight_id=row.id,
                callsign=row.callsign,
                departure=row.departure,
                arrival=row.arrival,
                started_at=row.started_at,
                ended_at=row.ended_at,
                sessions=row.sessions,
                hours=round(seconds.get(row.id, 0.0) / 3600, 4),
                **movement_fields(moved.get(row.id)),
            )
            for row in rows
        ],
        pagination=PaginationOut(total=total, limit=limit, offset=offset),
    )


@router.get(
    "/api/members/{cid}/controller-sessions",
    response_model=MemberStationSessionsOut,
    summary="A member's controller and ATIS sessions, newest first",
    responses=_404_503,
)
def member_controller_sessions(
    ctx: Context, cid: Cid, limit: Limit = 50, offset: Offset = 0
) -> MemberStationSessionsOut:
    with ctx.db.read("api.member_controller_sessions") as conn:
        known = q.ever_seen(conn, cid)
        if known:
            total, rows = q.controller_sessions(conn, cid, limit, offset)
    if not known:
        raise _unknown(cid)
    return MemberStationSessionsOut(
        cid=cid,
        sessions=[
            MemberStationSessionOut(
                session_id=row.id,
                atis=bool(row.atis),
                callsign=row.callsign,
                facility=row.facility,
                frequency=row.frequency,
                logon_time=row.logon_time,
                first_seen=row.first_seen_at,
                last_seen=row.last_seen_at,
                ended_at=row.ended_at,
            )
            for row in rows
        ],
        pagination=PaginationOut(total=total, limit=limit, offset=offset),
    )
