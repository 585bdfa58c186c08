from __future__ import annotations

import gzip
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx2
import orjson
import pytest

from simserver import running_simulator
from vatsim_collector.config import LIVE_MIN_POLL_SECONDS, Settings
from vatsim_collector.feed.client import (
    FeedClient,
    FeedDocumentError,
    FeedError,
    FeedHTTPStatusError,
    FeedTimeout,
    redact_url,
)
from vatsim_collector.feed.decode import decode_snapshot, decode_transceivers
from vatsim_collector.feed.schedule import FixedRateSchedule, effective_interval

STATUS = "http://feed.test/status.json"
DATA_FALLBACK = "http://fallback.test/v3/vatsim-data.json"
TRANSCEIVERS_FALLBACK = "http://fallback.test/v3/transceivers-data.json"
MIRRORS = [f"http://m{i}.test/v3/vatsim-data.json" for i in range(6)]
T_MIRRORS = [f"http://m{i}.test/v3/transceivers-data.json" for i in range(6)]
STAMP_1 = "2024-05-01T18:00:00.1234567Z"
STAMP_2 = "2024-05-01T18:00:15.1234567Z"

Handler = Callable[[httpx2.Request], httpx2.Response]


def _settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "status_url": STATUS,
        "data_fallback_url": DATA_FALLBACK,
        "transceivers_fallback_url": TRANSCEIVERS_FALLBACK,
        "poll_interval": 1.0,
        "status_refresh_interval": 600.0,
        "http_timeout": 2.0,
    }
    values.update(overrides)
    # No .env: a developer's local configuration must not change what the tests see.
    return Settings(_env_file=None, **values)


def _data(stamp: str = STAMP_1) -> bytes:
    return orjson.dumps({"general": {"version": 3, "update_timestamp": stamp}, "pilots": []})


def _status(data: list[str] | None = None, transceivers: list[str] | None = None) -> bytes:
    doc: dict[str, Any] = {"servers": ["http://m0.test/v3/vatsim-servers.json"]}
    if data is not None:
        doc["v3"] = data
    if transceivers is not None:
        doc["transceivers"] = transceivers
    return orjson.dumps({"data": doc, "user": ["http://m0.test/v2/members/"]})


TRANSCEIVERS_DOC = orjson.dumps(
    [
        {
            "callsign": "BAW1",
            "transceivers": [
                {
                    "id": 0,
                    "frequency": 122800010,
                    "latDeg": 51.0,
                    "lonDeg": 0.0,
                    "heightMslM": 100.0,
                    "heightAglM": 10.0,
                }
            ],
        }
    ]
)


class FakeFeed:
    """A MockTransport handler: serves URL -> response factory and records every request."""

    def __init__(self) -> None:
        self.requests: list[httpx2.Request] = []
        self.routes: dict[str, Handler] = {}
        self.stamp = STAMP_1

    def serve(self, url: str, body: bytes | Handler, status: int = 200) -> None:
        if callable(body):
            self.routes[url] = body
        else:
            self.routes[url] = lambda _req: httpx2.Response(status, content=body)

    def serve_data(self, url: str) -> None:
        self.routes[url] = lambda _req: httpx2.Response(200, content=_data(self.stamp))

    def standard(self, mirrors: int = 3) -> None:
        self.serve(STATUS, _status(MIRRORS[:mirrors], T_MIRRORS[:mirrors]))
        for url in (*MIRRORS, DATA_FALLBACK):
            self.serve_data(url)
        for url in (*T_MIRRORS, TRANSCEIVERS_FALLBACK):
            self.serve(url, TRANSCEIVERS_DOC)

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        route = self.routes.get(str(request.url))
        if route is None:
            return httpx2.Response(404, content=b"not found")
        return route(request)

    def urls(self) -> list[str]:
        return [str(r.url) for r in self.requests]

    def count(self, url: str) -> int:
        return self.urls().count(url)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _client(
    feed: FakeFeed,
    settings: Settings | None = None,
    *,
    seed: int = 0,
    clock: FakeClock | None = None,
) -> FeedClient:
    clock = clock or FakeClock()
    return FeedClient(
        settings or _settings(),
        transport=httpx2.MockTransport(feed),
        rng=random.Random(seed),
        clock=clock,
        sleep=clock.sleep,
    )


