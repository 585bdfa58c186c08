"""The airport reference: the pinned airportsdata package and the VATSIM_AIRPORTS_FILE override."""

from __future__ import annotations

from pathlib import Path

import pytest

from vatsim_collector.airports.reference import AirportReference
from vatsim_collector.airports.setup import build_airport_index
from vatsim_collector.config import load_settings
from vatsim_collector.errors.exceptions import ConfigurationError


def test_packaged_reference_is_icao_keyed_with_elevation_in_feet() -> None:
    ref = AirportReference.packaged()
    assert len(ref) > 25_000
    heathrow = ref.get("egll")
    assert heathrow is not None
    assert (heathrow.name, heathrow.tz, heathrow.country) == (
        "London Heathrow Airport",
        "Europe/London",
        "GB",
    )
    # Feet, not metres: Denver's field is a mile high, La Paz's above 13,000 ft.
    denver, la_paz = ref.get("KDEN"), ref.get("SLLP")
    assert denver is not None
    assert 5_000 < denver.elevation_ft < 5_500
    assert la_paz is not None
    assert la_paz.elevation_ft > 13_000
    assert AirportReference.packaged() is ref  # loaded once


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "airports.csv"
    path.write_text(text)
    return path


def test_override_file_adds_and_corrects(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "icao,lat,lon,elevation_ft,name,tz,country\n"
        "ELLX,49.6233,6.2044,,,,\n"
        "ZZ01,12.5,-170.25,42,Test Field,Pacific/Honolulu,US\n",
    )
    ref = AirportReference.load(path)
    base = AirportReference.packaged().get("ELLX")
    fixed, added = ref.get("ELLX"), ref.get("ZZ01")
    assert base is not None
    assert fixed is not None
    assert added is not None
    assert (fixed.lat, fixed.lon) == (49.6233, 6.2044)
    assert (fixed.elevation_ft, fixed.name, fixed.tz) == (base.elevation_ft, base.name, base.tz)
    assert (added.name, added.elevation_ft, added.tz, added.country) == (
        "Test Field",
        42.0,
        "Pacific/Honolulu",
        "US",
    )
    assert len(ref) == len(AirportReference.packaged()) + 1
    i = ref.index_of("ZZ01")
    assert i is not None
    assert (ref.lat[i], ref.lon[i]) == (12.5, -170.25)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("icao,lat\nEGLL,north\n", "line 2, column 'lat': 'north' is not a number"),
        ("icao,lat,lon\nEGLL,1,2\nEGKK,1,200\n", "line 3, column 'lon'"),
        ("icao,height\n", "line 1, column 'height': unknown column"),
        ("name,lat\nX,1\n", "line 1: the header has no 'icao' column"),
        ("icao,lat,lon\nQQ99,1,\n", "line 2: QQ99 is a new airport: it needs both lat and lon"),
        ("icao,tz\nEGLL,Mars/Olympus\n", "line 2, column 'tz'"),
        ("icao,country\n\nEGLL,GBR\n", "line 3, column 'country'"),
        ("icao,lat\nEGLL,1,2\n", "line 2: 3 cells for 2 columns"),
        ("icao,lat\nEG LL,1\n", "line 2, column 'icao'"),
        ("icao,lat\nEGLL,1\negll,2\n", "line 3, column 'icao': EGLL is listed twice"),
        ("", "line 1: the file is empty"),
    ],
)
def test_bad_override_file_names_file_line_and_column(
    tmp_path: Path, text: str, where: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigurationError) as caught:
        AirportReference.load(path)
    message = str(caught.value)
    assert message.startswith("airports_file (VATSIM_AIRPORTS_FILE): ")
    assert f"{path}, {where}" in message


def test_missing_override_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        AirportReference.load(tmp_path / "absent.csv")


def test_settings() -> None:
    settings = load_settings()
    assert settings.airports_file is None
    assert settings.airport_radius_nm == 5.0
    with pytest.raises(ConfigurationError, match="VATSIM_AIRPORT_RADIUS_NM"):
        load_settings(airport_radius_nm=0)


def test_index_from_settings_applies_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "icao,lat,lon,elevation_ft\nZZ02,-45.5,179.98,10\n")
    index = build_airport_index(load_settings(airports_file=path))
    got = index.nearest([-45.5], [-179.95], radius_nm=5)  # across the antimeridian
    assert index.reference.airports[int(got.index[0])].icao == "ZZ02"
    bad = write(tmp_path, "icao,lat,lon\nZZ02,-45.5,east\n")
    with pytest.raises(ConfigurationError, match=r"line 2, column 'lon'"):
        build_airport_index(load_settings(airports_file=bad))
