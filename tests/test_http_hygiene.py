"""HTTP hygiene: who the client is behind proxies, redirects, security headers, the docs page.

The rate-limit and redirect tests talk to a real uvicorn server on a free 127.0.0.1 port,
started as the service starts it (``proxy_headers=False``: forwarded headers are the app's to
judge), so the peer address is a real one.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from vatsim_collector.api import create_app
from vatsim_collector.api.forwarded import MAX_FORWARDED_HOPS, TrustedProxies
from vatsim_collector.api.limits import TokenBuckets
from vatsim_collector.api.routes_docs import CONTENT_SECURITY_POLICY as DOCS_CSP
from vatsim_collector.api.routes_web import CONTENT_SECURITY_POLICY as DASHBOARD_CSP
from vatsim_collector.pipeline.ingest import Ingestor

READ_KEY = "reader-5c1e"
ADMIN_KEY = "admin-9a7f"
KEYS = [("read", READ_KEY), ("admin", ADMIN_KEY)]
PER_MINUTE = 2


class FrozenClock:
    """The rate limit's clock, held still: no bucket refills during a test."""

    def __call__(self) -> float:
        return 1000.0


def app_for(ingestor: Ingestor, **options: Any) -> FastAPI:
    options.setdefault("api_keys", KEYS)
    return create_app(ingestor, stale_after=10**9, **options)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serving(app: FastAPI) -> Iterator[httpx2.Client]:
    """``app`` on a real uvicorn server, and a client for it; the server is always stopped."""
    port = _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, proxy_headers=False, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="hygiene-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(20)
    assert not thread.is_alive(), "the test server did not stop"


def statuses(client: httpx2.Client, forwarded: list[str]) -> list[int]:
    return [
        client.get("/api/flights", headers={"X-Forwarded-For": value}).status_code
        for value in forwarded
    ]


# who the client is -----------------------------------------------------------------------


def test_forwarded_for_from_an_untrusted_peer_does_not_change_the_bucket(
    ingestor: Ingestor,
) -> None:
    app = app_for(ingestor, rate_limit_per_minute=PER_MINUTE, limiter_clock=FrozenClock())
    with serving(app) as client:
        spoofed = [f"198.51.100.{n}" for n in range(1, 11)]
        # Default: no trusted proxies. Ten made-up addresses are still the one peer.
        assert statuses(client, spoofed) == [200] * PER_MINUTE + [429] * (10 - PER_MINUTE)
        assert client.get("/api/flights").status_code == 429


def test_forwarded_for_from_a_trusted_proxy_counts_only_the_first_untrusted_hop(
    ingestor: Ingestor,
) -> None:
    app = app_for(
        ingestor,
        rate_limit_per_minute=PER_MINUTE,
        limiter_clock=FrozenClock(),
        trusted_proxies="127.0.0.1, 10.0.0.0/8",
    )
    with serving(app) as client:
        # The client wrote the left part; our proxies (10.x, then the peer) appended the rest.
        chain = [f"203.0.113.{n}, 192.0.2.7, 10.4.4.4" for n in range(1, 6)]
        assert statuses(client, chain) == [200] * PER_MINUTE + [429] * (5 - PER_MINUTE)
        # Another client behind the same proxies has a bucket of its own.
        assert statuses(client, ["192.0.2.8, 10.4.4.4"]) == [200]
        # The proxy itself, without the header, is a client like any other.
        assert client.get("/api/flights").status_code == 200
        # Garbage in the header is never an identity: the walk stops at the last good hop, so
        # three different garbage values share the bucket of 10.4.4.4.
        garbage = ["not-an-address, 10.4.4.4", "also-not, 10.4.4.4", "x, 10.4.4.4"]
        assert statuses(client, garbage) == [200] * PER_MINUTE + [429]


def test_trusted_proxies_walk_from_the_right_and_stop_at_the_first_untrusted_hop() -> None:
    proxies = TrustedProxies.parse("127.0.0.1,10.0.0.0/8, ::1")
    assert proxies.client_of("127.0.0.1", ["1.1.1.1, 2.2.2.2"]) == "2.2.2.2"
    assert proxies.client_of("127.0.0.1", ["1.1.1.1", "2.2.2.2, 10.0.0.1"]) == "2.2.2.2"
    assert proxies.client_of("::1", ["2001:db8::5"]) == "2001:db8::5"
    # Untrusted peer: its header is ignored.
    assert proxies.client_of("192.0.2.1", ["1.1.1.1"]) == "192.0.2.1"
    # Every hop trusted: the furthest one is the client.
    assert proxies.client_of("127.0.0.1", ["10.0.0.9, 10.0.0.1"]) == "10.0.0.9"
    # A header of thousands of hops is not walked past its last few.
    long_chain = ", ".join(["10.0.0.2"] * 5000)
    assert proxies.client_of("127.0.0.1", ["9.9.9.9, " + long_chain]) == "10.0.0.2"
    assert MAX_FORWARDED_HOPS < 5000
    assert not TrustedProxies.parse("")
    with pytest.raises(ValueError, match="neither an IP address nor a network"):
        TrustedProxies.parse("127.0.0.1, proxy.example")


