"""``liveactors serve``: the voice-chat page and its conversation socket, on Hypercorn.

Hypercorn's trio worker runs in the same trio loop as the orchestrator, so every socket talks to
its conversation without crossing threads. With ``GEMINI_API_KEY`` (or ``GOOGLE_API_KEY``) set,
conversations go to the Gemini Developer API; otherwise (or with ``--fake``) to the embedded
fake server playing gemini-3.8-live, which answers speech it detects by loudness. The key stays
in this process: the page never sees it.

Prints ``READY <url>`` on stdout once listening (``--port 0`` picks a free port); SIGINT or
SIGTERM shuts down gracefully.

``--metrics-port M`` (with the ``metrics`` extra) also serves Prometheus metrics on
``http://HOST:M/metrics`` (0 picks a free port), printed as ``METRICS <url>`` on the line after
``READY``. They are served by prometheus-client's HTTP server in a thread of its own rather than
by the Hypercorn app: the metrics stay off the public port and its origin checks, and answer
even while the trio loop is busy; each scrape still reads the orchestrator in its trio thread
(see ``liveactors.metrics``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import trio

from ._backend import DEFAULT_MODEL, GeminiBackend
from ._backend_api import Backend
from ._errors import LiveError
from ._orchestrator import open_orchestrator

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``liveactors serve``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8000, help="port to listen on; 0 picks a free one (8000)"
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="M",
        help="also serve Prometheus metrics on http://HOST:M/metrics (0 picks a free port; "
        "needs the metrics extra)",
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model (default {DEFAULT_MODEL})")
    parser.add_argument("--system", default=None, help="system instruction of every conversation")
    parser.add_argument(
        "--keep-for",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long a conversation waits for its page to reconnect (30; 0: stop at once)",
    )
    parser.add_argument(
        "--allowed-origin",
        action="append",
        default=None,
        metavar="ORIGIN",
        help="an origin (https://example.com) whose pages may connect; repeatable "
        "(default: the page's own origin only)",
    )
    parser.add_argument(
        "--fake", action="store_true", help="use the embedded fake server even if a key is set"
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM."""
    try:
        import liveactors.web  # noqa: F401
    except ImportError as exc:
        print(f"liveactors serve: {exc}", file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535 or args.keep_for < 0:
        print("liveactors serve: need 0 <= --port <= 65535 and --keep-for >= 0", file=sys.stderr)
        return 2
    if args.metrics_port is not None:
        if not 0 <= args.metrics_port <= 65535:
            print("liveactors serve: need 0 <= --metrics-port <= 65535", file=sys.stderr)
            return 2
        try:
            from . import metrics  # noqa: F401
        except ImportError as exc:
            print(f"liveactors serve: {exc}", file=sys.stderr)
            return 2
    try:
        return trio.run(_serve, args)
    except KeyboardInterrupt:
        return 130


@asynccontextmanager
async def _backend(args: argparse.Namespace) -> AsyncIterator[Backend]:
    key = os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")
    if key and not args.fake:
        print(f"[Gemini Developer API, model {args.model}]", file=sys.stderr)
        yield GeminiBackend(model=args.model)
        return
    from .testing import open_fake_server

    # Speech paced like a real voice (3.3x real time), so barge-in and "interrupted" happen
    # the way they do with the service.
    async with open_fake_server(
        listen=False, model_profile="3.8", pace_audio=True, record_server_messages=False
    ) as server:
        print(
            "[embedded fake server playing gemini-3.8-live: it echoes what it hears; set "
            "GEMINI_API_KEY for the real service]",
            file=sys.stderr,
        )
        yield server.backend(model=args.model)


async def _serve(args: argparse.Namespace) -> int:
    from . import web

    config: dict[str, Any] = {"input_audio_transcription": {}}
    if args.system:
        config["system_instruction"] = args.system
    shutdown = trio.Event()
    try:
        async with _backend(args) as backend, open_orchestrator(backend, grace=2.0) as orch:
            application = web.app(
                orch, config=config, keep_for=args.keep_for, allowed_origins=args.allowed_origin
            )
            with _metrics_server(args) as metrics_url:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_wait_for_signal, shutdown)
                    urls: list[str] = await nursery.start(
                        _serve_app, web, application, args.host, args.port, shutdown
                    )
                    print(f"READY {urls[0]}", flush=True)
                    if metrics_url is not None:
                        print(f"METRICS {metrics_url}", flush=True)
                    await shutdown.wait()
    except LiveError as exc:
        print(f"liveactors serve: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the port is taken, the address is not ours
        print(f"liveactors serve: cannot listen on {args.host}: {exc}", file=sys.stderr)
        return 1
    return 0


@contextmanager
def _metrics_server(args: argparse.Namespace) -> Iterator[str | None]:
    """``--metrics-port``: Prometheus metrics of every orchestrator of the process, served
    from a thread until the block ends; yields their URL (None: not asked for)."""
    if args.metrics_port is None:
        yield None
        return
    from . import metrics

    try:
        server = metrics.serve(args.metrics_port, args.host)
    except OSError as exc:
        raise OSError(f"--metrics-port {args.metrics_port}: {exc}") from exc
    with server:
        yield server.url


async def _serve_app(
    web: Any,
    application: Any,
    host: str,
    port: int,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[list[str]],
) -> None:
    await web.serve(
        application, host, port, shutdown_trigger=shutdown.wait, task_status=task_status
    )
    shutdown.set()


async def _wait_for_signal(shutdown: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            shutdown.set()
            return