async def _chosen_data_mirror(seed: int) -> str:
    feed = FakeFeed()
    feed.standard(mirrors=6)
    async with _client(feed, seed=seed) as client:
        fetched = await client.fetch()
    assert fetched is not None
    return fetched.data_url


async def test_mirror_is_chosen_at_random_and_reproducibly_per_seed() -> None:
    picks = [await _chosen_data_mirror(seed) for seed in range(12)]
    assert set(picks) <= set(MIRRORS)
    assert len(set(picks)) > 1, "different seeds should spread over the mirrors"
    assert [await _chosen_data_mirror(seed) for seed in range(12)] == picks


async def test_status_is_refreshed_after_the_interval_and_not_before() -> None:
    feed, clock = FakeFeed(), FakeClock()
    feed.standard()
    async with _client(feed, _settings(status_refresh_interval=300.0), clock=clock) as client:
        await client.fetch()
        assert feed.count(STATUS) == 1
        clock.now += 299.0
        await client.fetch()
        assert feed.count(STATUS) == 1
        clock.now += 1.0
        await client.fetch()
        assert feed.count(STATUS) == 2
        assert client.status_refreshes == 2


@pytest.mark.parametrize(
    "status_route",
    [
        pytest.param((b"boom", 500), id="http-500"),
        pytest.param((_status(), 200), id="no-arrays"),
        pytest.param((_status([], []), 200), id="empty-arrays"),
        pytest.param((b"<html>maintenance</html>", 200), id="not-json"),
    ],
)
async def test_fallback_urls_when_status_is_unusable(status_route: tuple[bytes, int]) -> None:
    feed = FakeFeed()
    feed.standard()
    feed.serve(STATUS, *status_route)
    async with _client(feed) as client:
        fetched = await client.fetch()
    assert fetched is not None
    assert fetched.data_url == DATA_FALLBACK
    assert fetched.transceivers_url == TRANSCEIVERS_FALLBACK
    assert feed.urls() == [STATUS, DATA_FALLBACK, TRANSCEIVERS_FALLBACK]


async def test_status_with_only_data_mirrors_falls_back_for_transceivers() -> None:
    feed = FakeFeed()
    feed.standard()
    feed.serve(STATUS, _status(MIRRORS[:1]))
    async with _client(feed) as client:
        fetched = await client.fetch()
    assert fetched is not None
    assert (fetched.data_url, fetched.transceivers_url) == (MIRRORS[0], TRANSCEIVERS_FALLBACK)


@pytest.mark.parametrize("seed", range(5))
async def test_failing_mirror_falls_back_to_another_mirror(seed: int) -> None:
    feed = FakeFeed()
    feed.standard(mirrors=3)
    feed.serve(MIRRORS[0], b"down", 503)
    feed.serve(MIRRORS[1], b"<html>not the feed</html>")
    async with _client(feed, seed=seed) as client:
        fetched = await client.fetch()
        assert fetched is not None
        assert fetched.data_url == MIRRORS[2]
        assert feed.count(DATA_FALLBACK) == 0
        # The working mirror is kept, so the broken ones are not retried every cycle.
        before = len(feed.requests)
        feed.stamp = STAMP_2
        await client.fetch()
        assert feed.urls()[before] == MIRRORS[2]
        assert client.errors == 0


async def test_all_mirrors_failing_uses_the_fallback_url() -> None:
    feed = FakeFeed()
    feed.standard(mirrors=2)
    for url in MIRRORS[:2]:
        feed.serve(url, b"down", 500)
    async with _client(feed) as client:
        fetched = await client.fetch()
    assert fetched is not None
    assert fetched.data_url == DATA_FALLBACK


