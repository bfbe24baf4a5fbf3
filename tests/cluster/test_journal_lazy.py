"""The "not resumable" update a turn starts with is written to Redis with the turn's first
output (one write instead of two), or alone after ``LAZY`` seconds when no output follows: it
is never lost or held back for good, and the stream stays gap-free.

A real Valkey server, the in-memory fake server and one worker in one trio run (the sockets
to Valkey are real, so the clock is too).
"""

from __future__ import annotations

from typing import Any

import trio
from cluster_helpers import ValkeyServer

from liveactors import events as ev
from liveactors.cluster import open_client, open_worker
from liveactors.cluster._journal import LAZY
from liveactors.testing import Pause, Say, TurnContext, open_fake_server


def after_a_pause(ctx: TurnContext) -> Any:
    """The answer begins after as many seconds as the question says ("wait 0.5")."""
    seconds = float(ctx.user_text.split()[1])
    return [Pause(seconds), Say(f"echo #{ctx.turn}: {ctx.user_text}")]


async def arrivals(
    valkey: ValkeyServer, prefix: str, question: str
) -> tuple[float, list[tuple[float, ev.Event]]]:
    """Ask ``question`` of a fresh conversation on one worker; when it was asked, and each
    event of its turn with the time it reached a subscriber (up to the TurnComplete)."""
    async with (
        open_fake_server(listen=False, responder=after_a_pause) as server,
        open_worker(server.backend(), valkey.url, worker_id="w1", prefix=prefix),
        open_client(valkey.url, prefix=prefix, timeout=5) as client,
    ):
        conv = await client.spawn(name="lazy")
        await conv.ask("wait 0")  # connected and one turn done: the next starts from idle
        seen: list[tuple[float, ev.Event]] = []
        after = (await conv.state()).seq
        async with conv.subscribe(from_seq=after + 1) as sub:
            asked = trio.current_time()
            await conv.send_text(question)
            with trio.fail_after(LAZY + 10):
                async for event in sub:
                    seen.append((trio.current_time(), event))
                    if isinstance(event, ev.TurnComplete):
                        break
        seqs = [event.seq for _, event in seen]
        assert seqs == list(range(after + 1, after + 1 + len(seqs))), seqs
        await conv.stop()
        return asked, seen


def _not_resumable(seen: list[tuple[float, ev.Event]]) -> float:
    """When the turn's "not resumable" update arrived (it comes before any output)."""
    updates = [
        (at, event)
        for at, event in seen
        if isinstance(event, ev.ResumptionUpdate) and not event.resumable
    ]
    assert updates, [type(event).__name__ for _, event in seen]
    first_output = next(
        i for i, (_, event) in enumerate(seen) if isinstance(event, ev.OutputTranscript)
    )
    assert seen.index(updates[0]) < first_output
    return updates[0][0]


async def test_it_is_written_with_the_first_output(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    """The answer starts 0.5 s after the question: the update (sent by the server at once)
    reaches subscribers together with the first output, not half a second before it."""
    asked, seen = await arrivals(valkey_server, prefix, "wait 0.5")
    update_at = _not_resumable(seen)
    output_at = next(at for at, event in seen if isinstance(event, ev.OutputTranscript))
    assert update_at - asked >= 0.4, update_at - asked
    assert output_at - update_at < 0.1, output_at - update_at


async def test_with_no_output_it_is_written_alone_after_lazy(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    """The answer starts LAZY + 1.5 s after the question: the update does not wait for it
    beyond LAZY seconds."""
    asked, seen = await arrivals(valkey_server, prefix, f"wait {LAZY + 1.5}")
    update_at = _not_resumable(seen)
    output_at = next(at for at, event in seen if isinstance(event, ev.OutputTranscript))
    assert LAZY - 0.1 <= update_at - asked < LAZY + 0.9, update_at - asked
    assert output_at - update_at > 0.5, output_at - update_at
