"""``liveactors worker``: one worker of a cluster (see :mod:`liveactors.cluster`).

It takes conversations from the cluster in Redis / Valkey at ``--redis URL`` and runs them on
the Gemini Developer API (key from ``GEMINI_API_KEY`` or ``GOOGLE_API_KEY``; ``--base-url`` for
another endpoint, such as the fake server) or on Vertex AI (``--vertex``). It prints
``READY <worker-id>`` on stdout once it takes work. SIGTERM (or Ctrl-C) drains it: it stops
taking work and hands each of its conversations over at a resumable point, then exits 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

import trio

from ._backend import DEFAULT_MODEL, GeminiBackend
from ._backend_api import Backend
from ._errors import LiveError
from ._vertex import VertexBackend

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``liveactors worker``."""
    parser.add_argument(
        "--redis",
        default=os.environ.get("LIVEACTORS_REDIS_URL"),
        metavar="URL",
        help="redis://, rediss://, unix://, redis+cluster:// or redis+sentinel:// URL "
        "(default: LIVEACTORS_REDIS_URL, which keeps a password out of the process list)",
    )
    parser.add_argument("--id", default=None, help="this worker's id (default: a random one)")
    parser.add_argument(
        "--max-sessions", type=int, default=None, help="most conversations on this worker"
    )
    parser.add_argument(
        "--cluster-max-sessions",
        type=int,
        default=None,
        help="most live sessions in the whole cluster (give every worker the same value)",
    )
    parser.add_argument("--prefix", default="liveactors", help="key prefix in Redis")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model (default {DEFAULT_MODEL})")
    parser.add_argument(
        "--base-url", default=None, help="the Live API's base URL (ws:// or wss://)"
    )
    parser.add_argument("--lease", type=float, default=6.0, help="lease length, seconds (6)")
    parser.add_argument("--renew", type=float, default=2.0, help="lease renewal period (2)")
    parser.add_argument(
        "--drain-grace",
        type=float,
        default=10.0,
        help="seconds an answer may take to finish on SIGTERM",
    )
    parser.add_argument("--vertex", action="store_true", help="use Vertex AI")
    parser.add_argument("--project", default=None, help="Google Cloud project for --vertex")
    parser.add_argument("--location", default=None, help="Vertex AI location for --vertex")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO")


def run(args: argparse.Namespace) -> int:
    """Run the worker until SIGTERM / SIGINT drains it."""
    if not args.redis:
        print("liveactors worker: give --redis URL or set LIVEACTORS_REDIS_URL", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        return trio.run(_run, args)
    except LiveError as exc:
        print(f"liveactors worker: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"liveactors worker: {exc}", file=sys.stderr)
        return 2


def _backend(args: argparse.Namespace) -> Backend:
    if args.vertex:
        options = {"model": args.model}
        if args.base_url:
            options["base_url"] = args.base_url
        return VertexBackend(project=args.project, location=args.location, **options)
    if args.base_url:
        return GeminiBackend(model=args.model, base_url=args.base_url)
    return GeminiBackend(model=args.model)


async def _run(args: argparse.Namespace) -> int:
    try:
        from .cluster import open_worker
    except ImportError:  # pragma: no cover - depends on the install
        print(
            "liveactors worker needs the cluster extra: pip install 'liveactors[cluster]'",
            file=sys.stderr,
        )
        return 2
    backend = _backend(args)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with open_worker(
            backend,
            args.redis,
            worker_id=args.id,
            max_sessions=args.max_sessions,
            cluster_max_sessions=args.cluster_max_sessions,
            prefix=args.prefix,
            lease=args.lease,
            renew=args.renew,
        ) as worker:
            print(f"READY {worker.id}", flush=True)
            async for _ in signals:
                break
            await worker.drain(args.drain_grace)
    return 0
