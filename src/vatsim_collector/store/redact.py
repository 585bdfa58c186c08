"""Finding and removing one member in stored JSON, documents and free text (docs/architecture.md).

Pure functions, no database: ``forget`` decides with them, ``ingest`` strips names with them.
A member is recognised by exact values, never by substrings of other values: cid 123 is not
part of 1234, and callsign ``DLH12`` is not part of ``DLH123``.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import orjson

__all__ = ["FORGOTTEN", "DocumentVerdict", "Member", "strip_document", "strip_names"]

FORGOTTEN = "[forgotten]"

# A name field's value in JSON text that may not parse (a rejected, truncated document).
_RAW_NAME = re.compile(rb'"name"\s*:\s*"(?:[^"\\]|\\.)*(?:"|\Z)')
_PLAIN_CALLSIGN = re.compile(r"[A-Za-z0-9_-]+")


def strip_names(raw: bytes) -> bytes:
    """``raw`` without members' names, for keeping a feed document when names are not stored.

    A client record is any object with a ``cid``; its ``name`` is removed (the decoder's
    default for a missing name is empty). A document that is not JSON has every ``"name"``
    string blanked in place, servers' names included: it cannot be told apart. A document
    without names is returned as it was, byte for byte.
    """
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _RAW_NAME.sub(b'"name":""', raw)
    removed = False

    def walk(node: Any) -> None:
        nonlocal removed
        if isinstance(node, dict):
            if "cid" in node and "name" in node:
                del node["name"]
                removed = True
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    return orjson.dumps(doc) if removed else raw


def is_cid(value: Any, cid: int) -> bool:
    """Whether a JSON value *is* ``cid``: the number, or a string of exactly its digits."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return value == cid
    return isinstance(value, str) and value.strip() == str(cid)


@dataclass
class Member:
    """One member's identity and stored sessions, as found at the start of a ``forget``."""

    cid: int
    callsigns: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    pilot_sessions: set[int] = field(default_factory=set)
    controller_sessions: set[int] = field(default_factory=set)
    atis_sessions: set[int] = field(default_factory=set)
    flights: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._cid_token = re.compile(rf"(?<![0-9]){self.cid}(?![0-9])")
        self._pattern: re.Pattern[str] | None = None

    # -- recognising ---------------------------------------------------------------------

    def owns(self, node: Any) -> bool:
        """A record of theirs in a feed document: a client with their cid, or a station
        (transceivers, which carry no cid) under one of their callsigns."""
        if not isinstance(node, dict):
            return False
        if "cid" in node:
            return is_cid(node["cid"], self.cid)
        return node.get("callsign") in self.callsigns

    def mentions_cid(self, node: Any) -> bool:
        """Whether their cid is anywhere in a JSON value: as a number, or a token of a string."""
        if isinstance(node, dict):
            return any(self.mentions_cid(v) for v in node.values())
        if isinstance(node, list):
            return any(self.mentions_cid(v) for v in node)
        if isinstance(node, str):
            return self._cid_token.search(node) is not None
        return is_cid(node, self.cid)

    def in_event(self, payload: Any) -> bool:
        """Whether an event payload is about them: their cid (pilot, plan, controller, ATIS and
        sector events) or one of their sessions or flights (contact events carry no cid)."""
        if not isinstance(payload, dict):
            return False
        if is_cid(payload.get("cid"), self.cid):
            return True
        refs = (
            (payload.get("pilot_session_id"), self.pilot_sessions),
            (payload.get("controller_session_id"), self.controller_sessions),
            (payload.get("flight_id"), self.flights),
        )
        if any(isinstance(v, int) and v in ids for v, ids in refs):
            return True
        kind = str(payload.get("type", ""))
        session = payload.get("session_id")
        if not isinstance(session, int):
            return False
        if kind.startswith("controller."):
            return session in self.controller_sessions
        if kind.startswith("atis."):
            return session in self.atis_sessions
        return kind.startswith(("pilot.", "flightplan.", "sector.", "flight.")) and (
            session in self.pilot_sessions
        )

    def needles(self) -> list[str] | None:
        """Substrings every stored event about them contains (their cid's digits, or a callsign
        of theirs for contact events): a cheap SQL pre-filter, decided exactly afterwards.
        None when a callsign could be escaped in JSON and so not appear as it is."""
        if not all(_PLAIN_CALLSIGN.fullmatch(c) for c in self.callsigns):
            return None
        return [str(self.cid), *sorted(self.callsigns)]

    # -- redacting -----------------------------------------------------------------------

    def learn(self, callsigns: Iterable[str | None], names: Iterable[str | None]) -> None:
        self.callsigns.update(c for c in callsigns if c)
        # A one-letter "name" would redact every such word of every error message.
        self.names.update(n.strip() for n in names if n and len(n.strip()) > 1)
        self._pattern = None

    def _redactor(self) -> re.Pattern[str]:
        if self._pattern is None:
            words = sorted({*self.callsigns, *self.names} - {""}, key=len, reverse=True)
            # Boundaries that also keep "_" and "-" in: callsigns are made of them.
            alternatives = [rf"(?<![0-9]){self.cid}(?![0-9])"] + [
                rf"(?<![\w-]){re.escape(w)}(?![\w-])" for w in words
            ]
            self._pattern = re.compile("|".join(alternatives), re.IGNORECASE)
        return self._pattern

    def redact_text(self, text: str) -> str:
        """``text`` with their cid, callsigns and names replaced by ``[forgotten]``."""
        return self._redactor().sub(FORGOTTEN, text)

    def redact_json(self, node: Any) -> Any:
        if isinstance(node, dict):
            return {k: self.redact_json(v) for k, v in node.items()}
        if isinstance(node, list):
            return [self.redact_json(v) for v in node]
        if isinstance(node, str):
            return self.redact_text(node)
        return FORGOTTEN if is_cid(node, self.cid) else node

    def mentioned_in_raw(self, raw: bytes) -> bool:
        """For text that is not JSON: their cid, a callsign or a name as a token anywhere."""
        return self._redactor().search(raw.decode("utf-8", "replace")) is not None


