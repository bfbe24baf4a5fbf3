"""How to test your own app with ``liveactors.testing``: the fake server, faults and its log.

    python examples/testing_your_app.py           # runs the checks below, prints PASS/FAIL
    python -m pytest examples/testing_your_app.py # the same checks under pytest-trio

The app is one function, ``answer_tickets``, that takes a ``GeminiBackend``: production passes
the real one, tests pass ``server.backend()`` of a fake server. The fake plays
``liveactors.DEFAULT_MODEL`` (gemini-3.8-live) by default: it answers in speech, and the app
reads the transcript of each answer (``Reply.text``), as it would on the real service.

Each ``test_*`` function opens its own in-memory fake server (no sockets), so the tests are
fast and independent, and can run on trio's ``MockClock`` (the script does; under pytest use
pytest-trio's ``autojump_clock``).
Under pytest, async tests need pytest-trio with ``trio_mode = true`` (this repository's
``pyproject.toml`` sets it) or a ``@pytest.mark.trio`` on each test.

With ``GEMINI_API_KEY`` set, the script also runs the app once against the real service first.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Awaitable, Callable

import trio
import trio.testing
from google.genai import types

import liveactors
from liveactors import events
from liveactors.testing import Say, TurnContext, open_fake_server

MODEL = os.environ.get("LIVEACTORS_MODEL", liveactors.DEFAULT_MODEL)


# -- the app under test ---------------------------------------------------------------------------

#: The model answers in AUDIO (its only modality); liveactors asks for the transcript of it.
SUPPORT = types.LiveConnectConfig(
    system_instruction="You answer support tickets in one friendly sentence.",
)


async def answer_tickets(backend: liveactors.GeminiBackend, tickets: list[str]) -> list[str]:
    """Answer each ticket in turn, in one conversation (a stand-in for your app)."""
    answers = []
    async with liveactors.open_orchestrator(backend) as orch:
        conv = await orch.spawn(SUPPORT, name="support")
        for ticket in tickets:
            with trio.fail_after(60):
                reply = await conv.ask(ticket)
            answers.append(reply.text)
        await conv.stop()
    return answers


TICKETS = ["My order has not arrived.", "How do I reset my password?", "Thanks!"]


# -- the tests ------------------------------------------------------------------------------------


async def test_answers_every_ticket_once() -> None:
    async with open_fake_server(listen=False) as server:
        answers = await answer_tickets(server.backend(model=MODEL), TICKETS)

        # The fake's default model says "echo #n: <what the user said>"; the app reads it
        # from the output transcription.
        assert answers == [f"echo #{n}: {t}" for n, t in enumerate(TICKETS, 1)]
        # The server's log: every ticket answered by exactly one completed turn ...
        assert server.log.answer_counts() == dict.fromkeys(TICKETS, 1)
        # ... and the setup the service received carries the app's system instruction, and
        # the output transcription liveactors asks for by default.
        setup = server.log.client_messages(kind="setup")[0].body
        assert setup["systemInstruction"]["parts"][0]["text"].startswith("You answer")
        assert "outputAudioTranscription" in setup
        assert server.log.errors == []


async def test_with_a_scripted_model() -> None:
    def model(ctx: TurnContext) -> str | Say:
        """A responder plays the model: here, canned answers keyed on the user's words."""
        if "password" in ctx.user_text:
            return "Use the 'Forgot password' link."
        if "order" in ctx.user_text:
            return Say("Sorry! I have re-sent it.")
        return "You're welcome."

    async with open_fake_server(listen=False, responder=model) as server:
        answers = await answer_tickets(server.backend(model=MODEL), TICKETS)
    assert answers == [
        "Sorry! I have re-sent it.",
        "Use the 'Forgot password' link.",
        "You're welcome.",
    ]


async def test_survives_a_dropped_connection() -> None:
    async with open_fake_server(listen=False) as server:
        # The first connection is dropped (no close frame) right before the 2nd turnComplete.
        drop = server.faults.drop(before="turnComplete", nth=2)
        answers = await answer_tickets(server.backend(model=MODEL), TICKETS)

        assert drop.fired == 1
        assert [c.cause for c in server.log.connections] == ["fault", "client"]
        # The cut turn was answered again on the new connection; the app saw one answer each.
        assert [a.split(": ", 1)[1] for a in answers] == TICKETS
        assert [t.outcome for t in server.log.model_turns()] == [
            "completed",
            "cut",
            "completed",
            "completed",
        ]


