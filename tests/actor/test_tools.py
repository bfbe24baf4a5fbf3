"""Tools: a ``Conversation`` subclass answers tool calls (``functions`` or ``on_tool_call``,
async or sync), responses carry the call ids, a cancellation cancels the running call, NON_BLOCKING
functions answer with their scheduling, and a call pending across a reconnect runs once."""

from __future__ import annotations

import datetime
import decimal
import json
import logging
import threading
from typing import Any, ClassVar

import pytest
import trio
from google.genai import types
from trio.testing import MockClock

import liveactors
from liveactors import events
from liveactors.testing import CallTool, Say, TurnContext, echo_responder

from .conftest import (
    SLOW_RESTART,
    conversation,
    fake,
    function,
    recording,
    tools_config,
)

WEATHER = tools_config(function("get_weather", city="string"))
ASK_WEATHER = 'call get_weather {"city": "Paris"}'
MAIN_THREAD = threading.get_ident()


def tool_responses(server: Any) -> list[dict[str, Any]]:
    """Every functionResponse the server received, in order, with the connection it came on."""
    return [
        dict(response, connection=m.connection)
        for m in server.log.client_messages(kind="toolResponse")
        for response in m.body["functionResponses"]
    ]


def call_ids(server: Any) -> list[str]:
    return [
        call["id"]
        for m in server.log.server_messages(kind="toolCall")
        for call in m.message["toolCall"]["functionCalls"]
    ]


async def async_weather(city: str) -> dict[str, Any]:
    await trio.sleep(1)
    return {"forecast": f"sunny in {city}"}


def sync_weather(city: str) -> str:
    Threads.seen.append(threading.get_ident())
    return f"rain in {city}"


class Threads:
    seen: ClassVar[list[int]] = []


class AsyncWeather(liveactors.Conversation):
    functions = {"get_weather": async_weather}


class SyncWeather(liveactors.Conversation):
    functions = {"get_weather": sync_weather}


class AsyncHook(liveactors.Conversation):
    async def on_tool_call(self, call: types.FunctionCall) -> Any:
        assert call.args is not None
        return types.FunctionResponse(name=call.name, response={"output": call.args["city"] * 2})


class SyncHook(liveactors.Conversation):
    def on_tool_call(self, call: types.FunctionCall) -> Any:  # type: ignore[override]
        Threads.seen.append(threading.get_ident())
        assert call.args is not None
        return {"temperature": len(call.args["city"])}


@pytest.mark.parametrize(
    ("actor", "response", "in_thread"),
    [
        (AsyncWeather, {"output": {"forecast": "sunny in Paris"}}, False),
        (SyncWeather, {"output": "rain in Paris"}, True),
        (AsyncHook, {"output": "ParisParis"}, False),
        (SyncHook, {"output": {"temperature": 5}}, True),
    ],
    ids=["functions-async", "functions-sync", "on_tool_call-async", "on_tool_call-sync"],
)
async def test_tool_call_is_answered_with_its_id(
    actor: type[liveactors.Conversation],
    response: dict[str, Any],
    in_thread: bool,
    autojump_clock: MockClock,
) -> None:
    Threads.seen.clear()
    # No timers in the fake: MockClock would jump to the next one while a worker thread runs.
    async with (
        fake(connection_lifetime=None) as server,
        conversation(server, WEATHER, actor=actor) as (_, conv),
        recording(conv.subscribe, events.ToolCall) as rec,
    ):
        reply = await conv.ask(ASK_WEATHER)
        [call_id] = call_ids(server)
        [sent] = tool_responses(server)
        assert sent["id"] == call_id
        assert sent["name"] == "get_weather"
        assert sent["response"] == response
        assert "scheduling" not in sent  # a blocking function has none
        # The model's continuation answers with the result, in the same turn.
        assert reply.text == "echo #1: get_weather -> " + json.dumps(
            response, sort_keys=True, separators=(",", ":")
        )
        assert reply.turn == 1
        [call] = reply.tool_calls
        assert (call.id, call.name, call.args) == (call_id, "get_weather", {"city": "Paris"})
        [event] = rec.of(events.ToolCall)
        assert event.calls == (call,)
        if in_thread:
            assert Threads.seen and all(t != MAIN_THREAD for t in Threads.seen)
        assert server.log.answer_counts() == {ASK_WEATHER: 1}


