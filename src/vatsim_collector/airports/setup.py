"""The airport index from settings: the packaged reference with ``VATSIM_AIRPORTS_FILE`` applied.

A file that cannot be used raises ``ConfigurationError`` naming the setting, the file, the line
and the column, so start-up stops with that message rather than running on a reference someone
meant to correct.
"""

from __future__ import annotations

from functools import cache

from vatsim_collector.airports.nearest import AirportIndex
from vatsim_collector.airports.reference import AirportReference
from vatsim_collector.config import Settings

__all__ = ["build_airport_index", "packaged_airport_index"]


def build_airport_index(settings: Settings) -> AirportIndex:
    return AirportIndex(AirportReference.load(settings.airports_file))


@cache
def packaged_airport_index() -> AirportIndex:
    """The index of the packaged reference alone, built once per process: the default of apps
    built without settings (tests, library users)."""
    return AirportIndex(AirportReference.packaged())
