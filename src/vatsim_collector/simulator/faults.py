"""Random, reproducible feed faults for the simulator.

A ``FaultInjector`` decides, per request to the data (and optionally the transceivers)
document, whether to misbehave and how. Decisions come from its own ``random.Random(seed)``
and depend only on the plan and on how many decisions were made before, so the same seed
and the same request order give the same fault sequence. The details of a fault (which 5xx,
where a body is cut) come from a second generator, so they never shift that sequence.

``status.json`` is never faulted: a collector can always bootstrap.

The two hostile kinds (``drip``, ``gzip_bomb``) attack the client's bounds rather than its
error handling; they are drawn only when named, so "all" and every existing seed keep meaning
what they meant.
"""

from __future__ import annotations

import functools
import random
import threading
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

import orjson

__all__ = [
    "ALL_FAULT_KINDS",
    "DRIP_STEP_SECONDS",
    "FAULT_KINDS",
    "GZIP_BOMB_DECODED_BYTES",
    "HOSTILE_FAULT_KINDS",
    "Document",
    "FaultInjector",
    "FaultKind",
    "FaultPlan",
    "broken_json_body",
    "gzip_bomb_body",
    "http5xx_body",
    "non_v3_body",
    "parse_fault_kinds",
    "truncated_body",
]

Document = Literal["data", "transceivers"]


class FaultKind(StrEnum):
    HTTP5XX = "http5xx"
    """500, 502 or 503 with a small body."""
    TIMEOUT = "timeout"
    """The response is held back for ``timeout_seconds``, so client timeouts trip."""
    TRUNCATED = "truncated"
    """Status 200, the real document cut short at a random byte."""
    INVALID_JSON = "invalid_json"
    """Status 200, the real document made syntactically invalid."""
    NON_V3 = "non_v3"
    """Status 200, valid JSON that is not the expected document (legacy v2, wrong type)."""
    STALE = "stale"
    """Status 200, the previously served document again (frozen ``update_timestamp``)."""
    DRIP = "drip"
    """Status 200 and the real document's length, then its bytes one per
    ``DRIP_STEP_SECONDS`` for ``timeout_seconds`` (the rest at once): no single read times
    out, only an overall fetch deadline ends it sooner."""
    GZIP_BOMB = "gzip_bomb"
    """Status 200, ``Content-Encoding: gzip``, about 1 MB that inflates to 1 GiB."""


# Definition order, so a seed means the same thing however ``kinds`` was spelled.
FAULT_KINDS: tuple[FaultKind, ...] = tuple(FaultKind)
# Drawn only when named: they cost the client time or memory bounds, not error handling.
HOSTILE_FAULT_KINDS: tuple[FaultKind, ...] = (FaultKind.DRIP, FaultKind.GZIP_BOMB)
# What "all" (and a plan without kinds) selects.
ALL_FAULT_KINDS: tuple[FaultKind, ...] = tuple(
    k for k in FAULT_KINDS if k not in HOSTILE_FAULT_KINDS
)
DRIP_STEP_SECONDS = 1.0
GZIP_BOMB_DECODED_BYTES = 1024**3


def parse_fault_kinds(value: str | Iterable[str]) -> frozenset[FaultKind]:
    """``"http5xx,stale"`` (or an iterable of names) to kinds; ``"all"`` means every kind.

    Raises ``ValueError`` naming the allowed values on an unknown or empty selection.
    """
    names = value.split(",") if isinstance(value, str) else list(value)
    cleaned = [str(n).strip().lower() for n in names if str(n).strip()]
    allowed = ", ".join(k.value for k in FAULT_KINDS)
    if not cleaned:
        raise ValueError(f"no fault kinds given; allowed: all, {allowed}")
    if cleaned == ["all"]:
        return frozenset(ALL_FAULT_KINDS)
    unknown = sorted(set(cleaned) - {k.value for k in FAULT_KINDS})
    if unknown:
        raise ValueError(f"unknown fault kind(s) {', '.join(unknown)}; allowed: all, {allowed}")
    return frozenset(FaultKind(n) for n in cleaned)