class Failing(liveactors.Conversation):
    async def on_tool_call(self, call: types.FunctionCall) -> Any:
        raise ValueError(f"no weather for {call.args['city']}")  # type: ignore[index]


def failing_sync(city: str) -> str:
    raise KeyError(city)


class FailingSync(liveactors.Conversation):
    functions = {"get_weather": failing_sync}


class MissingFunction(liveactors.Conversation):
    functions = {"other": failing_sync}


@pytest.mark.parametrize(
    ("actor", "error"),
    [
        (Failing, "ValueError: no weather for Paris"),
        (FailingSync, "KeyError: 'Paris'"),
        (MissingFunction, "LookupError: no function named 'get_weather'"),
    ],
    ids=["async", "sync", "unknown-function"],
)
async def test_exception_becomes_an_error_response(
    actor: type[liveactors.Conversation], error: str, autojump_clock: MockClock
) -> None:
    async with (
        fake(connection_lifetime=None) as server,
        conversation(server, WEATHER, actor=actor) as (_, conv),
    ):
        reply = await conv.ask(ASK_WEATHER)
        [sent] = tool_responses(server)
        assert sent["id"] == call_ids(server)[0]
        assert sent["response"] == {"error": error}
        assert error in reply.text
        # The conversation is unharmed.
        assert conv.state is liveactors.ConversationState.READY
        assert (await conv.ask("next")).text == "echo #2: next"


async def test_exception_is_logged_as_a_warning_with_its_traceback(
    caplog: pytest.LogCaptureFixture, autojump_clock: MockClock
) -> None:
    async with (
        fake(connection_lifetime=None) as server,
        conversation(server, WEATHER, actor=Failing) as (_, conv),
    ):
        with caplog.at_level(logging.INFO, logger="liveactors"):
            await conv.ask(ASK_WEATHER)
    [record] = [r for r in caplog.records if "get_weather" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)
    assert "no weather for Paris" in caplog.text  # the traceback, with the message


class Unusual:
    """An object JSON cannot hold."""


NOT_JSON: list[tuple[str, Any, str]] = [
    ("decimal", {"price": decimal.Decimal("9.99")}, "response.output.price is a Decimal"),
    ("set", {1, 2}, "response.output is a set"),
    ("datetime", {"at": datetime.datetime(2026, 1, 1)}, "response.output.at is a datetime"),
    ("bytes", [b"raw"], "response.output[0] is a bytes"),
    ("nan", {"ratio": float("nan")}, "response.output.ratio is nan"),
    ("infinity", float("inf"), "response.output is inf"),
    ("object", Unusual(), "response.output is a Unusual"),
    ("int key", {1: "one"}, "response.output has a key of type int"),
    ("int key in the body", {"error": "x", 2: "two"}, "response has a key of type int"),
    ("surrogate", "lone \ud800", "response.output is not valid Unicode"),
    (
        "whole FunctionResponse",
        types.FunctionResponse(response={"output": {"n": decimal.Decimal(1)}}),
        "response.output.n is a Decimal",
    ),
]


class NotJSON(liveactors.Conversation):
    result: ClassVar[Any] = None

    async def on_tool_call(self, call: types.FunctionCall) -> Any:
        return self.result