async def test_user_agent_and_accept_encoding_are_sent() -> None:
    feed = FakeFeed()
    feed.standard()
    settings = _settings(user_agent="collector-test/9 (+mailto:ops@example.org)")
    async with _client(feed, settings) as client:
        await client.fetch()
    assert len(feed.requests) == 3
    for request in feed.requests:
        assert request.headers["user-agent"] == "collector-test/9 (+mailto:ops@example.org)"
        assert request.headers["accept-encoding"] == "gzip"


async def test_gzip_encoded_responses_are_decoded() -> None:
    feed = FakeFeed()
    feed.standard(mirrors=1)
    gz = {"content-encoding": "gzip", "content-type": "application/json"}
    feed.serve(
        MIRRORS[0], lambda _r: httpx2.Response(200, content=gzip.compress(_data()), headers=gz)
    )
    feed.serve(
        T_MIRRORS[0],
        lambda _r: httpx2.Response(200, content=gzip.compress(TRANSCEIVERS_DOC), headers=gz),
    )
    async with _client(feed) as client:
        fetched = await client.fetch()
    assert fetched is not None
    assert fetched.data == _data()
    assert fetched.transceivers == TRANSCEIVERS_DOC
    assert fetched.update_timestamp == datetime(2024, 5, 1, 18, 0, 0, 123457, tzinfo=UTC)


async def test_duplicates_are_counted_and_skip_transceivers() -> None:
    feed = FakeFeed()
    feed.standard(mirrors=1)
    async with _client(feed) as client:
        first = await client.fetch()
        assert first is not None
        assert first.transceivers == TRANSCEIVERS_DOC
        assert await client.fetch() is None
        assert await client.fetch() is None
        feed.stamp = STAMP_2
        third = await client.fetch()
        assert third is not None
        assert third.update_timestamp > first.update_timestamp
        assert (client.fetches, client.duplicates, client.errors) == (4, 2, 0)
    assert feed.count(MIRRORS[0]) == 4
    assert feed.count(T_MIRRORS[0]) == 2


async def test_transceivers_failure_keeps_the_data() -> None:
    feed = FakeFeed()
    feed.standard(mirrors=1)
    feed.serve(T_MIRRORS[0], b"nope", 500)
    feed.serve(TRANSCEIVERS_FALLBACK, b"{}")
    async with _client(feed) as client:
        fetched = await client.fetch()
        assert client.transceivers_errors == 1
        assert client.errors == 0
    assert fetched is not None
    assert fetched.data == _data()
    assert fetched.transceivers is None
    assert fetched.transceivers_url is None
    assert fetched.transceivers_error is not None
    assert T_MIRRORS[0] in fetched.transceivers_error
    assert "HTTP 500" in fetched.transceivers_error


async def test_transceivers_can_be_disabled() -> None:
    feed = FakeFeed()
    feed.standard(mirrors=1)
    async with _client(feed, _settings(fetch_transceivers=False)) as client:
        fetched = await client.fetch()
    assert fetched is not None
    assert fetched.transceivers is None
    assert fetched.transceivers_error is None
    assert feed.urls() == [STATUS, MIRRORS[0]]


def _raise_timeout(request: httpx2.Request) -> httpx2.Response:
    raise httpx2.ReadTimeout("read timed out", request=request)