@dataclass(frozen=True)
class FaultPlan:
    """What to inject: each feed request is faulted with probability ``rate``."""

    rate: float = 0.0
    kinds: frozenset[FaultKind] = field(default_factory=lambda: frozenset(ALL_FAULT_KINDS))
    seed: int = 0
    timeout_seconds: float = 30.0
    apply_to_transceivers: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.rate, bool) or not isinstance(self.rate, int | float):
            raise ValueError("rate must be a number between 0 and 1")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate must be between 0 and 1, got {self.rate}")
        # Accept plain strings too; normalise to a frozenset of FaultKind.
        kinds: Any = self.kinds
        object.__setattr__(
            self, "kinds", parse_fault_kinds(kinds if isinstance(kinds, str) else list(kinds))
        )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError("seed must be an integer")
        if isinstance(self.timeout_seconds, bool) or not isinstance(
            self.timeout_seconds, int | float
        ):
            raise ValueError("timeout_seconds must be a number")
        if not 0.0 < self.timeout_seconds <= 3600.0:
            raise ValueError(f"timeout_seconds must be in (0, 3600], got {self.timeout_seconds}")

    @property
    def enabled(self) -> bool:
        return self.rate > 0.0

    @property
    def ordered_kinds(self) -> tuple[FaultKind, ...]:
        return tuple(k for k in FAULT_KINDS if k in self.kinds)

    def as_json(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "kinds": [k.value for k in self.ordered_kinds],
            "seed": self.seed,
            "timeout_seconds": self.timeout_seconds,
            "apply_to_transceivers": self.apply_to_transceivers,
        }

    @classmethod
    def from_json(cls, payload: object, base: FaultPlan | None = None) -> FaultPlan:
        """Build a plan from a JSON object; missing keys keep ``base``'s values (or defaults).

        Raises ``ValueError`` with a message fit for an HTTP 400.
        """
        if not isinstance(payload, Mapping):
            raise ValueError("body must be a JSON object")
        known = ("rate", "kinds", "seed", "timeout_seconds", "apply_to_transceivers")
        extra = sorted(set(payload) - set(known) - {"reset_counts"})
        if extra:
            raise ValueError(f"unknown key(s) {', '.join(extra)}; allowed: {', '.join(known)}")
        args: dict[str, Any] = {k: payload[k] for k in known if k in payload}
        if "kinds" in args:
            kinds = args["kinds"]
            if not isinstance(kinds, str) and not (
                isinstance(kinds, list) and all(isinstance(k, str) for k in kinds)
            ):
                raise ValueError("kinds must be a list of fault kind names")
            args["kinds"] = parse_fault_kinds(kinds)
        if "apply_to_transceivers" in args and not isinstance(args["apply_to_transceivers"], bool):
            raise ValueError("apply_to_transceivers must be true or false")
        return replace(base, **args) if base is not None else cls(**args)


