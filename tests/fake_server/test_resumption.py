"""Session resumption: handles, snapshots, refusals, "once" mode, transparent mode."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from .conftest import (
    RawClient,
    audio_chunk,
    audio_setup,
    connect,
    fake,
    kind_of,
    session_ready,
    text_of,
    text_setup,
    user_text,
)

TOOLS = [{"functionDeclarations": [{"name": "get_weather"}]}]


def resumable(**extra: Any) -> dict[str, Any]:
    return text_setup(sessionResumption={}, **extra)


def resume(handle: str, **extra: Any) -> dict[str, Any]:
    return text_setup(sessionResumption={"handle": handle}, **extra)


async def _handle(client: RawClient) -> str:
    update = (await client.until("sessionResumptionUpdate"))[-1]["sessionResumptionUpdate"]
    assert update["resumable"] is True
    return str(update["newHandle"])


async def test_no_updates_without_session_resumption() -> None:
    async with fake() as server, connect(server) as client:
        await session_ready(client)
        await client.send(user_text("x"))
        await client.turn()
        await client.send(user_text("y"))
        await client.turn()
        assert "sessionResumptionUpdate" not in server.log.server_kinds(1)


async def test_per_turn_updates_around_each_turn() -> None:
    async with fake() as server, connect(server) as client:
        await session_ready(client, resumable())
        first = await client.recv()
        await client.send(user_text("x"))
        messages = await client.turn()
        last = await client.recv()
        assert (
            kind_of(first) == "sessionResumptionUpdate"
            and first["sessionResumptionUpdate"]["resumable"]
        )
        assert messages[0] == {"sessionResumptionUpdate": {}}
        assert (
            last["sessionResumptionUpdate"]["newHandle"]
            != first["sessionResumptionUpdate"]["newHandle"]
        )
        assert server.log.server_kinds(1) == [
            "setupComplete",
            "sessionResumptionUpdate",
            "sessionResumptionUpdate",
            "serverContent.modelTurn",
            "serverContent.modelTurn",
            "serverContent.generationComplete",
            "serverContent.turnComplete",
            "sessionResumptionUpdate",
        ]


async def test_a_handle_restores_the_session_on_a_new_connection() -> None:
    async with fake() as server:
        async with connect(server) as a:
            session = await session_ready(a, resumable())
            await a.recv()
            await a.send(user_text("one"))
            await a.turn()
            handle = await _handle(a)
        async with connect(server) as b:
            assert await session_ready(b, resume(handle)) == session
            await _handle(b)
            await b.send(user_text("two"))
            assert text_of(await b.turn()) == "echo #2: two"
        assert server.log.connection(2).resumed_from == handle
        assert [c.id for c in server.log.session_connections(session)] == [1, 2]
        history = [e.content["parts"][0]["text"] for e in server.sessions[session].state.history]
        assert history == ["one", "echo #1: one", "two", "echo #2: two"]


async def test_per_turn_handles_are_snapshots() -> None:
    async with fake() as server:
        async with connect(server) as a:
            await session_ready(a, resumable())
            await a.recv()
            await a.send(user_text("one"))
            await a.turn()
            after_one = await _handle(a)
            await a.send(user_text("two"))
            await a.turn()
            await _handle(a)
        async with connect(server) as b:
            await session_ready(b, resume(after_one))
            await b.send(user_text("again"))
            assert text_of(await b.turn()) == "echo #2: again"


async def test_once_mode_sends_one_handle_that_restores_the_end_of_the_connection() -> None:
    async with fake(handle_mode="once") as server:
        async with connect(server) as a:
            await session_ready(a, resumable())
            handle = await _handle(a)
            for text in ("one", "two"):
                await a.send(user_text(text))
                await a.turn()
        assert server.log.server_kinds(1).count("sessionResumptionUpdate") == 1
        async with connect(server) as b:
            await session_ready(b, resume(handle))
            second_handle = await _handle(b)
            await b.send(user_text("three"))
            assert text_of(await b.turn()) == "echo #3: three"
        assert second_handle != handle


@pytest.mark.parametrize("handle", ["rh-unknown", ""])
async def test_unknown_handle_is_session_not_found(handle: str) -> None:
    async with fake() as server, connect(server) as client:
        if handle:
            await client.send(resume(handle))
            assert await client.closed() == (1008, "BidiGenerateContent session not found")
        else:  # an empty handle starts a new session
            await session_ready(client, resume(handle))


async def test_handles_expire_after_the_validity_since_the_session_ended(
    autojump_clock: trio.abc.Clock,
) -> None:
    limits = {"connection_lifetime": None, "audio_session_limit": None}
    async with fake(handle_validity=7200, time_scale=0.001, **limits) as server:  # 7.2 s
        async with connect(server) as a:
            await session_ready(a, resumable())
            handle = await _handle(a)
            await trio.sleep(100)  # connected time does not count
        await trio.sleep(7.1)
        async with connect(server) as b:
            await session_ready(b, resume(handle))
        await trio.sleep(7.3)
        async with connect(server) as c:
            await c.send(resume(handle))
            assert await c.closed() == (1008, "BidiGenerateContent session not found")


async def test_resuming_while_the_old_connection_is_open_fails_1011() -> None:
    async with fake() as server, connect(server) as a:
        await session_ready(a, resumable())
        handle = await _handle(a)
        async with connect(server) as b:
            await b.send(resume(handle))
            assert await b.closed() == (1011, "Internal error encountered.")
        await a.send(user_text("still here"))
        assert text_of(await a.turn()) == "echo #1: still here"


async def test_resuming_while_open_can_be_allowed() -> None:
    async with fake(resume_while_open_fails=False) as server, connect(server) as a:
        await session_ready(a, resumable())
        handle = await _handle(a)
        async with connect(server) as b:
            await session_ready(b, resume(handle))
            assert await a.closed() == (1000, "")
            assert server.log.connection(1).cause == "superseded"
            await b.send(user_text("x"))
            assert text_of(await b.turn()) == "echo #1: x"


async def test_the_model_cannot_change_on_resumption() -> None:
    async with fake() as server:
        async with connect(server) as a:
            await session_ready(a, resumable())
            handle = await _handle(a)
        async with connect(server) as b:
            setup = resume(handle)
            setup["setup"]["model"] = "models/gemini-other-live"
            await b.send(setup)
            assert await b.closed() == (1007, "Request contains an invalid argument.")


async def test_rejected_handles_fault() -> None:
    async with fake() as server:
        async with connect(server) as a:
            await session_ready(a, resumable())
            handle = await _handle(a)
        fault = server.faults.reject_handles(1)
        async with connect(server) as b:
            await b.send(resume(handle))
            assert await b.closed() == (1008, "BidiGenerateContent session not found")
        async with connect(server) as c:
            await session_ready(c, resume(handle))
        assert fault.fired == 1


async def test_a_pending_call_survives_resumption_in_once_mode() -> None:
    async with fake(handle_mode="once") as server:
        async with connect(server) as a:
            await session_ready(a, resumable(tools=TOOLS))
            handle = await _handle(a)
            await a.send(user_text("call get_weather"))
            call_id = (await a.until("toolCall"))[-1]["toolCall"]["functionCalls"][0]["id"]
        async with connect(server) as b:
            await session_ready(b, resume(handle, tools=TOOLS))
            await _handle(b)
            await b.send(
                {
                    "toolResponse": {
                        "functionResponses": [
                            {"id": call_id, "name": "get_weather", "response": {"v": 1}}
                        ]
                    }
                }
            )
            assert text_of(await b.turn()) == 'echo #1: get_weather -> {"v":1}'
        cut, continued = server.log.turns
        assert (cut.outcome, cut.connection) == ("cut", 1)
        assert (continued.outcome, continued.connection, continued.continuation) == (
            "completed",
            2,
            True,
        )
        assert server.log.answered() == ["call get_weather"]


async def test_input_of_a_cut_turn_stays_unanswered() -> None:
    async with fake(handle_mode="once") as server:
        server.faults.drop(before="generationComplete")
        async with connect(server) as a:
            await session_ready(a, resumable())
            handle = await _handle(a)
            await a.send(user_text("question"))
            assert (await a.closed())[0] == 1006
        async with connect(server) as b:
            await session_ready(b, resume(handle))
            await _handle(b)
            await b.send({"clientContent": {"turnComplete": True}})  # "answer what you have"
            assert text_of(await b.turn()) == "echo #2: question"
        assert [(t.turn, t.outcome) for t in server.log.turns] == [(1, "cut"), (2, "completed")]
        assert server.log.answer_counts() == {"question": 1}


async def test_transparent_mode_reports_the_last_consumed_index(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with fake(vertex=True) as server, connect(server) as client:
        await session_ready(client, audio_setup(sessionResumption={"transparent": True}))
        first = await client.recv()
        assert first == {
            "sessionResumptionUpdate": {
                "newHandle": first["sessionResumptionUpdate"]["newHandle"],
                "resumable": True,
            }
        }
        await client.send(user_text("one", turn_complete=False))  # 1
        await client.send(user_text("two"))  # 2
        await client.turn()
        update = (await client.recv())["sessionResumptionUpdate"]
        assert update["lastConsumedClientMessageIndex"] == "2"
        # A spoken turn in progress is not consumed: a barge-in's handle stops before it.
        await client.send(user_text("long"))  # 3
        await client.recv()
        await client.send(audio_chunk(0.1))  # 4: speech interrupts the model
        await client.turn()
        update = (await client.recv())["sessionResumptionUpdate"]
        assert update["lastConsumedClientMessageIndex"] == "3"


async def test_session_ids_survive_and_counters_keep_going_across_many_resumptions() -> None:
    async with fake() as server:
        handle = None
        session = None
        for n in range(1, 4):
            async with connect(server) as client:
                sid = await session_ready(client, resume(handle) if handle else resumable())
                session = session or sid
                assert sid == session
                await _handle(client)
                await client.send(user_text(f"q{n}"))
                assert text_of(await client.turn()) == f"echo #{n}: q{n}"
                handle = await _handle(client)
        assert server.log.answered(session) == ["q1", "q2", "q3"]


@pytest.mark.parametrize(
    ("mode", "kind", "nth", "expected"),
    [
        # per_turn: the handle predates the question, so the restored state has not seen it.
        ("per_turn", "sessionResumptionUpdate", 1, "echo #1: "),  # the {} as the turn starts
        ("per_turn", "modelTurn", 1, "echo #1: "),
        ("per_turn", "turnComplete", 1, "echo #1: "),
        ("per_turn", "sessionResumptionUpdate", 2, "echo #1: "),  # the handle after the turn
        # once: the state at the drop; a cut turn's question is still unanswered.
        ("once", "modelTurn", 1, "echo #2: q"),
        ("once", "generationComplete", 1, "echo #2: q"),
        ("once", "turnComplete", 1, "echo #2: q"),
    ],
)
async def test_an_immediate_resume_after_a_drop_is_never_refused(
    mode: str, kind: str, nth: int, expected: str
) -> None:
    async with fake(handle_mode=mode) as server, connect(server) as a:
        await session_ready(a, resumable())
        handle = await _handle(a)
        server.faults.drop(connection=1, before=kind, nth=nth)
        await a.send(user_text("q"))
        assert (await a.closed())[0] == 1006
        async with connect(server) as b:  # while `a` is still being torn down
            await session_ready(b, resume(handle))
            await _handle(b)
            await b.send({"clientContent": {"turnComplete": True}})
            assert text_of(await b.turn()) == expected


async def test_transparent_indexes_restart_on_every_connection() -> None:
    async with fake(vertex=True) as server:
        setup = text_setup(sessionResumption={"transparent": True})
        async with connect(server) as a:
            await session_ready(a, setup)
            await _handle(a)
            await a.send(user_text("one"))
            await a.turn()
            update = (await a.recv())["sessionResumptionUpdate"]
            assert update["lastConsumedClientMessageIndex"] == "1"
        async with connect(server) as b:
            await session_ready(
                b,
                text_setup(sessionResumption={"transparent": True, "handle": update["newHandle"]}),
            )
            first = (await b.recv())["sessionResumptionUpdate"]
            assert "lastConsumedClientMessageIndex" not in first  # 0: only the setup so far
            for text in ("replayed", "new"):
                await b.send(user_text(text, turn_complete=False))
            await b.send({"clientContent": {"turnComplete": True}})
            assert text_of(await b.turn()) == "echo #2: replayed new"
            assert (await b.recv())["sessionResumptionUpdate"][
                "lastConsumedClientMessageIndex"
            ] == "3"


async def test_a_null_handle_is_refused_as_session_not_found() -> None:
    # Observed on the 3.x models: omit the key for a new session, never send null.
    async with fake() as server, connect(server) as client:
        await client.send(text_setup(sessionResumption={"handle": None}))
        assert await client.closed() == (1008, "BidiGenerateContent session not found")
