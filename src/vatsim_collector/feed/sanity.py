"""Quarantines snapshots that cannot be a true picture of the network.

A feed glitch that drops half the network must not end half the sessions, so such a snapshot
is held back instead of applied. A drop that persists for ``accept_after`` snapshots in a row
is believed: the network really did shrink (a server restart, say).
"""

from __future__ import annotations

from vatsim_collector.feed.models import Snapshot


class SanityGate:
    def __init__(self, *, min_pilots: int, max_drop_fraction: float, accept_after: int) -> None:
        self.min_pilots = min_pilots
        self.max_drop_fraction = max_drop_fraction
        self.accept_after = accept_after
        self._consecutive_drops = 0

    def check(self, snapshot: Snapshot, previous_clients: int | None) -> str | None:
        """The reason to quarantine ``snapshot``, or None to accept it."""
        pilots = len(snapshot.pilots)
        if pilots < self.min_pilots:
            return f"only {pilots} pilots, fewer than the configured minimum of {self.min_pilots}"
        clients = snapshot.client_count
        if previous_clients and clients < previous_clients * (1 - self.max_drop_fraction):
            self._consecutive_drops += 1
            if self._consecutive_drops <= self.accept_after:
                return (
                    f"clients fell from {previous_clients} to {clients}, a drop of more than "
                    f"{self.max_drop_fraction:.0%} since the previous accepted snapshot"
                )
        self._consecutive_drops = 0
        return None
