"""Every error is an RFC 9457 problem document, documented as sent; body size, rate and CORS."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from fastapi import APIRouter, FastAPI, Response
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, select
from starlette.types import Message

from vatsim_collector.api import create_app
from vatsim_collector.api.auth import AdminAccess
from vatsim_collector.api.limits import TokenBuckets
from vatsim_collector.api.models import ErrorOut, ValidationErrorOut
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.store import schema as t
from vatsim_collector.store.engine import create_db_engine
from vatsim_collector.store.migrate import upgrade

PROBLEM = "application/problem+json"
KEYS = [("read", "reader-key"), ("admin", "admin-key")]
READ = {"X-API-Key": "reader-key"}
ADMIN = {"X-API-Key": "admin-key"}
SECRET = "sk_live_PLANTED5ecret"
LIMIT = 4096


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def app_for(ingestor: Ingestor, **options: Any) -> FastAPI:
    options.setdefault("api_keys", KEYS)
    options.setdefault("max_request_bytes", LIMIT)
    return create_app(ingestor, stale_after=10**9, **options)


@pytest.fixture
def client(ingestor: Ingestor) -> Iterator[TestClient]:
    with TestClient(app_for(ingestor), raise_server_exceptions=False) as client:
        yield client


def problem(response: httpx2.Response, status: int) -> dict[str, Any]:
    """The body, after checking it is a problem document of exactly the documented shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    model = ValidationErrorOut if status == 422 else ErrorOut
    assert set(body) == set(model.model_fields), body
    model.model_validate(body)
    assert body["status"] == status
    assert body["instance"] == response.request.url.path
    assert body["type"] == "about:blank" or body["type"].startswith(
        "https://vatsim-collector/problems/"
    )
    return body


def documented(client: TestClient, method: str, path: str, status: int) -> dict[str, Any]:
    """The OpenAPI response object for ``status``, which must say problem+json."""
    operation = client.get("/openapi.json").json()["paths"][path][method.lower()]
    response: dict[str, Any] = operation["responses"][str(status)]
    schema = response["content"][PROBLEM]["schema"]
    expected = "ValidationErrorOut" if status == 422 else "ErrorOut"
    assert schema["$ref"] == f"#/components/schemas/{expected}"
    return response


# statuses from the router and the handlers -------------------------------------------------


def test_unknown_route_is_a_404_problem(client: TestClient) -> None:
    body = problem(client.get("/api/no-such-route"), 404)
    assert body == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "Not Found",
        "instance": "/api/no-such-route",
    }


def test_wrong_method_is_a_405_problem_with_allow(client: TestClient) -> None:
    response = client.delete("/api/flights")
    body = problem(response, 405)
    assert body["title"] == "Method Not Allowed"
    assert response.headers["allow"] == "GET"


def test_route_404_keeps_its_detail_and_is_documented(client: TestClient) -> None:
    body = problem(client.get("/api/flights/NOSUCH99/track"), 404)
    assert body["detail"] == "no flight recorded for callsign NOSUCH99"
    documented(client, "GET", "/api/flights/{callsign}/track", 404)


@pytest.mark.parametrize(
    ("path", "params", "location"),
    [
        ("/api/flights/summaries", {"cid": SECRET}, "query.cid"),
        ("/api/flights/summaries", {"departure": SECRET + "'; --"}, "query.departure"),
        ("/api/controller-summaries", {"limit": SECRET}, "query.limit"),
        ("/api/coverage", {"from": SECRET}, "query.from"),
    ],
)
def test_invalid_parameters_are_a_422_problem_that_never_echoes_the_value(
    client: TestClient, path: str, params: dict[str, str], location: str
) -> None:
    response = client.get(path, params=params)
    body = problem(response, 422)
    assert SECRET not in response.text
    assert body["type"] == "https://vatsim-collector/problems/invalid-request"
    assert [e["location"] for e in body["errors"]] == [location]
    assert body["errors"][0]["message"]
    assert location in body["detail"]
    documented(client, "GET", path, 422)


def test_many_invalid_parameters_are_all_listed(client: TestClient) -> None:
    response = client.get(
        "/api/controller-summaries",
        params={"limit": "x", "offset": "y", "facility": "z", "cid": "w", "callsign": "!"},
    )
    body = problem(response, 422)
    assert len(body["errors"]) == 5
    assert body["detail"].endswith("(and 2 more)")


