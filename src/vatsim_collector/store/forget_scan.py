"""The JSON and document side of ``forget``: events, dead letters, held documents, error records,
and events waiting in the outbox.

Each is read in batches in the caller's transaction and decided in Python by decoding the JSON
(``redact.Member``); SQL only narrows which rows are worth decoding. Rows are deleted or
rewritten by id, so nothing that merely contains the cid's digits somewhere is touched.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import Column, ColumnElement, Connection, delete, or_, select, true, update

from vatsim_collector.store import schema as t
from vatsim_collector.store.redact import DocumentVerdict, Member, strip_document

__all__ = [
    "forget_dead_letters",
    "forget_error_records",
    "forget_events",
    "forget_held_documents",
    "forget_outbox",
]

_BATCH = 500


def _prefilter(column: Column[Any], member: Member) -> ColumnElement[bool]:
    needles = member.needles()
    if needles is None:
        return true()
    return or_(*(column.contains(n, autoescape=True) for n in needles))


def _about(text: str, member: Member, payload_of: Callable[[Any], Any]) -> bool:
    try:
        decoded = orjson.loads(text)
    except orjson.JSONDecodeError:
        # A row that does not decode cannot be checked field by field; a token will do.
        return member.mentioned_in_raw(text.encode())
    return member.in_event(payload_of(decoded))


def _delete_matching(
    conn: Connection,
    key: Column[Any],
    body: Column[Any],
    member: Member,
    payload_of: Callable[[Any], Any],
    start: Any,
) -> int:
    table = key.table
    deleted = 0
    after = start
    while True:
        rows = conn.execute(
            select(key, body)
            .where(key > after, _prefilter(body, member))
            .order_by(key)
            .limit(_BATCH)
        ).all()
        if not rows:
            return deleted
        after = rows[-1][0]
        doomed = [row[0] for row in rows if _about(row[1], member, payload_of)]
        if doomed:
            deleted += conn.execute(delete(table).where(key.in_(doomed))).rowcount


def forget_events(conn: Connection, member: Member) -> int:
    """Delete logged events about them; the number deleted."""
    e = t.events
    return _delete_matching(conn, e.c.id, e.c.payload, member, lambda p: p, "")


def forget_dead_letters(conn: Connection, member: Member) -> int:
    """Delete dead letters whose event is about them; the number deleted."""
    d = t.dead_letters

    def payload(event: Any) -> Any:
        return event.get("payload") if isinstance(event, dict) else None

    return _delete_matching(conn, d.c.id, d.c.event, member, payload, 0)


def forget_outbox(conn: Connection, member: Member) -> int:
    """Delete events about them still waiting in the outbox; the number deleted. (What the
    relay already published is the stream's, which keeps it until its age limit.)"""
    o = t.event_outbox

    def payload(event: Any) -> Any:
        return event.get("payload") if isinstance(event, dict) else None

    return _delete_matching(conn, o.c.id, o.c.event, member, payload, 0)


def forget_held_documents(conn: Connection, member: Member) -> dict[str, int]:
    """Take their records out of every held document; counts by outcome.

    Documents are decompressed one at a time (each may be megabytes). One that cannot be
    read but may contain them, or that still names them once their records are out, is
    deleted: keeping a raw document is never worth keeping them in it.
    """
    h = t.held_documents
    counts = {"rewritten": 0, "unreadable": 0, "still_mentioned": 0}
    ids = conn.execute(select(h.c.id).order_by(h.c.id)).scalars().all()
    for doc_id in ids:
        row = conn.execute(select(h.c.body_gzip, h.c.reason).where(h.c.id == doc_id)).one()
        verdict, body = strip_document(row.body_gzip, member)
        if verdict in (DocumentVerdict.UNREADABLE, DocumentVerdict.STILL_MENTIONED):
            conn.execute(delete(h).where(h.c.id == doc_id))
            counts[verdict.value] += 1
            continue
        values: dict[str, Any] = {}
        if body is not None:
            values["body_gzip"] = body
        reason = member.redact_text(row.reason)
        if reason != row.reason:
            values["reason"] = reason
        if values:
            conn.execute(update(h).where(h.c.id == doc_id).values(**values))
            counts["rewritten"] += 1
    return counts


def _context(text: str | None, member: Member) -> str | None:
    if text is None:
        return None
    try:
        decoded = json.loads(text)
    except ValueError:
        return member.redact_text(text)
    redacted = member.redact_json(decoded)
    if redacted == decoded:
        return text
    # The error layer's own format, so its readers (and the "$transient" match) still work.
    return json.dumps(redacted, separators=(",", ":"), ensure_ascii=False)


def forget_error_records(conn: Connection, member: Member) -> int:
    """Replace their cid, callsigns and names in error messages and contexts by
    ``[forgotten]``; the number of records changed. The records themselves stay: they are
    about the collector's failures, not about the member."""
    e = t.error_records
    changed = 0
    after = 0
    while True:
        rows = conn.execute(
            select(e.c.id, e.c.message, e.c.context)
            .where(e.c.id > after)
            .order_by(e.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return changed
        after = rows[-1].id
        for row in rows:
            message = member.redact_text(row.message)
            context = _context(row.context, member)
            if message != row.message or context != row.context:
                conn.execute(
                    update(e).where(e.c.id == row.id).values(message=message, context=context)
                )
                changed += 1
