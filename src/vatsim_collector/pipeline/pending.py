"""The queue between fetching and writing: fetched snapshots wait here, oldest first.

The fetcher puts on its fixed schedule and the writer peeks, stores and pops at its own
pace, so a slow or locked database never delays a fetch. A few snapshots wait in memory;
when more arrive, the ones in memory spill to the disk spool, appended in order, so that
every snapshot on disk is older than every snapshot in memory and the writer always takes
the disk head first.

Without a spool, or while the spool cannot be written (disk full), snapshots stay in
memory beyond ``memory_limit`` up to a hard bound (``max_items`` and ``max_bytes``); past
it the oldest one in memory is dropped and reported. A spill that fails is reported once
per failure episode and tried again on every later put; it is never raised to the caller.
"""

from __future__ import annotations

import threading
from collections import deque

from vatsim_collector.pipeline.spool import (
    DamagedEntry,
    DroppedEntry,
    SnapshotSpool,
    SpooledSnapshot,
    SpoolWriteError,
)

# A real snapshot (data and transceivers) is 1-3 MB and arrives every 15 s: 64 of them is
# a quarter of an hour of feed held in memory while the disk is full, and 512 MiB keeps
# a burst of abnormally large documents from exhausting the machine.
DEFAULT_MAX_ITEMS = 64
DEFAULT_MAX_BYTES = 512 * 1024**2


def _size(item: SpooledSnapshot) -> int:
    return len(item.data) + len(item.transceivers or b"")


class PendingSnapshots:
    def __init__(
        self,
        spool: SnapshotSpool | None,
        *,
        memory_limit: int = 4,
        max_items: int = DEFAULT_MAX_ITEMS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if memory_limit < 1:
            raise ValueError("memory_limit must be at least 1")
        self.spool = spool
        self.memory_limit = memory_limit
        # The hard bound can never be below what memory holds in normal operation.
        self.max_items = max(max_items, memory_limit)
        self.max_bytes = max_bytes
        self.dropped = 0
        self.spilled = 0
        self.spill_failures = 0
        self._memory: deque[SpooledSnapshot] = deque()
        self._memory_bytes = 0
        self._errors: list[SpoolWriteError] = []
        self._spill_failing = False
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._memory) + self._on_disk()

    @property
    def in_memory(self) -> int:
        with self._lock:
            return len(self._memory)

    @property
    def on_disk(self) -> int:
        with self._lock:
            return self._on_disk()

    @property
    def size_bytes(self) -> int:
        """Payload bytes in memory plus file bytes in the spool."""
        with self._lock:
            disk = 0 if self.spool is None else self.spool.size_bytes
            return self._memory_bytes + disk

    def _on_disk(self) -> int:
        return 0 if self.spool is None else len(self.spool)

    # -- fetcher side ---------------------------------------------------------------------

    def put(self, item: SpooledSnapshot) -> list[DroppedEntry]:
        """Queue ``item`` behind everything waiting; return what was dropped to make room.

        Never raises for the disk: a failed spill is kept for :meth:`take_errors`.
        """
        with self._lock:
            dropped: list[DroppedEntry] = []
            if self.spool is not None and len(self._memory) >= self.memory_limit:
                dropped += self._spill()
            self._memory.append(item)
            self._memory_bytes += _size(item)
            dropped += self._enforce_bounds()
            return dropped

    def spill(self) -> list[DroppedEntry]:
        """Move everything in memory to the spool (at shutdown, so nothing fetched is lost).

        Returns what the spool's own bounds dropped; a failure is kept for
        :meth:`take_errors` and what could not be written stays in memory.
        """
        with self._lock:
            return self._spill() if self.spool is not None else []

    def take_errors(self) -> list[SpoolWriteError]:
        """Spill failures since the last call: one per failure episode."""
        with self._lock:
            errors, self._errors = self._errors, []
            return errors

    # -- writer side ----------------------------------------------------------------------

    def peek(self) -> SpooledSnapshot | None:
        """The oldest waiting snapshot: the spool's head first, then memory."""
        with self._lock:
            if self.spool is not None:
                head = self.spool.peek()
                if head is not None:
                    return head
            return self._memory[0] if self._memory else None

    def pop(self, item: SpooledSnapshot | None = None) -> bool:
        """Remove the oldest waiting snapshot once stored; True if one was removed.

        Pass what :meth:`peek` returned: between the peek and the pop the fetcher may have
        spilled or a bound dropped it, and then exactly that snapshot, or nothing, goes.
        """
        with self._lock:
            if self._on_disk():
                assert self.spool is not None
                return self.spool.pop(item)
            if not self._memory or (item is not None and self._memory[0] is not item):
                return False
            self._memory_bytes -= _size(self._memory.popleft())
            return True

    def take_damaged(self) -> list[DamagedEntry]:
        """Spool files found damaged and moved aside since the last call."""
        return [] if self.spool is None else self.spool.take_damaged()

    # -- inside the lock ------------------------------------------------------------------

    def _spill(self) -> list[DroppedEntry]:
        assert self.spool is not None
        dropped: list[DroppedEntry] = []
        while self._memory:
            oldest = self._memory[0]
            try:
                bounded_out = self.spool.put(oldest)
            except SpoolWriteError as exc:
                self.spill_failures += 1
                if not self._spill_failing:
                    self._errors.append(exc)
                    self._spill_failing = True
                return dropped
            # The spool's own bounds may drop its oldest entries to take this one.
            self.dropped += len(bounded_out)
            dropped += bounded_out
            self._memory.popleft()
            self._memory_bytes -= _size(oldest)
            self.spilled += 1
        self._spill_failing = False
        return dropped

    def _enforce_bounds(self) -> list[DroppedEntry]:
        dropped: list[DroppedEntry] = []
        while len(self._memory) > self.max_items or (
            self._memory_bytes > self.max_bytes and len(self._memory) > 1
        ):
            oldest = self._memory.popleft()
            size = _size(oldest)
            self._memory_bytes -= size
            self.dropped += 1
            dropped.append(DroppedEntry(oldest.fetched_at, oldest.source, size))
        return dropped
