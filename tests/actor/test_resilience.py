"""Drops at every protocol point, every close code, expired handles: the conversation carries on,
every question is answered exactly once, and the turn counter never skips or repeats."""

from __future__ import annotations

import pytest
import trio

import liveactors
from liveactors import events
from liveactors.testing import open_fake_server

from .resilience import (
    PATIENT,
    ask_all,
    assert_answered_once,
    assert_gap_free,
    assert_replies,
    conversation,
)

QUESTIONS = ["alpha", "beta", "gamma"]

# Every message kind the fake server sends in a text conversation, with how many of them a
# connection sends before the second question's answer is done (so nth=1..n covers each point).
POINTS = [
    ("before", "setupComplete", 1),
    ("after", "setupComplete", 1),
    ("before", "sessionResumptionUpdate", 4),
    ("after", "sessionResumptionUpdate", 4),
    ("before", "modelTurn", 4),
    ("after", "modelTurn", 4),
    ("before", "generationComplete", 2),
    ("after", "generationComplete", 2),
    ("before", "turnComplete", 2),
    ("after", "turnComplete", 2),
]


@pytest.mark.parametrize("handle_mode", ["per_turn", "once"])
@pytest.mark.parametrize(
    ("where", "kind", "nth"),
    [(w, k, n) for w, k, most in POINTS for n in range(1, most + 1)],
)
async def test_a_drop_at_any_protocol_point_loses_and_repeats_nothing(
    autojump_clock: object, handle_mode: str, where: str, kind: str, nth: int
) -> None:
    async with conversation(handle_mode=handle_mode) as (server, _, conv, recorder):
        server.faults.drop(connection="next", **{where: kind}, nth=nth)
        # The fault is armed for the next connection: force one with a handoff.
        server.faults.go_away_now(5.0)
        replies = await ask_all(conv, QUESTIONS)

    assert_replies(replies, QUESTIONS)
    assert_answered_once(server, QUESTIONS)
    assert_gap_free(recorder)


@pytest.mark.parametrize("handle_mode", ["per_turn", "once"])
@pytest.mark.parametrize("nth", [1, 2, 3])
async def test_a_drop_on_the_first_connection_at_any_point(
    autojump_clock: object, handle_mode: str, nth: int
) -> None:
    # The very first connection, before the handle mode is known, drops mid-answer.
    async with conversation(handle_mode=handle_mode, chunks=3) as (server, _, conv, recorder):
        server.faults.drop(connection=1, after="modelTurn", nth=nth)
        replies = await ask_all(conv, QUESTIONS)

    assert_replies(replies, QUESTIONS)
    assert_answered_once(server, QUESTIONS)
    assert_gap_free(recorder)


async def test_resumable_false_at_the_moment_of_a_drop(autojump_clock: object) -> None:
    # Once the first answer and its handle are in, the next update is the {} sent as the
    # second turn starts: drop right after it.
    async with conversation(chunks=3) as (server, _, conv, recorder):
        replies = await ask_all(conv, QUESTIONS[:1])
        # Handle after setup, {} as the turn started, handle after it: then arm the drop.
        await server.log.wait_for(
            lambda: len(server.log.server_messages(1, kind="sessionResumptionUpdate")) == 3
        )
        server.faults.drop(connection=1, after="sessionResumptionUpdate")
        replies += await ask_all(conv, QUESTIONS[1:])

    updates = [m.message for m in server.log.server_messages(1, kind="sessionResumptionUpdate")]
    assert updates[-1] == {"sessionResumptionUpdate": {}}
    assert_replies(replies, QUESTIONS)
    assert_answered_once(server, QUESTIONS)
    assert conv.statistics().reconnects == 1
    assert_gap_free(recorder)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (1000, ""),
        (1011, "Internal error encountered."),
        (1011, "Deadline expired before operation could complete."),
        (1013, "Try again later."),
    ],
)
async def test_retryable_closes_reconnect_and_answer_once(
    autojump_clock: object, code: int, reason: str
) -> None:
    async with conversation(chunks=3) as (server, _, conv, recorder):
        server.faults.close(code, reason, connection=1, after="modelTurn", nth=2)
        replies = await ask_all(conv, QUESTIONS)

    assert_replies(replies, QUESTIONS)
    assert_answered_once(server, QUESTIONS)
    reconnecting = recorder.of(events.Reconnecting)
    assert len(reconnecting) == 1
    assert str(code) in reconnecting[0].reason  # type: ignore[attr-defined]
    assert conv.statistics().reconnects == 1


