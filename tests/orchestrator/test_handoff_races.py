"""A GoAway handoff forced by its deadline while the reader is behind: the answer was already
received (the fake completed the turn long before the switch) but not yet processed, and the
supervisor cancels the reader and closes the socket, so the question goes out again on the next
connection and is answered twice. The 500-conversation test ran into it under load (the reader
lags behind a busy event loop); here a slow ``on_event`` hook makes it deterministic.
"""

from __future__ import annotations

import trio
import trio.testing
from orch_helpers import TEXT, backend

from liveactors import Conversation, events, open_orchestrator
from liveactors.testing import open_fake_server


class SlowReader(Conversation):
    """Takes 0.4 s over every piece of text (hooks run in the reader, in order)."""

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.TextDelta):
            await trio.sleep(0.4)


async def test_a_forced_handoff_does_not_ask_again_what_was_already_answered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with (
        open_fake_server(listen=False, chunks=3, response_latency=0.2) as server,
        open_orchestrator(backend(server)) as orch,
    ):
        conv = await orch.spawn(TEXT, name="c", actor=SlowReader)
        async with trio.open_nursery() as nursery:
            replies: list[str] = []

            async def ask() -> None:
                replies.append((await conv.ask("q")).text)

            nursery.start_soon(ask)
            await trio.sleep(0.01)
            # The deadline (0.75 s from now) comes while the reader still chews on the answer
            # the fake finished at 0.2 s.
            server.faults.go_away_now(1.0)
        assert replies == ["echo #1: q"]
        assert server.log.answer_counts() == {"q": 1}
