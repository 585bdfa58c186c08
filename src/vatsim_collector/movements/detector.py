"""The movement detector: per pilot session, samples in, movements out (work in progress:
the interface is fixed, the state machine lands next)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from vatsim_collector.airports.nearest import AirportIndex
from vatsim_collector.movements.model import Movement, PilotSample
from vatsim_collector.movements.rules import MovementRules

__all__ = ["DetectorStep", "MovementDetector", "RestoredSession"]


@dataclass
class DetectorStep:
    movements: list[Movement] = field(default_factory=list)
    # Sessions whose persisted state changed: (key, ref, state as JSON text).
    saved: list[tuple[Hashable, object, str]] = field(default_factory=list)
    # Sessions whose state is gone (they ended): (key, ref).
    dropped: list[tuple[Hashable, object]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RestoredSession:
    """An open session as the database has it: its last sample, when that was, and the state
    last saved for it (None: none saved, e.g. stored before movements existed)."""

    sample: PilotSample
    seen_at: datetime
    state: str | None


class MovementDetector:
    def __init__(self, airports: AirportIndex, rules: MovementRules) -> None:
        self.airports = airports
        self.rules = rules

    def step(
        self, at: datetime, samples: Sequence[PilotSample], ended: Sequence[Hashable] = ()
    ) -> DetectorStep:
        """One snapshot at ``at``: every present session's sample, and the keys of sessions
        that ended with it (a pending landing or on-block is decided for them now)."""
        raise NotImplementedError

    def restore(self, sessions: Iterable[RestoredSession]) -> None:
        """Forget everything, then continue each open session from what was stored."""
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError
