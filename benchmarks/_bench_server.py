"""The fake Live API server as a benchmark process, with a control channel on stdin.

``python benchmarks/_bench_server.py [options]`` runs :func:`liveactors.testing.open_fake_server`
(what ``liveactors fake-server`` runs, with the same option names, plus the few a benchmark
needs: a responder, no message log, no connection lifetime) and prints ``READY <url>``. The
parent then writes one command per line on stdin and reads one JSON line back:

* ``stats`` — the server's CPU seconds, RSS, messages sent, open connections, internal errors;
* ``chaos G D SECONDS TIME_LEFT SEED`` — start injecting ``G`` goAways (``timeLeft`` =
  ``TIME_LEFT``) and ``D`` abrupt drops, spread evenly over ``SECONDS`` in a random order, each
  on a random open, set-up connection not hit before (``server.faults.go_away_now`` /
  ``drop_now``); answers at once;
* ``chaos_wait`` — answers when the chaos is over: how many of each were injected;
* ``report`` — from the server's log: how often each input was answered, turn outcomes, and for
  each goAway (from the moment it was sent) and each drop (from the moment it happened) the
  seconds until the old connection closed, the session's next connection opened, was set up,
  and accepted its first input (the handoff gap);
* ``turns TEXT`` — every model turn whose input contains ``TEXT``, and every client message
  carrying it (to explain a lost or duplicated input);
* ``up FROM TO`` (``--duplex``) — the upstream latency, in ms, of every microphone chunk the
  server received between ``time.monotonic()`` readings ``FROM`` and ``TO``: its receipt time
  minus the time stamped into its first samples (see ``bench_duplex.py``);
* ``cpu FROM TO`` — the server's CPU seconds between two ``time.monotonic()`` readings (sampled
  every 0.2 s), and the wall seconds between the samples;
* ``clear`` — forget the upstream latencies recorded so far;
* ``quit``.

The responder answers ``burst`` with ``--burst-chars`` characters of text (cut into
``--chunks`` pieces: text chunks, or audio chunks in AUDIO), ``stream N`` with ``N`` pieces,
one every 100 ms, each saying the server's ``time.monotonic()`` at the moment it is played
(the scale benchmark's send timestamps; ``CLOCK_MONOTONIC`` is one clock for every process on
the machine), and anything else like the default echo responder.

With ``--duplex`` (the talking-conversations benchmark) a spoken turn (trigger ``audio``: the
server's VAD ended the user's speech) is answered with ``--answer-pieces`` messages of speech
(``--long-pieces`` every ``--long-every``-th turn, long enough to be barged into), one every
``--piece-pace`` seconds, each carrying the server's send time as its transcript like the
``stream`` answers above; and every ``realtimeInput.audio`` chunk's receipt is timed against the
stamp its client wrote into its first eight samples.
"""

from __future__ import annotations

import argparse
import binascii
import bisect
import gc
import json
import random
import ssl
import struct
import sys
import time
from array import array
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

import trio

import _bench_common as common
from liveactors.testing import (
    ConnectionRecord,
    FakeServer,
    Pause,
    Say,
    TurnContext,
    echo_responder,
    open_fake_server,
)

_LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt "
    "ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation. "
)


class _Stamp(Say):
    """A ``Say`` whose text is read when the server plays it: the send time, not the time the
    responder ran (a turn of many pieces is played over seconds)."""

    def __init__(self) -> None:  # no field to set: ``text`` is computed
        pass

    @property  # type: ignore[override]
    def text(self) -> str:
        return f"{time.monotonic():.6f};"


_STAMP = _Stamp()
_PACE = Pause(0.1)  # real time: one 100 ms audio chunk every 100 ms