@pytest.mark.parametrize(
    ("result", "problem"), [i[1:] for i in NOT_JSON], ids=[i[0] for i in NOT_JSON]
)
async def test_a_result_that_is_not_json_is_answered_with_an_error(
    result: Any, problem: str, caplog: pytest.LogCaptureFixture, autojump_clock: MockClock
) -> None:
    actor = type("Tool", (NotJSON,), {"result": result})
    async with (
        fake(connection_lifetime=None) as server,
        conversation(server, WEATHER, actor=actor) as (_, conv),
    ):
        with caplog.at_level(logging.INFO, logger="liveactors"):
            reply = await conv.ask(ASK_WEATHER)
        [sent] = tool_responses(server)
        assert sent["id"] == call_ids(server)[0]
        # The model hears what went wrong, naming the type, and the conversation carries on.
        error = sent["response"]["error"]
        assert error.startswith("TypeError: the result of get_weather is not JSON: ")
        assert problem in error
        assert error in reply.text
        assert conv.state is liveactors.ConversationState.READY
        assert (await conv.ask("next")).text == "echo #2: next"
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.levelno == logging.WARNING
    assert problem in record.getMessage() or problem in caplog.text
    assert record.exc_info is not None


async def test_a_result_too_large_to_send_is_answered_with_an_error(
    caplog: pytest.LogCaptureFixture, autojump_clock: MockClock
) -> None:
    actor = type("Tool", (NotJSON,), {"result": "x" * 9 * 2**20})
    async with (
        fake(connection_lifetime=None) as server,
        conversation(server, WEATHER, actor=actor) as (_, conv),
    ):
        with caplog.at_level(logging.INFO, logger="liveactors"):
            await conv.ask(ASK_WEATHER)
        [sent] = tool_responses(server)
        assert sent["response"]["error"].startswith(
            "ValueError: the result of get_weather cannot be sent: response is too large: 9.0 MiB"
        )
        assert conv.state is liveactors.ConversationState.READY
    ours = [r for r in caplog.records if r.name.startswith("liveactors")]
    assert [r.levelname for r in ours if r.levelno >= logging.INFO] == ["WARNING"]


class Discreet(liveactors.Conversation):
    seen: ClassVar[list[tuple[str | None, str]]] = []

    async def on_tool_call(self, call: types.FunctionCall) -> Any:
        raise RuntimeError("database password is hunter2")

    def on_tool_error(self, call: types.FunctionCall, error: Exception) -> dict[str, Any]:
        self.seen.append((call.name, type(error).__name__))
        return {"error": "the weather service is down; apologise"}


async def test_on_tool_error_decides_what_the_model_hears(autojump_clock: MockClock) -> None:
    Discreet.seen.clear()
    async with (
        fake(connection_lifetime=None) as server,
        conversation(server, WEATHER, actor=Discreet) as (_, conv),
    ):
        reply = await conv.ask(ASK_WEATHER)
        [sent] = tool_responses(server)
        assert sent["response"] == {"error": "the weather service is down; apologise"}
        assert "hunter2" not in reply.text
        assert Discreet.seen == [("get_weather", "RuntimeError")]


class BrokenHook(Failing):
    def on_tool_error(self, call: types.FunctionCall, error: Exception) -> dict[str, Any]:
        raise KeyError("oops")


class NotJSONHook(Failing):
    def on_tool_error(self, call: types.FunctionCall, error: Exception) -> dict[str, Any]:
        return {"error": decimal.Decimal(1)}


class NotADictHook(Failing):
    def on_tool_error(self, call: types.FunctionCall, error: Exception) -> dict[str, Any]:
        return "sorry"  # type: ignore[return-value]


class IntKeyHook(Failing):
    def on_tool_error(self, call: types.FunctionCall, error: Exception) -> dict[str, Any]:
        return {1: "one"}  # type: ignore[dict-item]


@pytest.mark.parametrize("actor", [BrokenHook, NotJSONHook, NotADictHook, IntKeyHook])
async def test_a_failing_on_tool_error_falls_back_to_the_default(
    actor: type[liveactors.Conversation],
    caplog: pytest.LogCaptureFixture,
    autojump_clock: MockClock,
) -> None:
    async with (
        fake(connection_lifetime=None) as server,
        conversation(server, WEATHER, actor=actor) as (_, conv),
    ):
        with caplog.at_level(logging.INFO, logger="liveactors"):
            await conv.ask(ASK_WEATHER)
        [sent] = tool_responses(server)
        assert sent["response"] == {"error": "ValueError: no weather for Paris"}
        assert conv.state is liveactors.ConversationState.READY
    assert any("on_tool_error" in r.getMessage() for r in caplog.records)


