"""The reading side of a bulk replay, run in worker processes: files are read and gunzipped
there, so the process that tracks and writes snapshots spends none of its core on it.

Only bytes cross the process boundary. Decoded snapshots are not sent: pickling the structs of
a 1.1 MB document and loading them back costs more than decoding its bytes again (about
6 ms against 4 ms, measured on this machine), so the main process decodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from vatsim_collector.pipeline.replay import (
    _UNREADABLE,
    _matching_transceivers,
    _timestamp,
    read_bytes,
)


@dataclass(frozen=True)
class Probed:
    """A file's place in the replay: its update timestamp, or why it cannot be read."""

    path: Path
    update_timestamp: datetime | None
    transceivers: Path | None
    problem: str | None = None


@dataclass(frozen=True)
class Loaded:
    """A file's bytes (and its transceivers'), or why they could not be read."""

    path: Path
    update_timestamp: datetime | None
    raw: bytes | None
    transceivers_path: Path | None
    transceivers: bytes | None
    problem: str | None = None
    transceivers_problem: str | None = None


def probe(path: Path, limit: int) -> Probed:
    """Read ``path`` once for its timestamp; its bytes are not kept, so memory stays flat."""
    try:
        raw = read_bytes(path, limit)
    except _UNREADABLE as exc:
        return Probed(path, None, None, f"cannot read: {exc}")
    return Probed(path, _timestamp(raw), _matching_transceivers(path))


def load(item: Probed, limit: int) -> Loaded:
    """The bytes of a probed file and of its transceivers, as the replay will ingest them."""
    try:
        raw = read_bytes(item.path, limit)
    except _UNREADABLE as exc:
        return Loaded(item.path, item.update_timestamp, None, None, None, f"cannot read: {exc}")
    transceivers: bytes | None = None
    transceivers_problem: str | None = None
    if item.transceivers is not None:
        try:
            transceivers = read_bytes(item.transceivers, limit)
        except _UNREADABLE as exc:
            transceivers_problem = f"cannot read: {exc}"
    return Loaded(
        item.path,
        item.update_timestamp,
        raw,
        item.transceivers,
        transceivers,
        transceivers_problem=transceivers_problem,
    )
