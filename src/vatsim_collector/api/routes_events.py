"""The event bus over HTTP: analytics, the dead-letter queue and the event log.

None of it is public live data, so every route needs an admin key. Dead-letter reads and the
event log run in the thread pool (plain ``def``); a replay is ``async`` because it delivers on
the event loop the bus's handlers live on.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from vatsim_collector.api.auth import AdminAccess
from vatsim_collector.api.context import Context
from vatsim_collector.api.models_airspace import utc
from vatsim_collector.api.models_events import (
    DeadLetterOut,
    DeadLettersOut,
    EventAnalyticsOut,
    EventOut,
    EventPageOut,
    PaginationOut,
    ReplayFailureOut,
    ReplayOut,
)
from vatsim_collector.api.problems import problem_responses
from vatsim_collector.events.bus import ReplayOutcome
from vatsim_collector.pipeline.event_layer import EventLayer
from vatsim_collector.store.dead_letters import DeadLetterBusy

router = APIRouter(
    tags=["events"],
    dependencies=[AdminAccess],
    # 401, 403 and the limits' answers are documented app-wide (problems.document_problems).
    responses=problem_responses(status.HTTP_503_SERVICE_UNAVAILABLE),
)

LetterId = Annotated[int, Path(ge=1, le=2**62)]
_NOT_FOUND = problem_responses(status.HTTP_404_NOT_FOUND)
_CONFLICT = problem_responses(status.HTTP_409_CONFLICT)
_NAME = r"^[A-Za-z0-9_.:*-]+$"
# ASCII only: str.isalnum() would let letters of every script through.
_EVENT_TYPE = re.compile(r"[A-Za-z0-9._*-]{1,64}")


def _layer(ctx: Context) -> EventLayer:
    if ctx.events is None:
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="the event bus is not running in this process",
        )
    return ctx.events


def _missing(letter_id: int) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no dead letter {letter_id}")


def _busy(letter_id: int) -> HTTPException:
    return HTTPException(
        status.HTTP_409_CONFLICT, detail=f"dead letter {letter_id} is being replayed right now"
    )


@router.get(
    "/api/events/analytics",
    response_model=EventAnalyticsOut,
    summary="Events by type, every handler's counters, latency, queue and breaker, and the"
    " dead-letter queue's size and bound",
)
async def event_analytics(ctx: Context) -> EventAnalyticsOut:
    return EventAnalyticsOut.model_validate(await _layer(ctx).analytics())


@router.get(
    "/api/events/dead-letters",
    response_model=DeadLettersOut,
    summary="Dead letters, oldest first",
)
def list_dead_letters(
    ctx: Context,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    handler: Annotated[str | None, Query(max_length=64, pattern=_NAME)] = None,
    event_type: Annotated[str | None, Query(max_length=64, pattern=_NAME)] = None,
) -> DeadLettersOut:
    total, letters = _layer(ctx).dead_letters.list(
        limit=limit, offset=offset, handler=handler, event_type=event_type
    )
    return DeadLettersOut(
        dead_letters=[DeadLetterOut.model_validate(letter.summary()) for letter in letters],
        pagination=PaginationOut(total=total, limit=limit, offset=offset),
    )


@router.get(
    "/api/events/dead-letters/{letter_id}",
    response_model=DeadLetterOut,
    summary="One dead letter with its whole event",
    responses=_NOT_FOUND,
)
def get_dead_letter(ctx: Context, letter_id: LetterId) -> DeadLetterOut:
    letter = _layer(ctx).dead_letters.get(letter_id)
    if letter is None:
        raise _missing(letter_id)
    return DeadLetterOut.model_validate(letter.summary())


@router.post(
    "/api/events/dead-letters/{letter_id}/replay",
    response_model=ReplayOut,
    summary="Deliver a dead letter to its handler again; removed once delivered",
    responses={**_NOT_FOUND, **_CONFLICT},
)
async def replay_dead_letter(ctx: Context, letter_id: LetterId) -> ReplayOut:
    result = await _layer(ctx).bus.replay_dead_letter(letter_id)
    if result.outcome is ReplayOutcome.NOT_FOUND:
        raise _missing(letter_id)
    if result.outcome is ReplayOutcome.BUSY:
        raise _busy(letter_id)
    if result.outcome is ReplayOutcome.UNKNOWN_HANDLER:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"dead letter {letter_id} belongs to a handler this process does not run",
        )
    failure = result.failure
    return ReplayOut(
        id=letter_id,
        outcome="delivered" if failure is None else "failed",
        failure=None
        if failure is None
        else ReplayFailureOut(
            error_type=failure.error_type,
            error_category=failure.error_category,
            error_message=failure.error_message,
            attempts=failure.attempts,
        ),
    )


@router.delete(
    "/api/events/dead-letters/{letter_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Discard a dead letter without delivering it",
    responses={**_NOT_FOUND, **_CONFLICT},
)
async def discard_dead_letter(ctx: Context, letter_id: LetterId) -> Response:
    dead_letters = _layer(ctx).dead_letters
    try:
        found = await asyncio.to_thread(dead_letters.discard, letter_id)
    except DeadLetterBusy:
        raise _busy(letter_id) from None
    if not found:
        raise _missing(letter_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _cursor(value: str | None) -> tuple[datetime, str] | None:
    if value is None:
        return None
    moment, sep, event_id = value.partition("~")
    parsed: datetime | None
    try:
        parsed = datetime.fromisoformat(moment)
        # Converted here: a time beyond the calendar in UTC would only fail once bound to SQL,
        # and be taken for a database failure.
        parsed = None if parsed.utcoffset() is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        parsed = None
    if not sep or parsed is None or not event_id:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail="cursor must be a next_cursor value returned by this endpoint",
        )
    return parsed, event_id


@router.get(
    "/api/events",
    response_model=EventPageOut,
    summary="The event log by time range and type, oldest first",
)
def event_log(
    ctx: Context,
    start: Annotated[datetime | None, Query(alias="from", description="Inclusive.")] = None,
    end: Annotated[datetime | None, Query(alias="to", description="Exclusive.")] = None,
    event_type: Annotated[
        list[str] | None,
        Query(alias="type", max_length=20, description="Types or patterns such as pilot.*"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
) -> EventPageOut:
    start, end = utc(start), utc(end)
    for position, pattern in enumerate(event_type or (), start=1):
        if not _EVENT_TYPE.fullmatch(pattern):
            # By position: the refused value is not repeated back.
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                detail=f"type number {position} is not an event type or pattern: 1-64 of"
                " A-Z, a-z, 0-9, '.', '_', '*' and '-'",
            )
    events = _layer(ctx).log.read(
        start=start, end=end, types=event_type, after=_cursor(cursor), limit=limit + 1
    )
    more = len(events) > limit
    page = events[:limit]
    last = page[-1] if more else None
    return EventPageOut(
        events=[EventOut.model_validate(e.summary()) for e in page],
        next_cursor=None if last is None else f"{last.time.isoformat()}~{last.id}",
    )
