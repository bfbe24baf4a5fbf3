"""Helpers for the resilience tests: a conversation on the fake server, and the invariants."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

import liveactors
from liveactors import events
from liveactors._models import FAKE_TEXT_MODEL
from liveactors.testing import TEST_API_KEY, FakeServer, open_fake_server

TEXT = {"response_modalities": ["TEXT"]}
ECHO = re.compile(r"^echo #(\d+): (.*)$", re.S)

#: Generous enough that injected faults never exhaust it unless a test means them to.
PATIENT = liveactors.RestartPolicy(max_restarts=50, within=60.0, backoff_initial=0.05)


@asynccontextmanager
async def conversation(
    restart: liveactors.RestartPolicy = PATIENT,
    config: dict[str, Any] | None = None,
    *,
    vertex: bool = False,
    **server_options: Any,
) -> AsyncIterator[
    tuple[FakeServer, liveactors.Orchestrator, liveactors.ConversationRef, Recorder]
]:
    """A fake server (in memory), an orchestrator, one TEXT conversation "c", and a recorder of
    every event it publishes (subscribed before the first connect)."""
    server_options.setdefault("listen", False)
    async with (
        open_fake_server(vertex=vertex, **server_options) as server,
        trio.open_nursery() as nursery,
    ):
        backend: liveactors.GeminiBackend | liveactors.VertexBackend
        if vertex:
            # Vertex AI express mode (an API key) against the fake's Vertex endpoint.
            backend = liveactors.VertexBackend(
                api_key=TEST_API_KEY,
                model=FAKE_TEXT_MODEL,
                base_url=server.url,
                transport=liveactors.MemoryTransport(server.dial),
            )
        else:
            backend = server.backend(model=FAKE_TEXT_MODEL)
        async with liveactors.open_orchestrator(backend, restart=restart) as orch:
            recorder = Recorder()
            # Subscribed before the first connect; the subscription ends when "c" closes, so
            # the recorder sees every event up to ConversationClosed.
            sub = orch.bus.subscribe(conversation="c", buffer=100_000)
            nursery.start_soon(recorder.run, sub)
            conv = await orch.spawn(config or TEXT, name="c")
            yield server, orch, conv, recorder


class Recorder:
    """Keeps every event of a subscription, in order."""

    def __init__(self) -> None:
        self.events: list[events.Event] = []
        self._changed = trio.Event()

    async def run(self, sub: liveactors.Subscription) -> None:
        async for event in sub:
            self.events.append(event)
            self._changed.set()
            self._changed = trio.Event()

    async def wait_for(self, kind: type[events.Event], count: int = 1) -> None:
        """Until the conversation has published ``count`` events of ``kind``."""
        while len(self.of(kind)) < count:
            await self._changed.wait()

    def of(self, *kinds: type[events.Event]) -> list[events.Event]:
        return [e for e in self.events if isinstance(e, kinds)]


def counter_of(reply_text: str) -> int:
    """The fake's turn counter in an echo reply."""
    match = ECHO.match(reply_text)
    assert match, f"not an echo reply: {reply_text!r}"
    return int(match.group(1))


async def ask_all(conv: liveactors.ConversationRef, questions: list[str]) -> list[str]:
    """Ask each question in turn; the reply texts."""
    return [(await conv.ask(q)).text for q in questions]


def assert_answered_once(server: FakeServer, questions: list[str]) -> None:
    """Every question was answered exactly once by a completed turn, in the fake's own log."""
    completed = [t.user_text for t in server.log.model_turns(outcome="completed")]
    assert sorted(completed) == sorted(questions), completed


def assert_replies(replies: list[str], questions: list[str], first: int = 1) -> None:
    """Replies echo their questions with a turn counter that carries on without a gap."""
    assert [ECHO.match(r).group(2) if ECHO.match(r) else r for r in replies] == questions, replies
    counters = [counter_of(r) for r in replies]
    assert counters == list(range(first, first + len(replies))), counters


def assert_gap_free(recorder: Recorder) -> None:
    """``seq`` numbers every event once, in order, from 1."""
    seqs = [e.seq for e in recorder.events]
    assert seqs == list(range(1, len(seqs) + 1)), seqs[:50]
