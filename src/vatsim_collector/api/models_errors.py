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
    source: Literal["database", "memory"]
    window: WindowOut
    total: int
    transient: int
    permanent: int
    by_category: dict[str, int]
    by_severity: dict[str, int]
    by_service: dict[str, int]
    by_type: dict[str, int]
    top_errors: list[TopErrorOut]
    recovery: RecoveryOut
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


class BreakersOut(BaseModel):
    breakers: list[BreakerOut]


class FeedHealthOut(BaseModel):
    status: Literal["ok", "stale", "failing", "unknown"] = Field(
        description="failing: the last cycles could not fetch the feed (the last good snapshot"
        " is still served); stale: the feed answers but its update_timestamp is too old."
    )
    failing_since: datetime | None
    last_good_fetch_at: datetime | None
    breakers: dict[str, str] = Field(description="State of each feed breaker.")
