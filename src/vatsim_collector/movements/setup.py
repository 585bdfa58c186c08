"""The movement detector from settings: None when ``VATSIM_MOVEMENTS_ENABLED`` is off."""

from __future__ import annotations

from vatsim_collector.airports.setup import shared_airport_index
from vatsim_collector.config import Settings
from vatsim_collector.movements.detector import MovementDetector
from vatsim_collector.movements.rules import MovementRules

__all__ = ["build_detector"]


def build_detector(settings: Settings) -> MovementDetector | None:
    """A fresh detector on the process's airport index, or None when movements are off."""
    if not settings.movements_enabled:
        return None
    return MovementDetector(shared_airport_index(settings), MovementRules.from_settings(settings))
