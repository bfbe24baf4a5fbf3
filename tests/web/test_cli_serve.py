"""``liveactors serve``: READY on stdout, the page, the socket, and a clean exit on SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import trio

from .conftest import connect


async def test_serve_prints_ready_serves_the_page_and_the_socket_then_stops() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    command = [sys.executable, "-m", "liveactors", "serve", "--port", "0", "--metrics-port", "0"]
    process = await trio.lowlevel.open_process(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        with trio.fail_after(20):
            out = b""
            while b"\n" not in out:
                chunk = await process.stdout.receive_some()
                assert chunk, "serve exited before READY"
                out += chunk
        word, url = out.decode().splitlines()[0].split()
        assert word == "READY" and url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=url) as http:
            page = await http.get("/")
            assert page.status_code == 200
            assert "static/chat.js" in page.text
            assert "default-src 'self'" in page.headers["content-security-policy"]
            worklet = await http.get("/static/mic-worklet.js")
            assert "registerProcessor" in worklet.text
        async with connect(url.replace("http", "ws", 1) + "/ws") as client:
            session = await client.until("session")
            assert session["keep_for"] == 30.0
            await client.send(type="text", text="hello")
            await client.until("TurnComplete", within=10)
            assert client.said() == "echo #1: hello"
        process.send_signal(signal.SIGINT)
        with trio.fail_after(10):
            assert await process.wait() == 0
        while chunk := await process.stdout.receive_some():
            out += chunk
        # --metrics-port: Prometheus metrics on a port of their own (tests/observability).
        assert out.decode().splitlines()[1].startswith("METRICS http://127.0.0.1:")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_serve_has_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "liveactors", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0
    for option in ("--host", "--port", "--metrics-port", "--keep-for"):
        assert option in done.stdout
