"""The airport index from settings: the packaged reference with ``VATSIM_AIRPORTS_FILE`` applied.

A file that cannot be used raises ``ConfigurationError`` naming the setting, the file, the line
and the column, so start-up stops with that message rather than running on a reference someone
meant to correct.
"""

from __future__ import annotations

import threading
from functools import cache
from pathlib import Path

from vatsim_collector.airports.nearest import AirportIndex
from vatsim_collector.airports.reference import AirportReference
from vatsim_collector.config import Settings

__all__ = ["build_airport_index", "packaged_airport_index", "shared_airport_index"]


def build_airport_index(settings: Settings) -> AirportIndex:
    if settings.airports_file is None:
        # The packaged reference cannot be invalid, so it is loaded when first used; a file
        # of the operator's is read now, so that a bad one stops start-up.
        return AirportIndex.deferred(AirportReference.packaged)
    return AirportIndex(AirportReference.load(settings.airports_file))


_shared: dict[Path | None, AirportIndex] = {}
_shared_lock = threading.Lock()


def shared_airport_index(settings: Settings) -> AirportIndex:
    """One index per process and airports file: building it takes about a second, and the
    ingestor and every recompute of a process read the same reference."""
    key = settings.airports_file
    with _shared_lock:
        index = _shared.get(key)
        if index is None:
            index = _shared[key] = build_airport_index(settings)
        return index


@cache
def packaged_airport_index() -> AirportIndex:
    """The index of the packaged reference alone, built once per process: the default of apps
    built without settings (tests, library users)."""
    return AirportIndex(AirportReference.packaged())
