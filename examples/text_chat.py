"""A typed conversation: stream the model's answer as it arrives, then ask whole turns.

    python examples/text_chat.py                   # against the embedded fake server
    GEMINI_API_KEY=... python examples/text_chat.py "What is trio?" "And an actor?"

The user types; the model (``liveactors.DEFAULT_MODEL``, gemini-3.8-live) answers by speaking,
as every current Live model does. liveactors asks the service for the transcription of that
speech by default, so the words arrive as ``OutputTranscript`` events and ``ask()`` returns
them as ``Reply.text``, next to the audio itself (``Reply.audio``). ``TextDelta`` events only
come from a model that writes text, and no current Live model does (see docs/models.md).

Without ``GEMINI_API_KEY`` the script starts the fake Live API server in memory (no network at
all), which plays gemini-3.8-live; with it, it talks to the real service. ``LIVEACTORS_MODEL``
overrides the model.
"""

from __future__ import annotations

import os
import sys

import trio
from google.genai import types

import liveactors
from liveactors import events
from liveactors.testing import open_fake_server

MODEL = os.environ.get("LIVEACTORS_MODEL", liveactors.DEFAULT_MODEL)
QUESTIONS = [
    "Hello! Who are you?",
    "Name one thing trio's nurseries guarantee.",
    "Thanks, that is all.",
]
#: Upper bound for one answer (the real service answers in a second or two).
TURN_TIMEOUT = 60
#: The model's speech: 24 kHz 16-bit mono PCM.
AUDIO_BYTES_PER_SECOND = 24_000 * 2


async def chat(backend: liveactors.GeminiBackend, questions: list[str]) -> None:
    # No response_modalities: the model answers in AUDIO, its only modality, and liveactors
    # adds output_audio_transcription so that the answer's words come back too.
    config = types.LiveConnectConfig(
        system_instruction="You are a concise assistant. Answer in one or two sentences.",
    )
    async with liveactors.open_orchestrator(backend) as orch:
        conv = await orch.spawn(config, name="text-chat")
        first, *rest = questions

        # 1. Streaming: subscribe *before* sending, then print the transcript as it arrives.
        async with conv.subscribe(events.OutputTranscript, events.TurnComplete) as stream:
            print(f"you> {first}")
            await conv.send_text(first)
            print("model> ", end="", flush=True)
            with trio.fail_after(TURN_TIMEOUT):
                async for event in stream:
                    if isinstance(event, events.OutputTranscript):
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
            print(f"model> {reply.text}")  # the output transcription of the spoken answer
            seconds = len(reply.audio) / AUDIO_BYTES_PER_SECOND
            tokens = reply.usage.total_token_count if reply.usage is not None else None
            print(f"       (turn {reply.turn}, {seconds:.2f}s of speech, {tokens} tokens)")

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
        print(f"GEMINI_API_KEY is not set: using the embedded fake server ({MODEL})")
        # In memory, no sockets; four chunks 50 ms apart make the streaming visible.
        async with open_fake_server(listen=False, chunks=4, chunk_delay=0.05) as server:
            await chat(server.backend(model=MODEL), questions)


if __name__ == "__main__":
    trio.run(main, sys.argv[1:] or QUESTIONS)