class _Duplex:
    """The talking-conversations benchmark's server side: spoken answers, upstream timing."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.short = [_STAMP, Pause(args.piece_pace)] * args.answer_pieces
        self.long = [_STAMP, Pause(args.piece_pace)] * args.long_pieces
        self.long_every = args.long_every
        #: Receipt time (``time.monotonic()``) and upstream latency (ms) of every chunk.
        self.at = array("d")
        self.ms = array("d")
        #: (``time.monotonic()``, ``time.process_time()``) every 0.2 s.
        self.cpu_at = array("d")
        self.cpu = array("d")

    def answer(self, ctx: TurnContext) -> Any:
        if ctx.trigger != "audio":
            return None
        return self.long if ctx.turn % self.long_every == 0 else self.short

    def install(self) -> None:
        """Time every microphone chunk as the fake server's VAD receives it."""
        from liveactors.testing import _input

        original = _input.on_audio
        at, ms = self.at, self.ms
        unpack = struct.Struct("<8h").unpack_from
        a2b = binascii.a2b_base64
        monotonic = time.monotonic

        async def on_audio(conn: Any, blob: Mapping[str, Any]) -> None:
            now = monotonic()
            try:
                samples = unpack(a2b(blob["data"][:24]))
            except (KeyError, TypeError, ValueError, struct.error):
                samples = None
            if samples is not None:
                stamp = 0
                for n, sample in enumerate(samples):
                    stamp |= (sample & 63) << (6 * n)
                at.append(now)
                ms.append(1000 * (now - stamp / 1e6))
            await original(conn, blob)

        _input.on_audio = on_audio  # type: ignore[assignment]

    async def sample_cpu(self) -> None:
        while True:
            self.cpu_at.append(time.monotonic())
            self.cpu.append(time.process_time())
            await trio.sleep(0.2)

    def upstream(self, start: float, end: float) -> list[float]:
        low = bisect.bisect_left(self.at, start)
        high = bisect.bisect_right(self.at, end)
        return [round(x, 2) for x in self.ms[low:high]]

    def cpu_between(self, start: float, end: float) -> dict[str, float]:
        low = min(bisect.bisect_left(self.cpu_at, start), len(self.cpu_at) - 1)
        high = min(bisect.bisect_left(self.cpu_at, end), len(self.cpu_at) - 1)
        return {
            "cpu_s": self.cpu[high] - self.cpu[low],
            "wall_s": self.cpu_at[high] - self.cpu_at[low],
        }

    def clear(self) -> None:
        del self.at[:]
        del self.ms[:]


def _responder(burst: str, duplex: _Duplex | None = None) -> Any:
    def respond(ctx: TurnContext) -> Any:
        text = ctx.user_text
        if duplex is not None and ctx.trigger == "audio":
            return duplex.answer(ctx)
        if text.startswith("burst"):
            return burst
        if text.startswith("stream "):
            # Paced by Pause steps, not by ``chunk_delay``: the server reads a piece's text
            # before waiting out the chunk delay, and the stamp must be the send time.
            return [_STAMP, _PACE] * int(text.split()[1])
        return echo_responder(ctx)

    return respond


class _Chaos:
    def __init__(self) -> None:
        self.goaways = 0
        self.drops = 0
        self.waited = 0.0
        self.dropped: set[int] = set()
        self.done = trio.Event()

    async def run(
        self,
        server: FakeServer,
        goaways: int,
        drops: int,
        seconds: float,
        time_left: float,
        seed: int,
    ) -> None:
        rng = random.Random(seed)
        actions = ["goaway"] * goaways + ["drop"] * drops
        rng.shuffle(actions)
        hit: set[int] = set()
        records: dict[int, ConnectionRecord] = {}
        start = trio.current_time()
        step = seconds / max(1, len(actions))
        try:
            for n, action in enumerate(actions):
                await trio.sleep_until(start + n * step)
                while True:
                    for record in server.log.connections[len(records) :]:
                        records[record.id] = record
                    candidates = [
                        c
                        for c in server.open_connections
                        if c not in hit and c in records and records[c].setup_at is not None
                    ]
                    if candidates:
                        break
                    await trio.sleep(0.005)  # every connection is already being replaced
                    self.waited += 0.005
                target = rng.choice(candidates)
                hit.add(target)
                if action == "goaway":
                    server.faults.go_away_now(time_left, target)
                    self.goaways += 1
                else:
                    server.faults.drop_now(target)
                    self.dropped.add(target)
                    self.drops += 1
        finally:
            self.done.set()