@pytest.mark.parametrize(
    ("route", "expected", "kind"),
    [
        pytest.param((b"upstream broke", 500), "HTTP 500", FeedHTTPStatusError, id="http-500"),
        pytest.param((_raise_timeout,), "timed out after 2s", FeedTimeout, id="timeout"),
        pytest.param(
            (b'{"general": {"version": 3}}', 200),
            "update_timestamp",
            FeedDocumentError,
            id="no-stamp",
        ),
        pytest.param((b"[1, 2]", 200), "unreadable data document", FeedDocumentError, id="not-v3"),
    ],
)
async def test_data_failures_raise_feed_error_naming_the_url(
    route: tuple[Any, ...], expected: str, kind: type[FeedError]
) -> None:
    feed = FakeFeed()
    feed.standard(mirrors=1)
    feed.serve(MIRRORS[0], *route)
    feed.serve(DATA_FALLBACK, b"also down", 502)
    async with _client(feed) as client:
        with pytest.raises(FeedError) as info:
            await client.fetch()
        assert client.errors == 1
        assert client.fetches == 0
    message = str(info.value)
    # The first mirror's failure decides the kind; the message lists every mirror's.
    assert type(info.value) is kind
    if isinstance(info.value, FeedHTTPStatusError):
        assert info.value.status_code == 500
    assert MIRRORS[0] in message
    assert expected in message
    assert f"{DATA_FALLBACK}: HTTP 502" in message
    # No transceivers request when the data document failed.
    assert feed.count(T_MIRRORS[0]) == 0


async def test_secrets_in_urls_never_reach_error_messages() -> None:
    secret_url = "http://user:secret@private.test/v3/vatsim-data.json?token=hunter2"

    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError(f"cannot connect to {secret_url}", request=request)

    feed = FakeFeed()
    feed.serve(STATUS, b"", 500)
    feed.routes[secret_url] = refuse
    feed.routes["http://private.test/v3/vatsim-data.json?token=hunter2"] = refuse
    settings = _settings(data_fallback_url=secret_url, status_url=secret_url.replace("data", "x"))
    async with _client(feed, settings) as client:
        with pytest.raises(FeedError) as info:
            await client.fetch()
    message = str(info.value)
    assert "private.test/v3/vatsim-data.json" in message
    for secret in ("secret", "hunter2", "user:"):
        assert secret not in message
        assert secret not in repr(info.value)
    # The httpx exception (which carries the raw URL) is not chained onto the FeedError.
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_redact_url() -> None:
    assert (
        redact_url("https://a:b@h.test:8443/p?x=1&y=2#frag") == "https://h.test:8443/p?x=***&y=***"
    )
    assert redact_url("https://data.vatsim.net/v3/vatsim-data.json") == (
        "https://data.vatsim.net/v3/vatsim-data.json"
    )


async def test_no_drift_grid_with_fake_clock() -> None:
    clock = FakeClock(100.0)
    schedule = FixedRateSchedule(15.0, clock, sleep=clock.sleep)
    ticks = []
    for work in (0.3, 4.0, 14.9, 0.0, 7.77):
        clock.now += work  # the poll cycle's own duration
        ticks.append(await schedule.wait_next())
        assert clock.now == ticks[-1]
    assert ticks == [115.0, 130.0, 145.0, 160.0, 175.0]
    assert schedule.skipped == 0


async def test_overrun_skips_missed_ticks_instead_of_bursting() -> None:
    clock = FakeClock(0.0)
    schedule = FixedRateSchedule(15.0, clock, sleep=clock.sleep)
    clock.now += 40.0  # overran ticks at 15 and 30
    assert await schedule.wait_next() == 45.0
    assert schedule.skipped == 2
    assert clock.sleeps == [5.0]
    clock.now += 1.0
    assert await schedule.wait_next() == 60.0
    assert schedule.skipped == 2
    # Landing exactly on a later tick fires it at once instead of waiting a further interval.
    clock.now = 90.0
    assert await schedule.wait_next() == 90.0
    assert schedule.skipped == 3


async def test_set_interval_regrids_from_the_last_tick() -> None:
    clock = FakeClock(0.0)
    schedule = FixedRateSchedule(1.0, clock, sleep=clock.sleep)
    assert await schedule.wait_next() == 1.0
    schedule.set_interval(15.0)
    assert await schedule.wait_next() == 16.0
    assert await schedule.wait_next() == 31.0
    with pytest.raises(ValueError, match="positive"):
        schedule.set_interval(0)


