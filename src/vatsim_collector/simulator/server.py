"""Fake VATSIM feed server used by tests and the offline demo.

The network advances lazily from elapsed monotonic time on each request, so there is no
background task to start or cancel and a paused event loop simply catches up later.

Faults come two ways: an explicit mode for every request (``POST /_sim/fault``: none,
http500, stale, malformed), which wins when set, and a seeded random ``FaultInjector``
(``POST``/``GET /_sim/faults``, ``--fault-rate``) for the data and transceivers documents;
its ``drip`` and ``gzip_bomb`` kinds, drawn only when named, test a client's deadline and
size bound.
``status.json`` and the servers documents are never faulted.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Literal, get_args

import anyio
import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from vatsim_collector.simulator.faults import (
    DRIP_STEP_SECONDS,
    Document,
    FaultInjector,
    FaultKind,
    FaultPlan,
    broken_json_body,
    gzip_bomb_body,
    http5xx_body,
    non_v3_body,
    truncated_body,
)
from vatsim_collector.simulator.geo import TICK
from vatsim_collector.simulator.world import (
    FlightMode,
    SimRates,
    SimulatedNetwork,
    load_seed_snapshot,
)

__all__ = [
    "FaultInjector",
    "FaultKind",
    "FaultMode",
    "FaultPlan",
    "FlightMode",
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
# How often a held ("timeout") response checks whether it should give up early.
_HOLD_POLL_SECONDS = 0.05


class SimulatorControl:
    """Wall-clock pacing, per-tick response caching and fault injection for one network."""

    def __init__(
        self,
        network: SimulatedNetwork,
        *,
        speed: float,
        clock: Callable[[], float] = time.monotonic,
        faults: FaultPlan | None = None,
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
        self.faults = FaultInjector(faults)
        # The last real document each endpoint served: what a "stale" fault repeats.
        self._served: dict[Document, bytes] = {}
        # Bumped to let every held ("timeout") response go at once.
        self._release_generation = 0

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

    def configure_faults(self, plan: FaultPlan, *, reset_counts: bool = False) -> None:
        """Replace the random fault plan; responses held by a timeout fault are released."""
        self.faults.reconfigure(plan, reset_counts=reset_counts)
        self.release_held()

    def release_held(self) -> None:
        """Let every response currently held by a timeout fault complete now."""
        self._release_generation += 1

    def _current(self, which: Document) -> bytes:
        return self.data_bytes() if which == "data" else self.transceivers_bytes()

    def _serve(self, which: Document, body: bytes) -> Response:
        self._served[which] = body
        return Response(body, media_type=_JSON)

    def feed_response(self, which: Document, fault: FaultKind | None = None) -> Response:
        """The response for ``which`` under the explicit mode, else under ``fault``.

        A ``timeout`` fault is only a delay (see ``respond``); here it serves normally.
        """
        if self.fault_mode == "http500":
            return Response(b"simulated upstream failure", 500, media_type="text/plain")
        if self.fault_mode == "malformed":
            return Response(_MALFORMED, media_type=_JSON)
        if self.fault_mode == "stale" and self._stale is not None:
            return Response(self._stale[0 if which == "data" else 1], media_type=_JSON)
        rng = self.faults.rng
        if fault is FaultKind.HTTP5XX:
            status, text, media_type = http5xx_body(rng)
            return Response(text, status, media_type=media_type)
        if fault is FaultKind.TRUNCATED:
            return Response(truncated_body(self._current(which), rng), media_type=_JSON)
        if fault is FaultKind.INVALID_JSON:
            return Response(broken_json_body(self._current(which), which, rng), media_type=_JSON)
        if fault is FaultKind.NON_V3:
            return Response(non_v3_body(self._current(which), which, rng), media_type=_JSON)
        if fault is FaultKind.STALE:
            # Nothing served yet: the current document is, trivially, the previous one too.
            return self._serve(which, self._served.get(which) or self._current(which))
        return self._serve(which, self._current(which))

    async def respond(self, which: Document, request: Request) -> Response:
        """Serve a feed request, drawing a random fault unless an explicit mode is set."""
        if self.fault_mode != "none":
            return self.feed_response(which)
        fault = self.faults.decide(which)
        if fault is FaultKind.TIMEOUT and not await self._hold(
            request, self.faults.plan.timeout_seconds
        ):
            # The client gave up; nobody reads this, and it must not count as served.
            return Response(b"client went away", 504, media_type="text/plain")
        if fault is FaultKind.DRIP:
            return self._drip(which, self.faults.plan.timeout_seconds)
        if fault is FaultKind.GZIP_BOMB:
            # Built once per process (about 2 s of CPU): off the event loop.
            bomb = await anyio.to_thread.run_sync(gzip_bomb_body)
            # Already encoded, so the gzip middleware passes it through untouched.
            return Response(bomb, media_type=_JSON, headers={"Content-Encoding": "gzip"})
        return self.feed_response(which, fault)

    def _drip(self, which: Document, seconds: float) -> Response:
        """The real document, one byte per step for ``seconds``, then the rest at once."""
        body = self._current(which)
        generation = self._release_generation

        async def trickle() -> AsyncIterator[bytes]:
            ends = time.monotonic() + seconds
            sent = 0
            # Bounded by the body and by ``seconds``; a client leaving cancels it (starlette
            # listens for the disconnect), a fault reconfiguration lets the rest go at once.
            while sent < len(body) - 1 and self._release_generation == generation:
                left = ends - time.monotonic()
                if left <= 0:
                    break
                yield body[sent : sent + 1]
                sent += 1
                await anyio.sleep(min(left, DRIP_STEP_SECONDS))
            yield body[sent:]

        # "identity" keeps the gzip middleware from buffering the trickle into one piece.
        headers = {"Content-Length": str(len(body)), "Content-Encoding": "identity"}
        return StreamingResponse(trickle(), media_type=_JSON, headers=headers)

    async def _hold(self, request: Request, seconds: float) -> bool:
        """Wait ``seconds``; ``False`` early if the client disconnects.

        Polls instead of blocking on one long sleep so that a client timing out, a
        ``release_held`` (any fault reconfiguration) or task cancellation all end it promptly,
        and a server shutting down is not kept waiting on a response nobody will read.
        """
        generation = self._release_generation
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            await anyio.sleep(min(left, _HOLD_POLL_SECONDS))
            if self._release_generation != generation:
                return True
            if await request.is_disconnected():
                return False
        return True


def _json(payload: object, status_code: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code, media_type=_JSON)


def create_simulator_app(
    network: SimulatedNetwork,
    *,
    speed: float = 1.0,
    base_url: str,
    clock: Callable[[], float] = time.monotonic,
    faults: FaultPlan | None = None,
) -> Starlette:
    """ASGI app serving status.json, v3 data and transceivers for ``network``.

    One tick happens every ``15 / speed`` wall seconds (``speed=0`` only ticks on
    ``POST /_sim/tick``). ``faults`` starts the random fault injector (reconfigurable with
    ``POST /_sim/faults``). The ``SimulatorControl`` is exposed as ``app.state.simulator``.
    """
    control = SimulatorControl(network, speed=speed, clock=clock, faults=faults)
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
        return await control.respond("data", request)

    async def transceivers_json(request: Request) -> Response:
        return await control.respond("transceivers", request)

    async def servers_json(request: Request) -> Response:
        return Response(servers, media_type=_JSON)

    async def sim_tick(request: Request) -> Response:
        stamp = control.tick()
        return _json({"update_timestamp": stamp, "tick": network.tick_count})

    async def sim_truth(request: Request) -> Response:
        """Every true movement so far (realistic flights; empty for the random model)."""
        control.catch_up()
        return _json(
            {
                "flights": network.flights,
                "tick": network.tick_count,
                "update_timestamp": network.update_timestamp,
                "movements": [m.as_json() for m in network.truth()],
            }
        )

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

    async def sim_faults_get(request: Request) -> Response:
        return _json(control.faults.as_json())

    async def sim_faults_post(request: Request) -> Response:
        """Body ``{"rate", "kinds", "seed", "timeout_seconds", "apply_to_transceivers",
        "reset_counts"}``, all optional: omitted plan keys keep their current values."""
        try:
            payload = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _json({"error": "body must be JSON"}, 400)
        try:
            plan = FaultPlan.from_json(payload, base=control.faults.plan)
            reset = payload.get("reset_counts", False)
            if not isinstance(reset, bool):
                raise ValueError("reset_counts must be true or false")
        except (ValueError, TypeError) as exc:
            return _json({"error": str(exc)}, 400)
        control.configure_faults(plan, reset_counts=reset)
        return _json(control.faults.as_json())

    app = Starlette(
        routes=[
            Route("/status.json", status_json, methods=["GET"]),
            Route("/v3/vatsim-data.json", data_json, methods=["GET"]),
            Route("/v3/transceivers-data.json", transceivers_json, methods=["GET"]),
            Route("/v3/vatsim-servers.json", servers_json, methods=["GET"]),
            Route("/v3/sandbox-servers.json", servers_json, methods=["GET"]),
            Route("/_sim/tick", sim_tick, methods=["POST"]),
            Route("/_sim/fault", sim_fault, methods=["POST"]),
            Route("/_sim/truth", sim_truth, methods=["GET"]),
            Route("/_sim/faults", sim_faults_get, methods=["GET"]),
            Route("/_sim/faults", sim_faults_post, methods=["POST"]),
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
    faults: FaultPlan | None = None,
    flights: FlightMode = "random",
) -> None:
    """Run the simulator with uvicorn until interrupted (blocking)."""
    import uvicorn

    network = SimulatedNetwork(
        load_seed_snapshot(seed_snapshot), seed=seed, start=start, flights=flights
    )
    # A wildcard bind address is not something a client can connect to.
    public_host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in public_host:
        public_host = f"[{public_host}]"
    app = create_simulator_app(
        network, speed=speed, base_url=f"http://{public_host}:{port}", faults=faults
    )
    uvicorn.run(app, host=host, port=port, log_level="info")
