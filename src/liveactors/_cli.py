"""The ``liveactors`` command line: demo, chat, serve, worker, fake-server, bench."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

__all__ = ["main"]

# Each subcommand lives in its own module and exposes ``add_arguments(parser)`` and
# ``run(args) -> int``; importing lazily keeps ``liveactors --help`` fast.
_COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "liveactors._cli_demo",
        "Run several conversations through forced GoAways and drops on the embedded fake server.",
    ),
    "chat": (
        "liveactors._cli_chat",
        "Chat in the terminal (Gemini API with a key, Vertex AI with --vertex, else the fake).",
    ),
    "worker": (
        "liveactors._cli_worker",
        "Run one worker of a cluster sharing Redis / Valkey (SIGTERM drains it).",
    ),
    "serve": (
        "liveactors._cli_serve",
        "Serve a voice-chat page and its conversation socket (Hypercorn on trio).",
    ),
    "fake-server": ("liveactors.testing._cli", "Run the fake Live API server."),
    "bench": ("liveactors._cli_bench", "Run the benchmarks (from a source checkout)."),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liveactors",
        description="Run many Gemini Live API conversations at once, on trio.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in _COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command)
        run: Callable[[argparse.Namespace], int] = module.run
        command.set_defaults(_run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``liveactors`` command."""
    args = _parser().parse_args(argv)
    try:
        return int(args._run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