def _report(server: FakeServer, chaos: _Chaos | None) -> dict[str, Any]:
    log = server.log
    counts = log.answer_counts()
    outcomes = Counter(t.outcome or "running" for t in log.model_turns())
    # Which turns were answered, judged by the wire: a turn is answered when its turnComplete
    # frame was written out (``log.sent`` records a frame once its write returned). The turn
    # records' outcome races with a drop injected from another task: a write in progress at the
    # drop may have gone out (the record may say "cut") or may never have (a write blocked on a
    # full socket buffer; the record may say "completed" while the client saw no answer and asks
    # again). Both counts are reported.
    completes: dict[int, list[float]] = defaultdict(list)
    for message in log.sent:
        if message.kind == "serverContent.turnComplete":
            completes[message.connection].append(message.time)
    starts: dict[int, list[float]] = defaultdict(list)
    for turn in log.turns:
        starts[turn.connection].append(turn.started_at)
    on_the_wire: list[str] = []
    for turn in log.turns:
        later = [s for s in starts[turn.connection] if s > turn.started_at]
        until = min(later, default=float("inf"))
        if any(turn.started_at <= t < until for t in completes[turn.connection]):
            on_the_wire.append(turn.user_text)
    effective = Counter(on_the_wire)
    # The first input (anything but setup) each connection accepted, and each session's
    # connections in order.
    first_input: dict[int, float] = {}
    for message in log.received:
        if message.kind not in ("setup", "invalid", "early"):
            first_input.setdefault(message.connection, message.time)
    by_session: dict[str, list[int]] = defaultdict(list)
    records = {record.id: record for record in log.connections}
    for record in log.connections:
        if record.session is not None:
            by_session[record.session].append(record.id)

    def next_connection(connection: int) -> ConnectionRecord | None:
        session = records[connection].session
        if session is None:
            return None
        for candidate in by_session[session]:
            if candidate > connection and candidate in first_input:
                return records[candidate]
        return None

    def phases(connection: int, start: float) -> dict[str, float] | None:
        """From ``start`` to: the old connection closed, the next one opened, set up, and
        its first input accepted."""
        old = records[connection]
        new = next_connection(connection)
        if new is None or old.closed_at is None or new.setup_at is None:
            return None
        return {
            "closed": old.closed_at - start,
            "opened": new.opened_at - start,
            "set_up": new.setup_at - start,
            "input": first_input[new.id] - start,
        }

    handoff: list[dict[str, float]] = []
    for message in log.sent:
        if message.kind == "goAway":
            found = phases(message.connection, message.time)
            if found is not None:
                handoff.append(found)
    drop: list[dict[str, float]] = []
    for connection in sorted(chaos.dropped if chaos else ()):
        closed = records[connection].closed_at
        if closed is not None:
            found = phases(connection, closed)
            if found is not None:
                drop.append(found)
    causes = Counter(record.cause or "open" for record in log.connections)
    return {
        "answer_counts": dict(effective),
        "answer_counts_as_logged": dict(counts),
        "turn_outcomes": dict(outcomes),
        "handoffs": handoff,
        "drops": drop,
        "connections": len(log.connections),
        "sessions": len(by_session),
        "close_causes": dict(causes),
        "errors": len(log.errors),
        "resumed_connections": sum(1 for r in log.connections if r.resumed_from),
    }


def _turns(server: FakeServer, text: str) -> dict[str, Any]:
    log = server.log
    return {
        "turns": [
            {
                "session": t.session,
                "turn": t.turn,
                "connection": t.connection,
                "user_text": t.user_text,
                "outcome": t.outcome,
                "started_at": t.started_at,
                "ended_at": t.ended_at,
                "continuation": t.continuation,
            }
            for t in log.turns
            if text in t.user_text
        ],
        "received": [
            {
                "connection": m.connection,
                "index": m.index,
                "kind": m.kind,
                "time": m.time,
                "message": m.message,
            }
            for m in log.received
            if text in json.dumps(m.message)
        ],
        "connections": [
            {
                "id": r.id,
                "opened_at": r.opened_at,
                "setup_at": r.setup_at,
                "closed_at": r.closed_at,
                "cause": r.cause,
                "close_code": r.close_code,
                "resumed": bool(r.resumed_from),
            }
            for r in log.connections
            if any(text in t.user_text and t.session == r.session for t in log.turns)
        ],
    }


