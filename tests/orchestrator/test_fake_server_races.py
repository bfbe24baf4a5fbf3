"""A race in the fake server that the 500-conversation test ran into (fixed since): a
connection dropped (``faults.drop_now`` from another task) while the ``turnComplete`` frame is
being written.

Over TCP the frame's bytes reach the kernel, and then ``send_all`` checkpoints before returning;
a drop that ran in that window wound the connection up and marked the turn "cut" (giving its
input back to the session as unanswered) before ``on_sent`` could mark it "completed" — although
the client did receive the ``turnComplete`` and rightly counts the question as answered. The
log then said the question was never answered (``answer_counts()`` missed it).

Here the window is made deterministic: the server end of an in-memory stream hands the bytes of
a ``turnComplete`` over to the client and then, like a socket, checkpoints (sleeps briefly)
before its ``send_all`` returns, while the drop happens.
"""

from __future__ import annotations

import trio
import trio.testing
from orch_helpers import TEXT, TEXT_MODEL

from liveactors import ConnectRequest, MemoryTransport, open_orchestrator
from liveactors.testing import FakeServer, open_fake_server
from liveactors.testing._server import serve_stream


def dial_dropping_after_turn_complete(server: FakeServer):  # type: ignore[no-untyped-def]
    """A ``dial`` whose server end drops the line right after the bytes of a
    ``turnComplete`` went to the client, before its write returns."""

    async def dial(request: ConnectRequest) -> trio.abc.Stream:
        client, server_end = trio.testing.memory_stream_pair()
        sender = server_end.send_stream
        pump = sender.send_all_hook
        assert pump is not None

        async def hook() -> None:
            data = bytes(sender._outgoing._data)  # what this write puts on the line
            await pump()
            if b'"turnComplete"' in data:
                server.faults.drop_now()
                await trio.sleep(0.01)  # the write's last checkpoint, as on a socket

        sender.send_all_hook = hook
        server._nursery.start_soon(serve_stream, server._core, server_end)
        await trio.lowlevel.checkpoint()
        return client

    return dial


async def test_a_turn_complete_that_reached_the_client_counts_as_answered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fake_server(listen=False) as server:
        backend = server.backend(
            model=TEXT_MODEL, transport=MemoryTransport(dial_dropping_after_turn_complete(server))
        )
        async with open_orchestrator(backend) as orch:
            conv = await orch.spawn(TEXT, name="c")
            reply = await conv.ask("q")
            assert reply.text == "echo #1: q"  # the client got the whole answer, turnComplete too
            await orch.stop("c")
        [turn] = server.log.model_turns()
        assert server.sessions["session-1"].state.pending_input == []
        assert turn.outcome == "completed"
        assert server.log.answer_counts() == {"q": 1}