@pytest.mark.parametrize(
    ("code", "reason", "error"),
    [
        (1007, "Request contains an invalid argument.", liveactors.SessionRejected),
        (
            1008,
            "Operation is not implemented, or supported, or enabled.",
            liveactors.SessionRejected,
        ),
        (
            1011,
            "You exceeded your current quota, please check your plan and billing details.",
            liveactors.SessionRejected,
        ),
    ],
)
async def test_fatal_closes_fail_the_conversation(
    autojump_clock: object, code: int, reason: str, error: type[Exception]
) -> None:
    async with conversation() as (server, _, conv, recorder):
        assert (await conv.ask("fine")).text == "echo #1: fine"
        server.faults.close_now(code, reason)
        await conv.wait_closed()
        assert conv.state is liveactors.ConversationState.FAILED
        with pytest.raises(error) as raised:
            await conv.send_text("after")
        assert reason in str(raised.value)
        assert raised.value.close == liveactors.CloseInfo(code, reason)  # type: ignore[attr-defined]

    failed = recorder.of(events.ConversationFailed)
    assert len(failed) == 1
    assert failed[0].error.reason == reason  # type: ignore[attr-defined]
    assert isinstance(recorder.events[-1], events.ConversationClosed)
    assert len(server.log.connections) == 1  # no reconnect attempt
    assert_gap_free(recorder)


async def test_fatal_close_of_the_first_connect_raises_from_spawn(autojump_clock: object) -> None:
    """A model the library does not know is not checked, so the service's own 1007 is what
    the caller sees, saying which model and which setup fields were sent."""
    async with open_fake_server(listen=False) as server:
        # A native-audio model: the service refuses TEXT modality with 1007.
        backend = server.backend(model="gemini-9.9-flash-native-audio-unreleased")
        async with liveactors.open_orchestrator(backend) as orch:
            with pytest.raises(liveactors.SessionRejected) as caught:
                await orch.spawn({"response_modalities": ["TEXT"]}, name="c")
            assert orch.conversations == []
    assert caught.value.code == 1007
    message = str(caught.value)
    assert "models/gemini-9.9-flash-native-audio-unreleased" in message
    assert "generationConfig.responseModalities=['TEXT']" in message
    assert "sessionResumption" in message


async def test_an_expired_handle_starts_a_fresh_session_and_restores_the_transcript(
    autojump_clock: object,
) -> None:
    async with conversation() as (server, _, conv, recorder):
        before = await ask_all(conv, ["one", "two"])
        server.faults.reject_handles()
        server.faults.drop_now()
        after = await ask_all(conv, ["three", "four"])

    assert_replies(before + after, ["one", "two", "three", "four"])
    assert_answered_once(server, ["one", "two", "three", "four"])
    sessions = server.log.sessions
    assert len(sessions) == 2, sessions  # a fresh session after the refused handle
    restored = recorder.of(events.HistoryRestored)
    assert [e.turns for e in restored] == [4]  # type: ignore[attr-defined]
    history = next(
        m.body for m in server.log.client_messages(session=sessions[1], kind="clientContent")
    )
    assert [t["role"] for t in history["turns"]] == ["user", "model", "user", "model"]
    assert "turnComplete" not in history
    assert_gap_free(recorder)


