"""Movement detection in live ingest: the tracker's changes in, a detector step out, its rows
written in the snapshot's transaction, and the detector rebuilt from the database on restore.

Sessions are keyed by their ``SessionKey`` (their database id is unknown until the snapshot's
sessions are written) and carry the live ``PilotSession`` as ``ref``, which has its id by the
time the movement rows are written.

The filed arrival handed to the detector is the arrival of the session's latest stored plan
revision: a plan withdrawn later still counts, as it does for ``recompute`` (which sees only the
stored revisions) and after a restart (which rebuilds ``session.plan`` from them).
"""

from __future__ import annotations

from collections.abc import Hashable

from sqlalchemy import Connection

from vatsim_collector.movements.detector import DetectorStep, MovementDetector, RestoredSession
from vatsim_collector.movements.model import Movement, PilotSample
from vatsim_collector.store.movements import insert_movements, open_session_states, save_states
from vatsim_collector.tracking.changes import Changeset
from vatsim_collector.tracking.state import LiveState, PilotSession, SessionKey

__all__ = ["LiveMovements"]


def _sample(session: PilotSession, filed_arrival: str | None) -> PilotSample:
    p = session.latest
    return PilotSample(
        key=session.key,
        ref=session,
        latitude=p.latitude,
        longitude=p.longitude,
        altitude_ft=float(p.altitude),
        groundspeed_kt=float(p.groundspeed),
        heading_deg=float(p.heading),
        filed_arrival=filed_arrival,
    )


def _session(ref: object) -> PilotSession:
    if not isinstance(ref, PilotSession):
        raise TypeError(f"a live movement's ref must be a PilotSession, not {type(ref).__name__}")
    return ref


def _stored_id(session: PilotSession) -> int:
    if session.id is None or session.flight.id is None:
        raise ValueError("movement rows are written once the snapshot's sessions have ids")
    return session.id


class LiveMovements:
    def __init__(self, detector: MovementDetector) -> None:
        self.detector = detector
        # The arrival of each known session's latest plan revision (see the module doc).
        self._filed: dict[SessionKey, str | None] = {}

    def step(self, changes: Changeset, state: LiveState) -> DetectorStep:
        """Advance the detector by one snapshot whose changes the tracker just made."""
        for session, plan in changes.pilots.plan_revisions:
            self._filed[session.key] = plan.arrival
        filed = self._filed
        # One per pilot per snapshot, so made without the named tuple's Python-level __new__.
        make = tuple.__new__
        samples: list[PilotSample] = [
            make(
                PilotSample,
                (
                    (key := s.key),
                    s,
                    (p := s.latest).latitude,
                    p.longitude,
                    p.altitude,
                    p.groundspeed,
                    p.heading,
                    filed.get(key),
                ),
            )
            for s in changes.pilots.present
        ]
        ended: list[Hashable] = [s.key for s in changes.pilots.closed]
        step = self.detector.step(changes.at, samples, ended)
        if changes.pilots.closed:
            # Keep what a resumed session needs; forget the rest.
            self._filed = {
                k: v for k, v in self._filed.items() if k in state.pilots or k in state.ended_pilots
            }
        return step

    @staticmethod
    def write(conn: Connection, step: DetectorStep, snapshot_id: int) -> None:
        """The step's movements and saved states, in the snapshot's transaction."""
        rows: list[tuple[Movement, int, int, int, str]] = []
        for m in step.movements:
            session = _session(m.ref)
            rows.append(
                (m, _stored_id(session), session.flight.id or 0, session.cid, session.callsign)
            )
        insert_movements(conn, rows, snapshot_id)
        save_states(
            conn,
            [(_stored_id(_session(ref)), state) for _key, ref, state in step.saved],
            [i for _key, ref in step.dropped if (i := _session(ref).id) is not None],
            snapshot_id,
        )

    def restore(self, conn: Connection, state: LiveState) -> None:
        """Continue every open session from its stored state and last position."""
        self._filed = {
            key: s.plan.arrival if s.plan is not None else None
            for sessions in (state.pilots, state.ended_pilots)
            for key, s in sessions.items()
        }
        saved = open_session_states(conn)
        self.detector.restore(
            RestoredSession(
                sample=_sample(s, self._filed.get(key)),
                seen_at=s.last_seen,
                state=saved.get(s.id) if s.id is not None else None,
            )
            for key, s in state.pilots.items()
        )
