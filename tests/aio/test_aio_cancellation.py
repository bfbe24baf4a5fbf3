"""Cancelling an asyncio task that awaits an aio call cancels the operation on the trio side."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
import trio
from aio_helpers import LOOPS, TEXT, eventually, fake_text, guest_tasks, run

import liveactors
from liveactors import aio


def test_a_cancelled_ask_is_cancelled_in_trio(monkeypatch: pytest.MonkeyPatch) -> None:
    """The trio ``ask`` sees ``Cancelled`` before the asyncio caller sees ``CancelledError``;
    the conversation carries on and the next ask gets its own answer."""
    outcomes: list[str] = []
    trio_ask = liveactors.ConversationRef.ask

    async def watched_ask(self: liveactors.ConversationRef, text: str) -> liveactors.Reply:
        try:
            reply = await trio_ask(self, text)
        except trio.Cancelled:
            outcomes.append(f"cancelled: {text}")
            raise
        outcomes.append(f"answered: {text}")
        return reply

    monkeypatch.setattr(liveactors.ConversationRef, "ask", watched_ask)

    async def main() -> None:
        backend = fake_text(response_latency=1.0)
        async with aio.open_orchestrator(backend) as orch:
            conv = await orch.spawn(TEXT)
            task = asyncio.create_task(conv.ask("slow"))
            server = backend.server
            assert server is not None
            # The question is sent; the answer is a second away.
            await eventually(lambda: bool(server.log.client_messages(kind="clientContent")))
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # Already over on the trio side when CancelledError arrived.
            assert outcomes == ["cancelled: slow"]
            assert guest_tasks(orch) == 0
            # A timeout is a cancellation too.
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await conv.ask("also slow")
            assert outcomes[-1] == "cancelled: also slow"
            # The conversation is intact: the next ask gets the answer to its own question.
            reply = await conv.ask("next")
            assert reply.text.endswith(": next")
            assert outcomes[-1] == "answered: next"
            assert conv.state is liveactors.ConversationState.READY

    run(main)


def test_cancelling_trio_code_run_from_asyncio() -> None:
    seen: list[str] = []

    async def forever() -> None:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            seen.append("cancelled")
            raise

    async def main() -> None:
        async with aio.open_orchestrator(fake_text()) as orch:
            task = asyncio.create_task(orch.run_trio(forever))
            await asyncio.sleep(0.05)
            assert guest_tasks(orch) == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert seen == ["cancelled"] and guest_tasks(orch) == 0

            # Cancelled before its trio task even started: nothing runs.
            task = asyncio.create_task(orch.run_trio(forever))
            await asyncio.sleep(0)  # queued, not started
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert guest_tasks(orch) == 0

            # Cancelled twice while waiting for the trio side: still waits it out.
            task = asyncio.create_task(orch.run_trio(forever))
            await asyncio.sleep(0.05)
            task.cancel()
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert guest_tasks(orch) == 0

    run(main)


@pytest.mark.parametrize("loop", LOOPS)
def test_many_asks_with_random_cancellations(loop: str) -> None:
    """Sixty asks over six conversations, a third of them cancelled at random moments: every
    other one gets the answer to its own question, and no trio task is left behind."""
    rng = random.Random(7)

    async def main() -> None:
        backend = fake_text(chunks=3, chunk_delay=0.01, response_latency=0.02)
        async with aio.open_orchestrator(backend) as orch:
            convs = [await orch.spawn(TEXT) for _ in range(6)]

            async def asks(conv: aio.ConversationRef, n: int) -> list[Any]:
                results: list[Any] = []
                for i in range(10):
                    question = f"{conv.name} q{i}"
                    task = asyncio.create_task(conv.ask(question))
                    if rng.random() < 1 / 3:
                        await asyncio.sleep(rng.uniform(0, 0.05))
                        task.cancel()
                    try:
                        results.append((question, await task))
                    except asyncio.CancelledError:
                        results.append((question, None))
                return results

            done = await asyncio.gather(*(asks(c, n) for n, c in enumerate(convs)))
            answered = 0
            for results in done:
                for question, reply in results:
                    if reply is not None:
                        answered += 1
                        assert reply.text.endswith(": " + question)
            assert answered >= 20
            assert guest_tasks(orch) == 0
            assert all(c.state is liveactors.ConversationState.READY for c in convs)

    run(main, loop=loop)
