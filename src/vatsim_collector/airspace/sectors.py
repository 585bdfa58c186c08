"""Sectors from GeoJSON, and which sector each aircraft of a snapshot is in.

A snapshot has thousands of pilots and a sector file a thousand polygons, every 15 s, so
``assign`` asks one spatial-index query for all points at once and settles overlaps with numpy
instead of a Python loop per aircraft. Overlaps are settled by a single integer rank per sector,
fixed at load time (docs/architecture.md): a sector with an altitude band beats one
without, then the smaller area, then the earlier feature, so every run assigns alike.

Loading never fails because of one bad feature: the feature is left out and the
``SectorReport`` says which and why. Only an unusable file, or one with nothing usable in it,
raises ``SectorLoadError``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from vatsim_collector.errors.exceptions import ConfigurationError

if TYPE_CHECKING:
    import numpy as np
    import shapely
    from numpy.typing import ArrayLike, NDArray

# numpy, shapely and the geometry module (which needs shapely) are imported where a set is
# built or used: a deferred set that is never used (a replay with no pilot) costs neither.

DEFAULT_FILE = "vatspy-Boundaries.geojson"
DEFAULT_NAME_PROPERTY = "id"


class SectorLoadError(ConfigurationError, ValueError):
    """The sector file as a whole is unusable (missing, not GeoJSON, no usable feature).

    A ``ValueError`` still, for the callers that catch it as one with the others.
    """


@dataclass(frozen=True)
class Sector:
    index: int
    name: str
    lower_ft: float | None
    upper_ft: float | None
    area: float
    geometry: shapely.Polygon | shapely.MultiPolygon

    @property
    def has_band(self) -> bool:
        return self.lower_ft is not None or self.upper_ft is not None


@dataclass
class SectorReport:
    repaired: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    split_at_antimeridian: list[str] = field(default_factory=list)


def read_geojson(path: Path) -> dict[str, Any]:
    """A GeoJSON file (any GeoJSON object), parsed; ``SectorLoadError`` naming the file
    otherwise."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SectorLoadError(f"{path}: cannot read sector file: {exc.strerror or exc}") from exc
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SectorLoadError(f"{path}: not GeoJSON (invalid JSON: {exc})") from exc
    if not isinstance(data, dict):
        raise SectorLoadError(f"{path}: not GeoJSON (top level is not an object)")
    return data


# GeoJSON's geometry types (RFC 7946 §3.1): a file may be one bare geometry, as some divisions
# publish their boundary.
GEOMETRY_TYPES = frozenset(
    {
        "Point",
        "MultiPoint",
        "LineString",
        "MultiLineString",
        "Polygon",
        "MultiPolygon",
        "GeometryCollection",
    }
)


def features_of(
    data: Mapping[str, Any], source: str, *, name_property: str | None = None
) -> list[Any]:
    """The features of any GeoJSON object: a FeatureCollection's, a Feature itself, or a bare
    geometry as one feature named after its file (under ``name_property``)."""
    kind = data.get("type")
    if kind == "FeatureCollection":
        if not isinstance(data.get("features"), list):
            raise SectorLoadError(f"{source}: a GeoJSON FeatureCollection without a features list")
        features: list[Any] = data["features"]
        return features
    if kind == "Feature":
        return [data]
    if kind in GEOMETRY_TYPES:
        properties = {name_property: Path(source).stem or source} if name_property else {}
        return [{"type": "Feature", "properties": properties, "geometry": data}]
    if kind is None:
        found = "an object without a type"
    elif isinstance(kind, str) and len(kind) <= 40:
        found = f"type {kind!r}"
    else:
        found = f"a type that is a {type(kind).__name__}"
    raise SectorLoadError(
        f"{source}: not GeoJSON: expected a FeatureCollection, a Feature or a geometry,"
        f" found {found}"
    )


