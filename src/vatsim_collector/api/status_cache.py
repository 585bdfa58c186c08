"""``/api/status`` served as stored bytes while its answer stays the same.

The status is not one view's answer, as the "now" answers of ``api/live_cache.py`` are: it also
carries the data's age, the health verdict, this node's ingest and poll counters, the feed's
breakers and the cluster's leadership, each changed by its own writer at its own moment. Keying
the bytes on generations of all of those would need a hook in every writer, and one forgotten
hook would serve a wrong answer. So the answer is still built on every request from what it is
made of (attribute reads: microseconds) and serialised, and the bytes are compared with the
held ones: equal bytes are the held answer, with its ``ETag`` and gzip copy; different bytes
become the new held answer. What a request no longer pays is what was costly: FastAPI's
routing and its validation of the returned model, hashing and compressing, and a database read
of the leadership on every request.

Two inputs are made coarser so that bytes can repeat at all:

- ``age_seconds`` is whole seconds (rounded down): at a millisecond, no two answers would ever
  be equal. The answer changes once a second, plus once per change of anything else.
- The leadership (``cluster.leader``, ``cluster.epoch``) is read from the database at most once
  per ``LEADERSHIP_MAX_AGE`` seconds, and again at once when this node's role changes or a new
  live view is published. Another node's takeover can so show here up to that long after the
  database records it (a node's own promotion or demotion shows at once); a failed read (the
  database gone) is held as long, answering ``leader: null`` meanwhile, as before.

The same ``Cache-Control`` and ``Vary`` as the "now" answers (``live_cache.Rendered``): the
status changes at moments the API cannot announce.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from sqlalchemy.exc import SQLAlchemyError

from vatsim_collector.api.live_cache import Rendered
from vatsim_collector.cluster.node import Node, Role
from vatsim_collector.store.cluster import read_leadership
from vatsim_collector.store.database import DatabaseService

log = structlog.get_logger(__name__)

# Seconds a leadership read is reused: about as long as a follower's refresh (1 s by default),
# so a replica's cluster section is no staler than its data.
LEADERSHIP_MAX_AGE = 1.0


@dataclass(frozen=True)
class Leadership:
    """The leadership as one read found it (both None when it could not be read)."""

    leader: str | None
    epoch: int | None
    # What the read was made under: this node's role, the live view, the clock's reading.
    role: Role
    view: object
    read_at: float


class LeadershipReading:
    """The latest leadership read, re-read when it is older than ``max_age`` seconds of
    ``clock``, or this node's role or the published live view has changed since."""

    def __init__(
        self, *, max_age: float = LEADERSHIP_MAX_AGE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_age = max_age
        self.clock = clock
        self._held: Leadership | None = None
        self._read_lock = threading.Lock()
        # Database reads made: what a test or bench reads to see the reads bounded.
        self.reads = 0

    def held(self, node: Node, view: object) -> Leadership | None:
        """The held read if it is still current for ``node`` and ``view``; never blocks."""
        held = self._held
        if held is None or held.role is not node.role or held.view is not view:
            return None
        age = self.clock() - held.read_at
        # A clock read before the held one (a test's clock set back) re-reads too.
        return held if 0 <= age < self.max_age else None

    def current(self, db: DatabaseService, node: Node, view: object) -> Leadership:
        """The held read if current, else a new one (a database read: not on the event loop).
        One caller reads while concurrent ones wait for its result."""
        found = self.held(node, view)
        if found is not None:
            return found
        with self._read_lock:
            found = self.held(node, view)
            if found is not None:
                return found
            # Role and view are taken before the read: a change during it re-reads next time.
            role, read_at = node.role, self.clock()
            leader: str | None = None
            epoch: int | None = None
            try:
                with db.read("api.leadership") as conn:
                    leadership = read_leadership(conn)
                leader, epoch = leadership.leader_node, leadership.epoch
            except SQLAlchemyError as exc:
                # The status answers anyway: health says the database is down.
                log.warning("leadership not read", error=type(exc).__name__)
            self.reads += 1
            self._held = Leadership(leader, epoch, role=role, view=view, read_at=read_at)
            return self._held


class StatusCache:
    """The latest ``/api/status`` bytes and the leadership read they were built with."""

    def __init__(self, *, leadership: LeadershipReading | None = None) -> None:
        self.leadership = leadership or LeadershipReading()
        self._lock = threading.Lock()
        self._held: Rendered | None = None
        # Answers built whose bytes were new (renders) or the held ones (hits).
        self.renders = 0
        self.hits = 0

    def keep(self, body: bytes) -> Rendered:
        """The held answer if ``body`` is its bytes, else ``body`` as the new held answer."""
        with self._lock:
            held = self._held
            if held is not None and held.body == body:
                self.hits += 1
                return held
            self.renders += 1
            self._held = Rendered.of(body)
            return self._held