class FaultInjector:
    """Deterministic per-request fault decisions with per-kind counts.

    Counts are cumulative across ``reconfigure`` unless asked to reset, so a test can stop
    faults (rate 0) and still read how many were injected. Thread-safe.
    """

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self._lock = threading.Lock()
        self._counts: dict[FaultKind, int] = dict.fromkeys(FAULT_KINDS, 0)
        self._requests = 0
        self._install(plan or FaultPlan())

    def _install(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._decisions = random.Random(plan.seed)
        # A separate stream for the details of a fault, so they never shift the decisions.
        self.rng = random.Random(f"vatsim-sim-fault-details:{plan.seed}")

    def reconfigure(self, plan: FaultPlan, *, reset_counts: bool = False) -> None:
        """Switch to ``plan`` with a fresh generator (same seed, same sequence again)."""
        with self._lock:
            self._install(plan)
            if reset_counts:
                self._counts = dict.fromkeys(FAULT_KINDS, 0)
                self._requests = 0

    def decide(self, document: Document) -> FaultKind | None:
        """The fault for this request to ``document``, or ``None`` to serve it normally."""
        with self._lock:
            plan = self.plan
            if document == "transceivers" and not plan.apply_to_transceivers:
                return None
            self._requests += 1
            if not plan.enabled or self._decisions.random() >= plan.rate:
                return None
            kind = self._decisions.choice(plan.ordered_kinds)
            self._counts[kind] += 1
            return kind

    def counts(self) -> dict[str, int]:
        """Injected faults per kind (every kind present, zeros included)."""
        with self._lock:
            return {k.value: n for k, n in self._counts.items()}

    @property
    def requests(self) -> int:
        """Requests that were eligible for a fault decision."""
        with self._lock:
            return self._requests

    @property
    def injected(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def as_json(self) -> dict[str, Any]:
        with self._lock:
            counts = {k.value: n for k, n in self._counts.items()}
            return {
                "plan": self.plan.as_json(),
                "counts": counts,
                "injected": sum(counts.values()),
                "requests": self._requests,
            }


# --- fault bodies ---------------------------------------------------------------------------

_5XX: tuple[tuple[int, bytes], ...] = (
    (500, b"simulated upstream failure"),
    (502, b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
    (503, b"simulated service unavailable, retry later"),
)


def http5xx_body(rng: random.Random) -> tuple[int, bytes, str]:
    """A (status, body, media type) server error."""
    status, body = rng.choice(_5XX)
    return status, body, "text/html" if body.startswith(b"<") else "text/plain"


def truncated_body(good: bytes, rng: random.Random) -> bytes:
    """``good`` cut at a random byte: a strict, non-empty prefix never parses as JSON."""
    if len(good) < 2:
        return b"{"
    return good[: rng.randrange(1, len(good))]


def broken_json_body(good: bytes, document: Document, rng: random.Random) -> bytes:
    """The real document with one syntax error (the rest is intact, as a bad proxy might)."""
    variant = rng.randrange(3)
    if document == "data":
        if variant == 0:
            # {"general":{"version":3,,"reload":1,...
            anchor = b'"version":3,'
            if anchor in good:
                return good.replace(anchor, b'"version":3,,', 1)
            return b'{"general": {"version": 3,, "update_timestamp": "2024-01-01T00:00:00Z"}}'
        if variant == 1:
            return good[:-1] + b",}"  # trailing comma before the final brace
        return good + b'{"general":'  # trailing garbage after a complete document
    if variant == 0:
        return b"[," + good[1:] if good.startswith(b"[") else b"[,]"
    if variant == 1:
        return good[:-1] + b",]" if good.endswith(b"]") else b"[1,]"
    return good + b"]"


def non_v3_body(good: bytes, document: Document, rng: random.Random) -> bytes:
    """Valid JSON that is not the expected document.

    Data: a legacy v2-shaped snapshot or a bare JSON array of clients. Transceivers: a JSON
    object instead of the array.
    """
    parsed: Any = orjson.loads(good)
    if document == "transceivers":
        return orjson.dumps({"general": {"version": 2}, "transceivers": parsed})
    pilots = parsed.get("pilots", [])
    controllers = parsed.get("controllers", []) + parsed.get("atis", [])
    if rng.randrange(2) == 0:
        general = parsed.get("general", {})
        clients = [_v2_client(p, "PILOT") for p in pilots]
        clients += [_v2_client(c, "ATC") for c in controllers]
        return orjson.dumps(
            {
                "general": {
                    "version": 2,
                    "reload": 2,
                    "update": general.get("update", ""),
                    "update_timestamp": general.get("update_timestamp", ""),
                    "connected_clients": len(clients),
                    "unique_users": len({c["cid"] for c in clients}),
                },
                "clients": clients,
                "servers": parsed.get("servers", []),
                "prefiles": parsed.get("prefiles", []),
            }
        )
    return orjson.dumps(pilots + controllers)


_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # deflate, no name, no mtime
_BOMB_HEAD = b'{"general": {"version": 3, "update_timestamp": "2024-01-01T00:00:00Z"},'
_BOMB_TAIL = b'"pilots": []}'


@functools.lru_cache(maxsize=2)
def gzip_bomb_body(decoded_bytes: int = GZIP_BOMB_DECODED_BYTES) -> bytes:
    """A gzip stream of a document head, ``decoded_bytes`` of spaces and a tail (~1 MB/GiB).

    After a full flush the compressor starts afresh, so one compressed MiB of spaces can be
    repeated as is: building the bomb takes a checksum pass, not a gigabyte of deflating.
    """
    piece = b" " * (1024 * 1024)
    whole, rest = divmod(decoded_bytes, len(piece))
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = deflater.compress(_BOMB_HEAD) + deflater.flush(zlib.Z_FULL_FLUSH)
    packed_piece = deflater.compress(piece) + deflater.flush(zlib.Z_FULL_FLUSH)
    tail = deflater.compress(b" " * rest + _BOMB_TAIL) + deflater.flush()
    crc = zlib.crc32(_BOMB_HEAD)
    for _ in range(whole):
        crc = zlib.crc32(piece, crc)
    crc = zlib.crc32(b" " * rest + _BOMB_TAIL, crc)
    size = len(_BOMB_HEAD) + decoded_bytes + len(_BOMB_TAIL)
    trailer = crc.to_bytes(4, "little") + (size & 0xFFFFFFFF).to_bytes(4, "little")
    return b"".join([_GZIP_HEADER, head, packed_piece * whole, tail, trailer])


def _v2_client(client: Mapping[str, Any], clienttype: str) -> dict[str, Any]:
    keys = ("cid", "callsign", "name", "server", "latitude", "longitude", "altitude")
    out: dict[str, Any] = {k: client[k] for k in keys if k in client}
    out["clienttype"] = clienttype
    out["time_logon"] = client.get("logon_time")
    out["frequency"] = client.get("frequency", "")
    return out
