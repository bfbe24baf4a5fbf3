"""A conversation on Vertex AI (the fake server's Vertex endpoint): a bearer token from a
credentials object, transparent resumption by default, replay trimmed by the service's
``lastConsumedClientMessageIndex`` through drops and the Vertex cut (close 1000), and every
input answered exactly once according to the server's own log."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import trio
from trio.testing import MockClock

import liveactors
from liveactors import events
from liveactors._protocol.ledger import HandleMode
from liveactors.testing import open_fake_server

from .conftest import recording

TOKEN = "ya29.vertex-session-token"


class Credentials:
    """What google-auth credentials offer: a token, its expiry, and ``refresh``."""

    def __init__(self) -> None:
        self.token: str | None = None
        self.expiry: datetime | None = None
        self.refreshes = 0

    def refresh(self, request: Any) -> None:
        self.refreshes += 1
        self.token = TOKEN
        self.expiry = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1)


async def test_a_vertex_conversation_through_drops_answers_everything_once(
    autojump_clock: MockClock,
) -> None:
    rng = random.Random(7)
    credentials = Credentials()
    questions = [f"question {n}" for n in range(1, 31)]
    async with open_fake_server(
        vertex=True, api_keys={TOKEN}, listen=False, chunks=3, chunk_delay=0.2
    ) as server:
        backend = liveactors.VertexBackend(
            project="p-1",
            location="europe-west4",
            credentials=credentials,
            base_url=server.url,
            transport=liveactors.MemoryTransport(server.dial),
        )
        policy = liveactors.RestartPolicy(max_restarts=50, backoff_initial=0.05)
        async with liveactors.open_orchestrator(backend, restart=policy) as orch:
            conv = await orch.spawn(None, name="v")
            async with recording(conv.subscribe) as rec:
                replies = []
                for number, question in enumerate(questions, 1):
                    if number % 3 == 0:
                        kind = rng.choice(["modelTurn", "turnComplete", "toolCall"])
                        if kind == "toolCall":
                            server.faults.close(
                                1000, "The operation was cancelled.", after_seconds=0.3
                            )
                        else:
                            server.faults.drop(after=kind, nth=rng.randint(1, 2))
                    replies.append((await conv.ask(question)).text)
                sup = orch.get("v")._sup  # type: ignore[union-attr]
                mode = sup.session.ledger.mode
            stats = conv.statistics()
    assert [r.split(": ", 1)[1] for r in replies] == questions
    assert server.log.answer_counts() == dict.fromkeys(questions, 1)
    # The drops really happened, every connection resumed the one session transparently, and
    # the replay was trimmed by the service's index (no fresh session, no restored history).
    assert stats.reconnects >= 5
    assert len(server.log.sessions) == 1
    assert mode is HandleMode.TRANSPARENT
    assert not rec.of(events.HistoryRestored)
    for setup in (m.body for m in server.log.client_messages(kind="setup")):
        assert (
            setup["model"]
            == "projects/p-1/locations/europe-west4/publishers/google/models/gemini-3.8-live"
        )
        assert setup["sessionResumption"]["transparent"] is True
    # One token served every connect (refreshed off the loop, only when near expiry).
    assert credentials.refreshes == 1
    assert all(c.path.startswith("/ws/google.cloud.aiplatform.") for c in server.log.connections)
    await trio.lowlevel.checkpoint()


async def test_the_vertex_cut_is_a_handoff_and_a_bare_1000_is_not(
    autojump_clock: MockClock,
) -> None:
    """Vertex AI ends connections at ten minutes with 1000 "The operation was cancelled.",
    often with no goAway first: after progress that is a planned switch (no backoff, no
    restart budget); a 1000 before any progress still counts as a failure, so a service that
    closes every connection at once cannot spin the conversation in a tight loop."""
    async with open_fake_server(
        vertex=True, listen=False, connection_lifetime=60.0, goaway_before=0.0
    ) as server:
        backend = server.vertex_backend()
        async with liveactors.open_orchestrator(backend) as orch:
            conv = await orch.spawn(None, name="v")
            async with recording(conv.subscribe) as rec:
                await conv.ask("one")
                await trio.sleep(70.0)  # past the lifetime: the 1000 cut
                await conv.ask("two")
                stats = conv.statistics()
                assert (stats.handoffs, stats.reconnects) == (1, 0)
                assert not rec.of(events.Reconnecting)
                server.faults.close(1000, "The operation was cancelled.", after="setupComplete")
                server.faults.drop_now()
                await conv.ask("three")
            stats = conv.statistics()
    closes = [c.close_code for c in server.log.connections]
    assert closes[0] == 1000
    assert stats.reconnects == 2  # the drop, and the 1000 that came before any progress
    assert server.log.answer_counts() == {"one": 1, "two": 1, "three": 1}