def _name(properties: Mapping[str, Any], key: str) -> str | None:
    value = properties.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _feet(properties: Mapping[str, Any], key: str | None) -> float | None:
    """An altitude limit in feet; missing or null means unbounded on that side."""
    if key is None:
        return None
    value = properties.get(key)
    if value is None:
        return None
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        from vatsim_collector.airspace.geometry import FeatureRejected

        raise FeatureRejected(f"{key} is not a finite number: {value!r}")
    return number


def _weighted_area(geometry: shapely.Geometry) -> float:
    """Square degrees shrunk by cos(latitude): ordered like true area, without projecting."""
    import shapely

    latitude = shapely.get_y(shapely.centroid(geometry))
    return float(shapely.area(geometry)) * math.cos(math.radians(latitude))


_deferred_lock = threading.Lock()


class SectorSet:
    """An immutable set of sectors with a spatial index over them. Load once, keep it."""

    _deferred: Callable[[], SectorSet] | None = None

    @classmethod
    def deferred(cls, load: Callable[[], SectorSet]) -> SectorSet:
        """A set that ``load``s itself on first use: a command that never places an aircraft
        (a replay of files without pilots) does not pay a third of a second for the FIRs."""
        sectors = cls.__new__(cls)
        sectors._deferred = load
        return sectors

    if not TYPE_CHECKING:  # the type checker sees the loaded attributes only

        def __getattr__(self, name: str) -> Any:
            # Reached only for an attribute not set yet, i.e. on a deferred set's first use.
            if name.startswith("__") or self._deferred is None:
                raise AttributeError(name)
            with _deferred_lock:
                load = self._deferred
                if load is not None:
                    self.__dict__.update(load().__dict__)
                    self._deferred = None
            return object.__getattribute__(self, name)

    def __init__(self, sectors: list[Sector], report: SectorReport) -> None:
        import numpy as np
        import shapely

        self.sectors = sectors
        self.report = report
        geometries = np.array([s.geometry for s in sectors], dtype=object)
        shapely.prepare(geometries)
        self._geometries = geometries
        self._tree = shapely.STRtree(geometries)
        self._lower = np.array(
            [-np.inf if s.lower_ft is None else s.lower_ft for s in sectors], dtype=np.float64
        )
        self._upper = np.array(
            [np.inf if s.upper_ft is None else s.upper_ft for s in sectors], dtype=np.float64
        )
        self._bounded_below = np.array([s.lower_ft is not None for s in sectors])
        self._bounded_above = np.array([s.upper_ft is not None for s in sectors])
        # order[r] is the sector of rank r; rank[i] the rank of sector i (0 = most specific).
        self._order = np.lexsort(
            (
                np.arange(len(sectors)),
                np.array([s.area for s in sectors], dtype=np.float64),
                np.array([not s.has_band for s in sectors]),
            )
        ).astype(np.int64)
        self._rank = np.empty(len(sectors), dtype=np.int64)
        self._rank[self._order] = np.arange(len(sectors), dtype=np.int64)
        self._by_name: dict[str, list[Sector]] = {}
        for sector in sectors:
            self._by_name.setdefault(sector.name, []).append(sector)

    @classmethod
    def from_geojson(
        cls,
        path: Path,
        *,
        name_property: str = DEFAULT_NAME_PROPERTY,
        lower_property: str | None = "lower_ft",
        upper_property: str | None = "upper_ft",
    ) -> SectorSet:
        return cls.from_mapping(
            read_geojson(path),
            source=str(path),
            name_property=name_property,
            lower_property=lower_property,
            upper_property=upper_property,
        )

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, Any],
        *,
        source: str = "<memory>",
        name_property: str = DEFAULT_NAME_PROPERTY,
        lower_property: str | None = "lower_ft",
        upper_property: str | None = "upper_ft",
    ) -> SectorSet:
        from vatsim_collector.airspace.geometry import FeatureRejected, clean_geometry

        if not isinstance(data, Mapping):
            raise SectorLoadError(f"{source}: not GeoJSON (top level is not an object)")
        report = SectorReport()
        sectors: list[Sector] = []
        features = features_of(data, source, name_property=name_property)
        for position, feature in enumerate(features):
            label = f"#{position}"
            try:
                if not isinstance(feature, dict) or feature.get("type") != "Feature":
                    raise FeatureRejected("not a GeoJSON Feature")
                properties = feature.get("properties") or {}
                if not isinstance(properties, dict):
                    raise FeatureRejected("properties is not an object")
                name = _name(properties, name_property)
                if name is None:
                    raise FeatureRejected(f"no name (property {name_property!r})")
                label = name
                lower = _feet(properties, lower_property)
                upper = _feet(properties, upper_property)
                if lower is not None and upper is not None and lower >= upper:
                    raise FeatureRejected(f"lower limit {lower:g} ft is not below upper {upper:g}")
                clean = clean_geometry(feature.get("geometry"))
            except FeatureRejected as exc:
                report.rejected.append((label, str(exc)))
                continue
            if clean.repaired:
                report.repaired.append(name)
            if clean.split:
                report.split_at_antimeridian.append(name)
            geometry = clean.geometry
            sectors.append(
                Sector(len(sectors), name, lower, upper, _weighted_area(geometry), geometry)
            )
        if not sectors:
            raise SectorLoadError(
                f"{source}: no usable sector among {len(report.rejected)} feature(s)"
                + (
                    f"; first problem: {report.rejected[0][0]}: {report.rejected[0][1]}"
                    if report.rejected
                    else ""
                )
            )
        return cls(sectors, report)

    @classmethod
    def default(cls) -> SectorSet:
        """The VATSpy FIR boundaries shipped with the package (named by their ``id``)."""
        resource = resources.files("vatsim_collector.airspace").joinpath("geo", DEFAULT_FILE)
        try:
            raw = resource.read_bytes()
        except OSError as exc:
            raise SectorLoadError(f"{resource}: cannot read the default sector file") from exc
        return cls.from_mapping(
            orjson.loads(raw), source=str(resource), name_property=DEFAULT_NAME_PROPERTY
        )

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def by_name(self, name: str) -> list[Sector]:
        return list(self._by_name.get(name, ()))

    def assign(self, lons: ArrayLike, lats: ArrayLike, alts: ArrayLike) -> NDArray[np.int64]:
        """The most specific sector index for each point, or -1 where no sector contains it.

        A point on a boundary counts as inside. A NaN altitude fits only sectors with no band.
        """
        import numpy as np
        import shapely

        x = np.asarray(lons, dtype=np.float64)
        y = np.asarray(lats, dtype=np.float64)
        z = np.asarray(alts, dtype=np.float64)
        if x.ndim != 1 or x.shape != y.shape or x.shape != z.shape:
            raise ValueError("lons, lats and alts must be one-dimensional and of equal length")
        x = np.where(np.abs(x) > 180.0, np.remainder(x + 180.0, 360.0) - 180.0, x)
        result = np.full(x.shape, -1, dtype=np.int64)
        if x.size == 0:
            return result
        # One bulk envelope query, then the exact test with the sector as the prepared side:
        # query(points, predicate="intersects") would prepare each *point* instead and test it
        # against the raw polygon, about 3x slower on the VATSpy set (bench/sectors_bench.py).
        point, sector = self._tree.query(shapely.points(x, y))
        exact = shapely.intersects_xy(self._geometries[sector], x[point], y[point])
        point, sector = point[exact], sector[exact]
        height = z[point]
        fits = (~self._bounded_below[sector] | (height >= self._lower[sector])) & (
            ~self._bounded_above[sector] | (height < self._upper[sector])
        )
        point, sector = point[fits], sector[fits]
        no_rank = len(self.sectors)
        best = np.full(x.shape, no_rank, dtype=np.int64)
        np.minimum.at(best, point, self._rank[sector])
        found = best < no_rank
        result[found] = self._order[best[found]]
        return result
