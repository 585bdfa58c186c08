"""Who may call what: API key roles, both ways of sending a key, and closed public data."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from feeds import SMALL, load
from vatsim_collector.api import create_app
from vatsim_collector.api.context import ErrorLayer
from vatsim_collector.config import Settings, SettingsError, load_settings
from vatsim_collector.errors.manager import ErrorManager
from vatsim_collector.errors.registry import BreakerRegistry
from vatsim_collector.pipeline.event_layer import build_event_layer
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.service import build_service_app
from vatsim_collector.store.error_records import ErrorRecordStore

READ_KEY = "reader-7f3a9c"
ADMIN_KEY = "admin-2b8d41"
KEYS = [("read", READ_KEY), ("admin", ADMIN_KEY)]
CALLSIGN = load(SMALL)["pilots"][0]["callsign"]

# (method, path, status with an admin key)
ADMIN_ROUTES = [
    ("GET", "/api/errors/analytics", 200),
    ("GET", "/api/errors/circuit-breakers", 200),
    ("POST", "/api/errors/circuit-breakers/feed.data/reset", 200),
    ("GET", "/api/events/analytics", 200),
    ("GET", "/api/events", 200),
    ("GET", "/api/events/dead-letters", 200),
    ("GET", "/api/events/dead-letters/1", 404),
    ("POST", "/api/events/dead-letters/1/replay", 404),
    ("DELETE", "/api/events/dead-letters/1", 404),
]
READ_ROUTES = ["/api/database/service/stats", "/api/database/service/health"]
PUBLIC_ROUTES = [
    "/api/status",
    "/api/flights",
    f"/api/flights/{CALLSIGN}/track",
    "/api/flights/summaries",
    "/api/controllers",
    "/api/controller-summaries",
    "/api/coverage",
    "/api/transceivers",
]


def x_api_key(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


SENDERS = [pytest.param(x_api_key, id="x-api-key"), pytest.param(bearer, id="bearer")]


@dataclass
class Api:
    ingestor: Ingestor
    errors: ErrorLayer
    engine: Engine

    def client(self, **options: Any) -> TestClient:
        layer = build_event_layer(Settings(), self.ingestor.db)

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            await layer.start()
            yield
            await layer.stop(10)

        app = create_app(
            self.ingestor,
            stale_after=10**9,
            lifespan=lifespan,
            errors=self.errors,
            events=layer,
            **options,
        )
        return TestClient(app)


@pytest.fixture
def api(engine: Engine) -> Api:
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    ingestor.ingest(SMALL.read_bytes())
    breakers = BreakerRegistry()
    breakers.get_or_create("feed.data")
    return Api(ingestor, ErrorLayer(ErrorManager(ErrorRecordStore(ingestor.db)), breakers), engine)


@pytest.fixture
def keyed(api: Api) -> Iterator[TestClient]:
    with api.client(api_keys=KEYS) as client:
        yield client


@pytest.fixture
def closed(api: Api) -> Iterator[TestClient]:
    with api.client(api_keys=KEYS, public_read=False) as client:
        yield client


def assert_unauthorized(response: Any) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"
    assert "X-API-Key" in response.json()["detail"]


# admin endpoints ---------------------------------------------------------------------------


@pytest.mark.parametrize("send", SENDERS)
@pytest.mark.parametrize(("method", "path", "ok"), ADMIN_ROUTES)
def test_admin_routes_need_an_admin_key(
    keyed: TestClient, send: Any, method: str, path: str, ok: int
) -> None:
    assert_unauthorized(keyed.request(method, path))
    assert_unauthorized(keyed.request(method, path, headers=send("not-a-key")))
    # A configured key with a character missing is still wrong.
    assert_unauthorized(keyed.request(method, path, headers=send(ADMIN_KEY[:-1])))
    as_reader = keyed.request(method, path, headers=send(READ_KEY))
    assert as_reader.status_code == 403, as_reader.text
    assert as_reader.json()["type"].endswith("/forbidden")
    assert "admin" in as_reader.json()["detail"]
    assert keyed.request(method, path, headers=send(ADMIN_KEY)).status_code == ok


# read endpoints ----------------------------------------------------------------------------


@pytest.mark.parametrize("send", SENDERS)
@pytest.mark.parametrize("path", READ_ROUTES)
def test_database_service_needs_a_read_or_admin_key(
    keyed: TestClient, send: Any, path: str
) -> None:
    assert_unauthorized(keyed.get(path))
    assert_unauthorized(keyed.get(path, headers=send("not-a-key")))
    assert keyed.get(path, headers=send(READ_KEY)).status_code == 200
    assert keyed.get(path, headers=send(ADMIN_KEY)).status_code == 200


# public data -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [*PUBLIC_ROUTES, "/health"])
def test_public_data_is_open_by_default(keyed: TestClient, path: str) -> None:
    assert keyed.get(path).status_code == 200
    # A wrong key is not checked where none is needed.
    assert keyed.get(path, headers=x_api_key("not-a-key")).status_code == 200


@pytest.mark.parametrize("send", SENDERS)
@pytest.mark.parametrize("path", PUBLIC_ROUTES)
def test_closed_public_data_needs_a_key_of_either_role(
    closed: TestClient, send: Any, path: str
) -> None:
    assert_unauthorized(closed.get(path))
    assert_unauthorized(closed.get(path, headers=send("not-a-key")))
    assert closed.get(path, headers=send(READ_KEY)).status_code == 200
    assert closed.get(path, headers=send(ADMIN_KEY)).status_code == 200


def test_closed_public_data_leaves_health_and_the_docs_open(closed: TestClient, api: Api) -> None:
    assert closed.get("/health").status_code == 200
    assert closed.get("/openapi.json").status_code == 200
    # The docs page is off by default; turned on, it and its assets stay open.
    with api.client(api_keys=KEYS, public_read=False, api_docs=True) as with_docs:
        for path in ("/docs", "/docs/swagger-ui-bundle.js", "/docs/init.js"):
            assert with_docs.get(path).status_code == 200, path
    # Everything else, the dashboard and unknown paths included, asks for a key first.
    for path in ("/", "/static/dashboard.js", "/api/no-such-thing"):
        assert_unauthorized(closed.get(path))
        assert closed.get(path, headers=x_api_key(READ_KEY)).status_code != 401
    # A read key passes the gate but not an admin endpoint.
    assert closed.get("/api/errors/analytics", headers=x_api_key(READ_KEY)).status_code == 403


def test_closed_public_data_is_documented_as_keyed(closed: TestClient, keyed: TestClient) -> None:
    open_paths = keyed.get("/openapi.json").json()["paths"]
    closed_paths = closed.get("/openapi.json").json()["paths"]
    flights_open = open_paths["/api/flights"]["get"]
    flights_closed = closed_paths["/api/flights"]["get"]
    assert "security" not in flights_open
    assert "401" not in flights_open["responses"]
    assert flights_closed["security"] == [{"APIKeyHeader": ["read"]}, {"HTTPBearer": ["read"]}]
    assert "401" in flights_closed["responses"]
    assert "403" not in flights_closed["responses"]
    for paths in (open_paths, closed_paths):
        assert "security" not in paths["/health"]["get"]
        assert "401" not in paths["/health"]["get"]["responses"]


# how keys are sent -------------------------------------------------------------------------


def test_bearer_scheme_is_case_insensitive_and_other_schemes_are_not_keys(
    keyed: TestClient,
) -> None:
    path = "/api/errors/circuit-breakers"
    assert keyed.get(path, headers={"Authorization": f"bearer {ADMIN_KEY}"}).status_code == 200
    assert_unauthorized(keyed.get(path, headers={"Authorization": f"Basic {ADMIN_KEY}"}))
    assert_unauthorized(keyed.get(path, headers={"Authorization": ADMIN_KEY}))
    assert_unauthorized(keyed.get(path, headers={"Authorization": "Bearer "}))


def test_x_api_key_wins_over_authorization(keyed: TestClient) -> None:
    both = {**x_api_key(READ_KEY), **bearer(ADMIN_KEY)}
    assert keyed.get("/api/errors/circuit-breakers", headers=both).status_code == 403
    both = {**x_api_key(ADMIN_KEY), **bearer(READ_KEY)}
    assert keyed.get("/api/errors/circuit-breakers", headers=both).status_code == 200


def test_bare_keys_given_to_create_app_are_admin_keys(api: Api) -> None:
    with api.client(api_keys=[ADMIN_KEY]) as client:
        response = client.get("/api/errors/circuit-breakers", headers=bearer(ADMIN_KEY))
    assert response.status_code == 200


def test_create_app_refuses_an_unknown_role_without_quoting_the_key(api: Api) -> None:
    with pytest.raises(ValueError, match="unknown API key role") as refused:
        api.client(api_keys=[("owner", ADMIN_KEY)])
    assert ADMIN_KEY not in str(refused.value)


# no keys configured ------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "ok"), ADMIN_ROUTES)
def test_without_keys_keyed_routes_always_answer_401(
    api: Api, method: str, path: str, ok: int
) -> None:
    with api.client() as client:
        for headers in ({}, x_api_key(ADMIN_KEY), bearer(ADMIN_KEY)):
            response = client.request(method, path, headers=headers)
            assert_unauthorized(response)
            assert "no API keys are configured" in response.json()["detail"]
        assert client.get(READ_ROUTES[0], headers=x_api_key(READ_KEY)).status_code == 401
        assert client.get("/api/flights").status_code == 200


def test_without_keys_closed_public_data_is_shut_but_health_is_not(api: Api) -> None:
    with api.client(public_read=False) as client:
        response = client.get("/api/flights", headers=x_api_key(READ_KEY))
        assert_unauthorized(response)
        assert "no API keys are configured" in response.json()["detail"]
        assert client.get("/health").status_code == 200


# every endpoint has the access it should ---------------------------------------------------


def test_every_mutating_or_operational_endpoint_is_keyed(keyed: TestClient) -> None:
    """Walks the schema, so endpoints added later (such as a member-forgetting DELETE) are
    held to the same rules without this test knowing their names."""
    paths = keyed.get("/openapi.json").json()["paths"]
    seen_admin = seen_read = 0
    for path, item in paths.items():
        for method, operation in item.items():
            roles = {
                role
                for requirement in operation.get("security", [])
                for named in requirement.values()
                for role in named
            }
            admin_only = (
                method in {"post", "put", "patch", "delete"}
                # A member's history is public like the sessions it sums (a CID is public on
                # the network); forgetting one (DELETE) is admin by the method rule.
                or path.startswith(("/api/errors", "/api/events"))
                or "recompute" in path
                or "forget" in path
            )
            if admin_only:
                assert roles == {"admin"}, (method, path)
                assert {"401", "403"} <= set(operation["responses"]), (method, path)
                seen_admin += 1
            elif path.startswith("/api/database/service"):
                assert roles == {"read"}, (method, path)
                assert "401" in operation["responses"]
                assert "403" not in operation["responses"]
                seen_read += 1
    assert seen_admin >= len(ADMIN_ROUTES)
    assert seen_read == len(READ_ROUTES)


# settings ----------------------------------------------------------------------------------


def test_api_keys_setting_takes_roles_and_bare_keys() -> None:
    settings = load_settings(api_keys=f" read:{READ_KEY}, ADMIN:{ADMIN_KEY},legacy-key,,")
    assert settings.api_key_entries == [
        ("read", READ_KEY),
        ("admin", ADMIN_KEY),
        ("admin", "legacy-key"),
    ]
    assert load_settings(api_keys="admin:with:colons").api_key_entries == [("admin", "with:colons")]
    assert load_settings().api_key_entries == []
    assert READ_KEY not in repr(settings)
    assert READ_KEY not in str(settings.api_keys)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (f"read:{READ_KEY},owner:{ADMIN_KEY}", "entry 2 has an unknown role"),
        (f"{ADMIN_KEY}:x", "entry 1 has an unknown role"),
        ("read:", "entry 1 has a role but no key"),
        (f"read:{READ_KEY},admin:{READ_KEY}", "entries 1 and 2 give one key two roles"),
    ],
)
def test_api_keys_setting_errors_name_the_setting_not_the_key(value: str, message: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(api_keys=value)
    text = str(refused.value)
    assert "VATSIM_API_KEYS" in text
    assert message in text
    assert READ_KEY not in text
    assert ADMIN_KEY not in text


def test_access_settings_have_safe_defaults_and_bounds() -> None:
    settings = load_settings()
    assert settings.public_read is True
    assert settings.cors_origin_list == []
    assert settings.rate_limit_per_minute == 600
    assert settings.max_request_bytes == 65536
    with pytest.raises(SettingsError, match="VATSIM_RATE_LIMIT_PER_MINUTE"):
        load_settings(rate_limit_per_minute=-1)
    with pytest.raises(SettingsError, match="VATSIM_MAX_REQUEST_BYTES"):
        load_settings(max_request_bytes=100)
    origins = load_settings(cors_origins="https://a.example, http://localhost:5173")
    assert origins.cors_origin_list == ["https://a.example", "http://localhost:5173"]
    with pytest.raises(SettingsError, match=r"VATSIM_CORS_ORIGINS.*not an origin"):
        load_settings(cors_origins="https://a.example/")


def test_the_service_passes_the_access_settings_to_the_app(
    database_url: str, tmp_path: Path
) -> None:
    settings = load_settings(
        database_url=database_url,
        status_url="http://127.0.0.1:9/status.json",
        spool_dir=tmp_path / "spool",
        airspace_enabled=False,
        api_keys=f"read:{READ_KEY},{ADMIN_KEY}",
        public_read=False,
        rate_limit_per_minute=3,
        max_request_bytes=2048,
        cors_origins="https://dash.example",
    )
    app = build_service_app(settings)
    client = TestClient(app)  # no lifespan: the poller is not started
    try:
        assert_unauthorized(client.get("/api/flights"))
        assert client.get("/api/flights", headers=bearer(READ_KEY)).status_code == 200
        admin = client.get("/api/errors/circuit-breakers", headers=bearer(ADMIN_KEY))
        assert admin.status_code == 200  # a bare key is an admin key
        big = client.post(
            "/api/errors/circuit-breakers/x/reset", content=b"x" * 4096, headers=bearer(ADMIN_KEY)
        )
        assert big.status_code == 413
        statuses = [client.get("/api/flights", headers=bearer(READ_KEY)).status_code for _ in "abc"]
        assert statuses == [200, 200, 429]  # the read key's second to fourth requests
        preflight = client.options(
            "/api/flights",
            headers={"Origin": "https://dash.example", "Access-Control-Request-Method": "GET"},
        )
        assert preflight.headers["access-control-allow-origin"] == "https://dash.example"
    finally:
        app.state.api_context.db.dispose()
