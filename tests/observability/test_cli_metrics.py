"""``/metrics`` of the command line: scraped twice while ``liveactors demo --metrics-port``
runs, the numbers move; ``liveactors serve --metrics-port`` serves them next to the page."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest
import trio

from .conftest import Scrape, parse, total, value

#: Counters that must grow between two scrapes of a demo that is talking.
_MOVING = (
    "liveactors_turns_total",
    "liveactors_events_published_total",
    "liveactors_tokens_total",
    "liveactors_messages_total",
)


class _Lines:
    """The lines a process writes on stdout, as they come."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.buffer = b""
        self.seen: list[str] = []

    async def until(self, prefix: str) -> str:
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                text = line.decode()
                self.seen.append(text)
                if text.startswith(prefix):
                    return text
            chunk = await self.stream.receive_some()
            assert chunk, f"the process ended before {prefix!r}; it wrote {self.seen}"
            self.buffer += chunk


async def _scrape(url: str) -> Scrape:
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


async def test_demo_metrics_move_while_it_runs() -> None:
    command = [sys.executable, "-m", "liveactors", "demo", "--plain", "--metrics-port", "0"]
    command += ["-n", "4", "--duration", "6", "--lifetime", "2", "--drop-every", "0.7"]
    process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
    assert process.stdout is not None
    try:
        lines = _Lines(process.stdout)
        with trio.fail_after(30):
            url = (await lines.until("metrics on ")).split()[-1]
            await lines.until("fake Live API server on")
            await trio.sleep(1.5)
            first = await _scrape(url)
            await trio.sleep(2.5)
            second = await _scrape(url)
            assert await process.wait() == 0, lines.seen
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert value(first, "liveactors_orchestrators") == 1
    assert (
        value(first, "liveactors_conversations", state="ready")
        + value(first, "liveactors_conversations", state="reconnecting")
        + value(first, "liveactors_conversations", state="connecting")
        == 4
    )
    assert value(first, "liveactors_connects_total", cause="first") == 4
    for name in _MOVING:
        assert total(second, name) > total(first, name) > 0, name
    # GoAways every 2 s and a drop every 0.7 s: handoffs and reconnects, with their gaps.
    assert total(second, "liveactors_handoffs_total") > 0
    assert total(second, "liveactors_connects_total") > 4
    assert (
        value(second, "liveactors_handoff_gap_seconds_count")
        + value(second, "liveactors_reconnect_gap_seconds_count")
        > 0
    )
    assert total(second, "liveactors_connection_closes_total") > 0


async def test_serve_serves_metrics_on_its_own_port() -> None:
    pytest.importorskip("hypercorn")
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    command = [sys.executable, "-m", "liveactors", "serve", "--port", "0", "--metrics-port", "0"]
    process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE, env=env)
    assert process.stdout is not None
    try:
        lines = _Lines(process.stdout)
        with trio.fail_after(20):
            page = (await lines.until("READY ")).split()[1]
            url = (await lines.until("METRICS ")).split()[1]
        assert url.endswith("/metrics") and url != page + "/metrics"
        got = await _scrape(url)
        assert value(got, "liveactors_orchestrators") == 1
        assert value(got, "liveactors_conversations", state="ready") == 0
        async with httpx.AsyncClient() as client:  # not on the public port
            assert (await client.get(page + "/metrics")).status_code == 404
        process.send_signal(signal.SIGINT)
        with trio.fail_after(10):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