def test_effective_interval_keeps_the_live_floor() -> None:
    local = _settings(poll_interval=1.0)
    assert effective_interval(local) == 1.0
    assert effective_interval(local, ["http://127.0.0.1:8080/v3/vatsim-data.json"]) == 1.0
    live_mirror = "https://data.vatsim.net/v3/vatsim-data.json"
    assert effective_interval(local, [live_mirror]) == LIVE_MIN_POLL_SECONDS
    assert effective_interval(_settings(poll_interval=60.0), [live_mirror]) == 60.0
    live = _settings(poll_interval=20.0, status_url="https://status.vatsim.net/status.json")
    assert effective_interval(live) == 20.0


async def test_client_enforces_live_floor_for_vatsim_mirrors_from_a_local_status() -> None:
    live_data = "https://data.vatsim.net/v3/vatsim-data.json"
    live_transceivers = "https://data.vatsim.net/v3/transceivers-data.json"
    feed, clock = FakeFeed(), FakeClock()
    feed.serve(STATUS, _status([live_data], [live_transceivers]))
    feed.serve_data(live_data)
    feed.serve(live_transceivers, TRANSCEIVERS_DOC)
    async with _client(feed, _settings(poll_interval=1.0), clock=clock) as client:
        await client.fetch()
        assert client.poll_interval == LIVE_MIN_POLL_SECONDS
        clock.now += 1.0
        await client.fetch()
    assert clock.sleeps == [LIVE_MIN_POLL_SECONDS - 1.0]


async def test_against_the_real_simulator_over_http() -> None:
    with running_simulator(seed=1, speed=0) as base_url:
        settings = _settings(
            status_url=f"{base_url}/status.json",
            data_fallback_url=f"{base_url}/missing-data.json",
            transceivers_fallback_url=f"{base_url}/missing-transceivers.json",
        )
        async with FeedClient(settings) as client:
            first = await client.fetch()
            assert first is not None
            assert first.data_url == f"{base_url}/v3/vatsim-data.json"
            assert await client.fetch() is None
            async with httpx2.AsyncClient() as http:
                tick = await http.post(f"{base_url}/_sim/tick")
            assert tick.status_code == 200
            second = await client.fetch()
            assert second is not None
            assert (client.fetches, client.duplicates, client.errors) == (3, 1, 0)
    assert second.update_timestamp > first.update_timestamp
    assert decode_snapshot(second.data).general.update_timestamp == second.update_timestamp
    assert second.transceivers is not None
    stations = decode_transceivers(second.transceivers)
    assert stations
    assert second.transceivers_error is None


# --- dedupe against accepted and in-flight timestamps only ------------------------------

FUTURE = "2099-01-01T00:00:00Z"


def _v2_data(stamp: str = STAMP_1) -> bytes:
    return orjson.dumps({"general": {"version": 2, "update_timestamp": stamp}, "clients": []})


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_a_refused_v2_document_does_not_hide_the_v3_one_with_the_same_stamp() -> None:
    feed = FakeFeed()
    feed.standard(mirrors=1)
    feed.serve(MIRRORS[0], _v2_data(STAMP_1))
    async with _client(feed) as client:
        legacy = await client.fetch()
        assert legacy is not None
        assert legacy.data == _v2_data(STAMP_1)
        feed.serve(MIRRORS[0], _data(STAMP_1))
        # Still undecided (queued for the writer): the same stamp is not offered twice.
        assert await client.fetch() is None
        client.refused(legacy.update_timestamp)
        real = await client.fetch()
        assert real is not None
        assert real.data == _data(STAMP_1)
        assert real.update_timestamp == legacy.update_timestamp
        client.accepted(real.update_timestamp)
        assert await client.fetch() is None
        assert client.last_accepted == real.update_timestamp
        assert client.in_flight == ()


