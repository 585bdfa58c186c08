"""Snapshots fetched while the database is down wait here, on local disk, in arrival order.

Each entry is one file written atomically (temporary name, then rename), so a crash never
leaves half an entry; the spool survives restarts. It is bounded by entry count and bytes:
only when a bound is hit is the oldest entry dropped, and every drop is counted.
"""

from __future__ import annotations

import os
import struct
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

_HEADER = struct.Struct("<QQH")  # data length, transceivers length (+1, 0 = none), source length
_SUFFIX = ".snap"


@dataclass(frozen=True)
class SpooledSnapshot:
    data: bytes
    transceivers: bytes | None
    fetched_at: datetime
    source: str


@dataclass(frozen=True)
class DroppedEntry:
    fetched_at: datetime
    source: str
    size: int


class SnapshotSpool:
    def __init__(self, folder: Path, *, max_entries: int, max_bytes: int) -> None:
        self.folder = folder
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.dropped = 0
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        for leftover in self.folder.glob("*.tmp"):
            leftover.unlink()  # a write that never finished renaming is not an entry
        self._entries = sorted(self.folder.glob(f"*{_SUFFIX}"))
        self._bytes = sum(p.stat().st_size for p in self._entries)
        self._next = int(self._entries[-1].stem) + 1 if self._entries else 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def put(self, item: SpooledSnapshot) -> list[DroppedEntry]:
        """Append ``item``; return what had to be dropped (oldest first) to respect the bounds."""
        source = item.source.encode()[:65535]
        stamp = item.fetched_at.isoformat().encode()
        transceivers = item.transceivers
        header = _HEADER.pack(
            len(item.data), 0 if transceivers is None else len(transceivers) + 1, len(source)
        )
        body = b"".join(
            [header, bytes([len(stamp)]), stamp, source, item.data, transceivers or b""]
        )
        with self._lock:
            path = self.folder / f"{self._next:016d}{_SUFFIX}"
            self._next += 1
            tmp = path.with_suffix(".tmp")
            with tmp.open("wb") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.rename(path)
            self._entries.append(path)
            self._bytes += len(body)
            dropped: list[DroppedEntry] = []
            while len(self._entries) > self.max_entries or (
                self._bytes > self.max_bytes and len(self._entries) > 1
            ):
                oldest = self._entries.pop(0)
                size = oldest.stat().st_size
                entry = self._read(oldest)
                oldest.unlink()
                self._bytes -= size
                self.dropped += 1
                dropped.append(DroppedEntry(entry.fetched_at, entry.source, size))
            return dropped

    def peek(self) -> SpooledSnapshot | None:
        with self._lock:
            return self._read(self._entries[0]) if self._entries else None

    def pop(self) -> None:
        """Remove the oldest entry, once it has been stored."""
        with self._lock:
            if not self._entries:
                return
            oldest = self._entries.pop(0)
            self._bytes -= oldest.stat().st_size
            oldest.unlink()

    @staticmethod
    def _read(path: Path) -> SpooledSnapshot:
        raw = path.read_bytes()
        data_len, tx_len, source_len = _HEADER.unpack_from(raw)
        offset = _HEADER.size
        stamp_len = raw[offset]
        offset += 1
        stamp = raw[offset : offset + stamp_len].decode()
        offset += stamp_len
        source = raw[offset : offset + source_len].decode(errors="replace")
        offset += source_len
        data = raw[offset : offset + data_len]
        offset += data_len
        transceivers = None if tx_len == 0 else raw[offset : offset + tx_len - 1]
        return SpooledSnapshot(data, transceivers, datetime.fromisoformat(stamp), source)
