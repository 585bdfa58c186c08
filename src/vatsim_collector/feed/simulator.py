"""Fake VATSIM feed server used by tests and the offline demo.

The network advances lazily from elapsed monotonic time on each request, so there is no
background task to start or cancel and a paused event loop simply catches up later.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Literal, get_args

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vatsim_collector.feed.sim_geo import TICK
from vatsim_collector.feed.sim_world import SimRates, SimulatedNetwork, load_seed_snapshot

__all__ = [
    "FaultMode",
    "SimRates",
    "SimulatedNetwork",
    "SimulatorControl",
    "create_simulator_app",
    "serve_simulator",
]

FaultMode = Literal["none", "http500", "stale", "malformed"]
_FAULT_MODES: tuple[str, ...] = get_args(FaultMode)
_JSON = "application/json"
# Cut mid-string so any JSON parser fails, not just a strict schema check.
_MALFORMED = b'{"general": {"version": 3, "update_timestamp": "20'


class SimulatorControl:
    """Wall-clock pacing, per-tick response caching and fault injection for one network."""

    def __init__(
        self,
        network: SimulatedNetwork,
        *,
        speed: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0 (0 pauses wall-clock ticking)")
        self.network = network
        self.speed = speed
        self.fault_mode: FaultMode = "none"
        self._clock = clock
        self._epoch = clock()
        self._wall_ticks = 0
        self._data: tuple[int, bytes] | None = None
        self._transceivers: tuple[int, bytes] | None = None
        self._stale: tuple[bytes, bytes] | None = None

    def catch_up(self) -> None:
        if self.speed == 0:
            return
        due = int((self._clock() - self._epoch) * self.speed / TICK.total_seconds())
        while self._wall_ticks < due:
            self.network.tick()
            self._wall_ticks += 1

    def tick(self) -> str:
        self.catch_up()
        self.network.tick()
        return self.network.update_timestamp

    def set_fault(self, mode: FaultMode) -> None:
        # Freeze what clients last could have seen, so "stale" repeats a real document.
        self._stale = (self.data_bytes(), self.transceivers_bytes()) if mode == "stale" else None
        self.fault_mode = mode

    def data_bytes(self) -> bytes:
        self.catch_up()
        tick = self.network.tick_count
        if self._data is None or self._data[0] != tick:
            self._data = (tick, orjson.dumps(self.network.data_document()))
        return self._data[1]

    def transceivers_bytes(self) -> bytes:
        self.catch_up()
        tick = self.network.tick_count
        if self._transceivers is None or self._transceivers[0] != tick:
            self._transceivers = (tick, orjson.dumps(self.network.transceivers_document()))
        return self._transceivers[1]

    def feed_response(self, which: Literal["data", "transceivers"]) -> Response:
        if self.fault_mode == "http500":
            return Response(b"simulated upstream failure", 500, media_type="text/plain")
        if self.fault_mode == "malformed":
            return Response(_MALFORMED, media_type=_JSON)
        if self.fault_mode == "stale" and self._stale is not None:
            return Response(self._stale[0 if which == "data" else 1], media_type=_JSON)
        body = self.data_bytes() if which == "data" else self.transceivers_bytes()
        return Response(body, media_type=_JSON)


def _json(payload: object, status_code: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code, media_type=_JSON)


def create_simulator_app(
    network: SimulatedNetwork,
    *,
    speed: float = 1.0,
    base_url: str,
    clock: Callable[[], float] = time.monotonic,
) -> Starlette:
    """ASGI app serving status.json, v3 data and transceivers for ``network``.

    One tick happens every ``15 / speed`` wall seconds (``speed=0`` only ticks on
    ``POST /_sim/tick``). The ``SimulatorControl`` is exposed as ``app.state.simulator``.
    """
    control = SimulatorControl(network, speed=speed, clock=clock)
    base = base_url.rstrip("/")
    status = orjson.dumps(
        {
            "data": {
                "v3": [f"{base}/v3/vatsim-data.json"],
                "transceivers": [f"{base}/v3/transceivers-data.json"],
                "servers": [f"{base}/v3/vatsim-servers.json"],
                "servers_sandbox": [f"{base}/v3/sandbox-servers.json"],
            },
            "user": [f"{base}/v2/members/"],
            "metar": [f"{base}/metar.php"],
        }
    )
    servers = orjson.dumps(network.data_document()["servers"])

    async def status_json(request: Request) -> Response:
        return Response(status, media_type=_JSON)

    async def data_json(request: Request) -> Response:
        return control.feed_response("data")

    async def transceivers_json(request: Request) -> Response:
        return control.feed_response("transceivers")

    async def servers_json(request: Request) -> Response:
        return Response(servers, media_type=_JSON)

    async def sim_tick(request: Request) -> Response:
        stamp = control.tick()
        return _json({"update_timestamp": stamp, "tick": network.tick_count})

    async def sim_fault(request: Request) -> Response:
        try:
            payload = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _json({"error": "body must be JSON"}, 400)
        mode = payload.get("mode") if isinstance(payload, dict) else None
        if mode not in _FAULT_MODES:
            return _json({"error": f"mode must be one of {list(_FAULT_MODES)}"}, 400)
        control.set_fault(mode)
        return _json({"mode": mode})

    app = Starlette(
        routes=[
            Route("/status.json", status_json, methods=["GET"]),
            Route("/v3/vatsim-data.json", data_json, methods=["GET"]),
            Route("/v3/transceivers-data.json", transceivers_json, methods=["GET"]),
            Route("/v3/vatsim-servers.json", servers_json, methods=["GET"]),
            Route("/v3/sandbox-servers.json", servers_json, methods=["GET"]),
            Route("/_sim/tick", sim_tick, methods=["POST"]),
            Route("/_sim/fault", sim_fault, methods=["POST"]),
        ],
        middleware=[Middleware(GZipMiddleware, minimum_size=512)],
    )
    app.state.simulator = control
    return app


def serve_simulator(
    *,
    host: str,
    port: int,
    seed_snapshot: Path | None,
    speed: float,
    seed: int,
    start: datetime | None,
) -> None:
    """Run the simulator with uvicorn until interrupted (blocking)."""
    import uvicorn

    network = SimulatedNetwork(load_seed_snapshot(seed_snapshot), seed=seed, start=start)
    # A wildcard bind address is not something a client can connect to.
    public_host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in public_host:
        public_host = f"[{public_host}]"
    app = create_simulator_app(network, speed=speed, base_url=f"http://{public_host}:{port}")
    uvicorn.run(app, host=host, port=port, log_level="info")
