"""Airports: the reference (ICAO code, name, position, elevation, time zone, country) and the
vectorised nearest-airport lookup over many positions at once.

Owns the pinned ``airportsdata`` reference and its optional CSV override
(``VATSIM_AIRPORTS_FILE``, ``reference``) and the lookup (``nearest``).

May import: ``config``, ``errors``, ``feed``. ``pipeline``, ``api`` and ``store`` may import it;
it never imports them.
"""