def two_calls(ctx: TurnContext) -> Any:
    if ctx.tool_results:
        return echo_responder(ctx)
    return [CallTool("get_weather", {"city": "Oslo"}), CallTool("get_time", {"zone": "CET"})]


async def zone_time(zone: str) -> str:
    await trio.sleep(0.5)
    return f"noon {zone}"


class TwoTools(liveactors.Conversation):
    functions = {"get_weather": async_weather, "get_time": zone_time}


async def test_several_calls_in_one_tool_call(autojump_clock: MockClock) -> None:
    config = tools_config(
        function("get_weather", city="string"), function("get_time", zone="string")
    )
    async with (
        fake(responder=two_calls) as server,
        conversation(server, config, actor=TwoTools) as (_, conv),
        recording(conv.subscribe, events.ToolCall) as rec,
    ):
        reply = await conv.ask("weather and time")
        [event] = rec.of(events.ToolCall)
        assert [c.name for c in event.calls] == ["get_weather", "get_time"]
        assert len(server.log.server_messages(kind="toolCall")) == 1
        responses = {r["id"]: r for r in tool_responses(server)}
        assert set(responses) == set(call_ids(server)) == {c.id for c in event.calls}
        by_name = {r["name"]: r["response"] for r in responses.values()}
        assert by_name == {
            "get_weather": {"output": {"forecast": "sunny in Oslo"}},
            "get_time": {"output": "noon CET"},
        }
        assert "get_weather -> " in reply.text and "get_time -> " in reply.text
        assert server.log.answer_counts() == {"weather and time": 1}


# -- manual answers -------------------------------------------------------------------------


async def test_manual_tool_response(autojump_clock: MockClock) -> None:
    async with (
        fake() as server,
        conversation(server, WEATHER) as (_, conv),
        recording(conv.subscribe, events.ToolCall, events.TurnComplete) as rec,
    ):
        await conv.send_text(ASK_WEATHER)
        tool_call = await rec.wait_for_event(events.ToolCall)
        [call] = tool_call.calls
        # Nobody answers automatically: the turn waits.
        await trio.sleep(30)
        assert not rec.of(events.TurnComplete)
        assert tool_responses(server) == []
        await conv.send_tool_response(
            types.FunctionResponse(id=call.id, name=call.name, response={"output": "fog"})
        )
        done = await rec.wait_for_event(events.TurnComplete)
        assert done.turn == tool_call.turn == 1
        [sent] = tool_responses(server)
        assert (sent["id"], sent["response"]) == (call.id, {"output": "fog"})
        # The call is answered now: answering it again is refused at the call site.
        with pytest.raises(liveactors.InvalidCommand, match="no pending tool call"):
            await conv.send_tool_response({"id": call.id, "name": call.name, "response": {}})
        assert server.log.model_turns()[0].reply_text == 'echo #1: get_weather -> {"output":"fog"}'


async def test_manual_tool_response_as_dicts(autojump_clock: MockClock) -> None:
    async with (
        fake(responder=two_calls) as server,
        conversation(
            server,
            tools_config(function("get_weather", city="string"), function("get_time")),
        ) as (_, conv),
        recording(conv.subscribe, events.ToolCall) as rec,
    ):
        replies: list[liveactors.Reply] = []
        async with trio.open_nursery() as nursery:

            async def ask() -> None:
                replies.append(await conv.ask("both"))

            nursery.start_soon(ask)
            [first, second] = (await rec.wait_for_event(events.ToolCall)).calls
            # One response with the wrong id changes nothing: all-or-nothing validation.
            with pytest.raises(liveactors.InvalidCommand, match="fc-bogus"):
                await conv.send_tool_response(
                    [
                        {"id": first.id, "name": first.name, "response": {"output": 1}},
                        {"id": "fc-bogus", "name": "x", "response": {}},
                    ]
                )
            await conv.send_tool_response(
                [
                    {"id": first.id, "name": first.name, "response": {"output": 1}},
                    {"id": second.id, "name": second.name, "response": {"output": 2}},
                ]
            )
        assert [r["id"] for r in tool_responses(server)] == [first.id, second.id]
        assert replies[0].text == ('echo #1: get_weather -> {"output":1}; get_time -> {"output":2}')


