"""The airport reference: every airport of the pinned ``airportsdata`` package, keyed by ICAO
code, plus what a deployment adds or corrects in an optional CSV file (``VATSIM_AIRPORTS_FILE``).

Units: positions in decimal degrees (WGS 84); elevation in feet above mean sea level, as
``airportsdata`` documents it ("MSL elevation of the highest point of the landing area, in
feet") and as the feed reports altitudes, so height above the field is a plain subtraction.

The override file is CSV with a header row. ``icao`` is required; any of ``name``, ``lat``,
``lon``, ``elevation_ft``, ``tz``, ``country`` may follow, in any order. A row for a known code
replaces only the fields it gives a non-empty value; a row for a new code adds an airport and
must then give ``lat`` and ``lon`` (elevation defaults to 0 ft, the rest to empty). A file that
cannot be used raises ``ConfigurationError`` naming the file, the line and the column.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import airportsdata

from vatsim_collector.errors.exceptions import ConfigurationError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "FILE_COLUMNS",
    "Airport",
    "AirportReference",
]

# The override file's columns; only icao is required.
FILE_COLUMNS = ("icao", "name", "lat", "lon", "elevation_ft", "tz", "country")
_ICAO = re.compile(r"[A-Z0-9]{2,8}")
_COUNTRY = re.compile(r"[A-Z]{2}")
_SETTING = "airports_file (VATSIM_AIRPORTS_FILE)"


@dataclass(frozen=True, slots=True)
class Airport:
    icao: str
    name: str
    lat: float
    lon: float
    elevation_ft: float
    tz: str
    country: str
    # The IATA code (three letters), "" when it has none: many ATC callsigns use it.
    iata: str = ""


class AirportReference:
    """Airports in a fixed order (the index the nearest lookup returns), by ICAO code, and as
    numpy columns for vectorised work."""

    def __init__(self, airports: Iterable[Airport]) -> None:
        import numpy as np  # on use: a command that never looks up an airport never loads numpy

        self.airports: tuple[Airport, ...] = tuple(sorted(airports, key=lambda a: a.icao))
        self._by_icao = {a.icao: i for i, a in enumerate(self.airports)}
        self.lat: npt.NDArray[np.float64] = np.array([a.lat for a in self.airports], dtype=float)
        self.lon: npt.NDArray[np.float64] = np.array([a.lon for a in self.airports], dtype=float)
        self.elevation_ft: npt.NDArray[np.float64] = np.array(
            [a.elevation_ft for a in self.airports], dtype=float
        )
        self.icao: npt.NDArray[np.str_] = np.array([a.icao for a in self.airports], dtype=str)
        # The same codes as Python strings, for picking one per aircraft without a conversion.
        self.codes: tuple[str, ...] = tuple(a.icao for a in self.airports)

    def __len__(self) -> int:
        return len(self.airports)

    def __contains__(self, icao: object) -> bool:
        return icao in self._by_icao

    def get(self, icao: str) -> Airport | None:
        i = self._by_icao.get(icao.upper())
        return None if i is None else self.airports[i]

    def index_of(self, icao: str) -> int | None:
        return self._by_icao.get(icao.upper())

    @classmethod
    def packaged(cls) -> AirportReference:
        """The pinned ``airportsdata`` airports, loaded once per process."""
        return _packaged()

    @classmethod
    def load(cls, airports_file: Path | None = None) -> AirportReference:
        """The packaged airports, with ``airports_file``'s rows applied over them."""
        base = cls.packaged()
        if airports_file is None:
            return base
        return base.with_overrides(read_override_file(airports_file))

    def with_overrides(self, rows: Mapping[str, Mapping[str, Any]]) -> AirportReference:
        merged = {a.icao: a for a in self.airports}
        for icao, fields in rows.items():
            known = merged.get(icao)
            if known is None:
                merged[icao] = Airport(
                    icao=icao,
                    name=str(fields.get("name", "")),
                    lat=float(fields["lat"]),
                    lon=float(fields["lon"]),
                    elevation_ft=float(fields.get("elevation_ft", 0.0)),
                    tz=str(fields.get("tz", "")),
                    country=str(fields.get("country", "")),
                )
            else:
                merged[icao] = replace(known, **fields)
        return AirportReference(merged.values())


@cache
def _packaged() -> AirportReference:
    return AirportReference(
        Airport(
            icao=code,
            name=row["name"],
            lat=float(row["lat"]),
            lon=float(row["lon"]),
            elevation_ft=float(row["elevation"]),
            tz=row["tz"],
            country=row["country"],
            iata=row["iata"] or "",
        )
        for code, row in airportsdata.load("ICAO").items()
    )


def _bad(path: Path, line: int, column: str | None, problem: str) -> ConfigurationError:
    where = f"{path}, line {line}" + (f", column {column!r}" if column else "")
    return ConfigurationError(f"{_SETTING}: {where}: {problem}")


def _number(text: str, low: float, high: float, unit: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{text!r} is outside {low:g}..{high:g} {unit}")
    return value


def _field(column: str, text: str) -> Any:
    """One cell, checked and converted; raises ValueError saying what is wrong with it."""
    if column in {"lat", "lon"}:
        limit = 90.0 if column == "lat" else 180.0
        return _number(text, -limit, limit, "degrees")
    if column == "elevation_ft":
        # Below the Dead Sea shore to above the highest airfields, with room either side.
        return _number(text, -2000.0, 20000.0, "feet")
    if column == "tz":
        try:
            ZoneInfo(text)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{text!r} is not an IANA time zone (e.g. Europe/London)") from None
        return text
    if column == "country":
        if not _COUNTRY.fullmatch(text):
            raise ValueError(f"{text!r} is not a two-letter country code (e.g. GB)")
        return text
    return text  # name


def read_override_file(path: Path) -> dict[str, dict[str, Any]]:
    """The file's rows by ICAO code, each with the fields it gives; a later row for the same
    code is an error (the file would say two things about one airport)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{_SETTING}: cannot read {path}: {exc}") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise _bad(path, 1, None, "the file is empty; it needs a header row") from None
    except csv.Error as exc:
        raise _bad(path, 1, None, f"not CSV: {exc}") from None
    for name in header:
        if name not in FILE_COLUMNS:
            raise _bad(path, 1, name, f"unknown column; known: {', '.join(FILE_COLUMNS)}")
    if len(set(header)) != len(header):
        raise _bad(path, 1, None, "a column is named twice")
    if "icao" not in header:
        raise _bad(path, 1, None, "the header has no 'icao' column")
    known = _packaged()
    rows: dict[str, dict[str, Any]] = {}
    line = 1
    try:
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                raise _bad(path, line, None, f"{len(cells)} cells for {len(header)} columns")
            values = {h: c.strip() for h, c in zip(header, cells, strict=True)}
            icao = values.pop("icao").upper()
            if not _ICAO.fullmatch(icao):
                raise _bad(path, line, "icao", f"{icao!r} is not an airport code (A-Z, 0-9)")
            if icao in rows:
                raise _bad(path, line, "icao", f"{icao} is listed twice")
            fields: dict[str, Any] = {}
            for column, cell in values.items():
                if not cell:
                    continue
                try:
                    fields[column] = _field(column, cell)
                except ValueError as exc:
                    raise _bad(path, line, column, str(exc)) from None
            if icao not in known and not {"lat", "lon"} <= fields.keys():
                raise _bad(path, line, None, f"{icao} is a new airport: it needs both lat and lon")
            rows[icao] = fields
    except csv.Error as exc:
        raise _bad(path, reader.line_num, None, f"not CSV: {exc}") from None
    return rows
