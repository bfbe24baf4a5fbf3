"""``liveactors fake-server``: run the fake Live API server as a process.

Prints ``READY <url>`` (flushed) once it listens, so a parent process can wait for that line;
SIGINT (Ctrl-C) and SIGTERM stop it cleanly with exit status 0.
"""

from __future__ import annotations

import argparse
import signal
import ssl
import sys

import trio

from ._options import TEST_API_KEY
from ._server import open_fake_server

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    parser.add_argument("--tls-cert", metavar="FILE", help="PEM certificate chain: serve wss://")
    parser.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    parser.add_argument(
        "--connection-lifetime",
        type=float,
        metavar="S",
        default=600.0,
        help="seconds a connection lives (default 600)",
    )
    parser.add_argument(
        "--goaway-before",
        type=float,
        metavar="S",
        default=10.0,
        help="send goAway this many seconds before the end (default 10)",
    )
    parser.add_argument("--chunks", type=int, default=2, metavar="N", help="chunks per reply")
    parser.add_argument(
        "--chunk-delay", type=float, default=0.0, metavar="S", help="seconds between chunks"
    )
    parser.add_argument(
        "--api-key",
        action="append",
        metavar="KEY",
        help=f"accepted API key (repeatable; default {TEST_API_KEY!r})",
    )
    parser.add_argument("--any-key", action="store_true", help="accept any API key or token")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        metavar="X",
        help="multiply protocol durations (lifetime, limits, handle validity)",
    )
    parser.add_argument(
        "--handle-mode",
        choices=("per_turn", "once"),
        default="per_turn",
        help="when resumption handles are issued",
    )
    parser.add_argument("--text-frames", action="store_true", help="send text frames, not binary")
    parser.add_argument(
        "--vertex",
        action="store_true",
        help="Vertex AI mode: the LlmBidiService path, transparent resumption",
    )
    parser.add_argument(
        "--model-profile",
        choices=("3.8", "3.1", "2.5"),
        default="3.8",
        help="how model names the library does not know behave (default 3.8: "
        "gemini-3.8-live; 2.5: the old half-cascade models, TEXT allowed)",
    )
    parser.add_argument("--pace-audio", action="store_true", help="stream audio at ~3.3x real time")
    parser.add_argument(
        "--max-sessions", type=int, metavar="N", help="refuse sessions beyond N (1011)"
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM."""
    if bool(args.tls_cert) != bool(args.tls_key):
        print("--tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    try:
        return trio.run(_serve, args)
    except KeyboardInterrupt:  # a signal that arrived before the handler was installed
        return 0


async def _serve(args: argparse.Namespace) -> int:
    options: dict[str, object] = {
        "host": args.host,
        "port": args.port,
        "connection_lifetime": args.connection_lifetime,
        "goaway_before": args.goaway_before,
        "chunks": args.chunks,
        "chunk_delay": args.chunk_delay,
        "time_scale": args.time_scale,
        "handle_mode": args.handle_mode,
        "frame_type": "text" if args.text_frames else "binary",
        "vertex": args.vertex,
        "model_profile": args.model_profile,
        "pace_audio": args.pace_audio,
        "max_sessions": args.max_sessions,
    }
    if args.any_key:
        options["api_keys"] = None
        options["auth_tokens"] = None
    elif args.api_key:
        options["api_keys"] = args.api_key
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        options["ssl_context"] = context
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_fake_server(**options) as server:
            print(f"READY {server.url}", flush=True)
            async for _ in signals:
                break
    return 0
