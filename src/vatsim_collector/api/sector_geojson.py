"""The loaded sector set as simplified GeoJSON, for maps, cached per tolerance.

The sector set is loaded once per process, so a collection only changes on a restart: the
few tolerances in use are kept serialised (each is hundreds of kB), least recently used first
out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import shapely
from fastapi import Request

from vatsim_collector.airspace.sectors import SectorSet
from vatsim_collector.api.models_airspace import SectorCollectionOut, SectorFeatureOut

# Tolerances are rounded to this many decimals, so near-equal requests share one cache entry.
TOLERANCE_DECIMALS = 3
COORDINATE_DECIMALS = 3
GEOJSON_CACHE_SIZE = 4
GEOJSON_MAX_AGE_SECONDS = 3600


class GeoJsonCache:
    """Serialised collections by tolerance, least recently used evicted first."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: OrderedDict[float, bytes] = OrderedDict()

    def get(self, tolerance: float) -> bytes | None:
        with self.lock:
            body = self.entries.get(tolerance)
            if body is not None:
                self.entries.move_to_end(tolerance)
            return body

    def put(self, tolerance: float, body: bytes) -> None:
        with self.lock:
            self.entries[tolerance] = body
            self.entries.move_to_end(tolerance)
            while len(self.entries) > GEOJSON_CACHE_SIZE:
                self.entries.popitem(last=False)


def geojson_cache(request: Request) -> GeoJsonCache:
    # Two first requests racing may each build a cache; one wins and the other's work is lost.
    cache = getattr(request.app.state, "sector_geojson_cache", None)
    if not isinstance(cache, GeoJsonCache):
        cache = GeoJsonCache()
        request.app.state.sector_geojson_cache = cache
    return cache


def _rounded(coordinates: np.ndarray[Any, np.dtype[np.float64]]) -> Any:
    return np.round(coordinates, COORDINATE_DECIMALS)


def sector_collection(sectors: SectorSet, tolerance: float) -> SectorCollectionOut:
    features = []
    for sector in sectors.sectors:
        geometry = shapely.simplify(sector.geometry, tolerance, preserve_topology=True)
        geometry = shapely.transform(geometry, _rounded)
        if geometry.is_empty or not isinstance(geometry, shapely.Polygon | shapely.MultiPolygon):
            continue
        features.append(
            SectorFeatureOut.model_validate(
                {
                    "properties": {
                        "name": sector.name,
                        "lower_ft": sector.lower_ft,
                        "upper_ft": sector.upper_ft,
                    },
                    "geometry": shapely.geometry.mapping(geometry),
                }
            )
        )
    return SectorCollectionOut(simplify=tolerance, features=features)
