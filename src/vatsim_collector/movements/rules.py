"""The detector's thresholds, from settings (README "Movements" explains each)."""

from __future__ import annotations

from dataclasses import dataclass

from vatsim_collector.config import Settings

__all__ = ["MovementRules"]


@dataclass(frozen=True, slots=True)
class MovementRules:
    airport_radius_nm: float = 5.0
    ground_height_ft: float = 200.0
    roll_height_ft: float = 50.0
    stopped_max_kt: float = 1.0
    taxi_max_kt: float = 40.0
    dwell_samples: int = 2
    touch_and_go_seconds: float = 90.0
    touch_and_go_height_ft: float = 1000.0
    go_around_height_ft: float = 1000.0
    go_around_climb_ft: float = 300.0
    on_block_seconds: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> MovementRules:
        return cls(
            airport_radius_nm=settings.airport_radius_nm,
            ground_height_ft=settings.movement_ground_height_ft,
            roll_height_ft=settings.movement_roll_height_ft,
            stopped_max_kt=settings.movement_stopped_max_kt,
            taxi_max_kt=settings.movement_taxi_max_kt,
            dwell_samples=settings.movement_dwell_samples,
            touch_and_go_seconds=settings.movement_touch_and_go_seconds,
            touch_and_go_height_ft=settings.movement_touch_and_go_height_ft,
            go_around_height_ft=settings.movement_go_around_height_ft,
            go_around_climb_ft=settings.movement_go_around_climb_ft,
            on_block_seconds=settings.movement_on_block_seconds,
        )
