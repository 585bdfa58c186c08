"""Schemathesis fuzzes every operation of the app's own OpenAPI schema, in process (ASGI).

The requests go to the whole API over a database recorded by the real pipeline
(``pipeline_db``), so generated requests meet real flights, sectors, summaries, events and dead
letters. Every response must be no server error and conform to the schema: a documented status
code, a documented content type and a body that validates. Keyed operations (those whose
schema declares a security requirement) are fuzzed twice: without a key (every answer must be
the documented 401) and with an admin key.

No operation is left out. The ones that change state -- deleting and replaying dead letters,
resetting a breaker -- change only this module's own recording, which nothing else reads, and
their outcomes are asserted in test_api_events.py and test_secrets_and_keys.py.

Generation is derandomized with a fixed seed, so a run is reproducible and a failure found in
CI is found again locally.

Why the schema is loaded from a second app (``pipeline_db.schema_source``):
``schema.parametrize()`` needs the schema when the module is collected, long before a fixture
can record a database, and the fixture-based loader (``schemathesis.pytest.from_fixture``) of
schemathesis 4.32.5 reads ``Item._nodeid``, which pytest 9 no longer has. Every request is
sent to the recorded app (``app=``), and ``test_the_fuzzed_schema_is_the_one_the_app_serves``
proves that app serves the very schema that was fuzzed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis import Case
from starlette.testclient import TestClient

from pipeline_db import Recorded, module_engine, record, schema_source

ADMIN_KEY = "schemathesis-admin-key"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20240501,
        "generation": {"mode": "all", "deterministic": True},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
    }
)
FUZZ = settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


schema = schemathesis.openapi.from_asgi("/openapi.json", schema_source(), config=CONFIG)
# Operations that declare a security requirement need a key; the schema says which, so a new
# keyed endpoint is fuzzed both ways without being listed here.
KEYED = {
    (method.upper(), path)
    for path, methods in schema.raw_schema["paths"].items()
    for method, operation in methods.items()
    if operation.get("security")
}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    with module_engine(Path(tmp_path_factory.mktemp("fuzz"))) as engine:
        yield record(engine)


@pytest.fixture(scope="module")
def app(recorded: Recorded) -> FastAPI:
    return recorded.app(api_keys=[("admin", ADMIN_KEY)])


def _keyed(operation: Any) -> bool:
    return (operation.method.upper(), operation.path) in KEYED


def _unexpected_method(case: Case, sent: str | None) -> bool:
    """The coverage phase also sends methods the path does not have: those are 405 before any
    key is looked at, and schemathesis checks them itself."""
    return (sent or "").upper() != case.operation.method.upper()


def test_the_fuzzed_schema_is_the_one_the_app_serves(app: FastAPI) -> None:
    served: dict[str, Any] = TestClient(app).get("/openapi.json").json()
    assert served == schema.raw_schema
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) == sum(len(methods) for methods in served["paths"].values())
    assert sum(map(_keyed, operations)) == len(KEYED) >= 10


@schema.parametrize()
@FUZZ
def test_every_operation_without_a_key(case: Case, app: FastAPI) -> None:
    response = case.call_and_validate(app=app)
    if _keyed(case.operation) and not _unexpected_method(case, response.request.method):
        assert response.status_code == 401


@schema.include(lambda ctx: _keyed(ctx.operation)).parametrize()
@FUZZ
def test_keyed_operations_with_an_admin_key(case: Case, app: FastAPI) -> None:
    case.call_and_validate(headers={"X-API-Key": ADMIN_KEY}, app=app)
