"""Arguments of live_endpoint / app are checked when the endpoint is built."""

from __future__ import annotations

from typing import Any

import pytest

import liveactors
from liveactors import web
from liveactors.testing import open_fake_server
from liveactors.web._options import normalize_origin


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"max_message_bytes": 0}, "max_message_bytes must be an int >= 1"),
        ({"audio_buffer": 1.5}, "audio_buffer must be an int >= 1"),
        ({"event_buffer": True}, "event_buffer must be an int >= 1"),
        ({"keep_for": -1}, "keep_for must be finite and >= 0"),
        ({"keep_for": float("inf")}, "keep_for must be finite and >= 0"),
        ({"keep_for": "30"}, "keep_for must be a number of seconds"),
        ({"allowed_origins": "https://a.example"}, "not a str"),
        ({"allowed_origins": [""]}, "an origin must be a non-empty str"),
        ({"authorize": "yes"}, "authorize must be a callable"),
    ],
)
async def test_bad_arguments_are_refused(arguments: dict[str, Any], message: str) -> None:
    async with (
        open_fake_server(listen=False) as server,
        liveactors.open_orchestrator(server.backend()) as orch,
    ):
        with pytest.raises(liveactors.InvalidCommand, match=message):
            web.live_endpoint(orch, **arguments)


def test_origins_are_normalized() -> None:
    assert normalize_origin(" https://App.Example:8443/ ") == "https://app.example:8443"


def test_a_reject_needs_an_error_status() -> None:
    assert web.Reject("nope").status == 403
    assert web.Reject("who?", status=401).reason == "who?"
    for status in (200, 302, 600, True):
        with pytest.raises(ValueError, match="HTTP error status"):
            web.Reject("x", status=status)
