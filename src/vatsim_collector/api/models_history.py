"""Response models of the history endpoints (counts over time for the dashboard)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class CountsPointOut(BaseModel):
    at: datetime = Field(description="Start of the bucket (UTC), aligned to the bucket size.")
    pilots: int = Field(description="Most pilots in one snapshot of the bucket.")
    controllers: int = Field(
        description="Most controller connections in one snapshot of the bucket: the feed's"
        " `controllers` array, observers included (ATIS excluded)."
    )
    snapshots: int = Field(description="Accepted snapshots in the bucket.")


class CountsOut(BaseModel):
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    start: datetime = Field(alias="from", description="Inclusive, UTC: `hours` before now.")
    end: datetime = Field(alias="to", description="Now, UTC.")
    bucket_minutes: int
    points: list[CountsPointOut] = Field(
        description="Buckets holding at least one accepted snapshot, oldest first. A bucket"
        " without snapshots (the collector was not running) is absent, not zero."
    )
