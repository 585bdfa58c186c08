"""Response models: every endpoint declares one, so /openapi.json documents every response.

Pilot and controller names are personal data and never appear in API responses.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from vatsim_collector.api.models_errors import FeedHealthOut

HealthStatus = Literal["ok", "degraded", "down"]
Freshness = Literal["fresh", "stale", "none"]


class ErrorOut(BaseModel):
    """An RFC 9457 problem: every error response, sent as ``application/problem+json``."""

    type: str = Field(
        description="A URI naming the kind of problem: about:blank (the status says it all) or"
        " https://vatsim-collector/problems/<slug>, stable across releases."
    )
    title: str = Field(description="Short summary of the problem type.")
    status: int = Field(description="The HTTP status code of this response.")
    detail: str = Field(description="What went wrong, in words; never a stack trace.")
    instance: str = Field(description="The request path the problem occurred on.")


class FieldErrorOut(BaseModel):
    location: str = Field(description="Where the bad value was, e.g. query.limit or path.name.")
    message: str = Field(description="What is wrong with it. The value itself is not repeated.")


class ValidationErrorOut(ErrorOut):
    errors: list[FieldErrorOut] = Field(
        description="One entry per invalid parameter; empty when the parameters are each valid"
        " but not together (such as a time window that is too long)."
    )


class HealthOut(BaseModel):
    status: HealthStatus = Field(
        description="The health monitor's verdict. down (HTTP 503 on /health): the database"
        " cannot be queried, the collection loop has stopped, or the latest stored snapshot is"
        " dated in the future (beyond 2 s of clock skew); degraded: it works but something"
        " needs attention (stale data, slow round trips, a busy pool, a write backlog, little"
        " free disk); ok otherwise."
    )
    reasons: list[str] = Field(default_factory=list, description="Why the status is not ok.")


class LiveCounts(BaseModel):
    pilots: int = Field(description="Pilot sessions present in the latest accepted snapshot.")
    controllers: int = Field(description="Controller sessions online, observers excluded.")
    observers: int = Field(description="Observer connections online (facility 0, 199.998, _OBS).")
    atis: int = Field(description="ATIS stations online.")
    prefiles: int = Field(
        description="Prefiled plans in the latest snapshot, not counting the plans VATSIM"
        " re-publishes as prefiles for pilots who are (or just were) online."
    )


class CollectionOut(BaseModel):
    """The poll loop's own state and counters since the process started."""

    status: Literal["running", "stopped", "absent"] = Field(
        description="stopped: the loop died (see stopped_reason; the process exits to be"
        " restarted); absent: this app runs without a poller (serve, tests, replay)."
    )
    stopped_reason: str | None = Field(description="Why the loop died; null while it runs.")
    missed_ticks: int = Field(
        description="Gaps between stored update timestamps longer than the feed's cadence,"
        " counted in the ticks that were never stored."
    )
    loop_errors: int = Field(description="Unexpected exceptions in the loop, survived.")
    records_dropped: int = Field(
        description="Records dropped from snapshots as malformed (the rest was stored)."
    )
    data_errors: int = Field(
        description="Writes that failed because of the data, not the database: held, never spooled."
    )
    pending: int = Field(description="Fetched snapshots queued to be written, in order.")


class ClusterOut(BaseModel):
    """Which node answered, what it does, and which node leads (the one that stores)."""

    node: str = Field(description="This node's name: VATSIM_NODE_NAME, or <host>-<pid>.")
    role: Literal["leader", "standby", "api", "worker"] = Field(
        description="leader: collects and stores (a single `run` process is the leader);"
        " standby: a `run` waiting to take over; api: `serve`, the API alone."
    )
    leader: str | None = Field(
        description="The node holding the leadership, as the database records it: the same"
        " from every node. null when none is recorded or the database could not be read."
    )
    epoch: int | None = Field(
        description="The leadership's fencing epoch: one more at each election. null when the"
        " database could not be read."
    )


class StatusOut(BaseModel):
    last_snapshot_at: datetime | None = Field(
        description="general.update_timestamp of the latest accepted snapshot (UTC)."
    )
    age_seconds: float | None = Field(description="Seconds since last_snapshot_at.")
    freshness: Freshness
    stale_after_seconds: float
    live: LiveCounts
    health: HealthOut = Field(description="The database health monitor's latest verdict.")
    feed: FeedHealthOut = Field(description="Feed health: failing cycles, breakers, staleness.")
    ingest: dict[str, int] = Field(
        description="This node's own ingest counters since its process started: per node, not"
        " the cluster's; zero on a node that does not ingest (serve, a standby). The live"
        " counts and last_snapshot_at are the same from every node."
    )
    collection: CollectionOut = Field(
        description="This node's poll loop: running or not, and its counters."
    )
    cluster: ClusterOut = Field(description="This node, its role, and who leads.")


class FlightOut(BaseModel):
    callsign: str
    cid: int
    flight_id: int | None
    session_id: int | None
    logon_time: datetime
    latitude: float
    longitude: float
    altitude: int
    groundspeed: int
    heading: int
    transponder: str
    departure: str | None
    arrival: str | None
    aircraft_short: str | None
    last_seen: datetime


class FlightsOut(BaseModel):
    flights: list[FlightOut]


class ControllerOut(BaseModel):
    callsign: str
    cid: int
    session_id: int | None
    kind: Literal["controller", "atis"]
    frequency: str
    facility: int
    rating: int
    is_observer: bool
    is_supervisor: bool
    latitude: float | None = Field(description="Centroid of the station's transceivers, if known.")
    longitude: float | None
    logon_time: datetime
    last_seen: datetime
    atis_code: str | None = Field(description="Current ATIS letter; null for controllers.")


class ControllersOut(BaseModel):
    controllers: list[ControllerOut]


class TrackPoint(BaseModel):
    time: datetime = Field(description="update_timestamp of the snapshot the position is from.")
    latitude: float
    longitude: float
    altitude: int
    groundspeed: int
    heading: int


class TrackOut(BaseModel):
    flight_id: int
    callsign: str
    departure: str | None
    arrival: str | None
    positions: list[TrackPoint]


class BreakerStateOut(BaseModel):
    name: str
    state: Literal["closed", "open", "half_open"]
    node: str | None = Field(default=None, description="The node that owns the breaker.")


class ErrorSummaryOut(BaseModel):
    hours: float = Field(description="Length of the window ending now.")
    total: int
    by_category: dict[str, int] = Field(description="Every category, zero-filled.")
    by_severity: dict[str, int] = Field(description="Every severity, zero-filled.")


class ServiceStateOut(BaseModel):
    node: str | None = Field(default=None, description="The node that answered.")
    breakers: list[BreakerStateOut] = Field(
        description="Every circuit breaker of every node, by node and name; empty when the"
        " error layer is not running."
    )
    errors: ErrorSummaryOut | None = Field(
        description="Errors recorded during the last hour; null when the error layer is not"
        " running in this process."
    )
