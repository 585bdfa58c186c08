"""Issue 13, deliverable 5: a member's history (totals, flights, controller sessions)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert

from test_activity import T0, H, M, client, session, world  # noqa: F401 (fixtures)
from vatsim_collector.api import create_app
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.store import schema as t


def get(api: TestClient, path: str, **params: Any) -> dict[str, Any]:
    answer = api.get(path, params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_controllers_totals_count_as_the_activity_endpoint_does(
    client: TestClient,  # noqa: F811
    world: dict[str, int],  # noqa: F811
) -> None:
    body = get(client, "/api/members/1001")
    assert body["controller"]["hours"] == 3.0
    assert body["controller"]["sessions"] == 1
    assert [(p["callsign"], p["hours"]) for p in body["controller"]["positions"]] == [
        ("EGLL_TWR", 3.0)
    ]
    assert body["last_seen"] == "2026-12-01T01:00:00Z"
    # The supervisor connection is no position; the CTR the same member staffed is.
    sup = get(client, "/api/members/1004")["controller"]
    assert [(p["callsign"], p["hours"]) for p in sup["positions"]] == [("EGTT_CTR", 1.0)]
    # Same figures as /api/activity/controllers over the same stretch of time.
    activity = get(
        client,
        "/api/activity/controllers",
        **{"from": (T0 - 10 * H).isoformat(), "to": (T0 + 10 * H).isoformat()},
    )
    assert {r["cid"]: r["hours"] for r in activity["rows"]} == {
        cid: get(client, f"/api/members/{cid}")["controller"]["hours"]
        for cid in (1001, 1002, 1004, 1006)
    }


def test_controller_sessions_list_every_session_atis_included_newest_first(
    client: TestClient,  # noqa: F811
    world: dict[str, int],  # noqa: F811
) -> None:
    body = get(client, "/api/members/1005/controller-sessions")
    assert [(s["callsign"], s["atis"]) for s in body["sessions"]] == [("EGLL_ATIS", True)]
    body = get(client, "/api/members/1004/controller-sessions")
    assert [s["callsign"] for s in body["sessions"]] == ["EGTT_CTR", "EURW_SUP"]
    assert body["pagination"] == {"total": 2, "limit": 50, "offset": 0}
    page = get(client, "/api/members/1004/controller-sessions", limit=1, offset=1)
    assert [s["callsign"] for s in page["sessions"]] == ["EURW_SUP"]


def test_a_pilots_flights_with_reconnects_and_hours(engine: Engine) -> None:
    with engine.begin() as conn:
        flight = conn.execute(
            insert(t.flights)
            .values(cid=1234567, callsign="BAW1", departure="EGLL", arrival="KJFK", started_at=T0)
            .returning(t.flights.c.id)
        ).scalar_one()
        later = conn.execute(
            insert(t.flights)
            .values(cid=1234567, callsign="BAW2", started_at=T0 + 10 * H)
            .returning(t.flights.c.id)
        ).scalar_one()
        # The first flight was flown in two connections (a reconnect).
        for logon, first, last, fid in (
            (T0, T0, T0 + 2 * H, flight),
            (T0 + 2 * H + 5 * M, T0 + 2 * H + 5 * M, T0 + 7 * H, flight),
            (T0 + 10 * H, T0 + 10 * H, T0 + 11 * H, later),
        ):
            conn.execute(
                insert(t.pilot_sessions).values(
                    cid=1234567,
                    callsign="BAW1" if fid == flight else "BAW2",
                    logon_time=logon,
                    first_seen_at=first,
                    last_seen_at=last,
                    flight_id=fid,
                )
            )
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    api = TestClient(create_app(ingestor, stale_after=1e9, clock=lambda: T0 + 12 * H))
    totals = get(api, "/api/members/1234567")
    assert totals["pilot"] == {
        "hours": pytest.approx(2 + (7 - 2 - 5 / 60) + 1, abs=1e-4),
        "sessions": 3,
        "flights": 2,
        "first_seen": "2026-11-30T22:00:00Z",
        "last_seen": "2026-12-01T09:00:00Z",
    }
    assert totals["controller"]["hours"] == 0.0
    flights = get(api, "/api/members/1234567/flights")
    assert [(f["callsign"], f["sessions"]) for f in flights["flights"]] == [
        ("BAW2", 1),
        ("BAW1", 2),
    ]
    assert flights["flights"][1]["hours"] == pytest.approx(2 + 5 - 5 / 60, abs=1e-4)
    assert flights["flights"][1]["departure"] == "EGLL"
    assert "name" not in str(flights)


@pytest.mark.parametrize(
    "path", ["/api/members/{}", "/api/members/{}/flights", "/api/members/{}/controller-sessions"]
)
def test_a_member_never_seen_is_404(client: TestClient, path: str) -> None:  # noqa: F811
    answer = client.get(path.format(7654321))
    assert answer.status_code == 404
    assert "7654321" in answer.json()["detail"]


def test_a_forgotten_member_is_not_found_any_more(engine: Engine) -> None:
    with engine.begin() as conn:
        session(conn, t.controller_sessions, 2222222, "EDDF_TWR", T0, T0 + H)
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    key = "admin-key"
    api = TestClient(
        create_app(ingestor, stale_after=1e9, clock=lambda: T0 + 2 * H, api_keys=[("admin", key)])
    )
    assert api.get("/api/members/2222222").status_code == 200
    assert api.delete("/api/members/2222222", headers={"X-API-Key": key}).status_code == 200
    assert api.get("/api/members/2222222").status_code == 404