def test_a_route_own_422_has_the_same_type_and_empty_errors(client: TestClient) -> None:
    # Each bound is valid alone; together they exceed the coverage window's maximum.
    response = client.get(
        "/api/coverage", params={"from": "2021-01-01T00:00:00Z", "to": "2021-03-01T00:00:00Z"}
    )
    body = problem(response, 422)
    assert body["type"] == "https://vatsim-collector/problems/invalid-request"
    assert body["errors"] == []


def test_401_and_403_are_problems_and_documented(client: TestClient) -> None:
    path = "/api/errors/circuit-breakers"
    unauthorized = problem(client.get(path, headers={"X-API-Key": SECRET}), 401)
    assert unauthorized["type"] == "https://vatsim-collector/problems/unauthorized"
    assert SECRET not in str(unauthorized)
    forbidden = problem(client.get(path, headers=READ), 403)
    assert forbidden["type"] == "https://vatsim-collector/problems/forbidden"
    assert "WWW-Authenticate" in documented(client, "GET", path, 401)["headers"]
    documented(client, "GET", path, 403)


def test_unreachable_database_is_a_503_problem_without_the_address() -> None:
    engine = create_engine(
        "postgresql+psycopg://collector@127.0.0.1:1/vatsim", connect_args={"connect_timeout": 1}
    )
    app = create_app(Ingestor(engine, IngestConfig()), stale_after=60)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/api/flights/AAL1765/track")
        body = problem(response, 503)
        documented(client, "GET", "/api/flights/{callsign}/track", 503)
    assert body["type"] == "https://vatsim-collector/problems/database-unavailable"
    assert body["detail"] == "database unavailable; try again later"
    assert "127.0.0.1" not in response.text
    assert "collector" not in body["detail"]
    engine.dispose()


def test_deleted_sqlite_database_is_a_503_problem(tmp_path: Path) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    engine = create_db_engine(f"sqlite:///{folder}/t.db")
    upgrade(engine)
    ingestor = Ingestor(engine, IngestConfig())
    engine.dispose()
    shutil.rmtree(folder)
    with TestClient(create_app(ingestor, stale_after=60), raise_server_exceptions=False) as c:
        body = problem(c.get("/api/flights/summaries"), 503)
    assert str(folder) not in str(body)


def test_unexpected_failure_is_a_500_problem_without_internals(
    ingestor: Ingestor, engine: Engine, client: TestClient
) -> None:
    """A stored summary whose JSON column is corrupt: the route's decoding fails for real."""
    with engine.begin() as conn:
        session_id = conn.execute(select(t.controller_sessions.c.id).limit(1)).scalar_one()
        at = datetime(2021, 8, 2, 11, tzinfo=UTC)
        conn.execute(
            t.controller_summaries.insert().values(
                controller_session_id=session_id,
                cid=1,
                callsign="CORRUPT_CTR",
                facility=6,
                started_at=at,
                ended_at=at,
                duration_minutes=1.0,
                frequencies=f"{{not json {SECRET}",
                aircraft_handled=0,
                peak_concurrent=0,
                hourly="[]",
                per_aircraft="[]",
                computed_at=at,
            )
        )
    response = client.get("/api/controller-summaries")
    body = problem(response, 500)
    assert body["type"] == "https://vatsim-collector/problems/internal-error"
    assert body["detail"] == "internal server error"
    for internal in (SECRET, "JSON", "Traceback", "Expecting", "line", "json.loads"):
        assert internal not in response.text
    documented(client, "GET", "/api/controller-summaries", 500)


# body size ---------------------------------------------------------------------------------


def test_declared_content_length_over_the_limit_is_a_413(client: TestClient) -> None:
    path = "/api/errors/circuit-breakers/feed.data/reset"
    body = problem(client.post(path, content=b"x" * (LIMIT + 1), headers=ADMIN), 413)
    assert body["type"] == "https://vatsim-collector/problems/request-too-large"
    assert str(LIMIT) in body["detail"]
    documented(client, "POST", "/api/errors/circuit-breakers/{name}/reset", 413)
    # At the limit the request reaches the route (whose answer, without an error layer in
    # this app, is a 503).
    at_limit = client.post(path, content=b"x" * LIMIT, headers=ADMIN)
    assert problem(at_limit, 503)["detail"] == "the error layer is not running in this process"


def test_chunked_body_over_the_limit_is_a_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(8):
            yield b"y" * 1024

    response = client.post("/api/errors/circuit-breakers/x/reset", content=chunks(), headers=ADMIN)
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    problem(response, 413)


