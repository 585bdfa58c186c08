"""Activity for rosters and activity requirements: controller hours on position per member,
position, facility or day, and pilot hours online and in the air per member, from stored
sessions. Public, like the sessions themselves (CIDs and callsigns are public on the network;
no name is read).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status

from vatsim_collector.api.activity import (
    FACILITY_NAMES,
    GroupBy,
    by_day,
    group,
    key_of,
    pilot_groups,
)
from vatsim_collector.api.context import Context
from vatsim_collector.api.csv_response import csv_response, wants_csv
from vatsim_collector.api.models_activity import (
    ControllerActivityOut,
    ControllerActivityRowOut,
    ControllerActivityTotalsOut,
    PilotActivityOut,
    PilotActivityRowOut,
    PilotActivityTotalsOut,
)
from vatsim_collector.api.models_airspace import From, Limit, Offset, To, window
from vatsim_collector.api.models_events import PaginationOut
from vatsim_collector.api.problems import problem_responses
from vatsim_collector.store.queries_activity import (
    ActivityFilter,
    SessionKey,
    aircraft_handled,
    pilot_hours,
    pilot_hours_totals,
    pilot_spans,
    stretches,
)

router = APIRouter(tags=["activity"])

# Groupings whose key is a property of the session, so whole sessions are counted directly.
SESSION_KEYS: dict[GroupBy, SessionKey] = {GroupBy.CID: "cid", GroupBy.POSITION: "callsign"}
# A quarter: a division's activity requirement is usually checked per month or quarter.
ACTIVITY_MAX = timedelta(days=92)
CSV_COLUMNS = (
    "key",
    "cid",
    "callsign",
    "facility",
    "facility_name",
    "day",
    "hours",
    "sessions",
    "first_seen",
    "last_seen",
    "aircraft_handled",
)


PILOT_CSV_COLUMNS = (
    "cid",
    "hours_online",
    "hours_airborne",
    "flights",
    "sessions",
    "departures",
    "arrivals",
    "first_seen",
    "last_seen",
)


def _cell(value: object) -> object:
    # Lists of airport codes go in one cell, space-separated: codes never hold a space.
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return "" if value is None else value


def _csv(
    rows: Sequence[ControllerActivityRowOut | PilotActivityRowOut],
    columns: Sequence[str],
    filename: str,
) -> Response:
    data = (row.model_dump(mode="json") for row in rows)
    return csv_response(columns, ([_cell(d[c]) for c in columns] for d in data), filename)


_CSV_RESPONSES: dict[int | str, dict[str, Any]] = {
    **problem_responses(status.HTTP_422_UNPROCESSABLE_CONTENT, status.HTTP_503_SERVICE_UNAVAILABLE),
    status.HTTP_200_OK: {"content": {"text/csv": {"schema": {"type": "string"}}}},
}
Format = Annotated[Literal["json", "csv"] | None, Query(alias="format")]


@router.get(
    "/api/activity/controllers",
    response_model=ControllerActivityOut,
    summary="Controller hours on position per member, position, facility or UTC day",
    description="Sessions overlapping the window count only their overlap. Observers (facility"
    " 0, 199.998, `_OBS`), supervisor connections (`_SUP`) and ATIS are left out unless"
    " `include_observers` / `include_atis`. A controller who changes frequency or facility"
    " counts under each for the time spent on it. `format=csv` (or `Accept: text/csv`) gives"
    " the page as CSV. The window defaults to the last 24 hours and may span 92 days.",
    responses=_CSV_RESPONSES,
)
def controller_activity(
    ctx: Context,
    request: Request,
    start: From = None,
    end: To = None,
    cid: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="One member.")] = None,
    callsign: Annotated[
        str | None,
        Query(
            pattern=r"^[A-Za-z0-9_-]{1,32}\*?$",
            description="A callsign, or a prefix ending in `*` (`EGLL_*`); case-insensitive.",
        ),
    ] = None,
    facility: Annotated[
        int | None,
        Query(ge=0, le=6, description="0 OBS, 1 FSS, 2 DEL, 3 GND, 4 TWR, 5 APP, 6 CTR."),
    ] = None,
    group_by: Annotated[
        Literal["cid", "position", "facility", "day"],
        Query(description="One row per member (`cid`), callsign, facility or UTC day."),
    ] = "cid",
    include_observers: bool = False,
    include_atis: bool = False,
    limit: Limit = 100,
    offset: Offset = 0,
    fmt: Format = None,
) -> ControllerActivityOut | Response:
    start, end = window(ctx.clock(), start, end, maximum=ACTIVITY_MAX)
    grouping = GroupBy(group_by)
    wanted = ActivityFilter(start, end, cid, callsign, facility, include_observers, include_atis)
    with ctx.db.read("api.activity_controllers") as conn:
        pieces = stretches(conn, wanted)
        if grouping is GroupBy.DAY:
            pieces = [piece for stretch in pieces for piece in by_day(stretch)]
        aircraft = aircraft_handled(
            conn,
            [(key_of(p, grouping), p) for p in pieces],
            window=(start, end),
            session_key=SESSION_KEYS.get(grouping),
        )
    groups = group(pieces, aircraft, grouping)
    rows = [
        ControllerActivityRowOut(
            key=g.key,
            cid=g.cid,
            callsign=g.callsign,
            facility=g.facility,
            facility_name=None if g.facility is None else FACILITY_NAMES.get(g.facility),
            day=g.day,
            hours=round(g.seconds / 3600, 4),
            sessions=len(g.sessions),
            first_seen=g.first,
            last_seen=g.last,
            aircraft_handled=g.aircraft,
        )
        for g in groups
        if g.first is not None and g.last is not None
    ]
    page = rows[offset : offset + limit]
    if wants_csv(request, fmt):
        return _csv(page, CSV_COLUMNS, "controller-activity.csv")
    return ControllerActivityOut(
        start=start,
        end=end,
        group_by=grouping.value,
        include_observers=include_observers,
        include_atis=include_atis,
        totals=ControllerActivityTotalsOut(
            hours=round(sum(p.seconds for p in pieces) / 3600, 4),
            sessions=len({(p.atis, p.session_id) for p in pieces}),
            groups=len(rows),
        ),
        rows=page,
        pagination=PaginationOut(total=len(rows), limit=limit, offset=offset),
    )


@router.get(
    "/api/activity/pilots",
    response_model=PilotActivityOut,
    summary="Pilot hours online and in the air per member, with flights and airports",
    description="Sessions overlapping the window count only their overlap; so does time in the"
    " air, from each take-off to the next landing (see `definition`). Departures and arrivals"
    " are the airports of the take-offs and landings within the window. Most hours online"
    " first. `format=csv` (or `Accept: text/csv`) gives the page as CSV, airport lists"
    " space-separated. The window defaults to the last 24 hours and may span 92 days.",
    responses=_CSV_RESPONSES,
)
def pilot_activity(
    ctx: Context,
    request: Request,
    start: From = None,
    end: To = None,
    cid: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="One member.")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
    fmt: Format = None,
) -> PilotActivityOut | Response:
    start, end = window(ctx.clock(), start, end, maximum=ACTIVITY_MAX)
    with ctx.db.read_consistent("api.activity_pilots") as conn:
        # The page is chosen and the totals summed in the database; only the page's members'
        # sessions and movements are read, for the time in the air and the airports.
        page = pilot_hours(conn, start, end, cid, limit, offset)
        totals = pilot_hours_totals(conn, start, end, cid)
        spans = pilot_spans(conn, start, end, [p.cid for p in page]) if page else []
    groups = {g.cid: g for g in pilot_groups(spans, start, end)}
    rows = [
        PilotActivityRowOut(
            cid=g.cid,
            hours_online=round(g.online_seconds / 3600, 4),
            hours_airborne=round(g.airborne_seconds / 3600, 4),
            flights=len(g.flights),
            sessions=len(g.sessions),
            departures=[code for _, code in g.departures],
            arrivals=[code for _, code in g.arrivals],
            first_seen=g.first,
            last_seen=g.last,
        )
        for g in (groups[p.cid] for p in page)
        if g.first is not None and g.last is not None
    ]
    if wants_csv(request, fmt):
        return _csv(rows, PILOT_CSV_COLUMNS, "pilot-activity.csv")
    return PilotActivityOut(
        start=start,
        end=end,
        totals=PilotActivityTotalsOut(
            hours_online=round(totals.seconds / 3600, 4),
            sessions=totals.sessions,
            flights=totals.flights,
            pilots=totals.pilots,
        ),
        rows=rows,
        pagination=PaginationOut(total=totals.pilots, limit=limit, offset=offset),
    )
