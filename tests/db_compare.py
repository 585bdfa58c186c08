"""Every table of a database as comparable rows: what "the same database" means in the bulk
replay tests.

Left out, each because it cannot be equal between two runs of the same files:
* ``snapshots.fetched_at``, ``held_documents.received_at``: the wall-clock moment each file was
  read (``replay`` passes ``datetime.now()``, as the live collector passes its fetch time).
* ``flight_summaries.computed_at``, ``controller_summaries.computed_at``: the wall-clock moment
  the summary was written.
* ``events.id`` and ``events.correlation_id``: random UUIDs made per event. The correlation is
  still compared: it is replaced by the snapshot id of the ``snapshot.received`` event it
  names, so every event must point at the same snapshot in both databases.
* In ``held_documents.reason``, the seconds by which a document from the future is ahead of
  the wall clock (``is 2274516839 s ahead``) are masked.
* ``held_documents.body_gzip`` is compared gunzipped: gzip's header carries the wall-clock time
  of compression; the document inside must be the same byte for byte.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from typing import Any

from sqlalchemy import Engine, select

from vatsim_collector.store import schema as t

WALL_CLOCK = {
    "snapshots": {"fetched_at"},
    "held_documents": {"received_at"},
    "flight_summaries": {"computed_at"},
    "controller_summaries": {"computed_at"},
}
RANDOM_IDS = {"events": {"id", "correlation_id"}}
_AHEAD = re.compile(r"is \d+ s ahead of the collector's clock")


def mask_wall_clock(reason: str) -> str:
    """A reason or problem with the seconds it measured against the wall clock masked."""
    return _AHEAD.sub("is N s ahead of the collector's clock", reason)


def _events(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    received = {
        r["id"]: json.loads(r["payload"]).get("snapshot_id")
        for r in rows
        if r["type"] == "snapshot.received"
    }
    out = []
    for r in rows:
        correlated = received.get(r["correlation_id"]) if r["correlation_id"] else None
        rest = tuple(v for k, v in sorted(r.items()) if k not in RANDOM_IDS["events"])
        out.append((*rest, ("correlated to snapshot", correlated)))
    return out


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted, with the columns above left out or normalised."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in t.metadata.sorted_tables:
            rows = [dict(r._mapping) for r in conn.execute(select(table))]
            if table.name == "events":
                tables[table.name] = sorted(_events(rows), key=repr)
                continue
            skip = WALL_CLOCK.get(table.name, set())
            normalised = []
            for r in rows:
                if table.name == "held_documents":
                    r["reason"] = mask_wall_clock(r["reason"])
                if "body_gzip" in r and r["body_gzip"] is not None:
                    r["body_gzip"] = gzip.decompress(r["body_gzip"])
                normalised.append(tuple((k, v) for k, v in sorted(r.items()) if k not in skip))
            tables[table.name] = sorted(normalised, key=repr)
    return tables


def differences(a: Engine, b: Engine, *, limit: int = 5) -> list[str]:
    """What differs between the two databases, table by table (empty when equal)."""
    one, other = dump(a), dump(b)
    found: list[str] = []
    for name in sorted(set(one) | set(other)):
        x, y = one.get(name, []), other.get(name, [])
        if x == y:
            continue
        counted_x, counted_y = Counter(x), Counter(y)
        only_x = list((counted_x - counted_y).elements())[:limit]
        only_y = list((counted_y - counted_x).elements())[:limit]
        found.append(f"{name}: {len(x)} vs {len(y)} rows; only in A {only_x}; only in B {only_y}")
    return found