async def test_a_manual_response_that_is_not_json_is_refused_and_changes_nothing(
    autojump_clock: MockClock,
) -> None:
    async with (
        fake() as server,
        conversation(server, WEATHER) as (_, conv),
        recording(conv.subscribe, events.ToolCall) as rec,
    ):
        await conv.send_text(ASK_WEATHER)
        [call] = (await rec.wait_for_event(events.ToolCall)).calls
        with pytest.raises(liveactors.InvalidCommand, match=r"response\.output is a set"):
            await conv.send_tool_response(
                {"id": call.id, "name": call.name, "response": {"output": {"fog"}}}
            )
        # The call is still pending, the connection intact: a valid answer completes the turn.
        await conv.send_tool_response({"id": call.id, "name": call.name, "response": {"ok": 1}})
        await server.log.wait_for(lambda: server.log.answered())
        assert [r["response"] for r in tool_responses(server)] == [{"ok": 1}]
        assert conv.state is liveactors.ConversationState.READY
        assert (await conv.ask("next")).text == "echo #2: next"


async def test_response_for_a_cancelled_call_is_invalid(autojump_clock: MockClock) -> None:
    async with (
        fake() as server,
        conversation(server, WEATHER) as (_, conv),
        recording(conv.subscribe, events.ToolCall, events.ToolCallCancelled) as rec,
    ):
        await conv.send_text(ASK_WEATHER)
        [call] = (await rec.wait_for_event(events.ToolCall)).calls
        await conv.send_text("never mind")  # barge-in: the fake cancels the pending call
        cancelled = await rec.wait_for_event(events.ToolCallCancelled)
        assert cancelled.ids == (call.id,)
        with pytest.raises(
            liveactors.InvalidCommand, match=f"no pending tool call with id '{call.id}'"
        ):
            await conv.send_tool_response({"id": call.id, "name": call.name, "response": {}})
        await server.log.wait_for(lambda: server.log.answered())
        assert tool_responses(server) == []
        assert not server.log.notes_of("ignored_tool_response")


# -- cancellation ---------------------------------------------------------------------------


class Cancellable(liveactors.Conversation):
    started: ClassVar[list[str]] = []
    cancelled: ClassVar[list[str]] = []

    async def on_tool_call(self, call: types.FunctionCall) -> Any:
        assert call.id is not None
        self.started.append(call.id)
        try:
            await trio.sleep(100)
        except trio.Cancelled:
            self.cancelled.append(call.id)
            raise
        return "too late"


async def test_cancellation_cancels_the_running_call(autojump_clock: MockClock) -> None:
    Cancellable.started.clear()
    Cancellable.cancelled.clear()
    async with (
        fake() as server,
        conversation(server, WEATHER, actor=Cancellable) as (_, conv),
        recording(conv.subscribe) as rec,
    ):
        replies: list[liveactors.Reply] = []
        async with trio.open_nursery() as nursery:

            async def ask() -> None:
                replies.append(await conv.ask(ASK_WEATHER))

            nursery.start_soon(ask)
            [call] = (await rec.wait_for_event(events.ToolCall)).calls
            await trio.sleep(1)
            assert Cancellable.started == [call.id]
            await conv.send_text("forget it")
            cancelled = await rec.wait_for_event(events.ToolCallCancelled)
        assert cancelled.ids == (call.id,)
        assert Cancellable.cancelled == [call.id]
        [reply] = replies
        assert reply.interrupted and reply.turn == 1
        await rec.wait_for(lambda: len(rec.of(events.TurnComplete)) == 2)
        kinds = [type(e).__name__ for e in rec.events if e.turn == 1]
        assert kinds.index("Interrupted") < kinds.index("ToolCallCancelled")
        assert kinds.index("ToolCallCancelled") < kinds.index("TurnComplete")
        # Long after the function would have finished, still no response for that id.
        await trio.sleep(200)
        assert tool_responses(server) == []
        assert server.log.answered() == ["forget it"]


