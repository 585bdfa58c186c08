"""Time-sortable event ids: UUID version 7 (RFC 9562) text, monotonic within a process.

The first 48 bits are the Unix time in milliseconds, so ids sort by creation time as text and
as bytes. The 12 bits after the version nibble are a counter (RFC 9562 §6.2, method 1) that
restarts from a random value each millisecond and is incremented for every further id in that
millisecond; if it overflows, the id borrows the next millisecond. Ids made by one process are
therefore strictly increasing, even when the wall clock stands still or steps back.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

__all__ = ["EventIds", "new_event_id"]

_COUNTER_MAX = 0xFFF


class EventIds:
    def __init__(self, clock_ms: Callable[[], int] | None = None) -> None:
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0
        self._random = random.Random()

    def __call__(self) -> str:
        with self._lock:
            ms = self._clock_ms()
            if ms > self._last_ms:
                self._last_ms = ms
                # Half the counter space is left free so a burst in one millisecond rarely
                # has to borrow the next one.
                self._counter = self._random.getrandbits(11)
            else:
                self._counter += 1
                if self._counter > _COUNTER_MAX:
                    self._last_ms += 1
                    self._counter = 0
                ms = self._last_ms
            counter = self._counter
            tail = self._random.getrandbits(62)
        high = (ms << 16) | 0x7000 | counter
        low = (0b10 << 62) | tail
        text = f"{high:016x}{low:016x}"
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


new_event_id = EventIds()
