"""The conversation socket against a real Hypercorn: round trips, limits, guards, reconnects."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
import trio
import trio_websocket
from starlette.requests import HTTPConnection

from liveactors import web

from .conftest import connect, eventually, serving, silence, tone


async def test_text_round_trip() -> None:
    async with serving() as app, connect(app.ws_url) as client:
        session = await client.until("session")
        assert session["conversation"].startswith("web-")
        assert session["resumed"] is False
        await client.send(type="text", text="hello there")
        done = await client.until("TurnComplete")
        assert client.said() == "echo #1: hello there"
        assert done["interrupted"] is False
        assert client.audio, "the model's voice comes as binary frames"
        assert not any(m["type"] == "AudioChunk" for m in client.messages)


async def test_audio_in_audio_out() -> None:
    config = {"input_audio_transcription": {}}
    async with serving(config=config) as app, connect(app.ws_url) as client:
        await client.until("session")
        speech = tone(0.6)
        for start in range(0, len(speech), 1280):  # 40 ms chunks, as the page sends them
            await client.ws.send_message(speech[start : start + 1280])
        for _ in range(20):  # 0.8 s of silence ends the spoken turn (the VAD's gap is 0.5 s)
            await client.ws.send_message(silence(0.04))
            await trio.sleep(0.04)
        await client.until("TurnComplete")
        heard = "".join(m["text"] for m in client.of("InputTranscript"))
        assert heard == "<audio 0.60s>"
        assert client.said() == "echo #1: <audio 0.60s>"
        assert len(client.audio) > 0 and len(client.audio) % 2 == 0
        sent = app.server.log.client_messages(kind="realtimeInput.audio")
        assert sent and all("rate=16000" in str(m.body) for m in sent)


async def test_the_stop_command_ends_the_conversation() -> None:
    async with serving() as app, connect(app.ws_url) as client:
        await client.until("session")
        await client.send(type="stop")
        await client.until("ConversationClosed")
        with trio.fail_after(5), contextlib.suppress(trio_websocket.ConnectionClosed):
            while True:
                await client.next()
        assert client.ws.closed is not None and client.ws.closed.code == 1000
        assert app.orch.conversations == []


async def test_bad_messages_are_answered_with_errors_and_the_socket_stays() -> None:
    async with serving() as app, connect(app.ws_url) as client:
        await client.until("session")
        await client.ws.send_message("not json")
        assert "JSON object" in (await client.until("error"))["message"]
        await client.send(type="shout", text="x")
        assert "unknown message type 'shout'" in (await client.until("error"))["message"]
        await client.send(type="text", text=5)
        assert '"text" must be a string' in (await client.until("error"))["message"]
        # Automatic VAD (the default): activity marks are the server's business.
        await client.send(type="activity_start")
        error = await client.until("error")
        assert error["command"] == "activity_start"
        await client.ws.send_message(b"\x01\x02\x03")  # not whole 16-bit samples
        assert (await client.until("error"))["command"] == "audio"
        await client.send(type="text", text="still here?")
        await client.until("TurnComplete")
        assert client.said() == "echo #1: still here?"


async def test_manual_activity_marks_go_through() -> None:
    config = {"realtime_input_config": {"automatic_activity_detection": {"disabled": True}}}
    async with serving(config=config) as app, connect(app.ws_url) as client:
        await client.until("session")
        await client.send(type="activity_start")
        await client.ws.send_message(tone(0.4))
        await client.send(type="activity_end")
        await client.until("TurnComplete")
        assert client.said() == "echo #1: <audio 0.40s>"
        kinds = [m.kind for m in app.server.log.client_messages()]
        assert "realtimeInput.activityStart" in kinds and "realtimeInput.activityEnd" in kinds


async def test_a_frame_over_the_limit_closes_the_socket_with_1009() -> None:
    async with serving(max_message_bytes=4096) as app:
        for frame in (bytes(4098), "x" * 5000, "é" * 2100):
            async with connect(app.ws_url) as client:
                await client.until("session")
                await client.ws.send_message(tone(0.1))  # 3200 bytes: fine
                await client.ws.send_message(frame)
                with trio.fail_after(5), contextlib.suppress(trio_websocket.ConnectionClosed):
                    while True:
                        await client.next()
                assert client.ws.closed is not None
                assert client.ws.closed.code == 1009, frame[:10]
        # Hypercorn enforces the same limit while reading (web.serve configures it).
        assert app.endpoint.options.max_message_bytes == 4096


async def test_origin_check() -> None:
    async with serving() as app:
        port = app.url.rsplit(":", 1)[1]
        own = f"http://127.0.0.1:{port}"
        async with connect(app.ws_url, extra_headers=[("Origin", own)]) as client:
            await client.until("session")
        with pytest.raises(trio_websocket.ConnectionRejected) as refused:
            async with connect(app.ws_url, extra_headers=[("Origin", "https://evil.example")]):
                pass
        assert refused.value.status_code == 403
        assert app.orch.statistics().spawned == 1
    async with serving(allowed_origins=["https://app.example"]) as app:
        async with connect(app.ws_url, extra_headers=[("Origin", "https://APP.example/")]) as c:
            await c.until("session")
        with pytest.raises(trio_websocket.ConnectionRejected) as refused:
            own = app.url  # the page's own origin is not in the list
            async with connect(app.ws_url, extra_headers=[("Origin", own)]):
                pass
        assert refused.value.status_code == 403


async def test_the_authorize_hook_refuses_or_grants_a_config() -> None:
    seen: list[str | None] = []

    async def authorize(conn: HTTPConnection) -> Any:
        user = conn.query_params.get("user")
        seen.append(user)
        if user is None:
            return web.Reject("who are you?", status=401)
        if user == "mallory":
            raise web.Reject("not you")
        return {"system_instruction": f"You are talking to {user}."}

    async with serving(authorize=authorize) as app:
        for url, status in ((app.ws_url, 401), (app.ws_url + "?user=mallory", 403)):
            with pytest.raises(trio_websocket.ConnectionRejected) as refused:
                async with connect(url):
                    pass
            assert refused.value.status_code == status
        assert refused.value.body == b"not you"
        async with connect(app.ws_url + "?user=alice") as client:
            await client.until("session")
            await client.send(type="text", text="hi")
            await client.until("TurnComplete")
        assert seen == [None, "mallory", "alice"]
        assert app.orch.statistics().spawned == 1
        (setup,) = app.server.log.client_messages(kind="setup")
        assert "You are talking to alice." in json.dumps(setup.body)


async def test_reconnect_window_resumes_the_same_conversation() -> None:
    async with serving(keep_for=5.0) as app:
        async with connect(app.ws_url) as client:
            first = await client.until("session")
            await client.send(type="text", text="one")
            await client.until("TurnComplete")
        token = first["token"]
        assert isinstance(token, str) and len(token) >= 40
        await trio.sleep(0.2)
        assert [c.name for c in app.orch.conversations] == [first["conversation"]]
        async with connect(f"{app.ws_url}?resume={token}") as client:
            again = await client.until("session")
            assert again["resumed"] is True
            assert again["conversation"] == first["conversation"]
            assert again["token"] != token  # a token resumes once
            await client.send(type="text", text="two")
            await client.until("TurnComplete")
            assert client.said() == "echo #2: two"  # the session's own turn counter
        # The old token is used up: it starts a new conversation.
        async with connect(f"{app.ws_url}?resume={token}") as client:
            third = await client.until("session")
            assert third["resumed"] is False
            assert third["conversation"] != first["conversation"]


async def test_a_conversation_outlives_its_socket_only_for_the_window() -> None:
    async with serving(keep_for=0.3) as app:
        async with connect(app.ws_url) as client:
            first = await client.until("session")
        await trio.sleep(0.1)
        assert len(app.orch.conversations) == 1
        await eventually(lambda: not app.orch.conversations)
        async with connect(f"{app.ws_url}?resume={first['token']}") as client:
            assert (await client.until("session"))["resumed"] is False
    async with serving(keep_for=0) as app:
        async with connect(app.ws_url) as client:
            assert (await client.until("session"))["token"] is None
        await eventually(lambda: not app.orch.conversations)


async def test_events_published_while_away_wait_for_the_page() -> None:
    async with serving(keep_for=5.0, fake={"response_latency": 0.3}) as app:
        async with connect(app.ws_url) as client:
            first = await client.until("session")
            await client.send(type="text", text="answer me later")
        # The socket is gone before the answer starts; the answer is kept for the page.
        async with connect(f"{app.ws_url}?resume={first['token']}") as client:
            await client.until("session")
            await client.until("TurnComplete")
            assert client.said() == "echo #1: answer me later"


async def test_a_second_socket_with_the_token_takes_over() -> None:
    async with serving(keep_for=5.0) as app, connect(app.ws_url) as old:
        first = await old.until("session")
        async with connect(f"{app.ws_url}?resume={first['token']}") as new:
            assert (await new.until("session"))["resumed"] is True
            with trio.fail_after(5), contextlib.suppress(trio_websocket.ConnectionClosed):
                while True:
                    await old.next()
            assert old.ws.closed is not None and old.ws.closed.code == 4000
            await new.send(type="text", text="here now")
            await new.until("TurnComplete")
            assert new.said() == "echo #1: here now"
