"""HTTP client for the VATSIM feed: mirror selection, failover, dedupe and politeness.

The client only moves bytes; decoding the documents is ``feed.decode``'s job. It reads just
``general.update_timestamp`` so an unchanged feed is skipped without a full decode.

Two bounds make sure a hostile or broken host cannot stall or swamp collection: one
``fetch()`` ends by ``fetch_deadline`` seconds (connect and whole bodies, every document and
mirror together), and a body is decoded by ``feed.body`` so that no more than
``max_document_bytes`` decoded bytes are ever held.

Dedupe: a fetched document's ``update_timestamp`` is *offered* (in flight) until the caller
says whether it was stored (``accepted``) or not (``refused``). Only accepted and in-flight
timestamps make a later document a duplicate, so a rejected document never hides a good one
with the same or an earlier timestamp.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx2
import msgspec
import structlog

from vatsim_collector.config import LIVE_MIN_POLL_SECONDS, Settings, is_live_vatsim_host
from vatsim_collector.errors.breaker import BreakerState, CircuitBreaker, CircuitOpenError
from vatsim_collector.errors.exceptions import Category, DataRejected, FeedUnavailable, Severity
from vatsim_collector.errors.scrub import scrub_text
from vatsim_collector.feed.body import BadCompression, BoundedBody, DocumentTooLarge
from vatsim_collector.feed.body import UnsupportedEncoding as _UnsupportedEncoding
from vatsim_collector.feed.limits import FEED_EPOCH
from vatsim_collector.feed.schedule import effective_interval

__all__ = [
    "FeedClient",
    "FeedDeadlineExceeded",
    "FeedDocumentError",
    "FeedDocumentTooLarge",
    "FeedError",
    "FeedTimeout",
    "FetchedFeed",
    "read_update_timestamp",
    "redact_url",
]

log = structlog.get_logger(__name__)

Document = Literal["data", "transceivers"]
_T = TypeVar("_T")
# Refused documents remembered by digest, so one served again is not offered again.
_REFUSED_DIGESTS_KEPT = 64
# Undecided timestamps kept; far more than any pending queue or spool drain holds at once.
_IN_FLIGHT_KEPT = 100_000


class FeedError(FeedUnavailable, wrapper=True):
    """A feed document could not be fetched; the message names the (redacted) URL and why.

    The subclass says what kind of failure it was, so the error layer can classify it
    without parsing messages. When every mirror failed, the first mirror's kind is raised.
    A bare ``FeedError`` says nothing of its kind: its cause is classified, else network.
    """


class FeedTimeout(FeedError):
    """The server did not answer within the configured timeout."""

    category = Category.TIMEOUT
    severity = Severity.MEDIUM
    transient = True


class FeedDeadlineExceeded(FeedTimeout):
    """The whole fetch cycle ran past ``fetch_deadline`` (a host answering too slowly).

    A ``FeedTimeout``, so it is classified ``timeout``; its own class lets a caller decide
    not to spend another deadline retrying at once.
    """


class FeedConnectionError(FeedError):
    """The request failed below HTTP: DNS, refused or reset connection, TLS."""


class FeedHTTPStatusError(FeedError):
    """The server answered with a status other than 200."""

    status_code: int

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message, status_code=status_code)


class FeedDocumentError(DataRejected, FeedError):
    """The server answered 200 with a body that is not the expected document.

    Data rejected first, so it is classified ``decode`` (permanent), not as the feed's
    outage; still a ``FeedError``, which is what the client's callers catch.
    """


class FeedDocumentTooLarge(FeedDocumentError):
    """The body declared or decoded to more than ``max_document_bytes``; it was not kept."""


@dataclass(frozen=True)
class FetchedFeed:
    data: bytes
    transceivers: bytes | None
    update_timestamp: datetime
    # URLs are redacted (no credentials, no query values) so they are safe to log and store.
    data_url: str
    transceivers_url: str | None
    fetched_at: datetime
    transceivers_error: str | None
    # The failure itself, for the error layer to classify; None when transceivers came.
    transceivers_exception: FeedError | None = None


class _General(msgspec.Struct):
    update_timestamp: datetime


class _Head(msgspec.Struct):
    general: _General


_head_decoder = msgspec.json.Decoder(_Head)


def redact_url(url: str) -> str:
    """``url`` without userinfo, fragment or query values, which may carry tokens."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc.rpartition("@")[2]
    query = "&".join(f"{k}=***" for k, _ in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _scrub(text: str, url: str) -> str:
    """Remove anything secret-looking of ``url`` from free text such as an exception message."""
    text = text.replace(url, redact_url(url))
    try:
        parts = urlsplit(url)
    except ValueError:
        return text
    for secret in (parts.password, parts.query, parts.fragment):
        if secret:
            text = text.replace(secret, "***")
    # Libraries quote other URLs, headers and tokens in their messages too.
    return scrub_text(text)


def read_update_timestamp(raw: bytes) -> datetime:
    """``general.update_timestamp`` of a v3 data document (naive stamps are taken as UTC)."""
    stamp = _head_decoder.decode(raw).general.update_timestamp
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


@dataclass(frozen=True)
class _Mirrors:
    data: tuple[str, ...]
    transceivers: tuple[str, ...]


def _url_list(status: Any, key: str) -> tuple[str, ...]:
    data = status.get("data") if isinstance(status, dict) else None
    urls = data.get(key) if isinstance(data, dict) else None
    if not isinstance(urls, list):
        return ()
    return tuple(u for u in urls if isinstance(u, str) and u.startswith(("http://", "https://")))


class FeedClient:
    """Fetches ``vatsim-data.json`` (and transceivers) from a mirror listed in status.json.

    Counters: ``fetches`` (data documents downloaded, duplicates included), ``duplicates``
    (unchanged ``update_timestamp``), ``errors`` (``fetch()`` calls that raised),
    ``transceivers_errors`` and ``status_refreshes``; ``refused_repeats`` (a document that was
    refused served again byte for byte, skipped as a duplicate).

    Dedupe protocol: every ``FetchedFeed`` that ``fetch()`` returns is in flight until the
    caller reports ``accepted(stamp)`` (stored, or already stored) or ``refused(stamp)``
    (rejected or quarantined). A later document is a duplicate when its timestamp is not newer
    than the newest accepted or in-flight one. A refused timestamp is forgotten, so a different
    document with that timestamp is fetched and offered again; the very same bytes are not.
    ``accepted``/``refused`` may be called from any thread.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        status_breaker: CircuitBreaker | None = None,
        transceivers_breaker: CircuitBreaker | None = None,
    ) -> None:
        self.settings = settings
        # Optional guards per dependency: an open breaker skips that document for now
        # (status: keep the mirrors already known; transceivers: store the snapshot without).
        self.status_breaker = status_breaker
        self.transceivers_breaker = transceivers_breaker
        self._rng = rng if rng is not None else random.Random()
        self._clock = clock
        self._sleep = sleep
        self._http = httpx2.AsyncClient(
            transport=transport,
            headers={"User-Agent": settings.user_agent, "Accept-Encoding": "gzip"},
            timeout=settings.http_timeout,
            follow_redirects=True,
        )
        self._mirrors: _Mirrors | None = None
        self._status_loaded_at = 0.0
        self._chosen: dict[Document, str] = {}
        self._dedupe_lock = threading.Lock()
        self._last_accepted: datetime | None = None
        # Offered, not yet decided: timestamp -> digest of the data document.
        self._in_flight: dict[datetime, bytes] = {}
        # Digests of recently refused documents, oldest first; bounded.
        self._refused_digests: OrderedDict[bytes, None] = OrderedDict()
        self._last_live_cycle_at: float | None = None
        self.fetches = 0
        self.duplicates = 0
        self.older = 0  # duplicates older than the newest seen (a lagging mirror)
        self.refused_repeats = 0
        self.errors = 0
        self.transceivers_errors = 0
        self.status_refreshes = 0

    async def __aenter__(self) -> FeedClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def active_urls(self) -> tuple[str, ...]:
        """The mirrors currently chosen (empty before the first fetch)."""
        return tuple(u for u in self._chosen.values() if u)

    @property
    def poll_interval(self) -> float:
        """``settings.poll_interval``, never below the live floor if a live URL is in use."""
        return effective_interval(self.settings, self.active_urls)

    @property
    def last_accepted(self) -> datetime | None:
        """The newest timestamp reported ``accepted``."""
        return self._last_accepted

    @property
    def in_flight(self) -> tuple[datetime, ...]:
        """Timestamps returned by ``fetch()`` and not yet accepted or refused, oldest first."""
        with self._dedupe_lock:
            return tuple(sorted(self._in_flight))

    def accepted(self, stamp: datetime) -> None:
        """The document with ``stamp`` was stored (or was already): never offer it again."""
        with self._dedupe_lock:
            self._in_flight.pop(stamp, None)
            if self._last_accepted is None or stamp > self._last_accepted:
                self._last_accepted = stamp

    def refused(self, stamp: datetime) -> None:
        """The document with ``stamp`` was not stored: forget the stamp, remember the bytes."""
        with self._dedupe_lock:
            digest = self._in_flight.pop(stamp, None)
            if digest is not None:
                self._refused_digests[digest] = None
                while len(self._refused_digests) > _REFUSED_DIGESTS_KEPT:
                    self._refused_digests.popitem(last=False)

    def _newest_known(self) -> datetime | None:
        with self._dedupe_lock:
            known = [*self._in_flight, *([self._last_accepted] if self._last_accepted else [])]
        return max(known, default=None)

    def _implausibly_old(self, stamp: datetime, newest: datetime) -> bool:
        """Too far behind the newest document to be a mirror lagging behind: offered anyway,
        so that ingest quarantines it with its reason instead of skipping it without a word."""
        behind = (newest - stamp).total_seconds()
        return stamp < FEED_EPOCH or behind > self.settings.max_document_age_seconds

    def _offer(self, stamp: datetime, data: bytes) -> bool:
        """Put ``stamp`` in flight; ``False`` when it is not new (the caller skips it)."""
        newest = self._newest_known()
        if newest is not None and stamp <= newest and not self._implausibly_old(stamp, newest):
            # Unchanged, or older: mirrors regenerate independently and one may lag behind
            # another. Either way there is nothing new to store.
            self.duplicates += 1
            if stamp < newest:
                self.older += 1
            return False
        digest = hashlib.blake2b(data, digest_size=16).digest()
        with self._dedupe_lock:
            if digest in self._refused_digests:
                # The document refused before, again: offering it would only be refused again.
                self.duplicates += 1
                self.refused_repeats += 1
                return False
            self._in_flight[stamp] = digest
            while len(self._in_flight) > _IN_FLIGHT_KEPT:
                # Undecided for very long (a caller that never reports): the oldest cannot
                # change the newest, which is all dedupe needs.
                del self._in_flight[min(self._in_flight)]
        return True

    async def fetch(self) -> FetchedFeed | None:
        """One poll cycle. ``None`` means the feed has not changed since the previous cycle.

        Ends by ``settings.fetch_deadline`` seconds after the requests start (raising
        ``FeedDeadlineExceeded`` when the data document did not arrive by then); a returned
        document's timestamp stays in flight until ``accepted`` or ``refused``.
        """
        try:
            return await self._fetch()
        except FeedError:
            self.errors += 1
            raise

    async def _fetch(self) -> FetchedFeed | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.fetch_deadline
        mirrors = await self._current_mirrors(deadline)
        data_candidates = self._candidates("data", mirrors.data)
        polite_wait_from = loop.time()
        await self._respect_live_floor(data_candidates[:1])
        # The polite wait for the live floor is the client's own, not the hosts' slowness.
        deadline += loop.time() - polite_wait_from
        cycle_started = self._clock()
        data_url, data, stamp = await self._first_good(
            "data", data_candidates, read_update_timestamp, deadline
        )
        if is_live_vatsim_host(data_url):
            self._last_live_cycle_at = cycle_started
        self.fetches += 1
        if not self._offer(stamp, data):
            return None
        transceivers: bytes | None = None
        transceivers_url: str | None = None
        transceivers_error: str | None = None
        transceivers_exception: FeedError | None = None
        if self.settings.fetch_transceivers:
            breaker = self.transceivers_breaker
            try:
                probe = breaker.before_call() if breaker else False
                # The same deadline: a slow transceivers host costs the transceivers, never
                # the data document already in hand.
                transceivers_url, transceivers, _ = await self._first_good(
                    "transceivers",
                    self._candidates("transceivers", mirrors.transceivers),
                    _check_transceivers,
                    deadline,
                )
            except CircuitOpenError as exc:
                transceivers_error = str(exc)
            except FeedError as exc:
                if breaker:
                    breaker.on_failure(exc, probe=probe)
                self.transceivers_errors += 1
                transceivers_error = str(exc)
                transceivers_exception = exc
                log.warning("transceivers fetch failed; keeping the data", error=transceivers_error)
            else:
                if breaker:
                    breaker.on_success(probe=probe)
        return FetchedFeed(
            data=data,
            transceivers=transceivers,
            update_timestamp=stamp,
            data_url=redact_url(data_url),
            transceivers_url=redact_url(transceivers_url) if transceivers_url else None,
            fetched_at=datetime.now(UTC),
            transceivers_error=transceivers_error,
            transceivers_exception=transceivers_exception,
        )

    async def _respect_live_floor(self, candidates: list[str]) -> None:
        # The scheduler should already keep the pace; this guards against callers that don't.
        if self._last_live_cycle_at is None or not any(map(is_live_vatsim_host, candidates)):
            return
        wait = self._last_live_cycle_at + LIVE_MIN_POLL_SECONDS - self._clock()
        if wait > 0:
            log.warning("polling the live VATSIM feed too fast; waiting", seconds=round(wait, 3))
            await self._sleep(wait)

    async def _current_mirrors(self, deadline: float) -> _Mirrors:
        now = self._clock()
        due = (
            self._mirrors is None
            or now - self._status_loaded_at >= self.settings.status_refresh_interval
        )
        breaker = self.status_breaker
        known = self._mirrors
        if known is not None and (
            not due or (breaker is not None and breaker.state is BreakerState.OPEN)
        ):
            return known  # fresh enough, or the status host is failing: ask again later
        mirrors = self._mirrors = await self._load_status(deadline)
        self._status_loaded_at = now
        self.status_refreshes += 1
        data, transceivers = mirrors.data, mirrors.transceivers
        self._chosen = {
            "data": self._rng.choice(data) if data else "",
            "transceivers": self._rng.choice(transceivers) if transceivers else "",
        }
        return mirrors

    def _fallback(self, which: Document) -> tuple[str, ...]:
        """The fallback URL, unless it would lead a local (simulated) feed to the live network."""
        url = (
            self.settings.data_fallback_url
            if which == "data"
            else self.settings.transceivers_fallback_url
        )
        if is_live_vatsim_host(url) and not is_live_vatsim_host(self.settings.status_url):
            return ()
        return (url,)

    async def _load_status(self, deadline: float) -> _Mirrors:
        settings = self.settings
        fallback = _Mirrors(self._fallback("data"), self._fallback("transceivers"))
        url = settings.status_url
        breaker = self.status_breaker
        try:
            probe = breaker.before_call() if breaker else False
        except CircuitOpenError:
            return fallback
        try:
            status = msgspec.json.decode(await self._get(url, deadline))
            if breaker:
                breaker.on_success(probe=probe)
        except (FeedError, msgspec.DecodeError) as exc:
            if breaker:
                breaker.on_failure(exc, probe=probe)
            log.warning(
                "status document unavailable; using fallback URLs",
                status_url=redact_url(url),
                error=str(exc) if isinstance(exc, FeedError) else "not JSON",
            )
            return fallback
        data, transceivers = _url_list(status, "v3"), _url_list(status, "transceivers")
        if not data or not transceivers:
            log.warning(
                "status document lacks mirror arrays; using fallback URLs for them",
                status_url=redact_url(url),
                missing=[k for k, v in (("v3", data), ("transceivers", transceivers)) if not v],
            )
        return _Mirrors(data or fallback.data, transceivers or fallback.transceivers)

    def _candidates(self, which: Document, mirrors: tuple[str, ...]) -> list[str]:
        """The chosen mirror, then the others in random order, then the fallback URL."""
        chosen = self._chosen[which]
        others = [u for u in mirrors if u != chosen]
        self._rng.shuffle(others)
        ordered = [chosen, *others] if chosen else others
        return ordered + [u for u in self._fallback(which) if u not in ordered]

    async def _first_good(
        self,
        which: Document,
        candidates: list[str],
        check: Callable[[bytes], _T],
        deadline: float,
    ) -> tuple[str, bytes, _T]:
        if not candidates:
            raise FeedError(
                f"no URL for the {which} document: the status document at "
                f"{redact_url(self.settings.status_url)} offered none, and the live VATSIM "
                "fallback is not used for a local status URL"
            )
        problems: list[FeedError] = []
        for position, url in enumerate(candidates):
            try:
                body = await self._get(url, deadline)
                checked = check(body)
            except FeedDeadlineExceeded as exc:
                problems.append(exc)
                if not any(isinstance(p, FeedDeadlineExceeded) for p in problems[:-1]):
                    # This host used up the cycle; starting the next cycle with it again
                    # would let one slow mirror stall collection for good.
                    self._chosen[which] = candidates[(position + 1) % len(candidates)]
                continue
            except FeedError as exc:
                problems.append(exc)
                continue
            except (msgspec.DecodeError, ValueError) as exc:
                problems.append(
                    FeedDocumentError(f"{redact_url(url)}: unreadable {which} document ({exc})")
                )
                continue
            if problems:
                log.warning(
                    "feed mirror failed; another one answered", failures=[str(p) for p in problems]
                )
            # Stay on the mirror that works rather than retrying a broken one every cycle.
            self._chosen[which] = url
            return url, body, checked
        first = problems[0]
        message = f"could not fetch the {which} document: " + "; ".join(map(str, problems))
        if isinstance(first, FeedHTTPStatusError):
            raise FeedHTTPStatusError(message, first.status_code)
        raise type(first)(message)

    async def _get(self, url: str, deadline: float) -> bytes:
        """The decoded body of ``url``, or a ``FeedError``; ends by ``deadline`` (loop time)."""
        shown = redact_url(url)
        budget = self.settings.fetch_deadline
        if asyncio.get_running_loop().time() >= deadline:
            raise FeedDeadlineExceeded(
                f"{shown}: not requested, the fetch deadline of {budget:g}s had passed"
            )
        try:
            async with asyncio.timeout_at(deadline):
                return await self._download(url, shown)
        except TimeoutError:
            raise FeedDeadlineExceeded(
                f"{shown}: the fetch deadline of {budget:g}s passed before the whole"
                " document arrived"
            ) from None

    async def _download(self, url: str, shown: str) -> bytes:
        limit = self.settings.max_document_bytes
        try:
            async with self._http.stream("GET", url) as response:
                if response.status_code != 200:
                    raise FeedHTTPStatusError(
                        f"{shown}: HTTP {response.status_code} {response.reason_phrase}",
                        response.status_code,
                    )
                encoding = response.headers.get("content-encoding", "")
                declared = response.headers.get("content-length", "")
                if declared.strip().isdigit() and int(declared) > limit:
                    # Said up front: fail before reading a byte of it.
                    raise DocumentTooLarge(limit)
                if response.is_stream_consumed:
                    # An in-process transport (httpx2.MockTransport) hands over a response
                    # it already read and decoded; only its size is left to check.
                    body = BoundedBody(limit)
                    body.feed(response.content)
                    return body.finish()
                body = BoundedBody(limit, encoding)
                # Raw bytes: this module inflates them itself, within the limit.
                async for chunk in response.aiter_raw():
                    body.feed(chunk)
                return body.finish()
        except httpx2.TimeoutException as exc:
            what = type(exc).__name__
            raise FeedTimeout(
                f"{shown}: timed out after {self.settings.http_timeout:g}s ({what})"
            ) from None
        except (httpx2.HTTPError, httpx2.InvalidURL) as exc:
            detail = _scrub(str(exc), url) or type(exc).__name__
            raise FeedConnectionError(f"{shown}: request failed: {detail}") from None
        except DocumentTooLarge as exc:
            raise FeedDocumentTooLarge(f"{shown}: {exc}") from None
        except (BadCompression, _UnsupportedEncoding) as exc:
            raise FeedDocumentError(f"{shown}: {exc}") from None


def _check_transceivers(raw: bytes) -> None:
    if raw.lstrip()[:1] != b"[":
        raise ValueError("expected a JSON array")
