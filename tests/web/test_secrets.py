"""The API key stays on the server: nothing the client gets carries it."""

from __future__ import annotations

import contextlib

import httpx
import trio
import trio_websocket

from .conftest import connect, serving

KEY = "AIzaSyTHIS-IS-THE-SERVERS-OWN-KEY-0123456789"


async def test_the_key_never_reaches_the_client() -> None:
    # The fake accepts this key only: every setup that succeeds used it.
    fake = {"api_keys": {KEY}, "chunks": 1}
    async with serving(fake=fake, api_key=KEY) as app:
        async with httpx.AsyncClient(base_url=app.url) as http:
            pages = [
                (await http.get(path)).text
                for path in ("/", "/static/chat.js", "/static/mic-worklet.js")
            ]
        async with connect(app.ws_url) as client:
            await client.until("session")
            # Whatever says it whole (here the model, repeating it) is redacted on the way out.
            await client.send(type="text", text=f"the key is {KEY}")
            await client.until("TurnComplete")
            # The service quotes the key in close reasons: once to reconnect from, once fatal.
            app.server.faults.close_now(1011, f"Internal error for key {KEY}")
            reconnecting = await client.until("Reconnecting")
            await client.until("Connected")
            await client.send(type="text", text="again")
            await client.until("TurnComplete")
            app.server.faults.close_now(1007, f"API key not valid: {KEY}")
            failed = await client.until("ConversationFailed")
            await client.until("ConversationClosed")
            with trio.fail_after(5), contextlib.suppress(trio_websocket.ConnectionClosed):
                while True:
                    await client.next()
            assert client.ws.closed is not None and client.ws.closed.code == 1011
        assert client.said() == "echo #1: the key is <redacted>echo #2: again"
        assert "Internal error for key" in reconnecting["reason"]
        assert "API key not valid" in failed["error"]["message"]
        everything = [*pages, *client.frames]
        assert not any(KEY in f if isinstance(f, str) else KEY.encode() in f for f in everything)
        assert len(app.server.log.client_messages(kind="setup")) == 2
