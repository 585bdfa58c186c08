"""Feed documents for the ingest benchmark: a real snapshot, an N-fold copy, and successors.

A successor is what the feed publishes 15 s later for the same connected clients: the same
sessions, a later ``update_timestamp``, every pilot moved a little along its heading.
"""

from __future__ import annotations

import copy
import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from vatsim_collector.simulator.world import format_feed_time, parse_feed_time, wrap_longitude

Json = dict[str, Any]

TICK = timedelta(seconds=15)
CID_STRIDE = 10_000_000
MULTIPLIED = ("pilots", "controllers", "atis", "prefiles")
# About 0.1 nm per tick: "moved slightly", and enough to change every stored position.
STEP_DEG = 0.002


def load_document(path: Path) -> Json:
    doc = orjson.loads(path.read_bytes())
    if not isinstance(doc, dict) or "general" not in doc:
        raise ValueError(f"{path} is not a v3 vatsim-data document")
    return doc


def _suffixed(callsign: str, k: int) -> str:
    """``BAW12`` → ``BAW12Z1``; ``EDDF_TWR`` → ``EDDFZ1_TWR`` (keeps facility suffixes)."""
    head, sep, tail = callsign.partition("_")
    return f"{head}Z{k}{sep}{tail}"


def _clamp_lat(lat: float) -> float:
    return max(-90.0, min(90.0, lat))


def multiplied(doc: Json, factor: int) -> Json:
    """``doc`` with every pilot, controller, ATIS and prefile present ``factor`` times.

    Copy k gets cid + k·10,000,000, a callsign with a ``Zk`` suffix on its first part, and
    (pilots) a position offset by 0.01·k degrees, so every copy is a distinct session.
    """
    out = copy.deepcopy(doc)
    for key in MULTIPLIED:
        records: list[Json] = doc.get(key) or []
        originals = {r["callsign"] for r in records}
        clones: list[Json] = []
        for k in range(1, factor):
            for rec in records:
                clone = copy.deepcopy(rec)
                clone["cid"] = int(rec["cid"]) + CID_STRIDE * k
                clone["callsign"] = _suffixed(str(rec["callsign"]), k)
                if key == "pilots":
                    clone["latitude"] = _clamp_lat(float(rec["latitude"]) + 0.01 * k)
                    clone["longitude"] = wrap_longitude(float(rec["longitude"]) + 0.01 * k)
                clones.append(clone)
        clone_callsigns = {c["callsign"] for c in clones}
        if originals & clone_callsigns or len(clone_callsigns) != len(originals) * (factor - 1):
            raise ValueError(f"copied {key} callsigns are not distinct")
        out[key] = [*copy.deepcopy(records), *clones]
    general = out["general"]
    for count in ("connected_clients", "unique_users"):
        if isinstance(general.get(count), int):
            general[count] *= factor
    return out


def _moved(pilot: Json, steps: int, stamp: str) -> Json:
    heading = math.radians(float(pilot.get("heading") or 0))
    lat = _clamp_lat(float(pilot["latitude"]) + STEP_DEG * steps * math.cos(heading))
    lon = wrap_longitude(float(pilot["longitude"]) + STEP_DEG * steps * math.sin(heading))
    return {**pilot, "latitude": round(lat, 5), "longitude": round(lon, 5), "last_updated": stamp}


def successors(doc: Json, count: int) -> list[bytes]:
    """``count`` encoded documents 15 s apart, the first one 15 s after ``doc``."""
    start = parse_feed_time(str(doc["general"]["update_timestamp"]))
    encoded: list[bytes] = []
    for i in range(1, count + 1):
        moment = start + TICK * i
        stamp = format_feed_time(moment)
        general = {**doc["general"], "update_timestamp": stamp, "update": f"{moment:%Y%m%d%H%M%S}"}
        pilots = [_moved(p, i, stamp) for p in doc.get("pilots") or []]
        encoded.append(orjson.dumps({**doc, "general": general, "pilots": pilots}))
    return encoded
