"""The "now" answers rendered once per published live view and served as stored bytes.

``/api/flights``, ``/api/controllers``, ``/api/transceivers``, ``/api/sectors/busiest`` and
``/api/airports/{icao}`` describe the latest committed snapshot, so every request between two
snapshots would render the same answer again (26 ms of Python for 640 pilots, BENCHMARKS.md). Each
answer variant (a path with its validated query) is rendered once, with the serialiser FastAPI
uses for a ``response_model`` (so the bytes are exactly what the uncached route returned),
gzipped once when a client first asks for gzip, and kept with a strong ``ETag`` hashed from the
body: the same view gives the same tag on every node, and a view changed without a new snapshot
(a member forgotten) gives another.

The cache is keyed on the published objects themselves, compared by identity: the ingestor
replaces ``live`` whole after every commit (and when a member is forgotten), a
``pipeline.follower.Follower`` replaces it after every refresh on an API node, and
``last_transceivers`` is replaced with it. The first request that finds other objects than the
ones its entries were rendered from drops every entry, so no answer outlives the view it came
from, whichever path published the new one, and no hook can be forgotten. Only the variants of
the current view are kept, at most ``max_variants`` of them, least recently used first out.

One caller renders a missing variant while the others wait for it (a new snapshot meeting
sixteen concurrent clients costs one rendering, not sixteen), on the thread pool for ``async``
routes, so that the event loop (other requests, the collector's poll) never waits for a
rendering. Access rules run before a route, so a request refused by them never reaches these
bytes.

``/api/status`` is not one view's answer; ``api/status_cache.py`` serves it with the same
``Rendered`` answers, compared by their bytes.

``Cache-Control: public, max-age=0, must-revalidate``: the view changes at a moment the API
does not know in advance (the poll's phase, the follower's lag), so any positive max-age would
let a cache show a superseded snapshot for that long; revalidating costs a 304 of a few hundred
bytes, served from here without rendering. ``SecurityHeaders`` still turns it into
``no-store`` for requests that carry a key.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request, Response, status
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

CACHE_CONTROL = "public, max-age=0, must-revalidate"
MEDIA_TYPE = "application/json"
MAX_VARIANTS = 64
# Level 6 (gzip's default) is within a few per cent of 9 on JSON, at a third of the time.
GZIP_LEVEL = 6
_GZIP_SUFFIX = "-gzip"


def render_json(model: BaseModel) -> bytes:
    """``model`` as FastAPI's response-model fast path writes it (pydantic's JSON, aliases)."""
    return model.__pydantic_serializer__.to_json(model, by_alias=True)


def body_tag(body: bytes) -> str:
    """A strong entity tag for ``body``: its content, hashed."""
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` value admits gzip (``gzip`` or ``*``, q above 0)."""
    wildcard: bool | None = None
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        coding = coding.strip().lower()
        if coding not in ("gzip", "x-gzip", "*"):
            continue
        accepted = _quality(params) > 0
        if coding == "*":
            wildcard = accepted
        else:
            return accepted
    return bool(wildcard)


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 0.0  # a malformed weight accepts nothing rather than guess
    return 1.0


def _matches(if_none_match: str, tags: tuple[str, ...]) -> bool:
    """``If-None-Match`` compared weakly, as RFC 9110 asks for it."""
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*":
            return True
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate in tags:
            return True
    return False


@dataclass
class Rendered:
    """One answer variant: its bytes, and its gzip copy once a client has asked for one."""

    body: bytes
    etag: str
    _gzipped: bytes | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def of(cls, body: bytes) -> Rendered:
        return cls(body=body, etag=body_tag(body))

    @property
    def gzip_etag(self) -> str:
        # A strong tag names one representation: the gzip copy is another one.
        return self.etag[:-1] + _GZIP_SUFFIX + '"'

    def gzipped(self) -> bytes:
        with self._lock:
            if self._gzipped is None:
                # mtime 0: the same body always compresses to the same bytes.
                self._gzipped = gzip.compress(self.body, compresslevel=GZIP_LEVEL, mtime=0)
            return self._gzipped

    def needs_gzip(self, request: Request) -> bool:
        """Whether answering ``request`` will compress the body first."""
        return self._gzipped is None and accepts_gzip(request.headers.get("accept-encoding", ""))

    def response(self, request: Request) -> Response:
        """200 with the body (gzipped when accepted), or 304 when the client holds it."""
        use_gzip = accepts_gzip(request.headers.get("accept-encoding", ""))
        etag = self.gzip_etag if use_gzip else self.etag
        headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "Vary": "Accept-Encoding"}
        if_none_match = request.headers.get("if-none-match")
        if if_none_match is not None and _matches(if_none_match, (self.etag, self.gzip_etag)):
            return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
        if use_gzip:
            headers["Content-Encoding"] = "gzip"
            return Response(self.gzipped(), media_type=MEDIA_TYPE, headers=headers)
        return Response(self.body, media_type=MEDIA_TYPE, headers=headers)