async def test_survives_a_goaway() -> None:
    async with open_fake_server(listen=False) as server:
        # While the first answer streams, the service announces the end of the connection in
        # 5 s: the conversation holds new input, lets the answer finish, waits for a fresh
        # resumption handle, then resumes on a new connection and sends what it held.
        server.faults.go_away(time_left=5, after="modelTurn")
        answers = await answer_tickets(server.backend(model=MODEL), TICKETS)

        assert answers == [f"echo #{n}: {t}" for n, t in enumerate(TICKETS, 1)]
        first, second = server.log.connections
        assert second.resumed_from is not None  # a planned handoff: resumed from a handle
        assert first.session == second.session
        assert server.log.answer_counts() == dict.fromkeys(TICKETS, 1)


async def test_restores_history_when_the_handle_is_refused() -> None:
    async with open_fake_server(listen=False) as server:
        server.faults.drop(after="turnComplete")  # first connection: drop after one answer
        server.faults.reject_handles(1)  # ... and refuse to resume: "session not found"
        backend = server.backend(model=MODEL)
        restored = []

        async def watch(orch: liveactors.Orchestrator) -> None:
            async with orch.subscribe(events.HistoryRestored) as stream:
                async for event in stream:
                    restored.append(event)

        answers = []
        async with liveactors.open_orchestrator(backend) as orch, trio.open_nursery() as nursery:
            nursery.start_soon(watch, orch)
            conv = await orch.spawn(SUPPORT, name="support")
            for ticket in TICKETS:
                answers.append((await conv.ask(ticket)).text)
            await conv.stop()
            nursery.cancel_scope.cancel()

        assert len(restored) == 1  # a fresh session got the transcript as history
        assert len(server.log.sessions) == 2
        history = server.log.client_messages(kind="clientContent", session=server.log.sessions[1])
        assert history[0].body.get("turnComplete") is None  # history only: not answered again
        assert [a.split(": ", 1)[1] for a in answers] == TICKETS


async def test_a_refused_config_fails_at_spawn() -> None:
    async with open_fake_server(listen=False) as server:
        # gemini-3.8-live answers only in AUDIO. liveactors knows the current models, so a
        # config the model would refuse fails at spawn, naming the field, before any socket.
        text_only = types.LiveConnectConfig(response_modalities=["TEXT"])
        async with liveactors.open_orchestrator(server.backend(model=MODEL)) as orch:
            try:
                await orch.spawn(text_only, name="support")
            except liveactors.InvalidConfig as exc:
                assert exc.field == "response_modalities"
                assert "OutputTranscript" in str(exc)  # what to do instead
            else:
                raise AssertionError("expected InvalidConfig")
        assert server.log.connections == []


async def test_an_unknown_model_is_left_to_the_service() -> None:
    # A model name liveactors does not know passes through unchecked (so a new model works
    # the day it ships); a service that does not serve it refuses the setup with 1008.
    async with open_fake_server(listen=False, models={liveactors.DEFAULT_MODEL}) as server:
        try:
            await answer_tickets(server.backend(model="gemini-0.1-live-nonexistent"), TICKETS)
        except liveactors.SessionRejected as exc:
            assert exc.code == 1008
            assert "not found" in exc.reason
        else:
            raise AssertionError("expected SessionRejected")


# -- running them as a script ---------------------------------------------------------------------


def run_tests() -> int:
    tests: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        (name, value) for name, value in globals().items() if name.startswith("test_")
    ]
    failed = 0
    for name, test in tests:
        started = time.perf_counter()
        try:
            # MockClock: timeouts, backoff and GoAway deadlines pass instantly when idle.
            trio.run(test, clock=trio.testing.MockClock(autojump_threshold=0))
        except Exception:
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc()
        else:
            print(f"PASS {name} ({time.perf_counter() - started:.2f}s)")
    print(f"{len(tests) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    if os.environ.get("GEMINI_API_KEY"):
        print(f"running the app against the real Live API with {MODEL}:")
        answers = trio.run(answer_tickets, liveactors.GeminiBackend(model=MODEL), TICKETS)
        for ticket, answer in zip(TICKETS, answers, strict=True):
            print(f"  {ticket} -> {answer}")
    print("checking the app against the fake server:")
    sys.exit(run_tests())