async def _serve(args: argparse.Namespace) -> None:
    duplex = _Duplex(args) if args.duplex else None
    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "api_keys": None,
        "auth_tokens": None,
        "chunks": args.chunks,
        "chunk_delay": args.chunk_delay,
        "connection_lifetime": args.connection_lifetime,
        "goaway_before": args.goaway_before,
        "audio_session_limit": None,
        "video_session_limit": None,
        "record_client_messages": args.record,
        "record_server_messages": args.record,
        "handshake_timeout": 120,
        "responder": _responder(
            (_LOREM * (1 + args.burst_chars // len(_LOREM)))[: args.burst_chars], duplex
        ),
    }
    if args.model_profile:
        options["model_profile"] = args.model_profile
    if duplex is not None:
        duplex.install()
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        options["ssl_context"] = context
    chaos: _Chaos | None = None
    async with open_fake_server(**options) as server, trio.open_nursery() as nursery:
        if duplex is not None:
            nursery.start_soon(duplex.sample_cpu)
        print(f"READY {server.url}", flush=True)
        while True:
            line = await trio.to_thread.run_sync(sys.stdin.readline)
            words = line.split()
            if not words or words[0] == "quit":
                nursery.cancel_scope.cancel()
                return
            answer: dict[str, Any]
            if words[0] == "stats":
                answer = {
                    "cpu": time.process_time(),
                    "rss_kib": common.rss_kib(),
                    "messages": server.messages_sent,
                    "open": len(server.open_connections),
                    "errors": len(server.log.errors),
                }
            elif words[0] == "chaos":
                goaways, drops, seconds, time_left, seed = words[1:6]
                chaos = _Chaos()
                nursery.start_soon(
                    chaos.run,
                    server,
                    int(goaways),
                    int(drops),
                    float(seconds),
                    float(time_left),
                    int(seed),
                )
                answer = {"started": True}
            elif words[0] == "chaos_wait":
                if chaos is not None:
                    await chaos.done.wait()
                answer = {
                    "goaways": chaos.goaways if chaos else 0,
                    "drops": chaos.drops if chaos else 0,
                    "waited_for_targets_s": round(chaos.waited, 3) if chaos else 0.0,
                }
            elif words[0] == "report":
                answer = _report(server, chaos)
            elif words[0] == "turns":
                answer = _turns(server, words[1])
            elif words[0] == "up" and duplex is not None:
                answer = {"ms": duplex.upstream(float(words[1]), float(words[2]))}
            elif words[0] == "cpu" and duplex is not None:
                answer = duplex.cpu_between(float(words[1]), float(words[2]))
            elif words[0] == "clear" and duplex is not None:
                duplex.clear()
                answer = {"cleared": True}
            else:
                answer = {"error": f"unknown command {words[0]!r}"}
            print(json.dumps(answer), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tls-cert", metavar="FILE")
    parser.add_argument("--tls-key", metavar="FILE")
    parser.add_argument("--chunks", type=int, default=2)
    parser.add_argument("--chunk-delay", type=float, default=0.0)
    parser.add_argument("--burst-chars", type=int, default=2000)
    parser.add_argument("--connection-lifetime", type=float, default=None)
    parser.add_argument("--goaway-before", type=float, default=10.0)
    parser.add_argument("--record", action="store_true", help="keep every message in the log")
    parser.add_argument("--model-profile", choices=("3.8", "3.1", "2.5"), default=None)
    parser.add_argument("--duplex", action="store_true", help="spoken answers, upstream timing")
    parser.add_argument("--answer-pieces", type=int, default=18)
    parser.add_argument("--long-pieces", type=int, default=45)
    parser.add_argument("--long-every", type=int, default=4)
    parser.add_argument("--piece-pace", type=float, default=0.3 / 3.3)
    args = parser.parse_args()
    common.raise_fd_limit()
    # The harness must not be what is measured: a full collection over thousands of the
    # server's connections paused it for up to 0.6 s, which showed up as client latency. Its
    # objects are not cyclic garbage worth collecting within one benchmark.
    gc.disable()
    common.profiled(lambda: trio.run(_serve, args), "server")


if __name__ == "__main__":
    main()
