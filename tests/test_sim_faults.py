"""Simulator fault injection: each fault kind's symptom, rates, determinism, control API, CLI."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
from starlette.testclient import TestClient

from vatsim_collector.config import Settings
from vatsim_collector.feed.client import FeedClient, FeedDeadlineExceeded, FeedDocumentTooLarge
from vatsim_collector.feed.decode import FeedDecodeError, decode_snapshot, decode_transceivers
from vatsim_collector.simulator.faults import (
    ALL_FAULT_KINDS,
    HOSTILE_FAULT_KINDS,
    FaultInjector,
    FaultKind,
    FaultPlan,
    gzip_bomb_body,
    parse_fault_kinds,
)
from vatsim_collector.simulator.server import create_simulator_app
from vatsim_collector.simulator.thread import running_simulator
from vatsim_collector.simulator.world import SimulatedNetwork, load_seed_snapshot

BASE = "http://sim.test"
START = datetime(2024, 5, 1, 18, 0, 0, tzinfo=UTC)
DATA = "/v3/vatsim-data.json"
TRANSCEIVERS = "/v3/transceivers-data.json"
_SNAPSHOT = load_seed_snapshot()


def _client(plan: FaultPlan | None = None, seed: int = 7, *, gzip: bool = True) -> TestClient:
    network = SimulatedNetwork(_SNAPSHOT, seed=seed, start=START)
    app = create_simulator_app(network, speed=0, base_url=BASE, faults=plan)
    # Skipping gzip keeps the many-request tests fast; the rest go through the middleware.
    return TestClient(app, headers=None if gzip else {"Accept-Encoding": "identity"})


def _only(kind: FaultKind, **extra: Any) -> FaultPlan:
    return FaultPlan(rate=1.0, kinds=frozenset({kind}), **extra)


def _stamp(body: bytes) -> datetime:
    return decode_snapshot(body).update_timestamp


# --- each kind, its symptom ------------------------------------------------------------------


def test_http5xx_is_a_server_error_on_both_documents() -> None:
    client = _client(_only(FaultKind.HTTP5XX))
    statuses = {client.get(path).status_code for _ in range(30) for path in (DATA, TRANSCEIVERS)}
    assert statuses <= {500, 502, 503}
    assert len(statuses) > 1  # the status varies
    assert client.app.state.simulator.faults.counts()["http5xx"] == 60  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "kind", [FaultKind.TRUNCATED, FaultKind.INVALID_JSON, FaultKind.NON_V3], ids=str
)
def test_bad_bodies_are_200_and_rejected_by_the_decoder(kind: FaultKind) -> None:
    client = _client(_only(kind))
    for _ in range(25):  # several variants and cut points
        data = client.get(DATA)
        radios = client.get(TRANSCEIVERS)
        assert data.status_code == radios.status_code == 200
        with pytest.raises(FeedDecodeError):
            decode_snapshot(data.content)
        with pytest.raises(FeedDecodeError):
            decode_transceivers(radios.content)
        if kind is FaultKind.NON_V3:
            json.loads(data.content)  # valid JSON, just not a v3 snapshot
            json.loads(radios.content)
        else:
            for body in (data.content, radios.content):
                with pytest.raises(json.JSONDecodeError):
                    json.loads(body)


def test_truncated_is_a_prefix_of_the_real_document() -> None:
    client = _client()
    good = client.get(DATA).content
    client.post("/_sim/faults", json={"rate": 1.0, "kinds": ["truncated"]})
    cut = client.get(DATA).content
    assert 0 < len(cut) < len(good)
    assert good.startswith(cut)


def test_non_v3_data_is_legacy_v2_or_an_array() -> None:
    client = _client(_only(FaultKind.NON_V3))
    shapes = set()
    for _ in range(20):
        doc = client.get(DATA).json()
        if isinstance(doc, list):
            shapes.add("array")
        else:
            assert doc["general"]["version"] == 2
            assert isinstance(doc["clients"], list)
            assert doc["clients"]
            shapes.add("v2")
    assert shapes == {"array", "v2"}


def test_stale_repeats_the_previous_document_across_a_tick() -> None:
    client = _client()
    first = client.get(DATA)
    radios = client.get(TRANSCEIVERS)
    client.post("/_sim/faults", json={"rate": 1.0, "kinds": ["stale"]})
    ticked = client.post("/_sim/tick").json()
    again = client.get(DATA)
    assert again.status_code == 200
    assert again.content == first.content
    assert _stamp(again.content) == _stamp(first.content)  # frozen update_timestamp
    assert _stamp(again.content) != datetime.fromisoformat(ticked["update_timestamp"])
    assert client.get(TRANSCEIVERS).content == radios.content

    client.post("/_sim/faults", json={"rate": 0})
    fresh = client.get(DATA).content
    assert _stamp(fresh) == datetime.fromisoformat(ticked["update_timestamp"])


def test_stale_from_the_start_serves_a_valid_document_then_freezes() -> None:
    client = _client(_only(FaultKind.STALE))
    stamps = []
    for _ in range(3):
        stamps.append(_stamp(client.get(DATA).content))
        client.post("/_sim/tick")
    assert stamps[0] == stamps[1] == stamps[2] == START


def test_timeout_delays_the_response() -> None:
    client = _client(_only(FaultKind.TIMEOUT, timeout_seconds=0.3))
    began = time.monotonic()
    slow = client.get(DATA)
    elapsed = time.monotonic() - began
    assert elapsed >= 0.3
    # A patient client gets the real document in the end.
    assert slow.status_code == 200
    assert _stamp(slow.content) == START
    assert client.app.state.simulator.faults.counts()["timeout"] == 1  # type: ignore[attr-defined]


def test_timeout_trips_a_real_client_timeout_and_does_not_hold_the_server() -> None:
    began = time.monotonic()
    with running_simulator(seed=3) as base, httpx2.Client(base_url=base) as http:
        http.post(
            "/_sim/faults", json={"rate": 1.0, "kinds": ["timeout"], "timeout_seconds": 30}
        ).raise_for_status()
        with pytest.raises(httpx2.ReadTimeout):
            http.get(DATA, timeout=0.1)
        # status.json is still served at once
        assert http.get("/status.json", timeout=5).status_code == 200
        state = http.get("/_sim/faults").json()
        assert state["counts"]["timeout"] == 1
    # The held response noticed the client leave, so shutdown did not wait 30 s for it.
    assert time.monotonic() - began < 10


def test_reconfiguring_releases_held_responses() -> None:
    with running_simulator(seed=3) as base, httpx2.Client(base_url=base, timeout=20) as http:
        http.post(
            "/_sim/faults", json={"rate": 1.0, "kinds": ["timeout"], "timeout_seconds": 60}
        ).raise_for_status()
        result: dict[str, httpx2.Response] = {}
        waiter = threading.Thread(target=lambda: result.update(r=httpx2.get(base + DATA)))
        began = time.monotonic()
        waiter.start()
        time.sleep(0.3)
        http.post("/_sim/faults", json={"rate": 0}).raise_for_status()
        waiter.join(timeout=10)
        assert not waiter.is_alive()
        assert time.monotonic() - began < 10
        assert result["r"].status_code == 200
        decode_snapshot(result["r"].content)


# --- rates, counts, determinism --------------------------------------------------------------


def _classify(client: TestClient) -> str:
    """Tick, fetch the data document and name the fault it shows (or "ok")."""
    stamp = datetime.fromisoformat(client.post("/_sim/tick").json()["update_timestamp"])
    response = client.get(DATA)
    if response.status_code >= 500:
        return "http5xx"
    try:
        snapshot = decode_snapshot(response.content)
    except FeedDecodeError:
        try:
            json.loads(response.content)
        except json.JSONDecodeError:
            return "broken"  # truncated or invalid_json
        return "non_v3"
    return "ok" if snapshot.update_timestamp == stamp else "stale"


def test_rate_gives_the_expected_fraction_and_counts_add_up() -> None:
    kinds = frozenset(ALL_FAULT_KINDS) - {FaultKind.TIMEOUT}
    plan = FaultPlan(rate=0.3, kinds=kinds, seed=11, apply_to_transceivers=False)
    with _client(plan, gzip=False) as client:
        observed = Counter(_classify(client) for _ in range(200))
        state = client.get("/_sim/faults").json()
    faulted = 200 - observed["ok"]
    assert 0.2 * 200 <= faulted <= 0.4 * 200
    counts = state["counts"]
    assert state["requests"] == 200
    assert state["injected"] == sum(counts.values()) == faulted
    assert counts["timeout"] == 0
    assert counts["http5xx"] == observed["http5xx"]
    assert counts["non_v3"] == observed["non_v3"]
    assert counts["stale"] == observed["stale"]
    assert counts["truncated"] + counts["invalid_json"] == observed["broken"]
    assert all(counts[k.value] > 0 for k in kinds)  # every kind is drawn


def test_same_seed_same_sequence_other_seed_differs() -> None:
    def sequence(seed: int) -> list[str]:
        kinds = frozenset(ALL_FAULT_KINDS) - {FaultKind.TIMEOUT}
        with _client(FaultPlan(rate=0.5, kinds=kinds, seed=seed), gzip=False) as client:
            return [_classify(client) for _ in range(40)]

    assert sequence(5) == sequence(5)
    assert sequence(5) != sequence(6)

    plan = FaultPlan(rate=0.4, seed=9)
    a, b = FaultInjector(plan), FaultInjector(plan)
    seq = [a.decide("data") for _ in range(100)]
    assert seq == [b.decide("data") for _ in range(100)]
    a.reconfigure(plan)  # a fresh generator: the sequence starts over
    assert seq == [a.decide("data") for _ in range(100)]
    assert a.injected == 2 * sum(k is not None for k in seq)  # counts are cumulative
    a.reconfigure(plan, reset_counts=True)
    assert a.injected == 0
    assert a.requests == 0


def test_status_json_and_servers_are_never_faulted() -> None:
    client = _client(FaultPlan(rate=1.0, timeout_seconds=5))
    for _ in range(30):
        status = client.get("/status.json")
        assert status.status_code == 200
        assert status.json()["data"]["v3"] == [f"{BASE}{DATA}"]
        assert client.get("/v3/vatsim-servers.json").status_code == 200
    assert client.app.state.simulator.faults.requests == 0  # type: ignore[attr-defined]


def test_transceivers_can_be_exempted() -> None:
    plan = FaultPlan(rate=1.0, kinds=frozenset({FaultKind.HTTP5XX}), apply_to_transceivers=False)
    client = _client(plan)
    for _ in range(10):
        decode_transceivers(client.get(TRANSCEIVERS).content)
        assert client.get(DATA).status_code >= 500
    assert client.get("/_sim/faults").json()["requests"] == 10


def test_explicit_fault_mode_still_wins() -> None:
    client = _client(_only(FaultKind.STALE))
    assert client.post("/_sim/fault", json={"mode": "http500"}).status_code == 200
    assert client.get(DATA).status_code == 500
    client.post("/_sim/fault", json={"mode": "none"})
    assert client.get(DATA).status_code == 200
    assert client.get("/_sim/faults").json()["requests"] == 1


# --- control API -----------------------------------------------------------------------------


def test_faults_endpoint_reports_and_reconfigures() -> None:
    client = _client()
    state = client.get("/_sim/faults").json()
    assert state["plan"] == {
        "rate": 0.0,
        "kinds": [k.value for k in ALL_FAULT_KINDS],
        "seed": 0,
        "timeout_seconds": 30.0,
        "apply_to_transceivers": True,
    }
    assert state["counts"] == dict.fromkeys([k.value for k in FaultKind], 0)
    assert state["injected"] == 0

    body = {"rate": 1.0, "kinds": ["http5xx", "stale"], "seed": 4, "timeout_seconds": 2}
    configured = client.post("/_sim/faults", json=body).json()
    assert configured["plan"]["kinds"] == ["http5xx", "stale"]
    assert configured["plan"]["seed"] == 4
    for _ in range(10):
        client.get(DATA)
    counts = client.get("/_sim/faults").json()["counts"]
    assert counts["http5xx"] + counts["stale"] == 10

    # Omitted keys keep their values; rate 0 disables; counts survive unless reset.
    off = client.post("/_sim/faults", json={"rate": 0}).json()
    assert off["plan"]["kinds"] == ["http5xx", "stale"]
    assert off["injected"] == 10
    assert client.get(DATA).status_code == 200
    reset = client.post("/_sim/faults", json={"reset_counts": True}).json()
    assert reset["injected"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"rate": 2},
        {"rate": -0.1},
        {"rate": "half"},
        {"rate": True},
        {"kinds": ["bogus"]},
        {"kinds": []},
        {"kinds": [1]},
        {"kinds": {"http5xx": 1}},
        {"seed": 1.5},
        {"timeout_seconds": 0},
        {"apply_to_transceivers": "yes"},
        {"reset_counts": 1},
        {"speed": 3},
        [0.5],
    ],
    ids=repr,
)
def test_faults_endpoint_rejects_bad_input(body: object) -> None:
    client = _client()
    response = client.post("/_sim/faults", json=body)
    assert response.status_code == 400
    assert response.json()["error"]
    assert client.get("/_sim/faults").json()["plan"]["rate"] == 0.0  # unchanged


def test_faults_endpoint_rejects_non_json() -> None:
    response = _client().post("/_sim/faults", content=b"rate=1")
    assert response.status_code == 400


def test_bad_kinds_message_names_the_allowed_values() -> None:
    response = _client().post("/_sim/faults", json={"kinds": ["http5xx", "bogus"]})
    message = response.json()["error"]
    assert "bogus" in message
    assert all(k.value in message for k in FaultKind)


def test_plan_validation() -> None:
    assert FaultPlan().kinds == frozenset(ALL_FAULT_KINDS)
    assert not FaultPlan().enabled
    assert parse_fault_kinds("all") == frozenset(ALL_FAULT_KINDS)
    assert parse_fault_kinds(" stale , http5xx ") == {FaultKind.STALE, FaultKind.HTTP5XX}
    assert FaultPlan(kinds=frozenset({"stale"})).kinds == {FaultKind.STALE}  # type: ignore[arg-type]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"rate": 1.5}, "rate must be between 0 and 1"),
        ({"kinds": frozenset()}, "no fault kinds"),
        ({"timeout_seconds": -1}, "timeout_seconds"),
        ({"seed": "x"}, "seed"),
    ]
    for bad, match in cases:
        with pytest.raises(ValueError, match=match):
            FaultPlan(**bad)
    with pytest.raises(ValueError, match="allowed"):
        parse_fault_kinds("http5xx,bogus")


# --- CLI --------------------------------------------------------------------------------------


def _simulate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vatsim_collector", "simulate", "--port", "1", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "option", "hint"),
    [
        (["--fault-rate", "2"], "--fault-rate", "between 0 and 1"),
        (["--fault-rate", "-0.5"], "--fault-rate", "between 0 and 1"),
        (["--fault-kinds", "bogus"], "--fault-kinds", "invalid_json"),
        (["--fault-kinds", "http5xx,nope"], "--fault-kinds", "nope"),
        (["--fault-timeout", "0"], "--fault-timeout", "seconds"),
    ],
)
def test_cli_rejects_bad_fault_options(args: list[str], option: str, hint: str) -> None:
    result = _simulate(*args)
    assert result.returncode != 0
    assert option in result.stderr
    assert hint in result.stderr


# --- the hostile kinds: drip and gzip bomb --------------------------------------------------


def test_hostile_kinds_are_drawn_only_when_named() -> None:
    assert not set(HOSTILE_FAULT_KINDS) & parse_fault_kinds("all")
    assert not set(HOSTILE_FAULT_KINDS) & FaultPlan().kinds
    assert parse_fault_kinds("drip,gzip_bomb") == set(HOSTILE_FAULT_KINDS)
    # The default plan draws from the classic kinds in their old order: seeds keep meaning.
    assert FaultPlan(rate=0.5, seed=4).ordered_kinds == ALL_FAULT_KINDS
    assert tuple(FaultKind)[: len(ALL_FAULT_KINDS)] == ALL_FAULT_KINDS


def test_drip_gives_a_patient_client_the_real_document() -> None:
    client = _client(_only(FaultKind.DRIP, timeout_seconds=0.5), gzip=False)
    slow = client.get(DATA)
    assert slow.status_code == 200
    assert _stamp(slow.content) == START
    assert client.app.state.simulator.faults.counts()["drip"] == 1  # type: ignore[attr-defined]


def _feed_settings(base: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "status_url": f"{base}/status.json",
        "poll_interval": 1.0,
        "http_timeout": 5.0,
        "fetch_transceivers": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


async def test_a_dripped_document_ends_at_the_client_deadline() -> None:
    with running_simulator(seed=3) as base:
        async with httpx2.AsyncClient(base_url=base, timeout=10) as control:
            plan = {"rate": 1.0, "kinds": ["drip"], "timeout_seconds": 60}
            (await control.post("/_sim/faults", json=plan)).raise_for_status()
            async with FeedClient(_feed_settings(base, fetch_deadline=1.5)) as client:
                with pytest.raises(FeedDeadlineExceeded):
                    await client.fetch()
                (await control.post("/_sim/faults", json={"rate": 0.0})).raise_for_status()
                assert await client.fetch() is not None
            state = (await control.get("/_sim/faults")).json()
    assert state["counts"]["drip"] == 1


async def test_a_gzip_bomb_from_the_simulator_is_refused_within_the_limit() -> None:
    with running_simulator(seed=3) as base:
        async with httpx2.AsyncClient(base_url=base, timeout=30) as control:
            plan = {"rate": 1.0, "kinds": ["gzip_bomb"]}
            (await control.post("/_sim/faults", json=plan)).raise_for_status()
            settings = _feed_settings(base, max_document_bytes=16 * 1024 * 1024)
            async with FeedClient(settings) as client:
                with pytest.raises(FeedDocumentTooLarge):
                    await client.fetch()
            state = (await control.get("/_sim/faults")).json()
    assert state["counts"]["gzip_bomb"] == 1


def test_the_gzip_bomb_is_a_valid_document_made_huge() -> None:
    decoded = 3 * 1024 * 1024
    packed = gzip_bomb_body(decoded)
    assert len(packed) < decoded // 500
    document = json.loads(gzip.decompress(packed))
    assert document["pilots"] == []
    assert len(gzip.decompress(packed)) > decoded
