"""Which pilots are talking to which controllers at one snapshot (docs/architecture.md).

A pilot is in contact with a controller when one of the pilot's transceiver frequencies is
within ``TOLERANCE_HZ`` of the controller's frequency (or of one of its transceivers) and the
aircraft is within the range for the controller's facility. Observers never are.

This module is pure and per-snapshot: it knows nothing of intervals, sessions or the database,
so the caller can feed it whatever keys identify its sessions and turn the matches into
intervals itself. It must stay linear in the number of radios (no quadratic
pilot-by-controller comparison), so controllers are indexed by frequency bucket and each pilot
frequency only looks at the one or two buckets that can hold a match.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from vatsim_collector.feed.models import StationTransceivers
from vatsim_collector.tracking.geodesy import great_circle_nm, transceiver_centroid
from vatsim_collector.tracking.state import OBSERVER_FREQUENCY, is_observer

# VATSIM facility codes: 0 OBS, 1 FSS, 2 DEL, 3 GND, 4 TWR, 5 APP/DEP, 6 CTR.
DEFAULT_RANGES_NM: Mapping[int, float] = MappingProxyType(
    {1: 1000.0, 2: 15.0, 3: 15.0, 4: 15.0, 5: 60.0, 6: 400.0}
)
TOLERANCE_HZ = 5_000

# DEP shares APP's facility code: the feed cannot tell them apart, so neither can the ranges.
_FACILITY_NAMES: Mapping[str, int] = MappingProxyType(
    {"FSS": 1, "DEL": 2, "GND": 3, "TWR": 4, "APP": 5, "DEP": 5, "CTR": 6}
)
_CANONICAL_NAME: Mapping[int, str] = MappingProxyType(
    {1: "FSS", 2: "DEL", 3: "GND", 4: "TWR", 5: "APP/DEP", 6: "CTR"}
)
# Buckets as wide as the whole ±tolerance window: any pilot frequency's window then touches at
# most two buckets (two dict look-ups), and a bucket holds few enough controllers to scan.
_BUCKET_HZ = 2 * TOLERANCE_HZ
_MHZ = re.compile(r"(\d{1,6})(?:\.(\d*))?")


def frequency_hz(mhz: str | None) -> int | None:
    """Parse the feed's MHz string exactly, in integers, so 8.33 kHz neighbours never blur.

    ``int(float("128.015") * 1e6)`` is 128014999, a Hz short; integer arithmetic on the
    digits keeps the exact value the controller meant. Anything that is not a plain positive
    decimal yields None: a station with no usable frequency can be in contact only through its
    transceivers.
    """
    if mhz is None:
        return None
    m = _MHZ.fullmatch(mhz.strip())
    if m is None:
        return None
    whole, frac = m.group(1), m.group(2) or ""
    hz = int(whole) * 1_000_000 + int(frac[:6].ljust(6, "0"))
    if len(frac) > 6 and frac[6] >= "5":  # nearest Hz, halves up
        hz += 1
    return hz if hz > 0 else None


_OBSERVER_HZ = frequency_hz(OBSERVER_FREQUENCY)


@dataclass(frozen=True)
class ContactRanges:
    """Contact range in nm per facility code; a facility absent here is never in contact."""

    by_facility: Mapping[int, float] = field(default_factory=lambda: DEFAULT_RANGES_NM)

    def __post_init__(self) -> None:
        # A private read-only copy: a caller mutating its dict later must not move the ranges.
        ranges = dict(self.by_facility)
        for facility, nm in ranges.items():
            if not math.isfinite(nm) or nm < 0:
                raise ValueError(f"range for facility {facility} must be >= 0 nm, got {nm!r}")
        object.__setattr__(self, "by_facility", MappingProxyType(ranges))

    def __hash__(self) -> int:
        return hash(frozenset(self.by_facility.items()))

    @classmethod
    def parse(cls, text: str) -> ContactRanges:
        """Read ``"TWR=15,APP=60,CTR=400"`` from configuration; unnamed facilities keep defaults.

        Blank items (a trailing comma) are ignored. Naming one facility twice, also through
        its APP/DEP alias, is an error rather than last-wins, because one of the two values
        would be silently dropped.
        """
        ranges = dict(DEFAULT_RANGES_NM)
        seen: dict[int, str] = {}
        for raw_item in text.split(","):
            item = raw_item.strip()
            if not item:
                continue
            name, sep, value = (part.strip() for part in item.partition("="))
            if not sep:
                raise ValueError(f"contact range {item!r}: expected NAME=NM, e.g. TWR=15")
            facility = _FACILITY_NAMES.get(name.upper())
            if facility is None:
                known = ", ".join(_FACILITY_NAMES)
                raise ValueError(f"contact range {item!r}: unknown facility {name!r} ({known})")
            try:
                nm = float(value)
            except ValueError:
                raise ValueError(f"contact range {item!r}: {value!r} is not a number") from None
            if not math.isfinite(nm) or nm < 0:
                raise ValueError(f"contact range {item!r}: range must be a finite number >= 0")
            if facility in seen:
                raise ValueError(
                    f"contact range {item!r}: {_CANONICAL_NAME[facility]} already set"
                    f" by {seen[facility]!r}"
                )
            seen[facility] = item
            ranges[facility] = nm
        return cls(ranges)

    def range_nm(self, facility: int) -> float | None:
        """None for observers (whatever the mapping says) and for codes VATSIM does not define."""
        if facility == 0:
            return None
        return self.by_facility.get(facility)


# Named tuples rather than frozen dataclasses: a snapshot makes one per pilot and controller,
# and a frozen dataclass's __init__ costs several times more.
class PilotRadio(NamedTuple):
    key: Hashable
    latitude: float
    longitude: float
    frequencies_hz: tuple[int, ...]


class ControllerRadio(NamedTuple):
    key: Hashable
    frequency_hz: int | None
    facility: int
    latitude: float | None
    longitude: float | None
    transceiver_hz: tuple[int, ...]
    observer: bool


class Contact(NamedTuple):
    pilot: Hashable
    controller: Hashable
    frequency_hz: int
    distance_nm: float


def _tuned_hz(transceivers: StationTransceivers | None) -> tuple[int, ...]:
    """Distinct positive frequencies, in transceiver order; a zero is an unset radio."""
    if transceivers is None:
        return ()
    return tuple(dict.fromkeys(t.frequency for t in transceivers.transceivers if t.frequency > 0))


def pilot_radio(
    key: Hashable, lat: float, lon: float, transceivers: StationTransceivers | None
) -> PilotRadio:
    """The aircraft's own reported position, not its antennas': that is what ranges are about."""
    return PilotRadio(key, lat, lon, _tuned_hz(transceivers))


def controller_radio(
    key: Hashable,
    frequency: str,
    facility: int,
    callsign: str,
    transceivers: StationTransceivers | None,
) -> ControllerRadio:
    """Controllers carry no position in v3, so the centroid of their antennas stands in for it.

    The centroid is taken on the unit sphere (``transceiver_centroid``) so a station with
    antennas either side of 180° lands near 180°, not near 0°.
    """
    hz = frequency_hz(frequency)
    centre = transceiver_centroid(transceivers) if transceivers is not None else None
    observer = is_observer(callsign, facility, frequency) or (hz is not None and hz == _OBSERVER_HZ)
    return ControllerRadio(
        key=key,
        frequency_hz=hz,
        facility=facility,
        latitude=centre[0] if centre else None,
        longitude=centre[1] if centre else None,
        transceiver_hz=_tuned_hz(transceivers),
        observer=observer,
    )


# (controller index, frequency in Hz, rank): rank 0 for the controller's primary frequency, 1
# for its other transceivers, so that comparing (rank, |offset|, Hz) tuples picks the winner.
_Entry = tuple[int, int, int]
# (latitude, longitude, range nm) of a controller that can be in contact at all
_Placed = tuple[float, float, float]


def _index(
    controllers: Iterable[ControllerRadio], ranges: ContactRanges
) -> tuple[list[ControllerRadio], dict[int, list[_Entry]], dict[int, _Placed]]:
    """Bucket every frequency of every controller that could ever be in contact."""
    stations = list(controllers)
    buckets: dict[int, list[_Entry]] = {}
    placed: dict[int, _Placed] = {}
    for i, c in enumerate(stations):
        rng = ranges.range_nm(c.facility)
        if (
            rng is None
            or c.observer
            or (c.frequency_hz is not None and c.frequency_hz == _OBSERVER_HZ)
            or c.latitude is None
            or c.longitude is None
        ):
            continue
        placed[i] = (c.latitude, c.longitude, rng)
        if c.frequency_hz is not None:
            buckets.setdefault(c.frequency_hz // _BUCKET_HZ, []).append((i, c.frequency_hz, 0))
        for hz in c.transceiver_hz:
            if hz != c.frequency_hz:
                buckets.setdefault(hz // _BUCKET_HZ, []).append((i, hz, 1))
    return stations, buckets, placed


def match_contacts(
    pilots: Iterable[PilotRadio],
    controllers: Iterable[ControllerRadio],
    ranges: ContactRanges = ContactRanges(),
) -> list[Contact]:
    """Every (pilot, controller) pair in contact, once each, in input order (pilot, controller).

    When several frequencies of a pair match, the contact reports the controller's primary
    frequency if it is among them, else the closest matching transceiver frequency: the
    primary is what the controller says they are working, the rest are extra antennas.
    """
    stations, buckets, placed = _index(controllers, ranges)
    lookup = buckets.get
    contacts: list[Contact] = []
    for p in pilots:
        # controller index -> (rank, |offset| Hz, controller frequency Hz); smallest wins
        best: dict[int, tuple[int, int, int]] = {}
        for f in p.frequencies_hz:
            low, high = (f - TOLERANCE_HZ) // _BUCKET_HZ, (f + TOLERANCE_HZ) // _BUCKET_HZ
            for b in (low,) if low == high else (low, high):
                for i, hz, rank in lookup(b, ()):
                    off = abs(f - hz)
                    if off <= TOLERANCE_HZ:
                        cand = (rank, off, hz)
                        old = best.get(i)
                        if old is None or cand < old:
                            best[i] = cand
        if not best:
            continue
        for i in sorted(best):
            lat, lon, rng = placed[i]
            nm = great_circle_nm(p.latitude, p.longitude, lat, lon)
            if nm <= rng:
                contacts.append(Contact(p.key, stations[i].key, best[i][2], nm))
    return contacts
