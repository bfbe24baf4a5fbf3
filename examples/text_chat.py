"""A text conversation: stream the model's answer as it arrives, then ask whole turns.

    python examples/text_chat.py                   # against the embedded fake server
    GEMINI_API_KEY=... python examples/text_chat.py "What is trio?" "And an actor?"

Without ``GEMINI_API_KEY`` the script starts the fake Live API server in memory (no network at
all); with it, it talks to the real service. ``LIVEACTORS_MODEL`` overrides the model (it must
answer in TEXT: a half-cascade model such as ``liveactors.TEXT_MODEL``).
"""

from __future__ import annotations

import os
import sys

import trio
from google.genai import types

import liveactors
from liveactors import events
from liveactors.testing import open_fake_server

MODEL = os.environ.get("LIVEACTORS_MODEL", liveactors.TEXT_MODEL)
QUESTIONS = [
    "Hello! Who are you?",
    "Name one thing trio's nurseries guarantee.",
    "Thanks, that is all.",
]
#: Upper bound for one answer (the real service answers in a second or two).
TURN_TIMEOUT = 60


async def chat(backend: liveactors.GeminiBackend, questions: list[str]) -> None:
    config = types.LiveConnectConfig(
        response_modalities=["TEXT"],
        system_instruction="You are a concise assistant. Answer in one or two sentences.",
    )
    async with liveactors.open_orchestrator(backend) as orch:
        conv = await orch.spawn(config, name="text-chat")
        first, *rest = questions

        # 1. Streaming: subscribe *before* sending, then print each TextDelta as it arrives.
        async with conv.subscribe(events.TextDelta, events.TurnComplete) as stream:
            print(f"you> {first}")
            await conv.send_text(first)
            print("model> ", end="", flush=True)
            with trio.fail_after(TURN_TIMEOUT):
                async for event in stream:
                    if isinstance(event, events.TextDelta):
                        print(event.text, end="", flush=True)
                    elif isinstance(event, events.TurnComplete):
                        if event.reason == "CONNECTION_LOST":
                            # The supervisor reconnects and the answer is generated again,
                            # under the next turn number: start the line over.
                            print(" [connection lost, reconnecting]\nmodel> ", end="")
                            continue
                        print()
                        break

        # 2. One whole turn at a time: ``ask`` returns a Reply once the turn is complete.
        for question in rest:
            print(f"you> {question}")
            with trio.fail_after(TURN_TIMEOUT):
                reply = await conv.ask(question)
            print(f"model> {reply.text}")
            if reply.usage is not None:
                print(f"       (turn {reply.turn}, {reply.usage.total_token_count} tokens)")

        stats = conv.statistics()
        print(
            f"done: {stats.turns} turns, {stats.tokens} tokens, "
            f"{stats.connections} connection(s), {stats.reconnects} reconnect(s)"
        )
        await conv.stop()


async def main(questions: list[str]) -> None:
    if os.environ.get("GEMINI_API_KEY"):
        print(f"using the real Live API with {MODEL}")
        await chat(liveactors.GeminiBackend(model=MODEL), questions)
    else:
        print("GEMINI_API_KEY is not set: using the embedded fake server")
        # In memory, no sockets; four chunks 50 ms apart make the streaming visible.
        async with open_fake_server(listen=False, chunks=4, chunk_delay=0.05) as server:
            await chat(server.backend(model=MODEL), questions)


if __name__ == "__main__":
    trio.run(main, sys.argv[1:] or QUESTIONS)
