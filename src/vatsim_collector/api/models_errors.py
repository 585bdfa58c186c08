"""Response models of the error analytics and circuit breaker endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class WindowOut(BaseModel):
    hours: float
    since: datetime
    until: datetime


class TopErrorOut(BaseModel):
    error_type: str
    message: str = Field(description="Scrubbed of secrets.")
    count: int
    last_seen: datetime
    service: str
    services: int = Field(description="How many services reported this error.")


class StrategyRecoveryOut(BaseModel):
    attempts: int
    successes: int
    failures: int
    success_rate: float


class RecoveryOut(BaseModel):
    attempts: int = Field(description="Runs that needed recovery (a failed attempt or a breaker).")
    successes: int = Field(description="Of those, runs whose caller still got a value.")
    failures: int
    success_rate: float | None
    by_strategy: dict[str, StrategyRecoveryOut]


class BucketOut(BaseModel):
    start: datetime
    count: int
    by_category: dict[str, int]


class SeriesOut(BaseModel):
    bucket_minutes: int
    buckets: list[BucketOut]


class ErrorAnalyticsOut(BaseModel):
    source: Literal["database", "memory"] = Field(
        description="database: every node's records (the table is shared); memory: the"
        " database could not be read, so only this node's own recent records."
    )
    node: str | None = Field(
        default=None, description="The node the figures are limited to; null: every node."
    )
    window: WindowOut
    total: int
    transient: int
    permanent: int
    by_category: dict[str, int]
    by_severity: dict[str, int]
    by_service: dict[str, int]
    by_type: dict[str, int]
    by_node: dict[str, int] = Field(
        default_factory=dict,
        description="Records per node that raised them (records stored before nodes were"
        " named have none and are counted in the totals only).",
    )
    top_errors: list[TopErrorOut]
    recovery: RecoveryOut = Field(description="This node's recovery attempts (kept in memory).")
    series: SeriesOut
    queued: int = Field(description="Records not yet written to the database.")
    dropped: int = Field(description="Records dropped because the write queue was full.")


class BreakerOut(BaseModel):
    name: str
    state: Literal["closed", "open", "half_open"]
    consecutive_failures: int
    failures: int
    successes: int
    rejected: int = Field(description="Calls refused while open.")
    last_failure_at: datetime | None
    last_success_at: datetime | None
    opened_at: datetime | None
    next_probe_at: datetime | None
    last_error_type: str | None
    resets: int = Field(default=0, description="Operator resets since the node started.")
    node: str | None = Field(
        default=None, description="The node that owns the breaker (null: this process, unnamed)."
    )
    reported_at: datetime | None = Field(
        default=None,
        description="null: this node's breaker, read now; else when its node last reported it.",
    )
    stale: bool = Field(
        default=False, description="Its node has not reported for three heartbeats."
    )


class NodeOut(BaseModel):
    node: str
    role: str = Field(description="leader, standby, api or worker.")
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime | None = Field(
        description="The last heartbeat stored (null: this node, before its first one)."
    )
    stale: bool = Field(description="No heartbeat for three intervals: stopped, paused or cut.")
    local: bool = Field(description="This node, the one that answered.")


class BreakersOut(BaseModel):
    node: str | None = Field(default=None, description="The node that answered.")
    breakers: list[BreakerOut] = Field(
        description="Every node's breakers, each naming its node: this node's live, the"
        " others' as their last heartbeat reported them."
    )
    nodes: list[NodeOut] = Field(default_factory=list)
    complete: bool = Field(
        default=True,
        description="false: the other nodes could not be read (database unavailable); only"
        " this node's breakers are listed.",
    )


class BreakerResetOut(BreakerOut):
    applied: bool = Field(
        description="true: closed now (this node's breaker, HTTP 200); false: asked of the"
        " owning node, which closes it within one heartbeat (HTTP 202); the state shown is"
        " then the one it last reported."
    )


class FeedHealthOut(BaseModel):
    status: Literal["ok", "stale", "failing", "unknown"] = Field(
        description="failing: the last cycles could not fetch the feed (the last good snapshot"
        " is still served); stale: the feed answers but its update_timestamp is too old."
    )
    failing_since: datetime | None
    last_good_fetch_at: datetime | None
    breakers: dict[str, str] = Field(description="State of each feed breaker.")
