"""Snapshots waiting for the database wait here, on local disk, in arrival order.

Each entry is one file written atomically (temporary name, then rename), so a crash never
leaves half an entry; the spool survives restarts. It is bounded by entry count and bytes:
only when a bound is hit is the oldest entry dropped, and every drop is counted.

Nothing on disk is trusted. An entry that cannot be read back (truncated, lengths that do
not match the file, an undecodable stamp or source, unreadable, vanished) is never raised to
the caller: it is moved aside into ``damaged/`` for inspection and reported through
:meth:`SnapshotSpool.take_damaged`, and the next entry is served. A write that fails (disk
full, quota, I/O error, permission) leaves no temporary file and raises
:class:`SpoolWriteError`; the spool stays as it was and accepts entries again once the
cause is gone.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from vatsim_collector.errors.exceptions import DataRejected, ResourceExhausted

_HEADER = struct.Struct("<QQH")  # data length, transceivers length (+1, 0 = none), source length
_STAMP_LENGTH = struct.Struct("<B")
_PREFIX_SIZE = _HEADER.size + _STAMP_LENGTH.size
_MAX_SOURCE = 65535
_SUFFIX = ".snap"
_ENTRY_NAME = re.compile(r"^(\d+)\.snap$")
_DAMAGED_FOLDER = "damaged"
# A file moved aside is named after when it was moved, so pruning keeps the newest.
_DAMAGED_NAME = re.compile(r"^(\d{20})-")
# Reports kept until the caller takes them; beyond this the oldest reports are forgotten
# (the files themselves are still counted in ``damaged``).
_DAMAGED_REPORTS = 1000


class SpoolWriteError(ResourceExhausted, OSError):
    """An entry could not be written; nothing of it was left behind.

    An ``OSError`` with the failed write's errno, which is what classifies it (a full disk
    is permanent, too many open files transient).
    """


@dataclass(frozen=True)
class SpooledSnapshot:
    data: bytes
    transceivers: bytes | None
    fetched_at: datetime
    source: str
    # The document's update_timestamp as the client read it on fetching, so that the poller
    # need not decode it again; None when not known (read back from the spool): then decoded.
    update_timestamp: datetime | None = field(default=None, compare=False)


@dataclass(frozen=True)
class DroppedEntry:
    fetched_at: datetime
    source: str
    size: int


@dataclass(frozen=True)
class DamagedEntry:
    """A spool file that could not be read back; ``path`` is where it is now, if anywhere."""

    path: Path
    reason: str


class _Damaged(DataRejected):
    """Why one spool file cannot be an entry (internal: never leaves this module)."""


@dataclass
class _Entry:
    path: Path
    size: int


class SnapshotSpool:
    def __init__(
        self,
        folder: Path,
        *,
        max_entries: int,
        max_bytes: int,
        max_damaged: int = 20,
        damaged_max_age_seconds: float = 7 * 86400,
    ) -> None:
        self.folder = folder
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        # Damaged files hold raw feed data (names included), so they are kept only for a
        # while and only a few of them: enough to inspect, never an unbounded archive.
        self.max_damaged = max_damaged
        self.damaged_max_age_seconds = damaged_max_age_seconds
        self.dropped = 0
        self.damaged = 0
        self.folder.mkdir(parents=True, exist_ok=True)
        self._damaged_folder = self.folder / _DAMAGED_FOLDER
        self._lock = threading.Lock()
        self._reports: deque[DamagedEntry] = deque(maxlen=_DAMAGED_REPORTS)
        # The head entry as last read or written, so a caller that peeked can pop exactly
        # that item (and repeated peeks do not re-read the file).
        self._head: tuple[Path, SpooledSnapshot] | None = None
        self._entries: deque[_Entry] = deque()
        self._bytes = 0
        self._next = 0
        with self._lock:
            self._scan()
            self._prune_damaged()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def take_damaged(self) -> list[DamagedEntry]:
        """Damaged files found since the last call, oldest first (the caller records them)."""
        with self._lock:
            reports = list(self._reports)
            self._reports.clear()
            return reports

    # -- writing --------------------------------------------------------------------------

    def put(self, item: SpooledSnapshot) -> list[DroppedEntry]:
        """Append ``item``; return what had to be dropped (oldest first) to respect the bounds.

        Raises :class:`SpoolWriteError` when the entry cannot be written; the spool is then
        unchanged and no partial file is left.
        """
        body = _encode(item)
        with self._lock:
            path = self.folder / f"{self._next:016d}{_SUFFIX}"
            self._write(path, body)
            self._next += 1
            if not self._entries:
                self._head = (path, item)
            self._entries.append(_Entry(path, len(body)))
            self._bytes += len(body)
            return self._enforce_bounds()

    def _write(self, path: Path, body: bytes) -> None:
        tmp = path.with_suffix(".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            raise _write_error(self.folder, exc) from exc
        try:
            try:
                view = memoryview(body)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, path)
        except OSError as exc:
            # Disk full, quota, I/O error: whatever was written of it goes, so the space is
            # free for the next attempt and no stray file is left to be mistaken for data.
            _remove_quietly(tmp)
            raise _write_error(self.folder, exc) from exc

    def _enforce_bounds(self) -> list[DroppedEntry]:
        dropped: list[DroppedEntry] = []
        while len(self._entries) > self.max_entries or (
            self._bytes > self.max_bytes and len(self._entries) > 1
        ):
            oldest = self._pop_head_entry()
            try:
                fetched_at, source = _read_identity(oldest.path)
            except _Damaged as exc:
                self._set_aside(oldest.path, str(exc))
                continue
            _remove_quietly(oldest.path)
            self.dropped += 1
            dropped.append(DroppedEntry(fetched_at, source, oldest.size))
        return dropped

    # -- reading --------------------------------------------------------------------------

    def peek(self) -> SpooledSnapshot | None:
        """The oldest readable entry, or None; damaged ones before it are moved aside."""
        with self._lock:
            while self._entries:
                head = self._entries[0]
                if self._head is not None and self._head[0] == head.path:
                    return self._head[1]
                try:
                    item = _read(head.path)
                except _Damaged as exc:
                    self._pop_head_entry()
                    self._set_aside(head.path, str(exc))
                    continue
                self._head = (head.path, item)
                return item
            return None

    def pop(self, item: SpooledSnapshot | None = None) -> bool:
        """Remove the oldest entry, once it has been stored; True if one was removed.

        With ``item`` (what :meth:`peek` returned), only that very entry is removed: if it
        was dropped by a bound meanwhile, nothing else is taken in its place.
        """
        with self._lock:
            if not self._entries:
                return False
            if item is not None and (
                self._head is None
                or self._head[0] != self._entries[0].path
                or self._head[1] is not item
            ):
                return False
            oldest = self._pop_head_entry()
            # Already stored: if the file cannot be removed (or vanished), the next start
            # reads it again and ingest recognises the timestamp it already has.
            _remove_quietly(oldest.path)
            return True

    def _pop_head_entry(self) -> _Entry:
        oldest = self._entries.popleft()
        self._bytes -= oldest.size
        if self._head is not None and self._head[0] == oldest.path:
            self._head = None
        return oldest

    # -- start-up and damaged files -------------------------------------------------------

    def _scan(self) -> None:
        found: list[tuple[int, Path]] = []
        for path in self.folder.iterdir():
            if path.suffix == ".tmp" and _is_plain_file(path):
                _remove_quietly(path)  # a write that never finished renaming is not an entry
                continue
            match = _ENTRY_NAME.match(path.name)
            if match and _is_plain_file(path):
                found.append((int(match.group(1)), path))
        found.sort()
        for number, path in found:
            # The header, stamp and source are checked now (cheap); the body when served.
            try:
                _read_identity(path)
                size = path.stat().st_size
            except (_Damaged, OSError) as exc:
                self._set_aside(path, str(exc))
                continue
            self._entries.append(_Entry(path, size))
            self._bytes += size
            self._next = number + 1

    def _set_aside(self, path: Path, reason: str) -> None:
        """Move a damaged file into ``damaged/``; if that fails, delete it."""
        self.damaged += 1
        if not path.exists():
            self._reports.append(DamagedEntry(path, reason))
            return
        target = self._damaged_folder / f"{time.time_ns():020d}-{path.name}"
        try:
            self._damaged_folder.mkdir(exist_ok=True)
            os.replace(path, target)
        except OSError as exc:
            # Keeping it would mean meeting it again at every start; its reason is reported.
            _remove_quietly(path)
            where = "deleted" if not path.exists() else "left in place"
            self._reports.append(
                DamagedEntry(path, f"{reason}; could not be moved aside ({exc.strerror}), {where}")
            )
            return
        self._reports.append(DamagedEntry(target, reason))
        self._prune_damaged()

    def _prune_damaged(self) -> None:
        try:
            kept = sorted(
                (int(match.group(1)), path)
                for path in self._damaged_folder.iterdir()
                if (match := _DAMAGED_NAME.match(path.name)) and _is_plain_file(path)
            )
        except OSError:
            return  # no damaged folder (yet)
        oldest_kept = time.time_ns() - int(self.damaged_max_age_seconds * 1e9)
        excess = len(kept) - self.max_damaged
        for index, (moved_at, path) in enumerate(kept):
            if index < excess or moved_at < oldest_kept:
                _remove_quietly(path)


def _encode(item: SpooledSnapshot) -> bytes:
    source = item.source.encode()
    if len(source) > _MAX_SOURCE:
        # Cut on a character boundary, so the stored source still decodes.
        source = source[:_MAX_SOURCE].decode(errors="ignore").encode()
    stamp = item.fetched_at.isoformat().encode()
    transceivers = item.transceivers
    header = _HEADER.pack(
        len(item.data), 0 if transceivers is None else len(transceivers) + 1, len(source)
    )
    return b"".join(
        [header, _STAMP_LENGTH.pack(len(stamp)), stamp, source, item.data, transceivers or b""]
    )


@dataclass(frozen=True)
class _Layout:
    fetched_at: datetime
    source: str
    data_at: int
    data_length: int
    transceivers_length: int | None


def _parse_prefix(prefix: bytes, file_size: int, name: str) -> _Layout:
    """Check the fixed part of an entry against the real file size; raise if it is not one."""
    if len(prefix) < _PREFIX_SIZE:
        raise _Damaged(f"{name}: {file_size} bytes, shorter than an entry header")
    data_length, tx_field, source_length = _HEADER.unpack_from(prefix)
    (stamp_length,) = _STAMP_LENGTH.unpack_from(prefix, _HEADER.size)
    transceivers_length = None if tx_field == 0 else tx_field - 1
    expected = _PREFIX_SIZE + stamp_length + source_length + data_length
    expected += transceivers_length or 0
    if expected != file_size:
        raise _Damaged(f"{name}: header describes {expected} bytes but the file has {file_size}")
    stamp_at = _PREFIX_SIZE
    source_at = stamp_at + stamp_length
    data_at = source_at + source_length
    if len(prefix) < data_at:
        raise _Damaged(f"{name}: file shorter than its stamp and source")
    try:
        stamp = prefix[stamp_at:source_at].decode()
        fetched_at = datetime.fromisoformat(stamp)
    except ValueError:  # UnicodeDecodeError is a ValueError too
        raise _Damaged(f"{name}: fetch time is not a valid timestamp") from None
    try:
        source = prefix[source_at:data_at].decode()
    except UnicodeDecodeError:
        raise _Damaged(f"{name}: source is not valid UTF-8") from None
    return _Layout(fetched_at, source, data_at, data_length, transceivers_length)


def _read_identity(path: Path) -> tuple[datetime, str]:
    """When and where an entry was fetched, reading only the head of the file."""
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            prefix = handle.read(_PREFIX_SIZE)
            if len(prefix) == _PREFIX_SIZE:
                _, _, source_length = _HEADER.unpack_from(prefix)
                (stamp_length,) = _STAMP_LENGTH.unpack_from(prefix, _HEADER.size)
                prefix += handle.read(stamp_length + source_length)
    except FileNotFoundError:
        raise _Damaged(f"{path.name}: vanished before it was read") from None
    except OSError as exc:
        raise _Damaged(f"{path.name}: unreadable ({exc.strerror})") from None
    layout = _parse_prefix(prefix, size, path.name)
    return layout.fetched_at, layout.source


def _read(path: Path) -> SpooledSnapshot:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _Damaged(f"{path.name}: vanished before it was read") from None
    except OSError as exc:
        raise _Damaged(f"{path.name}: unreadable ({exc.strerror})") from None
    layout = _parse_prefix(raw, len(raw), path.name)
    data_end = layout.data_at + layout.data_length
    data = raw[layout.data_at : data_end]
    transceivers = None if layout.transceivers_length is None else raw[data_end:]
    return SpooledSnapshot(data, transceivers, layout.fetched_at, layout.source)


def _is_plain_file(path: Path) -> bool:
    try:
        return path.is_file() and not path.is_symlink()
    except OSError:
        return False


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def _write_error(folder: Path, exc: OSError) -> SpoolWriteError:
    reason = exc.strerror or type(exc).__name__
    return SpoolWriteError(exc.errno, f"cannot write to the spool in {folder}: {reason}")
