"""An optional geographic filter: which pilots and controllers a deployment cares about.

A regional deployment (one vACC, one division) records only the traffic in and around its
airspace. The area is any polygon, usually a union of sectors, widened by a margin in nautical
miles so that aircraft about to enter are kept too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np
import shapely
import shapely.affinity
from numpy.typing import ArrayLike, NDArray

from vatsim_collector.airspace.geometry import (
    FeatureRejected,
    Polygonal,
    clean_geometry,
    polygonal_parts,
    wrap_to_world,
)
from vatsim_collector.airspace.sectors import SectorLoadError, SectorSet, features_of, read_geojson
from vatsim_collector.tracking.geodesy import EARTH_RADIUS_NM

_MAX_SCALE_LATITUDE = 85.0  # beyond this cos() → 0 and the widened area would circle the globe
_QUAD_SEGS = 16


def widen(area: Polygonal, margin_nm: float) -> shapely.Geometry:
    """``area`` grown so that every point within ``margin_nm`` (great circle) of it is inside.

    Why this way: shapely buffers in plane degrees, and a degree of longitude shrinks with
    cos(latitude). Longitudes are therefore scaled by cos(L), buffered by the margin as an angle,
    and scaled back, with L the area's highest |latitude| plus half the margin: the highest
    mid-latitude of any path from the area to a point within the margin, so such a point is
    never further away in the scaled plane than on the globe. North-south the margin is exact;
    east-west it is exact at L and wider nearer the equator (about 3 % at 50°N for 30 nm on a
    2°-tall area; up to ~20 % for tall areas far north). Erring wide is deliberate: a filter
    that drops an aircraft at its edge loses data for good, one that keeps a few extra costs a
    few rows. A local projection would be exact but needs a projection library for one
    start-up computation. The buffer's arcs are drawn outside the true circle (radius / cos of
    half a segment angle) so chords cut nothing off. The result may reach past ±180° or the
    poles; ``wrap_to_world`` brings it home.
    """
    if margin_nm <= 0.0:
        return area
    margin_deg = math.degrees(margin_nm / EARTH_RADIUS_NM)
    _, ymin, _, ymax = shapely.bounds(area)
    reach = min(max(abs(ymin), abs(ymax)) + margin_deg / 2.0, _MAX_SCALE_LATITUDE)
    k = math.cos(math.radians(reach))
    radius = margin_deg / math.cos(math.pi / (4 * _QUAD_SEGS))
    scaled = shapely.affinity.scale(area, xfact=k, yfact=1.0, origin=(0.0, 0.0))
    grown = shapely.buffer(scaled, radius, quad_segs=_QUAD_SEGS)
    return shapely.affinity.scale(grown, xfact=1.0 / k, yfact=1.0, origin=(0.0, 0.0))


class BoundaryFilter:
    """Pilots inside an area (plus margin), and controllers whose callsign matches a pattern."""

    def __init__(
        self,
        area: shapely.Polygon | shapely.MultiPolygon,
        *,
        margin_nm: float = 0.0,
        controller_patterns: Sequence[str] = (),
    ) -> None:
        if not isinstance(area, shapely.Polygon | shapely.MultiPolygon) or area.is_empty:
            raise ValueError("boundary area must be a non-empty Polygon or MultiPolygon")
        if not math.isfinite(margin_nm) or margin_nm < 0.0:
            raise ValueError(f"margin_nm must be a finite number >= 0, not {margin_nm!r}")
        valid = area if shapely.is_valid(area) else polygonal_parts(shapely.make_valid(area))
        if valid is None:
            raise ValueError("boundary area has no polygonal area left after make_valid")
        # wrap_to_world always builds a new shape, so preparing it never touches the caller's.
        world = wrap_to_world(widen(valid, margin_nm))
        if world is None:
            raise ValueError("boundary area lies outside the world's bounds")
        shapely.prepare(world)
        self.area: Polygonal = world
        self.margin_nm = margin_nm
        self.controller_patterns = tuple(p.upper() for p in controller_patterns)

    @classmethod
    def from_sectors(
        cls,
        sectors: SectorSet,
        names: Sequence[str],
        *,
        margin_nm: float = 0.0,
        controller_patterns: Sequence[str] = (),
    ) -> BoundaryFilter:
        """The union of every feature carrying one of ``names``."""
        if not names:
            raise ValueError("no sector names given for the boundary")
        unknown = [name for name in names if not sectors.by_name(name)]
        if unknown:
            raise ValueError(f"unknown sector name(s): {', '.join(unknown)}")
        shapes = [s.geometry for name in names for s in sectors.by_name(name)]
        return cls._of_shapes(shapes, margin_nm, controller_patterns, "the named sectors")

    @classmethod
    def from_geojson(
        cls, path: Path, *, margin_nm: float = 0.0, controller_patterns: Sequence[str] = ()
    ) -> BoundaryFilter:
        """The union of every polygonal feature in the file; other features are ignored."""
        shapes = []
        for feature in features_of(read_geojson(path), str(path)):
            if not isinstance(feature, dict):
                continue
            try:
                shapes.append(clean_geometry(feature.get("geometry")).geometry)
            except FeatureRejected:
                continue
        if not shapes:
            raise SectorLoadError(f"{path}: no usable polygon for a boundary")
        return cls._of_shapes(shapes, margin_nm, controller_patterns, str(path))

    @classmethod
    def _of_shapes(
        cls,
        shapes: Sequence[Polygonal],
        margin_nm: float,
        controller_patterns: Sequence[str],
        what: str,
    ) -> BoundaryFilter:
        area = polygonal_parts(shapely.union_all(list(shapes)))
        if area is None:
            raise ValueError(f"{what}: the union has no area")
        return cls(area, margin_nm=margin_nm, controller_patterns=controller_patterns)

    def pilots_inside(self, lons: ArrayLike, lats: ArrayLike) -> NDArray[np.bool_]:
        """Which points are inside the area or on its edge."""
        x = np.asarray(lons, dtype=np.float64)
        y = np.asarray(lats, dtype=np.float64)
        x = np.where(np.abs(x) > 180.0, np.remainder(x + 180.0, 360.0) - 180.0, x)
        inside: NDArray[np.bool_] = np.asarray(
            shapely.intersects_xy(self.area, x, y), dtype=np.bool_
        )
        return inside

    def controller_allowed(self, callsign: str) -> bool:
        if not self.controller_patterns:
            return True
        upper = callsign.upper()
        return any(fnmatchcase(upper, pattern) for pattern in self.controller_patterns)