class BlockingThread(liveactors.Conversation):
    release = threading.Event()
    done = threading.Event()
    finished: ClassVar[list[str]] = []

    def on_tool_call(self, call: types.FunctionCall) -> Any:  # type: ignore[override]
        self.release.wait(timeout=10)
        self.finished.append(call.id or "")
        self.done.set()
        return "done"


async def test_cancellation_abandons_a_sync_call(autojump_clock: MockClock) -> None:
    BlockingThread.release.clear()
    BlockingThread.done.clear()
    BlockingThread.finished.clear()
    async with (
        fake(connection_lifetime=None) as server,
        conversation(server, WEATHER, actor=BlockingThread) as (_, conv),
        recording(conv.subscribe) as rec,
    ):
        await conv.send_text(ASK_WEATHER)
        [call] = (await rec.wait_for_event(events.ToolCall)).calls
        await conv.send_text("forget it")
        await rec.wait_for_event(events.ToolCallCancelled)
        await rec.wait_for(lambda: len(rec.of(events.TurnComplete)) == 2)
        # The worker thread finishes later; its result must not be sent.
        BlockingThread.release.set()
        assert await trio.to_thread.run_sync(BlockingThread.done.wait, 5)
        await trio.sleep(1)
        assert BlockingThread.finished == [call.id]
        assert tool_responses(server) == []
        assert (await conv.ask("still ok?")).text == "echo #3: still ok?"


# -- NON_BLOCKING ---------------------------------------------------------------------------


def book_then_talk(ctx: TurnContext) -> Any:
    """Call a NON_BLOCKING function, then keep talking (slowly)."""
    if ctx.tool_results:
        return echo_responder(ctx)
    if ctx.user_text == "book":
        return [CallTool("book_table", {"guests": 2}), Say("booking your table now, one moment")]
    return echo_responder(ctx)


async def book_table(guests: int) -> str:
    await trio.sleep(0.5)
    return f"table for {guests}"


class Booker(liveactors.Conversation):
    functions = {"book_table": book_table}


class InterruptBooker(Booker):
    scheduling = {"book_table": "INTERRUPT"}


class SilentBooker(Booker):
    scheduling = {"book_table": "SILENT"}


BOOKING = tools_config(function("book_table", non_blocking=True, guests="integer"))


@pytest.mark.parametrize(
    ("actor", "scheduling", "outcomes"),
    [
        (Booker, "WHEN_IDLE", ["completed", "completed"]),
        (InterruptBooker, "INTERRUPT", ["interrupted", "completed"]),
        (SilentBooker, "SILENT", ["completed"]),
    ],
    ids=["default-when-idle", "interrupt", "silent"],
)
async def test_non_blocking_response_carries_its_scheduling(
    actor: type[liveactors.Conversation],
    scheduling: str,
    outcomes: list[str],
    autojump_clock: MockClock,
) -> None:
    async with (
        fake(responder=book_then_talk, chunks=4, chunk_delay=1.0) as server,
        conversation(server, BOOKING, actor=actor) as (_, conv),
        recording(conv.subscribe) as rec,
    ):
        await conv.send_text("book")
        await rec.wait_for(lambda: len(rec.of(events.TurnComplete)) == len(outcomes))
        await trio.sleep(10)
        [sent] = tool_responses(server)
        assert sent["id"] == call_ids(server)[0]
        assert sent["scheduling"] == scheduling
        assert sent["response"] == {"output": "table for 2"}
        assert [t.outcome for t in server.log.model_turns()] == outcomes
        done = rec.of(events.TurnComplete)
        assert [e.interrupted for e in done] == [o == "interrupted" for o in outcomes]
        if len(outcomes) == 2:
            # The result is announced in a turn of its own.
            said = "".join(e.text for e in rec.of(events.TextDelta) if e.turn == 2)
            assert said == 'echo #2: book_table -> {"output":"table for 2"}'