def test_streamed_body_is_counted_as_it_arrives_and_reading_stops_at_the_limit(
    ingestor: Ingestor,
) -> None:
    """The ASGI messages of a chunked upload, driven directly: 64 chunks of 1 KiB, no
    Content-Length. The limit is 4 KiB, so at most five chunks may be read."""
    app = app_for(ingestor)
    chunk, total = b"z" * 1024, 64
    delivered = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal delivered
        delivered += 1
        return {"type": "http.request", "body": chunk, "more_body": delivered < total}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/errors/circuit-breakers/x/reset",
        "raw_path": b"/api/errors/circuit-breakers/x/reset",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"transfer-encoding", b"chunked"), (b"x-api-key", b"admin-key")],
        "client": ("192.0.2.1", 5000),
        "server": ("testserver", 80),
        "state": {},
    }
    anyio.run(app, scope, receive, send)
    assert delivered == LIMIT // len(chunk) + 1
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 413
    assert (b"content-type", PROBLEM.encode()) in sent[0]["headers"]


# rate limit --------------------------------------------------------------------------------


def test_rate_limit_is_a_429_with_retry_after_and_refills_with_time(ingestor: Ingestor) -> None:
    ticks = Ticks()
    app = app_for(ingestor, rate_limit_per_minute=6, limiter_clock=ticks)  # 1 token per 10 s
    with TestClient(app) as client:
        assert "Retry-After" in documented(client, "GET", "/api/flights", 429)["headers"]
        ticks.now += 60  # a full bucket again after reading the schema
        assert [client.get("/api/flights").status_code for _ in range(6)] == [200] * 6
        limited = client.get("/api/flights")
        body = problem(limited, 429)
        assert body["type"] == "https://vatsim-collector/problems/rate-limited"
        assert limited.headers["retry-after"] == "10"
        ticks.now += 4.5
        assert client.get("/api/flights").headers["retry-after"] == "6"  # 5.5 s, rounded up
        ticks.now += 5.5
        assert client.get("/api/flights").status_code == 200
        assert client.get("/api/flights").status_code == 429
        # /health is for load balancers: never limited, and documented so.
        assert all(client.get("/health").status_code == 200 for _ in range(20))
        ticks.now += 10
        health = client.get("/openapi.json").json()["paths"]["/health"]["get"]
        assert "429" not in health["responses"]


def test_rate_limit_is_per_key_else_per_address(ingestor: Ingestor) -> None:
    ticks = Ticks()
    app = app_for(ingestor, rate_limit_per_minute=2, limiter_clock=ticks)
    with TestClient(app) as client:
        for _ in range(2):
            assert client.get("/api/flights").status_code == 200
        assert client.get("/api/flights").status_code == 429
        # Wrong keys count against the address: guessing keys costs tokens.
        assert client.get("/api/flights", headers={"X-API-Key": "guess"}).status_code == 429
        # Each valid key has a bucket of its own, whichever way it is sent.
        assert client.get("/api/flights", headers=READ).status_code == 200
        bearer = {"Authorization": "Bearer reader-key"}
        assert client.get("/api/flights", headers=bearer).status_code == 200
        assert client.get("/api/flights", headers=READ).status_code == 429
        assert client.get("/api/flights", headers=ADMIN).status_code == 200


def test_rate_limit_off_by_default_in_create_app(client: TestClient) -> None:
    assert all(client.get("/api/flights").status_code == 200 for _ in range(50))
    assert (
        "429" not in client.get("/openapi.json").json()["paths"]["/api/flights"]["get"]["responses"]
    )


def test_token_buckets_survive_a_clock_stepping_back_and_stay_bounded() -> None:
    ticks = Ticks()
    buckets = TokenBuckets(2, 1.0, clock=ticks, max_clients=3)
    assert buckets.take("a") == 0
    assert buckets.take("a") == 0
    assert buckets.take("a") == pytest.approx(1.0)
    ticks.now -= 100  # a clock that steps back neither refills nor drains
    assert buckets.take("a") == pytest.approx(1.0)
    ticks.now += 0.25
    assert buckets.take("a") == pytest.approx(0.75)
    buckets.take("b")
    buckets.take("c")
    # The table is full and "a", least recently used, has not refilled: dropping it would hand
    # "a" fresh tokens, so the newcomer draws on the shared overflow bucket instead.
    assert buckets.take("d") == 0
    assert buckets.take("e") == 0
    assert buckets.take("f") == pytest.approx(1.0)
    assert len(buckets) == 3
    assert buckets.overflowed == 3
    assert buckets.take("a") == pytest.approx(0.75)  # "a" kept its debt
    ticks.now += 5  # every bucket full again: the least recently used one ("b") gives way
    assert buckets.take("g") == 0
    assert len(buckets) == 3
    assert buckets.overflowed == 3


