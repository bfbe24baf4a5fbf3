"""A long conversation under 100 random faults: every question answered exactly once (from the
fake server's own log), events gap-free, the turn counter carried on."""

from __future__ import annotations

import random
from typing import Any

import pytest
import trio

from liveactors import events
from liveactors.testing import FakeServer

from .resilience import assert_gap_free, conversation, counter_of

KINDS = [
    "setupComplete",
    "sessionResumptionUpdate",
    "modelTurn",
    "generationComplete",
    "turnComplete",
]


def random_fault(server: FakeServer, rng: random.Random) -> str:
    """Arm one random fault; a description for the failure message."""
    faults = server.faults
    choice = rng.randrange(9)
    if choice == 0:
        faults.drop_now()
        return "drop now"
    if choice == 1:
        where = rng.choice(["before", "after"])
        kind = rng.choice(KINDS)
        faults.drop(connection="open", **{where: kind}, nth=rng.randint(1, 3))
        return f"drop {where} {kind}"
    if choice == 2:
        code = rng.choice([1000, 1011, 1013])
        faults.close_now(code, "Internal error encountered." if code == 1011 else "")
        return f"close {code}"
    if choice == 3:
        time_left = rng.choice([0.05, 0.3, 2.0, 10.0])
        faults.go_away_now(time_left)
        return f"goAway {time_left}"
    if choice == 4:
        faults.refuse_upgrades(rng.randint(1, 2))
        faults.drop_now()
        return "refuse upgrades"
    if choice == 5:
        faults.reject_handles()
        faults.drop_now()
        return "expired handle"
    if choice == 6:
        faults.delay(rng.choice([0.2, 1.0]), kind=rng.choice(KINDS), times=2, connection="open")
        return "delay"
    if choice == 7:
        faults.close_now(1011, "Deadline expired before operation could complete.")
        return "deadline"
    faults.go_away(rng.choice([0.1, 1.0]), connection="open", after=rng.choice(KINDS[1:]))
    return "goAway at a point"


@pytest.mark.parametrize(
    ("handle_mode", "seed"),
    [("per_turn", 1), ("per_turn", 2), ("once", 3), ("vertex", 4)],
)
async def test_one_hundred_random_faults(
    autojump_clock: object, handle_mode: str, seed: int
) -> None:
    rng = random.Random(seed)
    options: dict[str, Any] = {"chunks": 3, "chunk_delay": 0.1}
    config: dict[str, Any] = {"response_modalities": ["TEXT"]}
    if handle_mode == "vertex":
        options["vertex"] = True  # a VertexBackend: transparent resumption by default
    else:
        options["handle_mode"] = handle_mode
    applied: list[str] = []
    questions: list[str] = []
    replies: list[str] = []

    async with conversation(config=config, **options) as (server, _, conv, recorder):

        async def inject() -> None:
            for _ in range(100):
                await trio.sleep(rng.uniform(0.05, 0.8))
                applied.append(random_fault(server, rng))
            await trio.sleep(1.0)
            server.faults.clear()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(inject)
            number = 0
            while len(applied) < 100 or number < 20:
                number += 1
                question = f"question {number}"
                questions.append(question)
                replies.append((await conv.ask(question)).text)
            server.faults.clear()

    # Exactly once, from the server's own record of completed turns.
    counts = server.log.answer_counts()
    assert {q: counts[q] for q in questions} == dict.fromkeys(questions, 1), applied
    assert sum(counts.values()) == len(questions)
    assert [r.split(": ", 1)[1] for r in replies] == questions
    counters = [counter_of(r) for r in replies]
    if handle_mode == "per_turn":
        # A cut turn is rolled back with the handle: the counter never skips or repeats.
        assert counters == list(range(1, len(replies) + 1)), applied
    else:
        # These sessions keep turns cut mid-answer (so the counter may skip), and a fresh
        # session after an expired handle restores only whole answers: within each session of
        # the server the counter of the answers still only goes up.
        by_session: dict[str, list[int]] = {}
        for turn in server.log.model_turns(outcome="completed"):
            by_session.setdefault(turn.session, []).append(turn.turn)
        for numbers in by_session.values():
            assert numbers == sorted(set(numbers)), applied
    assert_gap_free(recorder)
    # The faults really bit: all hundred were applied and the conversation kept reconnecting.
    assert len(applied) == 100
    stats = conv.statistics()
    # Refused upgrades (HTTP 429) are the concurrency limit: retried apart from reconnects.
    assert stats.reconnects + stats.busy_retries > 5
    assert isinstance(recorder.events[-1], events.ConversationClosed)
