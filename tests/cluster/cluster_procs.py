"""Worker processes for the cluster failover tests: real ``liveactors worker`` subprocesses.

:func:`open_workers` yields a :class:`WorkerPool` that starts workers (``python -m liveactors
worker``) against one Redis / Valkey URL, one key prefix and one fake server, in a clean
environment holding only ``PATH`` and the fake server's API key. Each worker writes stdout and
stderr to files of its own (``<id>.out`` / ``<id>.err``), so nothing blocks on a full pipe and a
test can read what a worker logged ("lease lost", a traceback); :meth:`WorkerPool.start` waits
for its ``READY <id>`` line. Whatever happens in the test, every worker still running when the
block ends is killed (SIGKILL works on a stopped process too) and reaped.

Times are ``trio.current_time()`` of the test process (the clock the fake server's log uses).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import trio

from liveactors.testing import TEST_API_KEY

__all__ = ["WorkerPool", "WorkerProcess", "open_workers", "worker_environment"]

#: How long a worker may take to print READY (imports and the first lease renewal).
READY_TIMEOUT = 30.0


def worker_environment(api_key: str = TEST_API_KEY) -> dict[str, str]:
    """A clean environment: PATH, the API key, unbuffered output, nothing else inherited."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GEMINI_API_KEY": api_key,
        "PYTHONUNBUFFERED": "1",
        "LANG": "C.UTF-8",
    }


class WorkerProcess:
    """One ``liveactors worker`` subprocess."""

    def __init__(
        self, worker_id: str, process: trio.Process, out: Path, err: Path, started_at: float
    ) -> None:
        self.id = worker_id
        self.process = process
        self.out = out
        self.err = err
        self.started_at = started_at
        self.ready_at: float | None = None
        #: When the test sent SIGKILL / SIGSTOP (trio clock), if it did.
        self.killed_at: float | None = None
        self.stopped_at: float | None = None

    def __repr__(self) -> str:
        return f"<WorkerProcess {self.id} pid={self.pid} rc={self.returncode}>"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    def send(self, signum: int) -> None:
        if self.running:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        """SIGKILL: the worker dies at once, writing nothing more."""
        self.killed_at = trio.current_time()
        self.send(signal.SIGKILL)

    def terminate(self) -> None:
        """SIGTERM: the worker drains and exits 0."""
        self.send(signal.SIGTERM)

    def pause(self) -> None:
        """SIGSTOP: the worker freezes (its leases run out meanwhile)."""
        self.stopped_at = trio.current_time()
        self.send(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT."""
        self.send(signal.SIGCONT)

    async def wait(self, seconds: float | None = None) -> int:
        """Its exit status (``trio.TooSlowError`` after ``seconds``)."""
        with trio.fail_after(seconds if seconds is not None else math.inf):
            return await self.process.wait()

    def stdout(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    def stderr(self) -> str:
        return self.err.read_text(errors="replace") if self.err.exists() else ""

    async def wait_ready(self, seconds: float = READY_TIMEOUT) -> None:
        """Until the worker printed ``READY <id>`` (it takes work from then on)."""
        line = f"READY {self.id}"
        with trio.move_on_after(seconds):
            while True:
                if line in self.stdout():
                    self.ready_at = trio.current_time()
                    return
                if not self.running:
                    raise RuntimeError(
                        f"worker {self.id} exited {self.returncode} before READY:\n"
                        f"{self.stderr()[-3000:]}"
                    )
                await trio.sleep(0.02)
        raise RuntimeError(
            f"worker {self.id} printed no READY within {seconds}s:\n{self.stderr()[-3000:]}"
        )


class WorkerPool:
    """Starts workers of one cluster (see the module docstring)."""

    def __init__(
        self,
        *,
        redis_url: str,
        base_url: str,
        prefix: str,
        directory: Path,
        lease: float,
        renew: float,
        options: Sequence[str],
        api_key: str,
    ) -> None:
        self.redis_url = redis_url
        self.base_url = base_url
        self.prefix = prefix
        self.directory = directory
        self.lease = lease
        self.renew = renew
        self.options = list(options)
        self.api_key = api_key
        self.workers: list[WorkerProcess] = []
        self._count = 0
        directory.mkdir(parents=True, exist_ok=True)

    def command(self, worker_id: str, options: Sequence[str] = ()) -> list[str]:
        return [
            sys.executable,
            "-m",
            "liveactors",
            "worker",
            "--redis",
            self.redis_url,
            "--id",
            worker_id,
            "--base-url",
            self.base_url,
            "--prefix",
            self.prefix,
            "--lease",
            str(self.lease),
            "--renew",
            str(self.renew),
            *self.options,
            *options,
        ]

    async def start(
        self, worker_id: str | None = None, *, options: Sequence[str] = (), ready: bool = True
    ) -> WorkerProcess:
        """Start one worker (ids ``w1``, ``w2``, ... by default); ``ready``: wait for READY."""
        self._count += 1
        worker_id = worker_id or f"w{self._count}"
        out = self.directory / f"{worker_id}.out"
        err = self.directory / f"{worker_id}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = await trio.lowlevel.open_process(
                self.command(worker_id, options),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=worker_environment(self.api_key),
                cwd=str(self.directory),
            )
        worker = WorkerProcess(worker_id, process, out, err, trio.current_time())
        self.workers.append(worker)
        if ready:
            await worker.wait_ready()
        return worker

    async def start_many(self, count: int, *, options: Sequence[str] = ()) -> list[WorkerProcess]:
        """Start ``count`` workers at once and wait until each is READY."""
        started = [await self.start(options=options, ready=False) for _ in range(count)]
        async with trio.open_nursery() as nursery:
            for worker in started:
                nursery.start_soon(worker.wait_ready)
        return started

    def by_id(self, worker_id: str) -> WorkerProcess:
        for worker in self.workers:
            if worker.id == worker_id:
                return worker
        raise KeyError(worker_id)

    @property
    def running(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.running]

    async def aclose(self) -> None:
        """Kill every worker still running and reap them all."""
        with trio.CancelScope(shield=True):
            for worker in self.workers:
                if worker.running:
                    with suppress(ProcessLookupError):
                        os.kill(worker.pid, signal.SIGKILL)
            for worker in self.workers:
                with trio.move_on_after(10):
                    await worker.process.wait()


@asynccontextmanager
async def open_workers(
    *,
    redis_url: str,
    base_url: str,
    prefix: str,
    directory: Path,
    lease: float = 3.0,
    renew: float = 1.0,
    options: Sequence[str] = (),
    api_key: str = TEST_API_KEY,
) -> AsyncIterator[WorkerPool]:
    """A :class:`WorkerPool` whose workers are all killed when the block ends."""
    pool = WorkerPool(
        redis_url=redis_url,
        base_url=base_url,
        prefix=prefix,
        directory=directory,
        lease=lease,
        renew=renew,
        options=options,
        api_key=api_key,
    )
    try:
        yield pool
    finally:
        await pool.aclose()
