"""GeoJSON polygons turned into geometry a point-in-polygon test can trust.

Sector files are drawn by hand in many tools, so two things go wrong often enough to matter:

* **Invalid rings** (bow-ties, spikes, overlapping parts). GEOS predicates on invalid input may
  answer wrongly or raise, so such shapes are repaired with ``make_valid`` and only their
  polygonal parts kept; the caller reports the repair.
* **The antimeridian.** Shapely is planar: a ring drawn 170 → -170 is read as a band all the way
  round the globe the other way. A crossing ring is unwrapped into one continuous longitude
  range, and the shape is then cut into the part within [-180, 180] and the part beyond it,
  which is moved back by 360°. Points keep their plain longitudes, so lookups need no special
  case.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
import shapely.affinity
from numpy.typing import NDArray

from vatsim_collector.errors.exceptions import DataRejected

Polygonal = shapely.Polygon | shapely.MultiPolygon

_POLYGONAL_TYPES = (shapely.Polygon, shapely.MultiPolygon)


class FeatureRejected(DataRejected):
    """A feature that cannot become a sector; the message is the reason, for the report."""


@dataclass(frozen=True)
class CleanGeometry:
    geometry: Polygonal
    repaired: bool
    split: bool


def polygonal_parts(geometry: shapely.Geometry) -> Polygonal | None:
    """The polygonal part of ``geometry`` as one valid shape (``None`` if it has no area)."""
    parts = [
        part
        for part in shapely.get_parts(geometry)
        if isinstance(part, _POLYGONAL_TYPES) and not part.is_empty
    ]
    if not parts:
        return None
    merged = shapely.union_all(parts)
    if isinstance(merged, _POLYGONAL_TYPES) and not merged.is_empty:
        return merged
    return polygonal_parts(merged) if isinstance(merged, shapely.GeometryCollection) else None


def wrap_to_world(geometry: shapely.Geometry) -> Polygonal | None:
    """Cut a shape drawn in a continuous longitude range into pieces within [-180, 180].

    Each 360°-wide frame is clipped separately and shifted home, so a shape spanning 170..190
    becomes 170..180 plus -180..-170. Latitudes are clipped to the poles on the way.
    """
    xmin, _, xmax, _ = shapely.bounds(geometry)
    pieces = []
    for frame in range(math.floor((xmin + 180.0) / 360.0), math.ceil((xmax - 180.0) / 360.0) + 1):
        offset = 360.0 * frame
        piece = shapely.intersection(
            geometry, shapely.box(offset - 180.0, -90.0, offset + 180.0, 90.0)
        )
        if not piece.is_empty:
            pieces.append(shapely.affinity.translate(piece, xoff=-offset))
    return polygonal_parts(shapely.GeometryCollection(pieces)) if pieces else None


def _ring_array(ring: Any, where: str) -> NDArray[np.float64]:
    try:
        xy = np.asarray(ring, dtype=np.float64)
    except (TypeError, ValueError):
        raise FeatureRejected(f"malformed coordinates in {where}") from None
    if xy.ndim != 2 or xy.shape[1] < 2:
        raise FeatureRejected(f"malformed coordinates in {where}")
    xy = xy[:, :2]
    if not np.isfinite(xy).all():
        raise FeatureRejected(f"non-finite coordinate in {where}")
    if (np.abs(xy[:, 1]) > 90.0).any():
        raise FeatureRejected(f"latitude outside [-90, 90] in {where}")
    if not np.array_equal(xy[0], xy[-1]):
        xy = np.vstack([xy, xy[:1]])  # GeoJSON requires closed rings; some tools omit the last
    if len(xy) < 4:
        raise FeatureRejected(f"{where} has fewer than 3 distinct positions")
    return xy


def _crosses_antimeridian(xy: NDArray[np.float64]) -> bool:
    """A jump of more than 180° between neighbours, or a longitude past ±180.

    A step from exactly -180 to exactly 180 (or back) is not a crossing: it is how a shape
    already cut at the antimeridian spans the whole globe (a polar band, say), and unwrapping
    it would collapse the shape to nothing. If the ring crosses elsewhere, unwrapping treats
    that step like any other.
    """
    lon = xy[:, 0]
    at_edge = np.abs(lon) == 180.0
    jumps = (np.abs(np.diff(lon)) > 180.0) & ~(at_edge[:-1] & at_edge[1:])
    return bool(jumps.any() or (np.abs(lon) > 180.0).any())


def _unwrap(xy: NDArray[np.float64]) -> NDArray[np.float64]:
    """Make a ring's longitudes continuous; a ring that goes once round a pole is closed over it.

    Such a ring (Antarctica drawn as a line of latitude, say) comes back 360° from where it
    started once unwrapped; the only area it can mean is the cap between it and the pole.
    """
    out = xy.copy()
    out[:, 0] = np.unwrap(xy[:, 0], period=360.0)
    drift = out[-1, 0] - out[0, 0]
    if abs(drift) > 180.0:
        pole = 90.0 if out[:, 1].mean() >= 0.0 else -90.0
        cap = np.array([[out[-1, 0], pole], [out[0, 0], pole], out[0]])
        out = np.vstack([out, cap])
    return out


def _polygon(rings: Any, where: str) -> tuple[shapely.Polygon, bool]:
    """One GeoJSON polygon (shell, holes...) and whether it needed unwrapping."""
    if not isinstance(rings, list) or not rings:
        raise FeatureRejected(f"empty {where}")
    arrays = [_ring_array(ring, f"{where} ring {i}") for i, ring in enumerate(rings)]
    crossing = any(_crosses_antimeridian(xy) for xy in arrays)
    if crossing:
        arrays = [_unwrap(xy) for xy in arrays]
        shell_mid = arrays[0][:, 0].mean()
        # Holes are unwrapped on their own; put each in the same 360° frame as the shell.
        arrays[1:] = [
            xy - (360.0 * round((xy[:, 0].mean() - shell_mid) / 360.0), 0.0) for xy in arrays[1:]
        ]
    return shapely.Polygon(arrays[0], holes=arrays[1:]), crossing


def clean_geometry(geometry: Any) -> CleanGeometry:
    """A GeoJSON geometry object as a valid sector shape; ``FeatureRejected`` says why not."""
    if not isinstance(geometry, dict):
        raise FeatureRejected("no geometry")
    kind = geometry.get("type")
    coordinates = geometry.get("coordinates")
    if kind == "Polygon":
        polygons = [_polygon(coordinates, "polygon")]
    elif kind == "MultiPolygon":
        if not isinstance(coordinates, list) or not coordinates:
            raise FeatureRejected("empty geometry")
        polygons = [_polygon(rings, f"polygon {i}") for i, rings in enumerate(coordinates)]
    else:
        raise FeatureRejected(f"geometry type {kind!r} is not polygonal")

    crossing = any(cross for _, cross in polygons)
    shape: shapely.Geometry = (
        polygons[0][0] if len(polygons) == 1 else shapely.MultiPolygon([p for p, _ in polygons])
    )
    repaired = not shapely.is_valid(shape)
    if repaired:
        shape = shapely.make_valid(shape)
    if crossing or repaired:
        cleaned = polygonal_parts(shape)
        if cleaned is None:
            raise FeatureRejected("unrepairable: no polygonal area left after make_valid")
        shape = cleaned
    split = False
    xmin, _, xmax, _ = shapely.bounds(shape)
    if xmin < -180.0 or xmax > 180.0:
        wrapped = wrap_to_world(shape)
        if wrapped is None:
            raise FeatureRejected("no area within the world's bounds")
        pieces_before, pieces_after = shapely.get_num_geometries([shape, wrapped])
        split = crossing and bool(pieces_after > pieces_before)
        shape = wrapped
    if not isinstance(shape, _POLYGONAL_TYPES) or shape.is_empty or shapely.area(shape) <= 0.0:
        raise FeatureRejected("geometry has no area")
    return CleanGeometry(shape, repaired, split)
