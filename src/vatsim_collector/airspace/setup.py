"""Builds the airspace analytics and the optional boundary filter from settings.

A sector or boundary file that cannot be used stops start-up with a message naming the setting,
rather than running without the analytics someone configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vatsim_collector.airspace.contacts import ContactRanges
from vatsim_collector.airspace.engine import AirspaceEngine
from vatsim_collector.airspace.sectors import SectorLoadError, SectorSet
from vatsim_collector.config import Settings
from vatsim_collector.errors.exceptions import ConfigurationError

if TYPE_CHECKING:
    from vatsim_collector.airspace.boundary import BoundaryFilter

__all__ = ["Airspace", "build_airspace", "load_sectors"]


@dataclass(frozen=True)
class Airspace:
    sectors: SectorSet
    engine: AirspaceEngine | None
    boundary: BoundaryFilter | None


def load_sectors(settings: Settings) -> SectorSet:
    if settings.sector_file is None:
        # The shipped file cannot be invalid, so it is read when first used; a file of the
        # operator's is read now, so that a bad one stops start-up.
        return SectorSet.deferred(SectorSet.default)
    try:
        return SectorSet.from_geojson(
            settings.sector_file,
            name_property=settings.sector_name_property,
            lower_property=settings.sector_lower_property or None,
            upper_property=settings.sector_upper_property or None,
        )
    except SectorLoadError as exc:
        raise ConfigurationError(f"sector_file (VATSIM_SECTOR_FILE): {exc}") from exc


def _boundary(settings: Settings, sectors: SectorSet) -> BoundaryFilter | None:
    names, path = settings.boundary_sector_list, settings.boundary_file
    if not names and path is None:
        return None
    if names and path is not None:
        raise ConfigurationError(
            "boundary_sectors (VATSIM_BOUNDARY_SECTORS) and boundary_file"
            " (VATSIM_BOUNDARY_FILE): give one or the other"
        )
    patterns = settings.boundary_controller_list
    # Only here: the filter's geometry needs shapely, which a run without a boundary never loads.
    from vatsim_collector.airspace.boundary import BoundaryFilter

    try:
        if path is not None:
            return BoundaryFilter.from_geojson(
                path, margin_nm=settings.boundary_margin_nm, controller_patterns=patterns
            )
        return BoundaryFilter.from_sectors(
            sectors, names, margin_nm=settings.boundary_margin_nm, controller_patterns=patterns
        )
    except (SectorLoadError, ValueError) as exc:
        setting = "boundary_file (VATSIM_BOUNDARY_FILE)" if path else "boundary_sectors"
        raise ConfigurationError(f"{setting}: {exc}") from exc


def _contact_ranges(settings: Settings) -> ContactRanges | None:
    # Checked here, not in config.py: the setting's format is the contact matcher's, and
    # config imports nothing of the domain. Start-up still stops with the setting named.
    if not settings.contact_ranges.strip():
        return None
    try:
        return ContactRanges.parse(settings.contact_ranges)
    except ValueError as exc:
        raise ConfigurationError(f"contact_ranges (VATSIM_CONTACT_RANGES): {exc}") from exc


def build_airspace(settings: Settings) -> Airspace:
    sectors = load_sectors(settings)
    ranges = _contact_ranges(settings)
    engine = (
        AirspaceEngine(sectors, ranges=ranges, exit_after=settings.sector_exit_after)
        if settings.airspace_enabled
        else None
    )
    return Airspace(sectors=sectors, engine=engine, boundary=_boundary(settings, sectors))