class _Pending:
    """A variant being rendered: later callers wait for the first one's result."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.rendered: Rendered | None = None


class LiveCache:
    """Rendered answer variants of the currently published live objects."""

    def __init__(self, *, max_variants: int = MAX_VARIANTS) -> None:
        if max_variants < 1:
            raise ValueError(f"max_variants must be at least 1, got {max_variants}")
        self.max_variants = max_variants
        self._lock = threading.Lock()
        self._sources: tuple[object, ...] = ()
        self._entries: OrderedDict[Hashable, Rendered] = OrderedDict()
        self._pending: dict[Hashable, _Pending] = {}
        # What was rendered and what was served from memory: the figures a test or a bench
        # reads to tell a cached answer from a fresh one.
        self.renders = 0
        self.hits = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(
        self, sources: tuple[object, ...], key: Hashable, render: Callable[[], bytes]
    ) -> Rendered:
        """The variant ``key`` of the view made of ``sources``, rendered by ``render`` (which
        must read only those objects, or what is at least as new) if not held yet."""
        with self._lock:
            found = self._held(sources, key)
            if found is not None:
                return found
            pending = self._pending.get(key)
            mine = pending is None
            if pending is None:
                pending = self._pending[key] = _Pending()
        if not mine:
            pending.done.wait()
            if pending.rendered is not None:
                return pending.rendered
            # The renderer failed: fail (or succeed) on our own account.
            return Rendered.of(render())
        try:
            rendered = Rendered.of(render())
            pending.rendered = rendered
        finally:
            with self._lock:
                if self._pending.get(key) is pending:
                    del self._pending[key]
                if pending.rendered is not None and self._same(sources):
                    self._store(key, pending.rendered)
                self.renders += 1
            pending.done.set()
        return rendered

    def peek(self, sources: tuple[object, ...], key: Hashable) -> Rendered | None:
        """The variant ``key`` of the view made of ``sources`` if it is held; never waits."""
        with self._lock:
            return self._held(sources, key)

    def _held(self, sources: tuple[object, ...], key: Hashable) -> Rendered | None:
        """Under the lock: the held variant ``key`` of ``sources``' view, counted as a hit."""
        self._follow(sources)
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
            self.hits += 1
        return found

    def respond(
        self,
        request: Request,
        sources: tuple[object, ...],
        key: Hashable,
        render: Callable[[], BaseModel],
    ) -> Response:
        """A plain-``def`` route's answer (it runs on the thread pool, where it may wait): the
        cached variant ``key``, rendered from ``render``'s model."""
        return self.get(sources, key, lambda: render_json(render())).response(request)

    async def respond_async(
        self,
        request: Request,
        sources: tuple[object, ...],
        key: Hashable,
        render: Callable[[], BaseModel],
    ) -> Response:
        """An ``async`` route's answer. A variant not held yet is rendered (or waited for) on
        the thread pool, as is its first gzip copy: on the event loop, 2,000 pilots' rendering
        would stall every other request, and the collector's own poll, for tens of ms."""
        rendered = self.peek(sources, key)
        if rendered is None:
            rendered = await run_in_threadpool(
                self.get, sources, key, lambda: render_json(render())
            )
        if rendered.needs_gzip(request):
            await run_in_threadpool(rendered.gzipped)
        return rendered.response(request)

    def _same(self, sources: tuple[object, ...]) -> bool:
        current = self._sources
        return len(current) == len(sources) and all(
            a is b for a, b in zip(current, sources, strict=True)
        )

    def _follow(self, sources: tuple[object, ...]) -> None:
        if not self._same(sources):
            # A new view was published: what was rendered from the old one is gone. Requests
            # still rendering from the old one find it superseded and do not store.
            self._entries.clear()
            self._pending.clear()
            self._sources = sources

    def _store(self, key: Hashable, rendered: Rendered) -> None:
        self._entries[key] = rendered
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_variants:
            self._entries.popitem(last=False)


class LiveFastPath:
    """Pure ASGI: a plain ``GET`` of a path in ``answers`` (no query string) is answered from
    the live cache without FastAPI's routing and dependency solving, which were most of what
    a cached answer still cost (about 0.3 ms of 0.45, BENCHMARKS.md). ``answers`` are the
    routes' own functions, so both ways give the same bytes and tags; anything else (a query,
    another method) goes on to the route.

    Install it innermost (``add_middleware`` before every other): every access rule, limit
    and header middleware runs before it, as before a route.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        answers: Mapping[str, Callable[[Any, Request], Awaitable[Response]]],
    ) -> None:
        self.app = app
        self.answers = dict(answers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = self.answers.get(scope["path"]) if scope["type"] == "http" else None
        if answer is None or scope["method"] != "GET" or scope.get("query_string"):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        response = await answer(request.app.state.api_context, request)
        await response(scope, receive, send)
