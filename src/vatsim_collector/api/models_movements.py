"""The movement fields of a flight (movements/), as the flight endpoints return them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class FlightMovementsOut(BaseModel):
    departure_flown: str | None = Field(
        default=None, description="Airport of the flight's first takeoff (ICAO); null: none seen."
    )
    arrival_flown: str | None = Field(
        default=None, description="Airport of the flight's last landing (ICAO); null: none seen."
    )
    off_block_at: datetime | None = Field(default=None, description="First off-block.")
    takeoff_at: datetime | None = Field(default=None, description="First takeoff.")
    landing_at: datetime | None = Field(default=None, description="Last landing.")
    on_block_at: datetime | None = Field(default=None, description="Last on-block.")
    block_minutes: float | None = Field(
        default=None, description="First off-block to last on-block, when both were seen."
    )
    airborne_minutes: float | None = Field(
        default=None, description="First takeoff to last landing, when both were seen."
    )
    diverted: bool = Field(
        default=False, description="The last landing was away from the filed arrival."
    )
