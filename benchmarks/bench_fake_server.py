"""How much the fake Live API server costs: CPU per server message, memory per idle connection.

The server runs in its own process (so its CPU time is its own), started from this very file
with ``--serve``; it prints ``READY <url>`` and answers ``stats`` on stdin with a JSON line of its
CPU seconds, RSS, messages sent and open connections. This process plays the clients:

* throughput — a few trio-websocket clients ask turn after turn; each answer is ``--chunks``
  model chunks (plus transcripts in AUDIO), and the figure is server messages per server
  CPU-second, over everything the server does (reading, parsing, logging, sending);
* idle — ``--connections`` bare TCP clients do the WebSocket handshake and ``setup`` and then
  stay silent; the figures are the server's RSS and its CPU while they idle.

Run it alone (``python benchmarks/bench_fake_server.py [--quick] [--json]``) or call
``main(argv)``, which returns the figures as a dict; they are also written to
``benchmarks/results/fake_server[.quick].json`` (``--no-save``: not). Nothing here asserts a
time: it prints numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio
import trio_websocket

import _bench_common as common

#: TEXT turns need the fake-only text model (see ``_bench_common.TEXT_MODEL``).
TEXT_MODEL = f"models/{common.TEXT_MODEL}"
AUDIO_MODEL = f"models/{common.AUDIO_MODEL}"


# -- the server process ------------------------------------------------------------------


async def _serve(chunks: int, record: bool) -> None:
    from liveactors.testing import open_fake_server

    options: dict[str, Any] = {
        "api_keys": None,
        "chunks": chunks,
        "connection_lifetime": None,
        "audio_session_limit": None,
        "record_client_messages": record,
        "record_server_messages": record,
        "handshake_timeout": 120,
    }
    async with open_fake_server(**options) as server:
        print(f"READY {server.url}", flush=True)
        while True:
            line = await trio.to_thread.run_sync(sys.stdin.readline)
            if not line or line.strip() == "quit":
                return
            stats = {
                "cpu": time.process_time(),
                "rss_kb": common.rss_kib(),
                "messages": server.messages_sent,
                "open": len(server.open_connections),
                "errors": len(server.log.errors),
            }
            print(json.dumps(stats), flush=True)


# -- the client side ---------------------------------------------------------------------


class ServerProcess:
    """The server subprocess and its stats channel."""

    def __init__(self, chunks: int, record: bool) -> None:
        command = [sys.executable, os.path.abspath(__file__), "--serve", "--chunks", str(chunks)]
        if not record:
            command.append("--no-record")
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"the server did not start: {line!r}")
        self.url = line.split()[1]
        self.port = int(self.url.rsplit(":", 1)[1])

    def stats(self) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        stats: dict[str, Any] = json.loads(self.process.stdout.readline())
        return stats

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.write("quit\n")
            self.process.stdin.flush()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def _converse(url: str, setup: dict[str, Any], turns: int) -> int:
    """One client: setup, then ``turns`` text turns; returns messages received."""
    received = 0
    async with trio_websocket.open_websocket_url(
        url + common.PATH,
        extra_headers=[(b"x-goog-api-key", b"bench")],
        max_message_size=16 * 2**20,
    ) as ws:
        await ws.send_message(json.dumps(setup))
        await ws.get_message()
        for n in range(turns):
            turn = {
                "clientContent": {
                    "turns": [{"role": "user", "parts": [{"text": f"turn {n}"}]}],
                    "turnComplete": True,
                }
            }
            await ws.send_message(json.dumps(turn))
            while True:
                received += 1
                if b'"turnComplete"' in await ws.get_message():  # type: ignore[operator]
                    break
    return received


async def _throughput(
    server: ServerProcess, clients: int, turns: int, modality: str
) -> dict[str, Any]:
    if modality == "TEXT":
        setup = {
            "setup": {"model": TEXT_MODEL, "generationConfig": {"responseModalities": ["TEXT"]}}
        }
    else:
        setup = {
            "setup": {
                "model": AUDIO_MODEL,
                "generationConfig": {"responseModalities": ["AUDIO"]},
                "outputAudioTranscription": {},
            }
        }
    before = server.stats()
    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(_converse, server.url, setup, turns)
    elapsed = time.perf_counter() - started
    after = server.stats()
    messages = after["messages"] - before["messages"]
    cpu = after["cpu"] - before["cpu"]
    return {
        "modality": modality,
        "server_messages": messages,
        "server_cpu_s": round(cpu, 3),
        "wall_s": round(elapsed, 3),
        "messages_per_cpu_s": round(messages / cpu) if cpu > 0 else None,
        "cpu_s_per_10k_messages": round(cpu / messages * 10_000, 4) if messages else None,
        "cpu_us_per_message": round(cpu / messages * 1e6, 2) if messages else None,
    }


def _handshake(port: int) -> bytes:
    return (
        f"GET {common.PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\nx-goog-api-key: bench\r\n\r\n"
    ).encode()


def _client_frame(text: str) -> bytes:
    """A masked text frame with an all-zero mask (valid, and the payload stays as is)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = bytes([0x81, 0x80 | size])
    else:
        header = bytes([0x81, 0x80 | 126]) + size.to_bytes(2, "big")
    return header + b"\0\0\0\0" + payload


