"""What lenient decoding did to a document's records: how many were served, dropped and coerced."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import orjson

# A name's value in JSON text that may not parse (unterminated, invalid UTF-8, NaN elsewhere).
_RAW_NAME = re.compile(rb'"name"\s*:\s*"(?:[^"\\]|\\.)*(?:"|\Z)', re.DOTALL)

# Section names as they appear in reports; "transceivers" is the transceivers document's.
SNAPSHOT_SECTIONS = ("pilots", "controllers", "atis", "prefiles")
TRANSCEIVERS_SECTION = "transceivers"

# Stable reason codes (see decode_snapshot_records): metrics and held samples are keyed by them.
REASONS = (
    "not_an_object",  # the entry is a number, string, array or null
    "missing_field",  # a key without which the record has no identity (cid, callsign, ...)
    "bad_type",  # a value of a type that cannot be coerced (e.g. a list for a number)
    "bad_time",  # a time that is no RFC 3339 time, or has no time zone
    "non_finite",  # NaN, Infinity, or a number too large for a float (1e999)
    "out_of_range",  # outside the range of the column it is stored in
    "bad_coordinates",  # |latitude| > 90 or |longitude| > 180
    "too_long",  # text (or ATIS lines) longer than the limit for its column
    "control_chars",  # NUL or another control character the limits refuse
    "invalid_utf8",  # bytes that are not UTF-8, or an unpaired UTF-16 surrogate escape
    "invalid_json",  # the record alone is not valid JSON, though the document's shape is
    "logon_after_snapshot",  # logged on after the snapshot that lists it (beyond a tolerance)
)


@dataclass(frozen=True)
class DroppedRecord:
    """One record left out of a snapshot, and why.

    ``raw`` is the record's own JSON bytes as served. It may hold a member's name: keep
    ``raw_without_name()`` instead unless names are stored. ``detail`` never quotes a name.
    """

    section: str
    index: int
    reason: str
    detail: str
    raw: bytes

    def raw_without_name(self) -> bytes:
        """``raw`` without the record's ``name``, even when it has no ``cid`` to find it by
        (``store.redact.strip_names`` only strips objects with a cid) or is no valid JSON."""
        try:
            value = orjson.loads(self.raw)
        except orjson.JSONDecodeError:
            return _RAW_NAME.sub(b'"name":""', self.raw)
        if isinstance(value, dict) and "name" in value:
            del value["name"]
            return orjson.dumps(value)
        return self.raw


@dataclass
class RecordReport:
    """Counts for one decoded document; every served record is either kept or in ``dropped``."""

    served: dict[str, int] = field(default_factory=dict)
    dropped: list[DroppedRecord] = field(default_factory=list)
    # "<section>.<field path> <from>-><to>" -> records kept after that coercion
    coerced: dict[str, int] = field(default_factory=dict)

    def dropped_count(self, section: str) -> int:
        return sum(1 for d in self.dropped if d.section == section)

    def kept_count(self, section: str) -> int:
        return self.served.get(section, 0) - self.dropped_count(section)

    def counts_by_reason(self) -> dict[tuple[str, str], int]:
        """``(section, reason) -> dropped records``."""
        return dict(Counter((d.section, d.reason) for d in self.dropped))

    @property
    def clean(self) -> bool:
        """Nothing was dropped or coerced."""
        return not self.dropped and not self.coerced

    def count_coerced(self, labels: Counter[str] | dict[str, int]) -> None:
        for label, count in labels.items():
            self.coerced[label] = self.coerced.get(label, 0) + count

    def absorb(self, other: RecordReport) -> None:
        """Add ``other``'s counts (the transceivers document's to the snapshot's, say)."""
        for section, count in other.served.items():
            self.served[section] = self.served.get(section, 0) + count
        self.dropped.extend(other.dropped)
        self.count_coerced(other.coerced)
