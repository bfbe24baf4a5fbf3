"""Hooks of a ``Conversation`` subclass: ``on_start`` once the first connection is up,
``on_event`` for every event in order, ``on_turn_complete`` per turn, ``on_stop`` when it closes
(not when it fails)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from trio.testing import MockClock

import liveactors
from liveactors import events
from liveactors._models import FAKE_TEXT_MODEL

from .conftest import TEXT, check_seq, conversation, drain, fake


class Recording(liveactors.Conversation):
    """Records every hook call, in order, with what it saw."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def on_start(self) -> None:
        self.calls.append(("start", (self.ref.name, self.ref.state)))

    async def on_event(self, event: events.Event) -> None:
        self.calls.append(("event", event))

    async def on_turn_complete(self, event: events.TurnComplete) -> None:
        self.calls.append(("turn", event))

    async def on_stop(self) -> None:
        self.calls.append(("stop", self.ref.state))

    def seen(self, hook: str) -> list[Any]:
        return [value for name, value in self.calls if name == hook]


async def run_recording(
    server: Any, actor: Recording, body: Any
) -> tuple[list[events.Event], liveactors.ConversationRef]:
    """Spawn ``actor`` with a subscriber listening from the start, run ``body(conv)``, and
    return everything the subscriber saw."""
    backend = server.backend(model=FAKE_TEXT_MODEL)
    async with (
        liveactors.open_orchestrator(backend) as orch,
        orch.subscribe(conversation="c1", buffer=10_000) as sub,
    ):
        conv = await orch.spawn(TEXT, name="c1", actor=actor)
        await body(conv)
        got = []
        while (event := sub.receive_nowait()) is not None:
            got.append(event)
    return got, conv


async def test_on_start_runs_once_when_the_first_connection_is_up(
    autojump_clock: MockClock,
) -> None:
    actor = Recording()

    async def body(conv: liveactors.ConversationRef) -> None:
        assert actor.ref is conv
        await conv.ask("one")
        server.faults.drop_now()
        await conv.ask("two")
        await conv.stop()

    async with fake() as server:
        got, _ = await run_recording(server, actor, body)
    assert actor.seen("start") == [("c1", liveactors.ConversationState.READY)]
    assert actor.calls[0][0] == "event"  # Connected comes first ...
    assert isinstance(actor.calls[0][1], events.Connected)
    assert actor.calls[1][0] == "start"  # ... then on_start
    assert sum(isinstance(e, events.Connected) for e in got) == 2


async def test_on_start_can_talk(autojump_clock: MockClock) -> None:
    class Greeter(liveactors.Conversation):
        async def on_start(self) -> None:
            await self.ref.send_text("hello from on_start")

    async with fake() as server, conversation(server, actor=Greeter) as (_, conv):
        await server.log.wait_for(lambda: server.log.answered())
        assert server.log.answered() == ["hello from on_start"]
        assert (await conv.ask("and then")).text == "echo #2: and then"


async def test_on_event_sees_every_event_in_order(autojump_clock: MockClock) -> None:
    actor = Recording()

    async def body(conv: liveactors.ConversationRef) -> None:
        await conv.ask("one")
        server.faults.drop_now()
        await conv.ask("two")
        await trio.sleep(1)
        await conv.stop()

    async with fake() as server:
        got, _ = await run_recording(server, actor, body)
    hooked = actor.seen("event")
    # Exactly what subscribers see, in the same order.
    assert hooked == got
    assert [e.seq for e in hooked] == list(range(1, len(hooked) + 1))
    kinds = {type(e).__name__ for e in hooked}
    assert {"Connected", "Reconnecting", "TextDelta", "TurnComplete", "Usage"} <= kinds


