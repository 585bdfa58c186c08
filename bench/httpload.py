"""A small closed-loop HTTP/1.1 load generator, for machines without ``wrk``.

    .venv/bin/python bench/httpload.py URL [--threads 2] [--connections 16] [--duration 30]
                                           [--header "Accept-Encoding: gzip"]

Like ``wrk -tT -cC -dDs``: ``T`` processes (threads would share one GIL) with ``C / T``
keep-alive connections each; every connection sends its next request as soon as the previous
answer is complete, for ``D`` seconds. Responses are read by ``Content-Length`` without being
parsed or kept. Prints one JSON object: requests/s, latency percentiles, non-2xx/3xx answers and
socket errors, in the keys ``load_bench.parse_wrk`` gives for wrk.

It costs more CPU per request than wrk (Python, not C), so on a small machine it takes a larger
share from the server it measures: figures from it are a lower bound of what wrk would show.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

HEAD_END = b"\r\n\r\n"


class _Connection(asyncio.Protocol):
    """One keep-alive connection sending the same request again and again."""

    def __init__(self, request: bytes, deadline: float, run: _Run) -> None:
        self.request = request
        self.deadline = deadline
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.head = bytearray()
        self.remaining: int | None = None
        self.status = 0
        self.sent_at = 0.0
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.sent_at = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        while data:
            if self.remaining is None:
                self.head += data
                end = self.head.find(HEAD_END)
                if end < 0:
                    return
                head = bytes(self.head[:end]).decode("latin-1")
                data = bytes(self.head[end + len(HEAD_END) :])
                self.head.clear()
                self.status = int(head.split(" ", 2)[1])
                self.remaining = _content_length(head)
            taken = min(len(data), self.remaining)
            self.remaining -= taken
            data = data[taken:]
            if self.remaining == 0:
                self.remaining = None
                now = time.perf_counter()
                self.run.record(self.status, now - self.sent_at)
                if now >= self.deadline:
                    assert self.transport is not None
                    self.transport.close()
                    return
                self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.remaining is not None or exc is not None:
            self.run.socket_errors += 1
        if not self.closed.done():
            self.closed.set_result(None)


def _content_length(head: str) -> int:
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            return int(value.strip())
    return 0  # a 304, or an answer this tool cannot frame: counted, body ignored


class _Run:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.non_2xx = 0
        self.socket_errors = 0

    def record(self, status: int, seconds: float) -> None:
        self.latencies.append(seconds)
        if not 200 <= status < 400:
            self.non_2xx += 1


async def _worker(url: str, connections: int, duration: float, headers: list[str]) -> _Run:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", *headers, "", ""]
    request = "\r\n".join(lines).encode("latin-1")
    run = _Run()
    deadline = time.perf_counter() + duration
    loop = asyncio.get_running_loop()
    conns = []
    for _ in range(connections):
        try:
            _, conn = await loop.create_connection(
                lambda: _Connection(request, deadline, run), host, port
            )
            conns.append(conn)
        except OSError:
            run.socket_errors += 1
    await asyncio.wait_for(asyncio.gather(*(c.closed for c in conns)), timeout=duration + 60)
    return run


def _percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_load(
    url: str, *, threads: int, connections: int, duration: float, headers: Sequence[str] = ()
) -> dict[str, Any]:
    """Start ``threads`` worker processes and merge what they measured."""
    per_worker = [connections // threads + (i < connections % threads) for i in range(threads)]
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                url,
                "--worker",
                str(n),
                "--duration",
                str(duration),
                *(arg for header in headers for arg in ("--header", header)),
            ],
            stdout=subprocess.PIPE,
        )
        for n in per_worker
        if n
    ]
    latencies: list[float] = []
    non_2xx = socket_errors = 0
    for worker in workers:
        out, _ = worker.communicate(timeout=duration + 120)
        part = json.loads(out)
        latencies.extend(part["latencies"])
        non_2xx += part["non_2xx"]
        socket_errors += part["socket_errors"]
    latencies.sort()
    result: dict[str, Any] = {
        "tool": "bench/httpload.py (wrk not installed)",
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / duration, 1),
        "non_2xx": non_2xx,
        "socket_errors": socket_errors,
    }
    if latencies:
        for name, fraction in (("p50", 0.5), ("p75", 0.75), ("p90", 0.9), ("p99", 0.99)):
            result[f"{name}_ms"] = round(_percentile(latencies, fraction) * 1000, 2)
        result["max_ms"] = round(latencies[-1] * 1000, 2)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        run = asyncio.run(_worker(args.url, args.worker, args.duration, args.header))
        json.dump(
            {
                "latencies": run.latencies,
                "non_2xx": run.non_2xx,
                "socket_errors": run.socket_errors,
            },
            sys.stdout,
        )
        return 0
    result = run_load(
        args.url,
        threads=args.threads,
        connections=args.connections,
        duration=args.duration,
        headers=args.header,
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