class DocumentVerdict(Enum):
    UNCHANGED = "unchanged"
    STRIPPED = "stripped"
    # Deleted: cannot be read (not gzip, not JSON) yet may hold them, or still names them
    # after their records were taken out (their cid outside a list of records).
    UNREADABLE = "unreadable"
    STILL_MENTIONED = "still_mentioned"


def strip_document(body_gzip: bytes, member: Member) -> tuple[DocumentVerdict, bytes | None]:
    """A held document without the member's records: the verdict and, if stripped, the new
    gzipped body. Names found in their records are added to ``member.names``."""
    try:
        raw = gzip.decompress(body_gzip)
    except (OSError, EOFError, zlib.error):
        return DocumentVerdict.UNREADABLE, None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        if member.mentioned_in_raw(raw):
            return DocumentVerdict.UNREADABLE, None
        return DocumentVerdict.UNCHANGED, None
    if member.owns(doc):
        # The whole document is one of their records (a malformed record kept on its own).
        return DocumentVerdict.STILL_MENTIONED, None
    removed: list[dict[str, Any]] = []

    def without(node: Any) -> Any:
        if isinstance(node, list):
            kept = []
            for item in node:
                if member.owns(item):
                    removed.append(item)
                else:
                    kept.append(without(item))
            return kept
        if isinstance(node, dict):
            return {k: without(v) for k, v in node.items()}
        return node

    stripped = without(doc)
    member.learn(
        (r.get("callsign") if isinstance(r.get("callsign"), str) else None for r in removed),
        (r.get("name") if isinstance(r.get("name"), str) else None for r in removed),
    )
    if member.mentions_cid(stripped):
        return DocumentVerdict.STILL_MENTIONED, None
    if not removed:
        return DocumentVerdict.UNCHANGED, None
    return DocumentVerdict.STRIPPED, gzip.compress(orjson.dumps(stripped), compresslevel=6)
