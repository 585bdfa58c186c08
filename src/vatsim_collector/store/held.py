"""Documents and records kept for inspection, and the snapshot rows of quarantined snapshots.

Ingest decides what is held and why; this module only knows how it is stored. Bodies arrive
already gzipped and already scrubbed of names when names are not stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select

from vatsim_collector.store import schema as t


@dataclass(frozen=True)
class HeldDocument:
    received_at: datetime
    kind: str  # rejected | quarantined | held | record
    source: str
    reason: str
    body_gzip: bytes
    snapshot_id: int | None = None


@dataclass(frozen=True)
class QuarantinedSnapshot:
    """The ``snapshots`` row of a snapshot held back by the sanity gate or a size bound."""

    update_timestamp: datetime
    fetched_at: datetime
    reason: str
    pilots: int
    controllers: int
    atis: int
    prefiles: int


def hold(conn: Connection, documents: Iterable[HeldDocument]) -> None:
    rows = [
        {
            "received_at": d.received_at,
            "kind": d.kind,
            "source": d.source,
            "reason": d.reason,
            "snapshot_id": d.snapshot_id,
            "body_gzip": d.body_gzip,
        }
        for d in documents
    ]
    if rows:
        conn.execute(insert(t.held_documents), rows)


def quarantine(
    conn: Connection, snapshot: QuarantinedSnapshot, *, leader_epoch: int | None = None
) -> int:
    """Insert the quarantined snapshot's row; its id."""
    snapshot_id = t.snapshot_id_for(snapshot.update_timestamp)
    conn.execute(
        insert(t.snapshots).values(
            id=snapshot_id,
            update_timestamp=snapshot.update_timestamp,
            fetched_at=snapshot.fetched_at,
            status="quarantined",
            reason=snapshot.reason,
            pilots=snapshot.pilots,
            controllers=snapshot.controllers,
            atis=snapshot.atis,
            prefiles=snapshot.prefiles,
            transceivers=None,
            leader_epoch=leader_epoch,
        )
    )
    return snapshot_id


def snapshot_stored(conn: Connection, at: datetime) -> bool:
    """Whether a snapshot (accepted or quarantined) with this update timestamp is stored."""
    found = conn.execute(
        select(t.snapshots.c.id).where(t.snapshots.c.update_timestamp == at)
    ).first()
    return found is not None


def replayed(conn: Connection) -> tuple[set[datetime], set[str]]:
    """What an earlier replay stored: the timestamps of stored snapshots (accepted or
    quarantined), and the sources of documents refused whole (rejected, quarantined or held
    without a snapshot). A transceivers document refused on its own is left out: it is held
    before its snapshot's transaction, so it says nothing about whether the snapshot is stored.
    """
    sn, hd = t.snapshots, t.held_documents
    stamps = set(conn.execute(select(sn.c.update_timestamp)).scalars())
    refused = conn.execute(
        select(hd.c.source, hd.c.reason).where(
            hd.c.snapshot_id.is_(None), hd.c.kind.in_(("rejected", "quarantined", "held"))
        )
    ).all()
    sources = {s for s, reason in refused if s and not reason.startswith("transceivers:")}
    return stamps, sources