async def test_a_refused_future_document_does_not_hide_later_real_ones() -> None:
    feed = FakeFeed()
    feed.standard(mirrors=1)
    feed.serve(MIRRORS[0], _data(FUTURE))
    async with _client(feed) as client:
        future = await client.fetch()
        assert future is not None
        assert future.update_timestamp == _stamp(FUTURE)
        client.refused(future.update_timestamp)
        feed.serve_data(MIRRORS[0])
        stored: list[datetime] = []
        for stamp in (STAMP_1, STAMP_2):
            feed.stamp = stamp
            fetched = await client.fetch()
            assert fetched is not None
            client.accepted(fetched.update_timestamp)
            stored.append(fetched.update_timestamp)
        assert stored == sorted(stored)
        assert client.last_accepted == stored[-1]


async def test_accepted_stamps_skip_duplicates_and_older_documents_as_before() -> None:
    feed = FakeFeed()
    feed.standard(mirrors=1)
    feed.stamp = STAMP_2
    async with _client(feed) as client:
        fetched = await client.fetch()
        assert fetched is not None
        client.accepted(fetched.update_timestamp)
        assert await client.fetch() is None
        feed.stamp = STAMP_1  # a lagging mirror
        assert await client.fetch() is None
        assert (client.duplicates, client.older, client.refused_repeats) == (2, 1, 0)


@pytest.mark.parametrize("stamp", ["1970-01-01T00:00:00Z", "0001-01-01T00:00:00Z"])
async def test_an_implausibly_old_document_is_offered_not_skipped_silently(stamp: str) -> None:
    feed = FakeFeed()
    feed.standard(mirrors=1)
    feed.stamp = STAMP_2
    async with _client(feed) as client:
        fetched = await client.fetch()
        assert fetched is not None
        client.accepted(fetched.update_timestamp)
        # A mirror a few seconds behind is a duplicate, as before ...
        feed.stamp = STAMP_1
        assert await client.fetch() is None
        # ... but no mirror lags by decades: ingest must see it, to quarantine it with a reason.
        feed.stamp = stamp
        ancient = await client.fetch()
        assert ancient is not None
        assert ancient.update_timestamp == _stamp(stamp)
        client.refused(ancient.update_timestamp)
        assert await client.fetch() is None, "the same refused document is not offered again"
        assert client.last_accepted == fetched.update_timestamp


async def test_the_same_refused_document_served_again_is_not_offered_again() -> None:
    feed = FakeFeed()
    feed.standard(mirrors=1)
    feed.serve(MIRRORS[0], _v2_data(STAMP_1))
    async with _client(feed) as client:
        legacy = await client.fetch()
        assert legacy is not None
        client.refused(legacy.update_timestamp)
        # A mirror stuck on the bad document would otherwise have it refused every cycle.
        assert await client.fetch() is None
        assert (client.duplicates, client.refused_repeats) == (1, 1)
        feed.serve(MIRRORS[0], _data(STAMP_1))
        assert await client.fetch() is not None


async def test_several_documents_can_wait_for_the_writer_at_once() -> None:
    feed = FakeFeed()
    feed.standard(mirrors=1)
    async with _client(feed) as client:
        first = await client.fetch()
        feed.stamp = STAMP_2
        second = await client.fetch()
        assert first is not None
        assert second is not None
        assert client.in_flight == (first.update_timestamp, second.update_timestamp)
        feed.stamp = STAMP_1
        assert await client.fetch() is None  # older than one still waiting
        client.accepted(first.update_timestamp)
        client.refused(second.update_timestamp)
        assert client.in_flight == ()
        assert client.last_accepted == first.update_timestamp
        # Deciding an unknown stamp changes nothing and does not fail.
        client.refused(_stamp(FUTURE))
        assert client.last_accepted == first.update_timestamp
