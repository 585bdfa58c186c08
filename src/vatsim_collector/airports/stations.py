"""Which ATC stations serve an airport, by callsign.

VATSIM airport positions are named ``<prefix>_[<middle>_]<suffix>``: the prefix is the ICAO code
(``EGLL_TWR``), often the IATA code (``JFK_GND``, ``LAX_N_APP``), and in the United States the
FAA identifier, which for most airports is the ICAO code without its leading ``K``. The suffix
says the facility: delivery, ground, tower, approach, departure, apron. En-route (``_CTR``,
``_FSS``) and ATIS stations are not the airport's positions.
"""

from __future__ import annotations

from vatsim_collector.airports.reference import Airport

__all__ = ["AIRPORT_SUFFIXES", "serves_airport", "station_prefixes"]

AIRPORT_SUFFIXES = frozenset({"DEL", "GND", "TWR", "APP", "DEP", "RMP"})


def station_prefixes(airport: Airport) -> frozenset[str]:
    prefixes = {airport.icao.upper()}
    if airport.iata:
        prefixes.add(airport.iata.upper())
    if len(airport.icao) == 4 and airport.icao.upper().startswith("K"):
        prefixes.add(airport.icao[1:].upper())
    return frozenset(prefixes)


def serves_airport(callsign: str, prefixes: frozenset[str]) -> bool:
    parts = callsign.upper().split("_")
    return len(parts) >= 2 and parts[0] in prefixes and parts[-1] in AIRPORT_SUFFIXES