async def test_on_event_sees_conversation_closed(autojump_clock: MockClock) -> None:
    actor = Recording()

    async def body(conv: liveactors.ConversationRef) -> None:
        await conv.ask("one")
        await trio.sleep(1)
        await conv.stop()

    async with fake() as server:
        got, _ = await run_recording(server, actor, body)
    assert actor.seen("event") == got
    assert isinstance(actor.seen("event")[-1], events.ConversationClosed)


async def test_on_turn_complete_follows_each_turn(autojump_clock: MockClock) -> None:
    actor = Recording()

    async def body(conv: liveactors.ConversationRef) -> None:
        for text in ("a", "b", "c"):
            await conv.ask(text)
        await conv.stop()

    async with fake() as server:
        got, _ = await run_recording(server, actor, body)
    turns = actor.seen("turn")
    assert [e.turn for e in turns] == [1, 2, 3]
    assert turns == [e for e in got if isinstance(e, events.TurnComplete)]
    # Each on_turn_complete comes right after on_event saw the same event.
    for event in turns:
        index = actor.calls.index(("turn", event))
        assert actor.calls[index - 1] == ("event", event)


async def test_on_stop_when_stopped(autojump_clock: MockClock) -> None:
    actor = Recording()

    async def body(conv: liveactors.ConversationRef) -> None:
        await conv.ask("a")
        await conv.stop()
        assert conv.state is liveactors.ConversationState.CLOSED

    async with fake() as server:
        await run_recording(server, actor, body)
    assert len(actor.seen("stop")) == 1
    # on_stop comes last, but for on_event seeing the final ConversationClosed.
    assert actor.calls[-2][0] == "stop"
    assert actor.calls[-1][0] == "event"
    assert isinstance(actor.calls[-1][1], events.ConversationClosed)


async def test_on_stop_when_the_orchestrator_shuts_down(autojump_clock: MockClock) -> None:
    actor = Recording()

    async def body(conv: liveactors.ConversationRef) -> None:
        await conv.ask("a")

    async with fake() as server:
        await run_recording(server, actor, body)
    assert len(actor.seen("stop")) == 1


async def test_on_stop_not_called_on_failure(autojump_clock: MockClock) -> None:
    actor = Recording()

    async def body(conv: liveactors.ConversationRef) -> None:
        await conv.ask("a")
        server.faults.close_now(1007, "Request contains an invalid argument.")
        await conv.wait_closed()
        assert conv.state is liveactors.ConversationState.FAILED
        with pytest.raises(liveactors.SessionRejected, match="invalid argument"):
            await conv.send_text("b")

    async with fake() as server:
        got, _ = await run_recording(server, actor, body)
    assert actor.seen("stop") == []
    failed = [e for e in got if isinstance(e, events.ConversationFailed)]
    assert len(failed) == 1
    assert isinstance(failed[0].error, liveactors.SessionRejected)
    assert failed[0].error.code == 1007
    assert isinstance(got[-1], events.ConversationClosed)
    assert len(actor.seen("start")) == 1


async def test_hooks_run_in_order_for_one_turn(autojump_clock: MockClock) -> None:
    actor = Recording()

    async def body(conv: liveactors.ConversationRef) -> None:
        await conv.ask("x")
        await trio.sleep(1)
        await conv.stop()

    async with fake() as server:
        await run_recording(server, actor, body)
    names = [name for name, _ in actor.calls]
    assert names[0] == "event" and names[1] == "start"
    assert names.count("turn") == 1
    assert names.index("turn") < names.index("stop") == len(names) - 2


async def test_a_hook_may_stop_its_own_conversation(autojump_clock: MockClock) -> None:
    class OneTurn(liveactors.Conversation):
        async def on_turn_complete(self, event: events.TurnComplete) -> None:
            await self.ref.stop()

    async with (
        fake() as server,
        conversation(server, actor=OneTurn) as (_, conv),
        conv.subscribe() as sub,
    ):
        with trio.fail_after(30):
            reply = await conv.ask("only this")
            await conv.wait_closed()
        assert reply.text == "echo #1: only this"
        assert conv.state is liveactors.ConversationState.CLOSED
        got = []
        while (event := sub.receive_nowait()) is not None:
            got.append(event)
        assert isinstance(got[-1], events.ConversationClosed)
        assert server.log.connections[-1].close_code == 1000


