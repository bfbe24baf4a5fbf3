"""The generic ``Actor``: order, backpressure, stop, crashes, on_start failures, its nursery."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing

from liveactors import Actor, ConversationStopped, InvalidCommand


class Recorder(Actor[Any]):
    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self.seen: list[Any] = []
        self.calls: list[str] = []
        self.gate: trio.Event | None = None

    async def on_start(self) -> None:
        self.calls.append("start")

    async def handle(self, message: Any) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if message == "boom":
            raise KeyError("boom")
        self.seen.append(message)

    async def on_stop(self) -> None:
        self.calls.append("stop")


async def test_messages_are_handled_one_at_a_time_in_order() -> None:
    class Slow(Recorder):
        active = 0
        most = 0

        async def handle(self, message: Any) -> None:
            self.active += 1
            self.most = max(self.most, self.active)
            await trio.lowlevel.checkpoint()
            self.seen.append(message)
            self.active -= 1

    actor = Slow()
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        for i in range(100):
            await actor.send(i)
        await actor.stop()
    assert actor.seen == list(range(100))
    assert actor.most == 1
    assert actor.calls == ["start", "stop"]
    assert actor.error is None


async def test_lifecycle_hooks_run_once_around_the_messages() -> None:
    actor = Recorder("rec")
    assert repr(actor) == "<Recorder 'rec' new>"
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        assert repr(actor) == "<Recorder 'rec' running>"
        assert actor.calls == ["start"]
        await actor.send("a")
        await actor.stop()
        assert repr(actor) == "<Recorder 'rec' done>"
    assert actor.calls == ["start", "stop"]
    assert actor.seen == ["a"]


def test_default_name_is_unique_per_instance() -> None:
    a, b = Recorder(), Recorder()
    assert a.name.startswith("Recorder-")
    assert a.name != b.name


async def test_a_full_mailbox_makes_send_wait() -> None:
    class Small(Recorder):
        mailbox_size = 2

    actor = Small()
    actor.gate = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await actor.send(1)  # taken by handle, which waits at the gate
        await trio.testing.wait_all_tasks_blocked()
        await actor.send(2)
        await actor.send(3)
        with pytest.raises(trio.WouldBlock):
            actor.send_nowait(4)
        sent = trio.Event()

        async def sender() -> None:
            await actor.send(4)
            sent.set()

        nursery.start_soon(sender)
        await trio.testing.wait_all_tasks_blocked()
        assert not sent.is_set()
        actor.gate.set()
        await trio.testing.wait_all_tasks_blocked()
        assert sent.is_set()
        await actor.stop()
    assert actor.seen == [1, 2, 3, 4]


async def test_stop_handles_what_is_queued_first() -> None:
    actor = Recorder()
    actor.gate = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        for i in range(5):
            actor.send_nowait(i)
        nursery.start_soon(actor.stop)
        await trio.testing.wait_all_tasks_blocked()
        assert actor.seen == []
        actor.gate.set()
        await actor.wait_stopped()
    assert actor.seen == [0, 1, 2, 3, 4]
    assert actor.calls == ["start", "stop"]


async def test_sending_after_stop_raises_conversation_stopped() -> None:
    actor = Recorder("late")
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await actor.stop()
    with pytest.raises(ConversationStopped, match="actor 'late' is stopped"):
        await actor.send(1)
    with pytest.raises(ConversationStopped):
        actor.send_nowait(1)
    await actor.stop()  # stopping again is harmless


async def test_a_crash_in_handle_ends_only_this_actor(caplog: pytest.LogCaptureFixture) -> None:
    actor = Recorder("crashy")
    bystander = Recorder("bystander")
    with caplog.at_level(logging.ERROR, logger="liveactors.actor"):
        async with trio.open_nursery() as nursery:
            await nursery.start(actor.run)
            await nursery.start(bystander.run)
            await actor.send("ok")
            await actor.send("boom")
            await actor.wait_stopped()
            # The failure is kept as the exception itself, not a trio ExceptionGroup.
            assert isinstance(actor.error, KeyError)
            assert actor.error.args == ("boom",)
            with pytest.raises(ConversationStopped):
                await actor.send("after")
            await bystander.send("still here")
            await bystander.stop()
    assert actor.seen == ["ok"]
    assert actor.calls == ["start"]  # no on_stop after a crash
    assert bystander.seen == ["still here"]
    assert bystander.error is None
    records = [r for r in caplog.records if r.name == "liveactors.actor"]
    assert [r.getMessage() for r in records] == ["actor crashy crashed"]
    assert records[0].exc_info is not None and records[0].exc_info[0] is KeyError


async def test_messages_queued_behind_a_crash_are_refused_to_waiting_senders() -> None:
    class Small(Recorder):
        mailbox_size = 1

    actor = Small()
    actor.gate = trio.Event()
    outcome: list[str] = []

    async def sender() -> None:
        try:
            await actor.send("waits")
        except ConversationStopped:
            outcome.append("refused")

    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await actor.send("boom")
        await trio.testing.wait_all_tasks_blocked()
        await actor.send("queued")
        nursery.start_soon(sender)
        await trio.testing.wait_all_tasks_blocked()
        actor.gate.set()
        await actor.wait_stopped()
    assert outcome == ["refused"]
    assert actor.seen == []


async def test_a_failing_on_start_raises_to_whoever_started_it() -> None:
    class BadStart(Recorder):
        async def on_start(self) -> None:
            raise RuntimeError("no database")

    actor = BadStart()
    async with trio.open_nursery() as nursery:
        with pytest.raises(RuntimeError, match="no database"):
            await nursery.start(actor.run)
    assert isinstance(actor.error, RuntimeError)
    await actor.wait_stopped()
    with pytest.raises(ConversationStopped):
        await actor.send(1)
    assert actor.seen == []
    assert actor.calls == []


async def test_children_in_the_actor_nursery_end_with_it_on_stop() -> None:
    ended: list[str] = []

    class Parent(Recorder):
        async def on_start(self) -> None:
            self.nursery.start_soon(self.child, "from on_start")

        async def handle(self, message: Any) -> None:
            self.nursery.start_soon(self.child, message)

        async def child(self, label: str) -> None:
            try:
                await trio.sleep_forever()
            finally:
                ended.append(label)

    actor = Parent()
    with pytest.raises(InvalidCommand, match="is not running"):
        actor.nursery  # noqa: B018
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await actor.send("from handle")
        await trio.testing.wait_all_tasks_blocked()
        assert ended == []
        with trio.fail_after(5):
            await actor.stop()
    assert sorted(ended) == ["from handle", "from on_start"]


async def test_children_end_when_the_actor_crashes() -> None:
    ended: list[str] = []

    class Parent(Recorder):
        async def handle(self, message: Any) -> None:
            if message == "spawn":
                self.nursery.start_soon(self.child)
            else:
                raise ValueError(message)

        async def child(self) -> None:
            try:
                await trio.sleep_forever()
            finally:
                ended.append("child")

    actor = Parent()
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await actor.send("spawn")
        await actor.send("crash")
        with trio.fail_after(5):
            await actor.wait_stopped()
    assert ended == ["child"]
    assert isinstance(actor.error, ValueError)


async def test_a_crashing_child_task_ends_the_actor_with_its_error() -> None:
    class Parent(Recorder):
        async def handle(self, message: Any) -> None:
            self.nursery.start_soon(self.child)

        async def child(self) -> None:
            raise OSError("child failed")

    actor = Parent()
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await actor.send("go")
        with trio.fail_after(5):
            await actor.wait_stopped()
    assert isinstance(actor.error, OSError)
    assert "stop" not in actor.calls


async def test_cancelling_the_actor_from_outside_ends_it_cleanly() -> None:
    actor = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await actor.send(1)
        nursery.cancel_scope.cancel()
    await actor.wait_stopped()
    assert actor.error is None
    with pytest.raises(ConversationStopped):
        await actor.send(2)
