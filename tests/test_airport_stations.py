"""Which controller callsigns are an airport's positions."""

from __future__ import annotations

from vatsim_collector.airports.reference import AirportReference
from vatsim_collector.airports.stations import serves_airport, station_prefixes


def prefixes(icao: str) -> frozenset[str]:
    airport = AirportReference.packaged().get(icao)
    assert airport is not None
    return station_prefixes(airport)


def test_icao_iata_and_faa_prefixes_name_the_airport() -> None:
    assert prefixes("EGLL") == {"EGLL", "LHR"}
    assert {"KJFK", "JFK"} <= prefixes("KJFK")
    assert serves_airport("EGLL_TWR", prefixes("EGLL"))
    assert serves_airport("EGLL_N_APP", prefixes("EGLL"))
    assert serves_airport("JFK_GND", prefixes("KJFK"))
    assert serves_airport("jfk_del", prefixes("KJFK"))


def test_en_route_atis_observers_and_other_airports_are_not_its_positions() -> None:
    egll = prefixes("EGLL")
    for callsign in ("EGLL_ATIS", "LON_CTR", "EGLL_OBS", "EGKK_TWR", "EGLL", "TWR", "EGLLTWR"):
        assert not serves_airport(callsign, egll), callsign