def test_one_party_cannot_mint_buckets_and_their_number_stays_bounded() -> None:
    clock = FrozenClock()
    buckets = TokenBuckets(PER_MINUTE, PER_MINUTE / 60, clock=clock, max_clients=100)
    # 10,000 fresh identities spending their tokens: the table never grows past its bound, and
    # past it the newcomers share one bucket, so they get 2 requests between them, not 20,000.
    granted = sum(buckets.take(("address", f"id-{n}")) == 0 for n in range(10_000))
    assert len(buckets) == 100
    assert granted == 100 + PER_MINUTE
    assert buckets.overflowed == 10_000 - 100


def test_an_ipv6_client_counts_by_its_64_network(ingestor: Ingestor) -> None:
    app = app_for(
        ingestor,
        rate_limit_per_minute=PER_MINUTE,
        limiter_clock=FrozenClock(),
        trusted_proxies="127.0.0.1",
    )
    with serving(app) as client:
        one_subscriber = [f"2001:db8:1:2::{n:x}" for n in range(1, 6)]
        assert statuses(client, one_subscriber) == [200] * PER_MINUTE + [429] * 3
        assert statuses(client, ["2001:db8:1:3::1"]) == [200]


# redirects ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/api/errors/analytics/", "/api/errors/analytics"),
        ("/api/flights/?limit=5", "/api/flights?limit=5"),
    ],
)
def test_slash_redirects_are_relative_and_never_name_the_host(
    ingestor: Ingestor, path: str, location: str
) -> None:
    with serving(app_for(ingestor)) as client:
        for host in ("evil.example", "127.0.0.1", "evil.example:443"):
            response = client.get(path, headers={"Host": host, "X-API-Key": ADMIN_KEY})
            assert response.status_code == 307
            assert response.headers["location"] == location
            assert "evil" not in response.text
        followed = client.get(path, headers={"X-API-Key": ADMIN_KEY}, follow_redirects=True)
        # Resolved against the URL asked for: same server, the routed path.
        assert followed.history
        assert followed.url.host == "127.0.0.1"
        assert followed.url.path == location.split("?")[0]


def raw_get(base_url: str, target: str) -> bytes:
    """The response head to a request line sent as written (clients normalise ``//``)."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        request = f"GET {target} HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode())
        received = b""
        while b"\r\n\r\n" not in received and len(received) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    return received.split(b"\r\n\r\n", 1)[0].lower()


def test_paths_that_would_redirect_off_site_are_404(ingestor: Ingestor) -> None:
    with serving(app_for(ingestor)) as client:
        base = str(client.base_url).rstrip("/")
        for target in ("//evil.example/", "/%2Fevil.example/", "//api/flights/", "/nothing/"):
            head = raw_get(base, target)
            assert head.startswith(b"http/1.1 404"), (target, head)
            assert b"location" not in head, target


# headers -----------------------------------------------------------------------------------


def test_every_response_is_nosniff_and_keyed_ones_are_no_store(ingestor: Ingestor) -> None:
    with TestClient(app_for(ingestor), raise_server_exceptions=False) as client:
        public = client.get("/api/flights")
        assert public.headers["x-content-type-options"] == "nosniff"
        assert "no-store" not in public.headers.get("cache-control", "")
        for response in (
            client.get("/api/errors/analytics", headers={"X-API-Key": ADMIN_KEY}),
            client.get("/api/flights", headers={"Authorization": f"Bearer {READ_KEY}"}),
            client.get("/api/errors/analytics"),  # 401
            client.get("/api/errors/analytics", headers={"X-API-Key": READ_KEY}),  # 403
            client.get("/api/flights", headers={"X-API-Key": "a-wrong-guess"}),
        ):
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["cache-control"] == "no-store"
        for path in ("/health", "/api/status", "/openapi.json", "/metrics", "/no-such-thing"):
            assert client.get(path).headers["x-content-type-options"] == "nosniff", path


# docs --------------------------------------------------------------------------------------


def test_docs_pages_are_off_by_default_but_the_schema_stays(ingestor: Ingestor) -> None:
    with TestClient(app_for(ingestor)) as client:
        for path in ("/docs", "/redoc", "/docs/oauth2-redirect", "/docs/init.js"):
            assert client.get(path).status_code == 404, path
        assert client.get("/openapi.json").status_code == 200


def test_enabled_docs_load_nothing_from_another_origin(ingestor: Ingestor) -> None:
    with TestClient(app_for(ingestor, api_docs=True)) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-security-policy"] == DOCS_CSP
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources, page.text
        for source in sources:
            assert source.startswith("/docs/"), source
            asset = client.get(source)
            assert asset.status_code == 200, source
            assert asset.headers["x-content-type-options"] == "nosniff"
        assert "http" not in page.text
        assert "script-src 'self';" in DOCS_CSP  # no inline or remote scripts
        assert client.get("/redoc").status_code == 404  # no packaged ReDoc: not offered
        assert client.get("/docs/../pyproject.toml").status_code == 404
        # The dashboard keeps its own, stricter policy.
        assert client.get("/").headers["content-security-policy"] == DASHBOARD_CSP
