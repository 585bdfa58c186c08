"""Response models of the event bus endpoints: analytics, dead letters and the event log."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from vatsim_collector.api.models_errors import BreakerOut


class TypeCountsOut(BaseModel):
    published: int
    delivered: int = Field(description="Successful deliveries, summed over handlers.")
    failed: int = Field(description="Deliveries that ended in the dead-letter queue.")


class LatencyOut(BaseModel):
    p50: float | None
    p95: float | None
    p99: float | None


class HandlerOut(BaseModel):
    patterns: list[str]
    remote: bool = Field(
        default=False,
        description="Run by `worker` processes on the event stream (VATSIM_REMOTE_HANDLERS):"
        " this process delivers it no live events, only dead-letter replays.",
    )
    successes: int
    failures: int
    timeouts: int
    retries: int
    shed: int = Field(description="Events dropped because the handler's queue was full.")
    snapshots_with_shed_events: int = Field(
        description="Publishes (one per snapshot) of which this handler shed any event."
    )
    blocked: int = Field(description="Publishes that waited for room in the queue.")
    rejected: int = Field(description="Events refused without a call while the breaker was open.")
    dead_lettered: int
    latency_ms: LatencyOut = Field(description="Over the handler's recent deliveries.")
    queue_depth: int
    queue_size: int
    overflow: Literal["block", "shed"]
    concurrency: int
    timeout_seconds: float
    breaker: BreakerOut


class DeadLetterStatsOut(BaseModel):
    size: int | None = Field(description="Letters stored; null while the database is down.")
    bound: int
    evicted: int = Field(description="Oldest letters removed to keep the bound, since start.")
    unwritten: int = Field(description="Letters held in memory while the database is down.")
    rejected: int = Field(description="Letters the database refused as invalid, since start.")


class HandlerShedOut(BaseModel):
    events: int
    by_type: dict[str, int]
    first_time: datetime = Field(description="Network time of the earliest event shed.")
    last_time: datetime


class ShedReportOut(BaseModel):
    reported_at: datetime
    correlation_id: str | None = Field(
        description="The snapshot's: the id of its snapshot.received event."
    )
    snapshot_time: datetime | None
    total: int
    handlers: dict[str, HandlerShedOut]


class EventLogGapsOut(BaseModel):
    marked: int = Field(description="eventlog.gap rows written since start.")
    pending: int = Field(description="Markers waiting for the event log's next write.")
    dropped: int = Field(description="Markers given up: over their bound, or unwritable.")


class EventAnalyticsOut(BaseModel):
    running: bool
    types: dict[str, TypeCountsOut]
    handlers: dict[str, HandlerOut]
    dead_letters: DeadLetterStatsOut
    last_shed: ShedReportOut | None = Field(
        description="The latest snapshot whose events overflowed a handler's queue."
    )
    event_log_gaps: EventLogGapsOut | None = Field(description="Null when the event log is off.")


class EventOut(BaseModel):
    id: str = Field(description="UUIDv7: sorts by creation time.")
    type: str
    time: datetime = Field(description="When it happened on the network (snapshot time).")
    source: str
    correlation_id: str | None
    payload: dict[str, Any]


class DeadLetterOut(BaseModel):
    id: int
    handler: str
    event: EventOut
    error_type: str | None
    error_category: str | None
    error_message: str | None = Field(description="Scrubbed of secrets.")
    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime
    status: Literal["pending", "replaying"]


class PaginationOut(BaseModel):
    total: int
    limit: int
    offset: int


class DeadLettersOut(BaseModel):
    dead_letters: list[DeadLetterOut]
    pagination: PaginationOut


class ReplayFailureOut(BaseModel):
    error_type: str
    error_category: str
    error_message: str
    attempts: int


class ReplayOut(BaseModel):
    id: int
    outcome: Literal["delivered", "failed"]
    failure: ReplayFailureOut | None = None


class EventPageOut(BaseModel):
    events: list[EventOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )
