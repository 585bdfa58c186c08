"""Fixed-rate polling on a monotonic grid, and the polling floor for the live VATSIM host."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterable

from vatsim_collector.config import LIVE_MIN_POLL_SECONDS, Settings, is_live_vatsim_host

__all__ = ["FixedRateSchedule", "effective_interval"]


def effective_interval(settings: Settings, urls: Iterable[str] = ()) -> float:
    """The poll interval to use: ``settings.poll_interval``, raised to the live-feed floor.

    ``urls`` are the documents actually being polled. Settings only checks the status URL, but
    a local status document can still hand out vatsim.net mirrors, so those count as well.
    """
    if any(is_live_vatsim_host(url) for url in (settings.status_url, *urls)):
        return max(settings.poll_interval, LIVE_MIN_POLL_SECONDS)
    return settings.poll_interval


class FixedRateSchedule:
    """Ticks at ``start + k * interval``; sleeping never accumulates drift.

    Tick 0 is ``start`` (the construction time by default) and is taken to have happened, so
    the first ``wait_next()`` waits for tick 1: callers poll once, then wait. When a cycle
    overruns, the missed ticks are skipped and counted instead of fired back to back, so two
    polls never start closer together than ``interval``.
    """

    def __init__(
        self,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        start: float | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._check(interval)
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
        self._start = clock() if start is None else start
        self._tick = 0
        self.skipped = 0

    @staticmethod
    def _check(interval: float) -> None:
        if not interval > 0 or math.isinf(interval):
            raise ValueError(f"interval must be a positive finite number of seconds: {interval!r}")

    @property
    def tick(self) -> int:
        return self._tick

    @property
    def last_tick_at(self) -> float:
        return self._start + self._tick * self.interval

    def set_interval(self, interval: float) -> None:
        """Change the rate; the new grid starts at the last tick so no gap is shorter."""
        self._check(interval)
        self._start = self.last_tick_at
        self._tick = 0
        self.interval = interval

    async def wait_next(self) -> float:
        """Sleep until the next tick and return its scheduled monotonic time."""
        now = self._clock()
        due = self._tick + 1
        # ceil, not floor: a tick already in the past is missed; one exactly now still counts.
        reachable = math.ceil((now - self._start) / self.interval)
        target_tick = max(due, reachable)
        self.skipped += target_tick - due
        self._tick = target_tick
        target = self.last_tick_at
        if target > now:
            await self._sleep(target - now)
        return target
