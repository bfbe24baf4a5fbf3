"""``liveactors fake-server``: READY line, serving, clean exit on SIGTERM and SIGINT."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from functools import partial

import pytest
import trio
import trio_websocket

from .conftest import V1BETA, current_setup, text_setup, user_text


@pytest.mark.parametrize(("stop", "profile"), [(signal.SIGTERM, "2.5"), (signal.SIGINT, "3.8")])
async def test_the_command_serves_until_signalled(stop: signal.Signals, profile: str) -> None:
    command = [
        sys.executable,
        "-m",
        "liveactors",
        "fake-server",
        "--port",
        "0",
        "--chunks",
        "1",
        "--connection-lifetime",
        "30",
        "--goaway-before",
        "1",
        "--model-profile",
        profile,
    ]
    async with trio.open_nursery() as nursery:
        run = partial(trio.run_process, command, stdout=subprocess.PIPE, check=False)
        process = await nursery.start(run)
        assert process.stdout is not None
        line = b""
        with trio.fail_after(20):
            while not line.endswith(b"\n"):
                line += await process.stdout.receive_some(1)
        word, url = line.decode().split()
        assert word == "READY" and url.startswith("ws://127.0.0.1:")
        async with trio_websocket.open_websocket_url(
            url + V1BETA, extra_headers=[(b"x-goog-api-key", b"test-key")]
        ) as ws:
            # Profile 2.5: an unknown model writes TEXT; 3.8: it speaks, with a transcript.
            setup = text_setup() if profile == "2.5" else current_setup("models/gemini-x")
            await ws.send_message(json.dumps(setup))
            assert "setupComplete" in json.loads(await ws.get_message())
            await ws.send_message(json.dumps(user_text("hi")))
            content = json.loads(await ws.get_message())["serverContent"]
            if profile == "2.5":
                assert content["modelTurn"]["parts"][0]["text"] == "echo #1: hi"
            else:
                assert content["outputTranscription"]["text"] == "echo #1: hi"
                assert "inlineData" in content["modelTurn"]["parts"][0]
        process.send_signal(stop)
        with trio.fail_after(10):
            assert await process.wait() == 0


def test_tls_options_go_together(capsys: pytest.CaptureFixture[str]) -> None:
    from liveactors._cli import main

    assert main(["fake-server", "--tls-cert", "x.pem"]) == 2
    assert "--tls-key" in capsys.readouterr().err
