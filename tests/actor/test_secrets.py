"""Resumption handles are secrets: a close reason that quotes one — the handle in use, or one
the conversation used before — never carries it into an exception's text or repr, an event, or
a log record. (``ResumptionUpdate.handle`` holds the handle by design; its repr hides it.)"""

from __future__ import annotations

import logging
from typing import Any

import attrs
import pytest
from trio.testing import MockClock

import liveactors
from liveactors import events

from .conftest import conversation, fake, recording


def shown(value: Any) -> list[str]:
    """Every text a user may see of an event or an exception: its str, its repr and the str
    and repr of its fields (an event's ``ResumptionUpdate.handle`` excepted: it is the handle)."""
    texts = [str(value), repr(value)]
    if attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            if isinstance(value, events.ResumptionUpdate) and field.name == "handle":
                continue
            item = getattr(value, field.name)
            texts += [str(item), repr(item)]
    if isinstance(value, BaseException):
        texts += [str(getattr(value, "reason", "")), str(getattr(value, "close", ""))]
    return texts


def leaks(handles: list[str], values: list[Any], caplog: pytest.LogCaptureFixture) -> list[str]:
    """The texts among ``values`` and the log records that show one of ``handles``."""
    texts = [text for value in values for text in shown(value)]
    texts += [record.getMessage() for record in caplog.records]
    return [text for text in texts if any(handle in text for handle in handles)]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (1011, "Internal error in session {handle}."),
        (1008, "BidiGenerateContent session not found: {handle}"),
    ],
    ids=["retryable", "handle-expired"],
)
async def test_a_close_reason_quoting_the_handle_never_shows_it(
    code: int, reason: str, caplog: pytest.LogCaptureFixture, autojump_clock: MockClock
) -> None:
    caplog.set_level(logging.DEBUG)
    async with (
        fake() as server,
        conversation(server) as (_, conv),
        recording(conv.subscribe) as rec,
    ):
        await conv.ask("one")
        handle = (await rec.wait_for_event(events.ResumptionUpdate)).handle
        assert handle
        server.faults.close_now(code, reason.format(handle=handle))
        await rec.wait_for_event(events.Connected, 2)
        [reconnecting] = rec.of(events.Reconnecting)
        assert "<redacted>" in reconnecting.reason
        assert (await conv.ask("two")).text == "echo #2: two"
        assert not leaks([handle], rec.events, caplog)


async def test_past_handles_are_secrets_too(
    caplog: pytest.LogCaptureFixture, autojump_clock: MockClock
) -> None:
    caplog.set_level(logging.DEBUG)
    async with (
        fake() as server,
        conversation(server) as (_, conv),
        recording(conv.subscribe) as rec,
    ):
        await conv.ask("one")
        first = (await rec.wait_for_event(events.ResumptionUpdate)).handle
        server.faults.drop_now()  # the next connection resumes with the first handle
        await rec.wait_for_event(events.Connected, 2)
        await conv.ask("two")
        latest = [u.handle for u in rec.of(events.ResumptionUpdate) if u.handle][-1]
        assert first and latest and latest != first
        server.faults.close_now(1011, f"Internal error: {first} then {latest}.")
        await rec.wait_for_event(events.Connected, 3)
        assert not leaks([first, latest], rec.events, caplog)


async def test_a_fatal_close_quoting_the_handle_never_shows_it(
    caplog: pytest.LogCaptureFixture, autojump_clock: MockClock
) -> None:
    caplog.set_level(logging.DEBUG)
    async with (
        fake() as server,
        conversation(server) as (_, conv),
        recording(conv.subscribe) as rec,
    ):
        await conv.ask("one")
        handle = (await rec.wait_for_event(events.ResumptionUpdate)).handle
        assert handle
        server.faults.close_now(1007, f"Invalid resumption handle {handle!r}.")
        await conv.wait_closed()
        assert conv.state is liveactors.ConversationState.FAILED
        with pytest.raises(liveactors.SessionRejected) as caught:
            await conv.ask("two")
        failed = await rec.wait_for_event(events.ConversationFailed)
        assert "<redacted>" in str(failed.error)
        assert not leaks([handle], [*rec.events, failed.error, caught.value], caplog)
