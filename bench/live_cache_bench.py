"""What one "now" request costs the API process, cached and uncached, without a network.

    .venv/bin/python bench/live_cache_bench.py [--pilots-seed 5] [--requests 300] [--rounds 7]

Builds the simulator's network (about 650 pilots, as ``load_bench.py`` serves), ingests a few
snapshots into a throwaway SQLite file, and drives the app built by ``create_app`` directly
through ASGI (the whole middleware stack, no socket, no HTTP parser), timing each request:

- ``uncached``: the pre-cache handler (the builder behind a route with its response model,
  FastAPI rendering it on every request), added to the same app;
- ``cached``: the live route (the stored bytes);
- ``cached, If-None-Match``: a 304;
- ``cached, gzip``: the stored gzip copy;
- ``/api/status`` as it was (``status_out`` behind a plain ``def`` route with its response
  model, the leadership read from the database on every request) and as it is
  (``api/status_cache.py``: built, compared with the held bytes, the held bytes sent).

The median of ``--rounds`` rounds of ``--requests`` requests each, in microseconds per request,
so a machine shared with other work disturbs it less than a load test. Results go to
``bench/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI
from pydantic import BaseModel

from dbsetup import machine
from vatsim_collector.api import create_app
from vatsim_collector.api.context import ApiContext
from vatsim_collector.api.models import StatusOut
from vatsim_collector.api.routes_controllers import controllers_out
from vatsim_collector.api.routes_flights import flights_out
from vatsim_collector.api.routes_status import status_out
from vatsim_collector.api.status_cache import Leadership
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.simulator.world import SimulatedNetwork
from vatsim_collector.store.cluster import read_leadership
from vatsim_collector.store.engine import create_db_engine
from vatsim_collector.store.migrate import upgrade

RESULTS = Path(__file__).resolve().parent / "results"
START = datetime(2026, 6, 1, tzinfo=UTC)
Headers = list[tuple[bytes, bytes]]


async def _request(app: FastAPI, path: str, headers: Headers) -> tuple[int, int, Headers]:
    """One GET through the app's ASGI interface: its status, body size and headers."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    status = 0
    size = 0
    answered: Headers = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, size
        if message["type"] == "http.response.start":
            status = message["status"]
            answered.extend(message["headers"])
        elif message["type"] == "http.response.body":
            size += len(message.get("body", b""))

    await app(scope, receive, send)
    return status, size, answered


async def _time(app: FastAPI, path: str, headers: Headers, requests: int) -> tuple[float, int]:
    status, size, _ = await _request(app, path, headers)  # warm: the first one renders
    assert status in (200, 304), (path, status)
    started = time.perf_counter()
    for _ in range(requests):
        await _request(app, path, headers)
    return (time.perf_counter() - started) / requests * 1e6, size


def _uncached(app: FastAPI, ctx: ApiContext) -> None:
    """The handlers as they were: the builder behind a route with its response model."""
    builders: dict[str, Callable[[], BaseModel]] = {
        "/bench/uncached/flights": lambda: flights_out(ctx.collector.live),
        "/bench/uncached/controllers": lambda: controllers_out(ctx.collector.live),
    }
    for path, build in builders.items():
        app.add_api_route(path, build, response_model=type(build()))

    def status_as_before() -> StatusOut:
        # As the route was: a plain def (the thread pool), the leadership read each time.
        view = ctx.collector.live
        with ctx.db.read("api.leadership") as conn:
            read = read_leadership(conn)
        leadership = Leadership(
            read.leader_node, read.epoch, role=ctx.node.role, view=view, read_at=0
        )
        return status_out(ctx, view, ctx.health_report(), leadership)

    app.add_api_route("/bench/uncached/status", status_as_before, response_model=StatusOut)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--snapshots", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_db_engine(f"sqlite:///{tmp}/bench.db")
        upgrade(engine)
        ingestor = Ingestor(engine, IngestConfig())
        ingestor.restore()
        network = SimulatedNetwork(seed=5, start=START)
        for _ in range(args.snapshots):
            ingestor.ingest(
                orjson.dumps(network.data_document()),
                transceivers_raw=orjson.dumps(network.transceivers_document()),
            )
            network.tick()
        # A frozen clock, so that the 304 case meets the same status all along; the age's
        # once-a-second change costs one rendering a second under the real one.
        frozen = datetime.now(UTC)
        app = create_app(ingestor, stale_after=1e9, clock=lambda: frozen)
        ctx = app.state.api_context
        assert isinstance(ctx, ApiContext)
        _uncached(app, ctx)
        _, _, answered = asyncio.run(_request(app, "/api/flights", []))
        flights_tag = dict(answered)[b"etag"].decode()
        # The status changes once a second (its age): this tag is the one of a frozen clock.
        _, _, answered = asyncio.run(_request(app, "/api/status", []))
        status_tag = dict(answered)[b"etag"].decode()
        cases: dict[str, tuple[str, Headers]] = {
            "flights uncached": ("/bench/uncached/flights", []),
            "flights cached": ("/api/flights", []),
            "flights cached, If-None-Match (304)": (
                "/api/flights",
                [(b"if-none-match", flights_tag.encode())],
            ),
            "flights cached, gzip": ("/api/flights", [(b"accept-encoding", b"gzip")]),
            "controllers uncached": ("/bench/uncached/controllers", []),
            "controllers cached": ("/api/controllers", []),
            "status uncached": ("/bench/uncached/status", []),
            "status cached": ("/api/status", []),
            "status cached, If-None-Match (304)": (
                "/api/status",
                [(b"if-none-match", status_tag.encode())],
            ),
            "status cached, gzip": ("/api/status", [(b"accept-encoding", b"gzip")]),
        }
        per_case: dict[str, list[float]] = {name: [] for name in cases}
        sizes: dict[str, int] = {}
        for _ in range(args.rounds):
            # Interleaved, so a burst of other work on the machine hits every case alike.
            for name, (path, headers) in cases.items():
                micros, sizes[name] = asyncio.run(_time(app, path, headers, args.requests))
                per_case[name].append(micros)
        engine.dispose()
    report: dict[str, Any] = {
        "bench": "live_cache",
        "at": datetime.now(UTC).isoformat(),
        "machine": machine(None),
        "pilots": len(ingestor.live.pilots),
        "requests_per_round": args.requests,
        "rounds": args.rounds,
        "cases": {
            name: {
                "median_us": round(statistics.median(values), 1),
                "min_us": round(min(values), 1),
                "body_bytes": sizes[name],
            }
            for name, values in per_case.items()
        },
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"live-cache-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
