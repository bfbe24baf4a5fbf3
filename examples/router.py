"""A custom actor: a line-based TCP chat server that gives each client its own conversation.

    python examples/router.py            # start, connect two demo clients, print, exit
    python examples/router.py --serve    # keep serving: try `nc 127.0.0.1 PORT`; Ctrl-C stops

``Router`` is a ``liveactors.Actor`` spawned with ``orch.spawn_actor``. It listens on a TCP port;
every accepted connection becomes a ``NewClient`` message. The actor names the client and
starts a task for it in its own nursery; that task spawns the client's conversation on the
orchestrator and then, for each line the client sends, streams the model's answer back as it
arrives (one line per answer). The registry of connected clients is the actor's state, changed
only by its messages (``Joined``, ``Left``), one at a time, so it needs no lock; stopping the
router says goodbye to every client and stops their conversations.

The model answers by speaking, as every current Live model does; each line the client gets is
the transcript of that speech (``OutputTranscript`` events), which liveactors asks the service
for by default.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from dataclasses import dataclass

import trio
from google.genai import types

import liveactors
from liveactors import events
from liveactors.testing import open_fake_server

MODEL = os.environ.get("LIVEACTORS_MODEL", liveactors.DEFAULT_MODEL)
CONFIG = types.LiveConnectConfig(
    system_instruction="You are a helpful assistant in a terminal chat. One short line per answer.",
)
MAX_LINE = 16 * 1024


class Lines:
    """Text lines over a trio byte stream."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._buffer = bytearray()

    async def read(self) -> str | None:
        """The next line without its newline, or None at the end of the stream."""
        while b"\n" not in self._buffer:
            if len(self._buffer) > MAX_LINE:
                raise ValueError("line too long")
            data = await self.stream.receive_some(4096)
            if not data:
                return None
            self._buffer += data
        line, _, rest = self._buffer.partition(b"\n")
        self._buffer = bytearray(rest)
        return line.decode("utf-8", "replace").rstrip("\r")

    async def write(self, text: str) -> None:
        await self.stream.send_all(text.encode())


# -- the router actor -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NewClient:
    stream: trio.SocketStream


@dataclass(frozen=True)
class Joined:
    name: str
    conversation: liveactors.ConversationRef
    lines: Lines


@dataclass(frozen=True)
class Left:
    name: str


class Router(liveactors.Actor[NewClient | Joined | Left]):
    def __init__(
        self,
        orch: liveactors.Orchestrator,
        config: types.LiveConnectConfig,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__("router")
        self.orch = orch
        self.config = config
        self.host = host
        self.port = port
        self.clients: dict[str, Joined] = {}
        self.served = 0

    async def on_start(self) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        self.port = listeners[0].socket.getsockname()[1]  # the port actually bound
        self.nursery.start_soon(self._accept, listeners)

    async def _accept(self, listeners: list[trio.SocketListener]) -> None:
        async with listeners[0]:
            for extra in listeners[1:]:
                await extra.aclose()
            while True:
                stream = await listeners[0].accept()
                try:
                    await self.send(NewClient(stream))
                except liveactors.ConversationStopped:  # the router is stopping
                    await stream.aclose()
                    return

    async def handle(self, message: NewClient | Joined | Left) -> None:
        if isinstance(message, NewClient):
            self.served += 1
            self.nursery.start_soon(self._serve, f"client-{self.served}", message.stream)
        elif isinstance(message, Joined):
            self.clients[message.name] = message
        elif isinstance(message, Left):
            self.clients.pop(message.name, None)

    async def on_stop(self) -> None:
        """Say goodbye to every client still connected and stop its conversation."""
        async with trio.open_nursery() as nursery:
            for client in self.clients.values():
                nursery.start_soon(self._goodbye, client)

    async def _goodbye(self, client: Joined) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await client.lines.write("server closing, goodbye\n")
        await client.conversation.stop()

    # -- one client -------------------------------------------------------------------------

    async def _serve(self, name: str, stream: trio.SocketStream) -> None:
        lines = Lines(stream)
        async with stream:
            try:
                # Spawning here, not in handle(), keeps a slow connect (or a full
                # orchestrator, with max_sessions) from holding up the router's mailbox.
                conversation = await self.orch.spawn(self.config, name=name)
            except liveactors.LiveError as exc:
                await lines.write(f"error: {exc}\n")
                return
            await self.send(Joined(name, conversation, lines))
            try:
                await lines.write(f"hello, you are {name}\n")
                while (line := await lines.read()) is not None:
                    if line.strip():
                        await self._answer(conversation, line, lines)
            except (trio.BrokenResourceError, trio.ClosedResourceError, ValueError):
                pass  # the client went away, or misbehaved
            except liveactors.ConversationStopped:
                return  # the router stopped it (see on_stop)
            await conversation.stop()
            with contextlib.suppress(liveactors.ConversationStopped):  # the router is stopping
                await self.send(Left(name))

    async def _answer(
        self, conversation: liveactors.ConversationRef, line: str, lines: Lines
    ) -> None:
        """Stream the transcript of the answer to ``line`` back to the client as it arrives
        (the audio itself goes nowhere: a terminal cannot play it)."""
        async with conversation.subscribe(events.OutputTranscript, events.TurnComplete) as answer:
            await conversation.send_text(line)
            async for event in answer:
                if isinstance(event, events.OutputTranscript):
                    await lines.write(event.text)
                elif isinstance(event, events.TurnComplete):
                    if event.reason == "CONNECTION_LOST":  # the answer comes again
                        await lines.write(" [connection lost; again:] ")
                    else:
                        await lines.write("\n")
                        return


# -- the demo -------------------------------------------------------------------------------------


async def demo_client(port: int, questions: list[str]) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    lines = Lines(stream)
    async with stream:
        greeting = await lines.read()
        me = (greeting or "").rsplit(" ", 1)[-1]
        print(f"[{me}] connected: {greeting}")
        for question in questions:
            await lines.write(question + "\n")
            print(f"[{me}] > {question}")
            with trio.fail_after(60):
                print(f"[{me}] < {await lines.read()}")


async def run(backend: liveactors.GeminiBackend, serve: bool) -> None:
    async with liveactors.open_orchestrator(backend) as orch:
        router = Router(orch, CONFIG)
        await orch.spawn_actor(router)
        print(f"router listening on 127.0.0.1:{router.port}")
        if serve:
            # Handle Ctrl-C (and SIGTERM) ourselves, to stop gracefully: clients get a goodbye.
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                print("serving until Ctrl-C", flush=True)
                async for _ in signals:
                    break
            await router.stop()
            print(f"stopped after serving {router.served} clients")
            return
        async with trio.open_nursery() as clients:
            clients.start_soon(demo_client, router.port, ["Hi, I am Ada.", "What is my name?"])
            clients.start_soon(demo_client, router.port, ["Hello from Bob!", "Bye."])
        print(f"served {router.served} clients, each in its own conversation")
        await router.stop()


async def main(argv: list[str]) -> None:
    serve = "--serve" in argv
    if os.environ.get("GEMINI_API_KEY"):
        print(f"using the real Live API with {MODEL}")
        await run(liveactors.GeminiBackend(model=MODEL), serve)
    else:
        print(f"GEMINI_API_KEY is not set: using the embedded fake server ({MODEL})")
        async with open_fake_server(listen=False, chunks=3, chunk_delay=0.02) as server:
            await run(server.backend(model=MODEL), serve)


if __name__ == "__main__":
    trio.run(main, sys.argv[1:])