async def _idle_client(port: int, ready: trio.Semaphore, streams: list[trio.SocketStream]) -> None:
    async with ready:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(_handshake(port))
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            buffer += await stream.receive_some(4096)
        setup = {
            "setup": {"model": TEXT_MODEL, "generationConfig": {"responseModalities": ["TEXT"]}}
        }
        await stream.send_all(_client_frame(json.dumps(setup)))
        while b"setupComplete" not in buffer:
            data = await stream.receive_some(4096)
            if not data:
                raise RuntimeError("the server closed an idle connection")
            buffer += data
        streams.append(stream)


async def _idle(server: ServerProcess, connections: int, settle: float) -> dict[str, Any]:
    before = server.stats()
    streams: list[trio.SocketStream] = []
    started = time.perf_counter()
    ready = trio.Semaphore(256)
    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(_idle_client, server.port, ready, streams)
    opened = time.perf_counter() - started
    held = server.stats()
    await trio.sleep(settle)
    idle = server.stats()
    for stream in streams:
        await stream.aclose()
    idle_cpu = idle["cpu"] - held["cpu"]
    return {
        "connections": connections,
        "open_on_server": held["open"],
        "seconds_to_open": round(opened, 2),
        "server_rss_mb_before": round(before["rss_kb"] / 1024, 1),
        "server_rss_mb_with_idle": round(held["rss_kb"] / 1024, 1),
        "rss_kb_per_connection": round((held["rss_kb"] - before["rss_kb"]) / connections, 1),
        "idle_server_cpu_percent": round(100 * idle_cpu / settle, 2),
    }


async def _bench(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"throughput": []}
    server = ServerProcess(args.chunks, record=not args.no_record)
    try:
        for modality in ("TEXT", "AUDIO"):
            await _converse(server.url, _warm_setup(modality), 2)  # warm caches
            results["throughput"].append(
                await _throughput(server, args.clients, args.turns, modality)
            )
        results["idle"] = await _idle(server, args.connections, args.settle)
        results["server_errors"] = server.stats()["errors"]
    finally:
        server.close()
    return results


def _warm_setup(modality: str) -> dict[str, Any]:
    model = TEXT_MODEL if modality == "TEXT" else AUDIO_MODEL
    return {"setup": {"model": model, "generationConfig": {"responseModalities": [modality]}}}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run (seconds)")
    parser.add_argument("--clients", type=int, default=20, help="throughput clients")
    parser.add_argument("--turns", type=int, default=50, help="turns per throughput client")
    parser.add_argument("--chunks", type=int, default=50, help="model chunks per answer")
    parser.add_argument("--connections", type=int, default=10_000, help="idle connections")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to watch them idle")
    parser.add_argument("--no-record", action="store_true", help="log no messages on the server")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--no-save", action="store_true", help="write no results file")
    parser.add_argument("--results-dir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its figures, and return them."""
    args = _parser().parse_args(argv)
    if args.serve:
        common.raise_fd_limit()
        trio.run(_serve, args.chunks, not args.no_record)
        return {}
    if args.quick:
        args.clients, args.turns, args.chunks = 4, 10, 20
        args.connections, args.settle = 200, 0.5
    limit = common.raise_fd_limit()
    if args.connections + 100 > limit:
        args.connections = max(limit - 100, 0)
    results = trio.run(_bench, args)
    if not args.no_save:
        common.save("fake_server", results, quick=args.quick, results_dir=args.results_dir)
    if args.json:
        print(json.dumps(results))
        return results
    for run in results["throughput"]:
        print(
            f"{run['modality']:5} {run['server_messages']:>8,} server messages, "
            f"{run['server_cpu_s']:.2f} server CPU-s: {run['messages_per_cpu_s']:,} messages per "
            f"CPU-second ({run['cpu_s_per_10k_messages']:.3f} CPU-s per 10k, "
            f"{run['cpu_us_per_message']:.1f} us each)"
        )
    idle = results["idle"]
    print(
        f"idle  {idle['open_on_server']:,} connections open in {idle['seconds_to_open']} s; "
        f"server RSS {idle['server_rss_mb_before']} -> {idle['server_rss_mb_with_idle']} MB "
        f"({idle['rss_kb_per_connection']} KB each); idle CPU {idle['idle_server_cpu_percent']}%"
    )
    if results["server_errors"]:
        print(f"WARNING: the server logged {results['server_errors']} internal errors")
    return results


if __name__ == "__main__":
    main()