# CORS --------------------------------------------------------------------------------------

ORIGIN = "https://dashboard.example"
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "DELETE",
    "Access-Control-Request-Headers": "X-API-Key",
}


def test_cors_is_off_by_default(client: TestClient) -> None:
    response = client.get("/api/flights", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in response.headers
    preflight = client.options("/api/events/dead-letters/1", headers=PREFLIGHT)
    assert "access-control-allow-origin" not in preflight.headers
    problem(preflight, 405)


def test_cors_allows_exactly_the_configured_origins(ingestor: Ingestor) -> None:
    ticks = Ticks()
    app = app_for(ingestor, cors_origins=[ORIGIN], rate_limit_per_minute=2, limiter_clock=ticks)
    with TestClient(app) as client:
        preflight = client.options("/api/events/dead-letters/1", headers=PREFLIGHT)
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        assert preflight.headers["access-control-allow-credentials"] == "true"
        assert set(preflight.headers["access-control-allow-methods"].split(", ")) >= {
            "GET",
            "POST",
            "DELETE",
        }
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert {"x-api-key", "authorization", "content-type"} <= set(allowed.split(", "))

        other = client.options(
            "/api/flights", headers={**PREFLIGHT, "Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in other.headers
        problem(other, 400)
        other_get = client.get("/api/flights", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other_get.headers

        # Error answers carry the header too, so the browser lets the page read them. Preflights
        # cost no tokens: this is the second request of two allowed.
        assert client.get("/api/flights", headers={"Origin": ORIGIN}).status_code == 200
        limited = client.get("/api/flights", headers={"Origin": ORIGIN})
        problem(limited, 429)
        assert limited.headers["access-control-allow-origin"] == ORIGIN
        assert "retry-after" in limited.headers["access-control-expose-headers"].lower()
        denied = client.get("/api/errors/analytics", headers={"Origin": ORIGIN})
        assert denied.headers["access-control-allow-origin"] == ORIGIN


def test_cors_wildcard_allows_any_origin_without_credentials(ingestor: Ingestor) -> None:
    with TestClient(app_for(ingestor, cors_origins=["*"])) as client:
        preflight = client.options("/api/flights", headers=PREFLIGHT)
        simple = client.get("/api/flights", headers={"Origin": "https://anywhere.example"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in preflight.headers
    assert simple.headers["access-control-allow-origin"] == "*"


# the schema says what is sent --------------------------------------------------------------


def test_openapi_documents_every_error_as_a_problem(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            if operation.get("parameters"):
                assert "422" in responses, (method, path)
            assert {"413", "500"} <= set(responses), (method, path)
            for code, response in responses.items():
                if int(code) < 400:
                    continue
                content = response.get("content", {})
                if path in ("/health", "/api/database/service/health") and code == "503":
                    continue  # the health verdict itself, as JSON
                assert set(content) == {PROBLEM}, (method, path, code)


def test_routes_included_later_are_documented_the_same_way(ingestor: Ingestor) -> None:
    """A router added after create_app (as another module might) with FastAPI's own ways of
    declaring errors: documented as problems, with its access, like every other route."""
    app = app_for(ingestor)
    router = APIRouter()

    @router.delete(
        "/api/later/{cid}",
        dependencies=[AdminAccess],
        status_code=204,
        responses={404: {"model": ErrorOut}, 503: {"description": "not running"}},
    )
    def later(cid: int) -> Response:
        return Response(status_code=204)

    app.include_router(router)
    with TestClient(app) as client:
        operation = client.get("/openapi.json").json()["paths"]["/api/later/{cid}"]["delete"]
        assert client.delete("/api/later/5", headers=READ).status_code == 403
        assert client.delete("/api/later/5", headers=ADMIN).status_code == 204
    assert operation["security"] == [{"APIKeyHeader": ["admin"]}, {"HTTPBearer": ["admin"]}]
    for code in ("401", "403", "404", "413", "422", "500", "503"):
        assert set(operation["responses"][code]["content"]) == {PROBLEM}, code
