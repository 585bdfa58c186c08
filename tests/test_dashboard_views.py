"""The dashboard's airport view and controller activity table in Chromium (issue 13, item 7).

Like ``test_dashboard.py``: ``vatsim-collector run`` against the simulator over HTTP, the page
in Debian's Chromium driven by Playwright, and every figure the page shows compared with what
the API answers for the same request. The CSV link is followed as a user would, as a download.
"""

from __future__ import annotations

import csv
import io
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx2
import pytest
from playwright.sync_api import Page, sync_playwright

from simserver import running_simulator
from test_dashboard import CHROMIUM, _api, _output_dir, _value
from test_service_e2e import collector, tick_and_wait
from vatsim_collector.simulator.world import SimulatedNetwork

pytestmark = pytest.mark.slow


@contextmanager
def dashboard(database_url: str, tmp_path: Path) -> Iterator[tuple[Page, str, list[str]]]:
    """The page open on a collector that stored a few simulated snapshots; yields the page,
    the collector's base URL and the console errors, asserted empty at the end."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-chromium", pytrace=False)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    network = SimulatedNetwork(seed=7, start=start)
    console: list[str] = []
    outside: list[str] = []
    with (
        running_simulator(network=network, speed=0) as sim,
        collector(database_url, f"{sim}/status.json", tmp_path) as base,
        sync_playwright() as playwright,
    ):
        for _ in range(4):
            tick_and_wait(sim, base)
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900}, accept_downloads=True)
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: console.append(f"uncaught: {exc}"))
            page.on(
                "request",
                lambda r: outside.append(r.url) if not r.url.startswith(f"{base}/") else None,
            )
            loaded = page.goto(f"{base}/")
            assert loaded is not None
            assert loaded.status == 200
            page.wait_for_selector("body[data-refreshes]", state="attached", timeout=60_000)
            yield page, base, console
        finally:
            browser.close()
    assert outside == [], f"requests to other hosts: {outside}"


def _activity(base: str, **params: Any) -> dict[str, Any]:
    return _api(base, f"/api/activity/controllers?{urlencode(params)}")


def _shown_rows(page: Page) -> list[tuple[str, float]]:
    rows = page.get_by_test_id("activity-row")
    keys = [rows.nth(i).get_attribute("data-key") or "" for i in range(rows.count())]
    hours = [
        float(cell.get_attribute("data-value") or "nan")
        for cell in page.locator('[data-testid="activity-row"] td[data-value]').all()
    ]
    return list(zip(keys, hours, strict=True))


def _wait_for_window(page: Page, start: str) -> None:
    page.wait_for_selector(
        f'[data-testid="activity-rows"][data-from="{start}"]', state="attached", timeout=30_000
    )


def test_activity_table_and_its_csv_link_in_chromium(
    database_url: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    began = time.monotonic()
    with dashboard(database_url, tmp_path) as (page, base, console):
        table = page.get_by_test_id("activity-rows")
        page.wait_for_selector('[data-testid="activity-rows"][data-from]', state="attached")
        start, end = table.get_attribute("data-from"), table.get_attribute("data-to")
        assert start is not None
        assert end is not None
        # The default window: the last 24 hours, to the next whole minute.
        span = datetime.fromisoformat(end) - datetime.fromisoformat(start)
        assert span == timedelta(hours=24)
        api = _activity(base, **{"from": start, "to": end, "group_by": "cid", "limit": 100})
        assert api["rows"], "the simulator's controllers were on position"
        assert _shown_rows(page) == [(r["key"], r["hours"]) for r in api["rows"]]
        assert _value(page, "activity-groups") == api["pagination"]["total"]
        hours = page.get_by_test_id("activity-hours").get_attribute("data-value")
        assert float(hours or "nan") == api["totals"]["hours"]

        # Per position: choosing it reloads the table at once.
        page.get_by_test_id("activity-group").select_option("position")
        by_position = _activity(
            base, **{"from": start, "to": end, "group_by": "position", "limit": 100}
        )
        expected = [(r["key"], r["hours"]) for r in by_position["rows"]]
        page.wait_for_selector(
            f'[data-testid="activity-row"][data-key="{expected[0][0]}"]', state="attached"
        )
        assert _shown_rows(page) == expected

        # The CSV link downloads the same rows the table shows.
        with page.expect_download() as download_info:
            page.get_by_test_id("activity-csv").click()
        download = download_info.value
        assert download.suggested_filename == "controller-activity.csv"
        lines = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
        assert [(line["key"], float(line["hours"])) for line in lines] == expected
        direct = httpx2.get(
            f"{base}/api/activity/controllers",
            params={
                "from": start,
                "to": end,
                "group_by": "position",
                "limit": 100,
                "format": "csv",
            },
        )
        assert Path(download.path()).read_bytes() == direct.content

        # Another window, typed in the picker (UTC): a day long before the simulation.
        page.get_by_test_id("activity-from").fill("2020-01-01T00:00")
        page.get_by_test_id("activity-to").fill("2020-01-02T00:00")
        page.get_by_test_id("activity-submit").click()
        _wait_for_window(page, "2020-01-01T00:00:00Z")
        assert page.get_by_test_id("activity-row").count() == 0
        assert "No controller on position" in (table.text_content() or "")
        assert _value(page, "activity-groups") == 0
        href = page.get_by_test_id("activity-csv").get_attribute("href") or ""
        assert "from=2020-01-01T00%3A00%3A00.000Z" in href
        assert "format=csv" in href

        # A window the API refuses shows its reason, not a stale table.
        page.get_by_test_id("activity-from").fill("2020-01-01T00:00")
        page.get_by_test_id("activity-to").fill("2020-06-01T00:00")
        page.get_by_test_id("activity-submit").click()
        page.wait_for_selector("#card-activity.failed", state="attached", timeout=30_000)
        error = page.locator("#card-activity .card-error").text_content() or ""
        assert "longer than the maximum of 92 days" in error
        shot = _output_dir(tmp_path_factory) / "dashboard-activity.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"activity screenshot: {shot}")
    # The 422 above is the one expected console error (the browser logs failed fetches).
    assert [c for c in console if "422" not in c] == [], console
    print(f"activity browser test took {time.monotonic() - began:.0f} s")


def _airport_endpoints(base: str) -> bool:
    paths = _api(base, "/openapi.json")["paths"]
    return {
        "/api/airports/{icao}",
        "/api/airports/{icao}/traffic",
        "/api/airports/{icao}/movements",
    } <= set(paths)


def test_airport_view_in_chromium(
    database_url: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with dashboard(database_url, tmp_path) as (page, base, console):
        if not _airport_endpoints(base):
            pytest.skip("the airport endpoints (/api/airports/{icao}...) are not on this branch")
        flights = _api(base, "/api/flights")["flights"]
        # The busiest departure airport of the aircraft on the ground: its lists are not empty.
        grounded = [f for f in flights if f.get("departure") and f["groundspeed"] < 50]
        icao = Counter(f["departure"] for f in grounded or flights).most_common(1)[0][0]
        page.get_by_test_id("airport-input").fill(icao.lower())
        page.get_by_test_id("airport-submit").click()
        page.wait_for_selector(
            f'#card-airport[data-state="shown"][data-icao="{icao}"]',
            state="attached",
            timeout=30_000,
        )
        assert page.url.endswith(f"#airport={icao}")
        now = _api(base, f"/api/airports/{icao}")
        assert (page.get_by_test_id("airport-title").text_content() or "").startswith(icao)
        assert _value(page, "airport-on-ground") == len(now["on_ground"])
        departing = [f for f in now["on_ground"] if f["departure"] == icao]
        assert _value(page, "airport-departing") == len(departing)
        assert _value(page, "airport-arriving") == len(now["inbound"])
        assert _value(page, "airport-departures-60") == now["departures"]["last_60_min"]
        assert _value(page, "airport-arrivals-30") == now["arrivals"]["last_30_min"]
        assert _value(page, "airport-atc") == len(now["atc"])
        ground = page.get_by_test_id("airport-ground-row")
        assert [ground.nth(i).get_attribute("data-callsign") for i in range(ground.count())] == [
            f["callsign"] for f in now["on_ground"]
        ]
        arriving = page.get_by_test_id("airport-arriving-row")
        assert arriving.count() == len(now["inbound"])

        chart = page.locator("#airport-chart")
        window = {"from": chart.get_attribute("data-from"), "to": chart.get_attribute("data-to")}
        traffic = _api(
            base, f"/api/airports/{icao}/traffic?{urlencode({**window, 'bucket_minutes': 60})}"
        )
        assert chart.get_attribute("data-buckets") == str(len(traffic["buckets"]))
        assert _value(page, "airport-traffic-departures") == sum(
            b["departures"] for b in traffic["buckets"]
        )
        movements = _api(
            base, f"/api/airports/{icao}/movements?{urlencode({**window, 'limit': 100})}"
        )
        listed = movements.get("movements", movements.get("items", []))
        shown = page.get_by_test_id("airport-movement-rows").get_attribute("data-count")
        assert shown == str(len(listed))

        # An unknown code says so.
        page.get_by_test_id("airport-input").fill("ZZZZ")
        page.get_by_test_id("airport-submit").click()
        page.wait_for_selector("#card-airport.failed", state="attached", timeout=30_000)
        assert "No airport ZZZZ" in (page.get_by_test_id("airport-title").text_content() or "")
        shot = _output_dir(tmp_path_factory) / "dashboard-airport.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"airport screenshot: {shot}")
    assert [c for c in console if "404" not in c] == [], console
