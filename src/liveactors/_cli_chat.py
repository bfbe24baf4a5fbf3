"""``liveactors chat``: an interactive text chat in the terminal.

With ``GEMINI_API_KEY`` (or ``GOOGLE_API_KEY``) set it talks to the real service; otherwise to the
embedded fake server, so it works anywhere.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from . import events as ev
from ._backend import TEXT_MODEL, GeminiBackend
from ._errors import LiveError
from ._orchestrator import open_orchestrator

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``liveactors chat``."""
    parser.add_argument("--model", default=TEXT_MODEL, help=f"model (default {TEXT_MODEL})")
    parser.add_argument("--system", default=None, help="system instruction")
    parser.add_argument(
        "--fake", action="store_true", help="use the embedded fake server even if a key is set"
    )


def run(args: argparse.Namespace) -> int:
    """Chat until end of input (Ctrl-D) or Ctrl-C."""
    try:
        return trio.run(_chat, args)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


@asynccontextmanager
async def _backend(args: argparse.Namespace) -> AsyncIterator[GeminiBackend]:
    key = os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")
    if key and not args.fake:
        print(f"[real service, model {args.model}]", file=sys.stderr)
        yield GeminiBackend(model=args.model)
        return
    from .testing import open_fake_server

    async with open_fake_server(listen=False, chunks=4, chunk_delay=0.05) as server:
        print(
            "[embedded fake server: it echoes; set GEMINI_API_KEY for the real one]",
            file=sys.stderr,
        )
        yield server.backend(model=args.model)


async def _chat(args: argparse.Namespace) -> int:
    config: dict[str, object] = {"response_modalities": ["TEXT"]}
    if args.system:
        config["system_instruction"] = args.system
    async with _backend(args) as backend, open_orchestrator(backend) as orch:
        try:
            conv = await orch.spawn(config, name="chat")
        except LiveError as exc:
            print(f"cannot start the conversation: {exc}", file=sys.stderr)
            return 1
        async with conv.subscribe(ev.TextDelta, ev.TurnComplete, ev.Reconnecting) as sub:
            while True:
                sys.stdout.write("you> ")
                sys.stdout.flush()
                line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
                if not line:
                    print()
                    return 0
                text = line.strip()
                if not text:
                    continue
                await conv.send_text(text)
                sys.stdout.write("model> ")
                async for event in sub:
                    if isinstance(event, ev.TextDelta):
                        sys.stdout.write(event.text)
                        sys.stdout.flush()
                    elif isinstance(event, ev.Reconnecting):
                        sys.stdout.write(" [reconnecting] ")
                    elif isinstance(event, ev.TurnComplete) and not event.interrupted:
                        sys.stdout.write("\n")
                        break
    return 0
