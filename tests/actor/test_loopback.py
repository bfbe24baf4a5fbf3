"""End to end over real loopback sockets: short connection lifetimes and drops, real time."""

from __future__ import annotations

import trio

import liveactors
from liveactors._models import FAKE_TEXT_MODEL
from liveactors.testing import open_fake_server

from .resilience import assert_replies


async def test_conversations_survive_lifetimes_and_drops_over_real_sockets() -> None:
    # 1 s connections with a goAway 0.3 s before the end, and a drop every 1.1 s.
    async with open_fake_server(connection_lifetime=1.0, goaway_before=0.3, chunks=3) as server:
        backend = server.backend(model=FAKE_TEXT_MODEL)
        assert backend.url.startswith("ws://127.0.0.1:")
        replies: dict[str, list[str]] = {}
        questions: dict[str, list[str]] = {}

        async def talk(conv: liveactors.ConversationRef) -> None:
            deadline = trio.current_time() + 4.0
            number = 0
            while trio.current_time() < deadline:
                number += 1
                question = f"{conv.name} asks {number}"
                questions[conv.name].append(question)
                replies[conv.name].append((await conv.ask(question)).text)
                await trio.sleep(0.05)

        async def drop_now_and_then() -> None:
            for _ in range(3):
                await trio.sleep(1.1)
                server.faults.drop_now()

        async with liveactors.open_orchestrator(backend) as orch:
            convs = [
                await orch.spawn({"response_modalities": ["TEXT"]}, name=f"c{i}") for i in range(3)
            ]
            async with trio.open_nursery() as nursery:
                nursery.start_soon(drop_now_and_then)
                for conv in convs:
                    replies[conv.name], questions[conv.name] = [], []
                    nursery.start_soon(talk, conv)
            stats = [conv.statistics() for conv in convs]

    for name in replies:
        assert_replies(replies[name], questions[name])
    counts = server.log.answer_counts()
    asked = [q for qs in questions.values() for q in qs]
    assert {q: counts[q] for q in asked} == dict.fromkeys(asked, 1)
    assert all(s.handoffs >= 2 for s in stats), stats
    assert all(s.reconnects >= 2 for s in stats), stats
    # Every socket we closed, we closed normally.
    client_closed = [c for c in server.log.connections if c.cause == "client"]
    assert client_closed and all(c.close_code == 1000 for c in client_closed)