async def test_explicit_scheduling_in_a_function_response_wins(autojump_clock: MockClock) -> None:
    class Explicit(liveactors.Conversation):
        async def on_tool_call(self, call: types.FunctionCall) -> Any:
            return types.FunctionResponse(
                response={"output": "booked"},
                scheduling=types.FunctionResponseScheduling.SILENT,
            )

    async with (
        fake(responder=book_then_talk) as server,
        conversation(server, BOOKING, actor=Explicit) as (_, conv),
    ):
        await conv.send_text("book")
        await server.log.wait_for(lambda: tool_responses(server))
        [sent] = tool_responses(server)
        assert sent["scheduling"] == "SILENT"
        assert sent["name"] == "book_table"
        assert sent["id"] == call_ids(server)[0]


# -- across a reconnect ---------------------------------------------------------------------


class SlowWeather(liveactors.Conversation):
    runs: ClassVar[list[str]] = []

    async def on_tool_call(self, call: types.FunctionCall) -> Any:
        assert call.args is not None
        self.runs.append(call.args["city"])
        await trio.sleep(5)
        return f"cloudy in {call.args['city']}"


@pytest.mark.parametrize(
    "handle_mode",
    [
        "per_turn",
        "once",
    ],
)
async def test_call_pending_across_a_drop_runs_once(
    handle_mode: str, autojump_clock: MockClock
) -> None:
    SlowWeather.runs.clear()
    async with (
        fake(handle_mode=handle_mode) as server,
        conversation(server, WEATHER, actor=SlowWeather) as (_, conv),
        recording(conv.subscribe) as rec,
    ):
        replies: list[liveactors.Reply] = []
        async with trio.open_nursery() as nursery:

            async def ask() -> None:
                replies.append(await conv.ask(ASK_WEATHER))

            # Two turns first, so the conversation has learnt how the service hands out
            # resumption handles.
            await conv.ask("one")
            await conv.ask("two")
            nursery.start_soon(ask)
            await rec.wait_for_event(events.ToolCall)
            await trio.sleep(1)
            server.faults.drop_now()  # the function is still running
        [reply] = replies
        assert SlowWeather.runs == ["Paris"]
        assert reply.text.endswith('get_weather -> {"output":"cloudy in Paris"}')
        assert not reply.interrupted
        # Answered on the new connection, with an id the service is waiting for there.
        [sent] = tool_responses(server)
        assert sent["connection"] == 2
        calls_on_2 = [
            call["id"]
            for m in server.log.server_messages(connection=2, kind="toolCall")
            for call in m.message["toolCall"]["functionCalls"]
        ]
        if handle_mode == "per_turn":
            # The fake re-issued the call after the reconnect.
            assert sent["id"] in calls_on_2
        else:
            # The session kept its pending call: its id is answered, and the service's turn
            # goes on (its counter says #3); here the cut turn was closed at the drop, so the
            # answer comes under the next turn number.
            assert calls_on_2 == []
            assert sent["id"] == call_ids(server)[0]
            assert reply.text.startswith("echo #3: ")
            assert reply.turn == 4
        assert server.log.answer_counts() == {"one": 1, "two": 1, ASK_WEATHER: 1}
        assert len(server.log.connections) == 2
        assert not server.log.notes_of("ignored_tool_response")


async def test_call_finished_during_backoff_is_answered_after_reconnect(
    autojump_clock: MockClock,
) -> None:
    SlowWeather.runs.clear()
    async with (
        fake() as server,
        conversation(server, WEATHER, actor=SlowWeather, restart=SLOW_RESTART) as (_, conv),
        recording(conv.subscribe) as rec,
    ):
        await conv.send_text(ASK_WEATHER)
        await rec.wait_for_event(events.ToolCall)
        server.faults.drop_now()
        await rec.wait_for_event(events.Reconnecting)
        await trio.sleep(10)  # the function finished while nothing is connected
        assert conv.state is liveactors.ConversationState.RECONNECTING
        await rec.wait_for(lambda: len(rec.of(events.TurnComplete)) >= 2)
        assert SlowWeather.runs == ["Paris"]
        [sent] = tool_responses(server)
        assert sent["connection"] == 2
        assert server.log.answer_counts() == {ASK_WEATHER: 1}
