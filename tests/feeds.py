"""Real shared snapshots and small, explicit edits of them for tests."""

from __future__ import annotations

import copy
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

# shared/ lies beside the repository, for the sessions and for CI alike.
SHARED = Path(os.environ.get("VATSIM_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
FEEDS = SHARED / "data" / "feeds"
REAL_FEEDS = sorted(p for p in FEEDS.glob("vatsim-data-*.json"))
ALL_FEEDS = sorted(FEEDS.glob("*.json"))
SMALL = FEEDS / "vatsim-data-20210802T105935Z.json"
LARGEST = FEEDS / "vatsim-data-20210103T142930Z.json"


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(path.read_bytes())
    return doc


def feed_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def parse_time(value: str) -> datetime:
    """Feed times carry 0 to 7 fractional digits; Python keeps six, rounded half up."""
    body = value.rstrip("Z")
    whole, _, fraction = body.partition(".")
    tenths_of_micros = int((fraction + "0000000")[:7])
    return datetime.fromisoformat(f"{whole}+00:00") + timedelta(
        microseconds=(tenths_of_micros + 5) // 10
    )


def timestamp(doc: dict[str, Any]) -> datetime:
    return parse_time(doc["general"]["update_timestamp"])


def later(doc: dict[str, Any], seconds: float, *, move: float = 0.001) -> dict[str, Any]:
    """The same network ``seconds`` later, every aircraft nudged north by ``move`` degrees."""
    out = copy.deepcopy(doc)
    out["general"]["update_timestamp"] = feed_time(timestamp(doc) + timedelta(seconds=seconds))
    for pilot in out["pilots"]:
        pilot["latitude"] = max(-90.0, min(90.0, pilot["latitude"] + move))
    return out


def encode(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc)


def pilot_keys(doc: dict[str, Any], section: str = "pilots") -> set[tuple[int, str, datetime]]:
    return {(p["cid"], p["callsign"], parse_time(p["logon_time"])) for p in doc[section]}