async def test_a_hook_that_raises_does_not_end_the_conversation(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    class Buggy(liveactors.Conversation):
        async def on_start(self) -> None:
            raise RuntimeError("start bug")

        async def on_event(self, event: events.Event) -> None:
            if isinstance(event, events.TextDelta):
                raise KeyError("event bug")

        async def on_turn_complete(self, event: events.TurnComplete) -> None:
            raise ValueError("turn bug")

    async with fake() as server:
        backend = server.backend(model=FAKE_TEXT_MODEL)
        async with liveactors.open_orchestrator(backend) as orch:
            other = await orch.spawn(TEXT, name="other")
            buggy = await orch.spawn(TEXT, name="buggy", actor=Buggy)
            assert (await buggy.ask("one")).text == "echo #1: one"
            assert (await buggy.ask("two")).text == "echo #2: two"
            assert buggy.state is liveactors.ConversationState.READY
            assert (await other.ask("fine")).text == "echo #1: fine"
    assert buggy.state is other.state is liveactors.ConversationState.CLOSED
    logged = caplog.text
    assert "start bug" in logged and "event bug" in logged and "turn bug" in logged


async def test_slow_on_event_hook_cut_by_stop_leaves_no_gap(autojump_clock: MockClock) -> None:
    class SlowHook(liveactors.Conversation):
        async def on_event(self, event: events.Event) -> None:
            await trio.sleep(1)  # a hook that takes its time: the conversation waits

    async with (
        fake() as server,
        conversation(server, actor=SlowHook) as (_, conv),
        conv.subscribe(buffer=1000) as sub,
    ):
        await conv.send_text("x")
        await trio.sleep(0.5)
        # Events reach the hook at t = 0, 1, 2, ...; the grace ends in the hook of Usage.
        await conv.stop(grace=5.0)
        got = await drain(sub)
    assert isinstance(got[-1], events.ConversationClosed)
    check_seq(got, first=got[0].seq)


async def test_on_start_can_ask_and_wait_for_the_answer(autojump_clock: MockClock) -> None:
    class Asker(liveactors.Conversation):
        def __init__(self) -> None:
            self.reply: liveactors.Reply | None = None
            self.answered = trio.Event()

        async def on_start(self) -> None:
            self.reply = await self.ref.ask("hello from on_start")
            self.answered.set()

    actor = Asker()
    async with fake() as server, conversation(server, actor=actor) as (_, conv):
        with trio.fail_after(30):
            await actor.answered.wait()
        assert actor.reply is not None
        assert actor.reply.text == "echo #1: hello from on_start"
        assert (await conv.ask("and then")).text == "echo #2: and then"


async def test_an_ask_in_on_start_survives_a_reconnect(autojump_clock: MockClock) -> None:
    class Asker(liveactors.Conversation):
        def __init__(self) -> None:
            self.reply: liveactors.Reply | None = None
            self.answered = trio.Event()

        async def on_start(self) -> None:
            self.reply = await self.ref.ask("a long question")
            self.answered.set()

    actor = Asker()
    async with (
        fake(chunks=4, chunk_delay=1.0) as server,
        conversation(server, actor=actor) as (_, conv),
    ):
        with trio.fail_after(60):
            # Drop the connection while the model is answering on_start's question.
            await server.log.wait_for(lambda: server.log.client_messages(kind="clientContent"))
            await trio.sleep(1.5)
            server.faults.drop_now()
            await actor.answered.wait()
        assert actor.reply is not None
        assert actor.reply.text.endswith("a long question")
        assert not actor.reply.interrupted
        assert conv.statistics().reconnects == 1
