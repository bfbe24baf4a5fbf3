"""The log: client and server messages, connections, model turns, and the query helpers."""

from __future__ import annotations

import trio

from .conftest import audio_chunk, connect, fake, session_ready, text_setup, user_text


async def test_client_messages_are_logged_normalised_with_index_kind_and_time(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with fake() as server, connect(server) as client:
        await client.send(
            {
                "setup": {
                    "model": "models/gemini-test-text",
                    "generation_config": {"response_modalities": ["TEXT"]},
                }
            }
        )
        await client.recv()
        await trio.sleep(1)
        await client.send(audio_chunk(0.1, loud=False, urlsafe=True))
        await client.send({"client_content": {"turn_complete": True}})
        await client.turn()
        records = server.log.client_messages(1)
        assert [(m.index, m.kind, m.session) for m in records] == [
            (0, "setup", None),
            (1, "realtimeInput.audio", "session-1"),
            (2, "clientContent", "session-1"),
        ]
        assert records[0].body == {
            "model": "models/gemini-test-text",
            "generationConfig": {"responseModalities": ["TEXT"]},
        }
        assert records[1].message["realtimeInput"]["audio"]["data"].endswith("=")  # standard base64
        assert records[2].time == 1
        assert server.log.client_messages(kind="audio") == [records[1]]
        assert server.log.client_messages(session="session-1") == records[1:]


async def test_server_messages_and_connections() -> None:
    async with fake() as server:
        async with connect(server) as client:
            await session_ready(client)
            await client.send(user_text("x"))
            await client.turn()
        await server.log.wait_for(lambda: not server.log.connection(1).open)
        sent = server.log.server_messages(1)
        assert [m.index for m in sent] == list(range(5))
        assert sent[0].message == {"setupComplete": {"sessionId": "session-1"}}
        assert (
            server.log.server_messages(kind="turnComplete")[0].kind == "serverContent.turnComplete"
        )
        record = server.log.connection(1)
        assert (record.api_version, record.session, record.cause, record.close_code) == (
            "v1beta",
            "session-1",
            "client",
            1000,
        )
        assert record.setup_at is not None and record.closed_at is not None
        assert server.log.sessions == ["session-1"]


async def test_turn_records_tell_whether_every_input_was_answered_once(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with fake(chunks=3, chunk_delay=1) as server, connect(server) as client:
        await session_ready(client)
        await client.send(user_text("a"))
        await client.turn()
        await client.send(user_text("b"))
        await client.recv()
        await client.send(user_text("c"))  # interrupts b
        await client.turn()
        await client.turn()
        log = server.log
        assert [(t.turn, t.user_text, t.outcome) for t in log.model_turns()] == [
            (1, "a", "completed"),
            (2, "b", "interrupted"),
            (3, "c", "completed"),
        ]
        assert log.answered("session-1") == ["a", "c"]
        assert log.answer_counts() == {"a": 1, "c": 1}
        assert log.model_turns(outcome="interrupted")[0].reply_text == "ech"


async def test_wait_for_and_clear() -> None:
    async with fake() as server, connect(server) as client:
        await session_ready(client, text_setup())

        async def later() -> None:
            await client.send(user_text("x"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(later)
            await server.log.wait_for(lambda: server.log.answered() == ["x"])
        server.log.clear()
        assert server.log.received == server.log.sent == server.log.turns == []
        assert [c.id for c in server.log.connections] == [1]  # open connections stay listed


async def test_message_recording_can_be_turned_off() -> None:
    async with fake(record_client_messages=False, record_server_messages=False) as server:
        async with connect(server) as client:
            await session_ready(client)
            await client.send(user_text("x"))
            await client.turn()
        assert server.log.received == server.log.sent == []
        assert server.log.answered() == ["x"]
        assert server.messages_sent == 5