async def test_restarts_run_out_when_no_turn_ever_completes(autojump_clock: object) -> None:
    policy = liveactors.RestartPolicy(max_restarts=3, within=60.0, backoff_initial=0.1)
    async with conversation(restart=policy, chunks=2) as (server, _, conv, recorder):
        server.faults.drop(connection="all", after="modelTurn")
        with pytest.raises(liveactors.ConversationStopped, match="failed"):
            await conv.ask("never answered")
        assert conv.state is liveactors.ConversationState.FAILED

    attempts = recorder.of(events.Reconnecting)
    assert [e.attempt for e in attempts] == [1, 2, 3]  # type: ignore[attr-defined]
    delays = [e.delay for e in attempts]  # type: ignore[attr-defined]
    assert delays == sorted(delays)  # exponential backoff (jitter 20 % < doubling)
    assert len(server.log.connections) == 4


async def test_a_conversation_that_keeps_moving_is_never_killed(autojump_clock: object) -> None:
    # The line drops after every turn, forever; each connection completes a turn, so the
    # restart budget resets and the conversation carries on far past max_restarts.
    policy = liveactors.RestartPolicy(max_restarts=2, within=600.0, backoff_initial=0.1)
    async with conversation(restart=policy) as (server, _, conv, _rec):
        server.faults.drop(connection="all", after="turnComplete")
        questions = [f"q{i}" for i in range(8)]
        replies = await ask_all(conv, questions)

    assert_replies(replies, questions)
    assert_answered_once(server, questions)
    assert conv.statistics().reconnects >= 7


async def test_refused_upgrades_are_retried_with_backoff(autojump_clock: object) -> None:
    async with conversation() as (server, _, conv, recorder):
        await conv.ask("one")
        server.faults.refuse_upgrades(2, status=503)
        server.faults.drop_now()
        replies = await ask_all(conv, ["two"])

    assert replies == ["echo #2: two"]
    assert len(recorder.of(events.Reconnecting)) == 3
    assert conv.statistics().reconnects == 3


async def test_the_concurrency_limit_is_retried_later_outside_the_restart_budget(
    autojump_clock: object,
) -> None:
    """HTTP 429 at the upgrade and 1011 "Resource has been exhausted" mean the project has too
    many sessions open: more refusals than ``max_restarts`` allows do not fail the
    conversation, the waits are longer than the policy's, and they are counted apart."""
    async with conversation() as (server, _, conv, recorder):
        await conv.ask("one")
        server.faults.refuse_upgrades(4, status=429)
        server.faults.drop_now()
        start = trio.current_time()
        replies = await ask_all(conv, ["two"])
        waited = trio.current_time() - start
        server.faults.close_now(1011, "Resource has been exhausted (e.g. check quota).")
        replies += await ask_all(conv, ["three"])
        assert conv.state is liveactors.ConversationState.READY

    assert replies == ["echo #2: two", "echo #3: three"]
    stats = conv.statistics()
    assert stats.busy_retries == 5  # four 429s and the 1011
    assert stats.reconnects == 1  # the drop
    # Four busy waits of at least 1, 2, 4 and 8 s (2 s doubling, jittered by half).
    assert waited >= 15.0
    delays = [e.delay for e in recorder.of(events.Reconnecting)]  # type: ignore[attr-defined]
    # The drop waits the policy's backoff; every busy refusal at least a second.
    assert delays[0] < 2 * PATIENT.backoff_initial
    assert len(delays) == 6 and min(delays[1:]) >= 1.0


async def test_a_concurrency_limit_that_never_lifts_fails_the_conversation_at_last(
    autojump_clock: object,
) -> None:
    async with conversation() as (server, _, conv, recorder):
        await conv.ask("one")
        server.faults.refuse_upgrades(1000, status=429)
        server.faults.drop_now()
        await recorder.wait_for(events.ConversationFailed)
    [failed] = recorder.of(events.ConversationFailed)
    assert isinstance(failed.error, liveactors.ServiceBusy)  # type: ignore[attr-defined]
    assert conv.statistics().busy_retries == 25
