"""Response models of the database service endpoints."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from vatsim_collector.api.models import HealthStatus


class PoolOut(BaseModel):
    size: int = Field(description="Connections the pool keeps.")
    checked_out: int = Field(description="Connections in use right now.")
    overflow: int = Field(description="Connections open beyond the pool size.")
    waiting: int = Field(description="Requests waiting for a connection.")
    capacity: int = Field(description="Pool size plus allowed overflow.")
    saturation: float = Field(description="checked_out / capacity.")


class QueryStatsOut(BaseModel):
    count: int
    errors: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


class SlowQueryOut(BaseModel):
    name: str
    at: datetime
    duration_ms: float
    failed: bool


class TableOut(BaseModel):
    name: str
    rows_estimate: int | None = Field(
        description="Planner estimate (PostgreSQL reltuples, SQLite sampled ANALYZE), not COUNT(*)."
    )
    bytes: int | None = Field(description="On-disk size with indexes; null where not measured.")


class StorageOut(BaseModel):
    measured_at: datetime
    total_bytes: int | None = Field(description="Database (SQLite: file plus WAL) size on disk.")
    growth_bytes_per_hour: float | None = Field(
        description="Over the last hour of measurements; null until there are two a minute apart."
    )
    growth_rows_per_hour: dict[str, float]
    tables: list[TableOut]


class DatabaseStatsOut(BaseModel):
    backend: str = Field(description="sqlite or postgresql.")
    pool: PoolOut
    queries: dict[str, QueryStatsOut] = Field(
        description="Per named query of the application, since start (latencies over the most"
        " recent samples)."
    )
    slow_query_threshold_ms: float
    slow_query_log_size: int
    slow_queries: list[SlowQueryOut] = Field(description="Newest first, bounded.")
    storage: StorageOut


class TransitionOut(BaseModel):
    at: datetime
    previous: HealthStatus | None
    current: HealthStatus
    reasons: list[str]


class DatabaseHealthOut(BaseModel):
    status: HealthStatus
    reasons: list[str]
    checked_at: datetime
    latency_ms: float | None = Field(description="Round trip of the probe query.")
    pool: PoolOut
    last_snapshot_at: datetime | None = Field(description="Latest accepted snapshot stored.")
    freshness_seconds: float | None = Field(description="Age of last_snapshot_at.")
    backlog: int = Field(description="Fetched snapshots waiting in the spool to be stored.")
    free_disk_bytes: int | None = Field(description="Free disk beside a SQLite file.")
    transitions: list[TransitionOut] = Field(description="Recent verdict changes, newest first.")
