"""Keeps the live view of a node that does not ingest current from the database.

A node that does not write snapshots (``serve``; a standby ``run`` until it is promoted) still
answers the "now" endpoints: pilots, controllers, ATIS, transceivers, status. It holds an
``Ingestor`` that never ingests, and a ``Follower`` that, every ``interval`` seconds, reads the
newest snapshot id (an index lookup). When that moved on, or the view was invalidated (a member
forgotten through this node), it rebuilds the ingestor's live state from the database exactly
as a restarting collector does (``Ingestor.restore``: open sessions with their missed counts,
prefiles, sector occupancy and contacts, the last transceivers document), all of it read as of
one moment, and publishes it whole. So every node serves the leader's view of the latest
committed snapshot, at most ``interval`` seconds after it committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

import structlog
from sqlalchemy.exc import SQLAlchemyError

from vatsim_collector.errors.exceptions import StorageUnavailable
from vatsim_collector.errors.manager import ErrorManager
from vatsim_collector.pipeline.ingest import Ingestor
from vatsim_collector.store.restore import latest_snapshot_id

__all__ = ["Follower", "LiveViewUnavailable"]

log = structlog.get_logger(__name__)


class LiveViewUnavailable(StorageUnavailable):
    """The database could not be read to bring the live view up to date; the last view
    stays served."""


class Follower:
    def __init__(
        self,
        ingestor: Ingestor,
        *,
        interval: float = 1.0,
        errors: ErrorManager | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval!r}")
        self.ingestor = ingestor
        self.interval = interval
        self.errors = errors
        # The newest snapshot id the published view reflects (None: the database had none).
        self.seen: int | None = None
        self.loaded = False
        self.refreshes = 0
        self.failures = 0
        self._failing = False
        # run() refreshes on a worker thread; a promotion may call refresh_once on another.
        self._lock = threading.Lock()

    def refresh_once(self) -> bool:
        """Rebuild the live view if a newer snapshot was committed (or it was invalidated);
        whether it did. Blocking: call it in a thread. Raises ``LiveViewUnavailable`` when the
        database cannot be read; the previous view is kept then."""
        with self._lock:
            try:
                with self.ingestor.db.read("follower.latest") as conn:
                    latest = latest_snapshot_id(conn)
                if self.loaded and latest == self.seen and not self.ingestor.restore_needed:
                    return False
                # Read after the id: the state rebuilt is at least as new as ``latest``, so a
                # snapshot committed in between is either in it or makes the next check rebuild.
                self.ingestor.restore()
            except SQLAlchemyError as exc:
                cause = getattr(exc, "orig", None) or exc
                # The driver's class name only: its message may carry host or user details.
                raise LiveViewUnavailable(
                    f"live view not refreshed: database unavailable ({type(cause).__name__})"
                ) from exc
            self.seen = latest
            self.loaded = True
            self.refreshes += 1
            return True

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh every ``interval`` seconds until ``stop`` is set; a failure is reported
        once per streak and retried at the next interval, serving the last view meanwhile."""
        while not stop.is_set():
            await self.refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval)

    async def refresh(self) -> None:
        """One refresh on a worker thread; a failure is counted and reported once per streak,
        never raised (the last view stays served)."""
        try:
            await asyncio.to_thread(self.refresh_once)
        except Exception as exc:
            self._failed(exc)
        else:
            if self._failing:
                self._failing = False
                log.info("live view follows the database again", snapshot_id=self.seen)

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        if self._failing:
            return  # one report per streak: the database being down is reported by health
        self._failing = True
        if self.errors is not None:
            self.errors.record(exc, service="follower", operation="refresh")
        elif isinstance(exc, LiveViewUnavailable):
            log.warning("live view not refreshed", error=str(exc))
        else:
            log.error("live view refresh failed", exc_info=exc)
