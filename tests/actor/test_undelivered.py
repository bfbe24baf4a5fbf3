"""A stop or a shutdown never drops acknowledged input silently: what the conversation could not
deliver within the grace is handed back in an ``InputUndelivered`` event (before
``ConversationClosed``), logged as a WARNING with the count, and counted in
``statistics().undelivered``."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
from trio.testing import MockClock

import liveactors
from liveactors import events
from liveactors._protocol import encode

from .conftest import SLOW_RESTART, conversation, drain, fake, recording


def texts(commands: tuple[dict[str, Any], ...]) -> list[str]:
    """The user text of each ``clientContent`` command."""
    return [
        part["text"]
        for command in commands
        for turn in command["clientContent"]["turns"]
        for part in turn["parts"]
    ]


async def test_a_stop_whose_grace_ends_mid_reconnect_hands_queued_input_back(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="liveactors")
    async with (
        fake() as server,
        conversation(server, restart=SLOW_RESTART) as (_, conv),
        conv.subscribe(buffer=1000) as sub,
    ):
        await conv.ask("before")
        server.faults.drop_now()
        await trio.sleep(1)  # the backoff lasts 30 s
        assert conv.state is liveactors.ConversationState.RECONNECTING
        await conv.send_text("queued one")  # acknowledged: send_text returned
        await conv.send_text("queued two")
        with trio.fail_after(10):
            await conv.stop(grace=5)  # the 30 s backoff outlasts the grace
        got = await drain(sub)
    assert [type(e) for e in got[-2:]] == [events.InputUndelivered, events.ConversationClosed]
    undelivered = got[-2]
    assert isinstance(undelivered, events.InputUndelivered)
    assert texts(undelivered.commands) == ["queued one", "queued two"]
    assert undelivered.commands[0] == encode.client_content("queued one")
    assert conv.statistics().undelivered == 2
    assert server.log.answered() == ["before"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("2" in r.getMessage() and "undelivered" in r.getMessage() for r in warnings)


async def test_a_question_cut_by_a_drop_is_handed_back_when_the_grace_ends(
    autojump_clock: MockClock,
) -> None:
    async with (
        fake(chunks=4, chunk_delay=1.0) as server,
        conversation(server, restart=SLOW_RESTART) as (_, conv),
        recording(conv.subscribe, buffer=1000) as rec,
    ):
        await conv.send_text("cut mid-answer")
        await rec.wait_for_event(events.TextDelta)
        server.faults.drop_now()  # the answer never completes
        await rec.wait_for_event(events.Reconnecting)
        with trio.fail_after(10):
            await conv.stop(grace=1)
        await rec.wait_for_event(events.ConversationClosed)
    (undelivered,) = rec.of(events.InputUndelivered)
    assert texts(undelivered.commands) == ["cut mid-answer"]
    assert conv.statistics().undelivered == 1


async def test_shutdown_delivers_or_hands_back_input_queued_while_reconnecting(
    autojump_clock: MockClock,
) -> None:
    async with fake() as server:
        async with conversation(server, restart=SLOW_RESTART, grace=2.0) as (_, conv):
            # A subscription that outlives the orchestrator, to see the last events.
            subscription = conv.subscribe(buffer=1000)
            sub = await subscription.__aenter__()
            await conv.ask("before")
            server.faults.drop_now()
            await trio.sleep(1)  # the backoff lasts 30 s
            assert conv.state is liveactors.ConversationState.RECONNECTING
            await conv.send_text("queued at shutdown")
        # Left the orchestrator: its grace (2 s) ended long before the backoff (30 s).
        got = await drain(sub)
        await subscription.__aexit__(None, None, None)
    handed_back = [
        t for e in got if isinstance(e, events.InputUndelivered) for t in texts(e.commands)
    ]
    answered = [t for t in server.log.answered() if t != "before"]
    assert sorted(handed_back + answered) == ["queued at shutdown"]
    assert conv.statistics().undelivered == len(handed_back)
    assert isinstance(got[-1], events.ConversationClosed)
    if handed_back:
        assert isinstance(got[-2], events.InputUndelivered)


async def test_an_ask_still_queued_when_the_grace_ends_raises(autojump_clock: MockClock) -> None:
    async with fake() as server, conversation(server, restart=SLOW_RESTART) as (_, conv):
        server.faults.drop_now()
        await trio.sleep(1)  # the backoff lasts 30 s
        assert conv.state is liveactors.ConversationState.RECONNECTING
        outcome: list[BaseException] = []
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:

                async def ask() -> None:
                    try:
                        await conv.ask("never sent")
                    except liveactors.LiveError as exc:
                        outcome.append(exc)

                nursery.start_soon(ask)
                await trio.sleep(1)
                await conv.stop(grace=1)
        (error,) = outcome
        assert isinstance(error, liveactors.ConversationStopped)
        assert conv.statistics().undelivered == 1


async def test_a_clean_stop_hands_nothing_back(autojump_clock: MockClock) -> None:
    async with (
        fake() as server,
        conversation(server) as (_, conv),
        conv.subscribe(buffer=1000) as sub,
    ):
        await conv.ask("one")
        await conv.send_text("two")  # the stop waits for its answer
        await conv.stop()
        got = await drain(sub)
    assert not [e for e in got if isinstance(e, events.InputUndelivered)]
    assert conv.statistics().undelivered == 0
    assert server.log.answered() == ["one", "two"]


def test_the_repr_counts_the_commands_without_showing_them() -> None:
    event = events.InputUndelivered(
        conversation="c1", seq=7, turn=2, commands=(encode.client_content("a secret"),)
    )
    assert "a secret" not in repr(event)
    assert "1 message" in repr(event)
