"""What the liveactors benchmarks share: the fake server process, TLS files, CPU and memory
readings, statistics, the machine, and where results go.

Measuring rules the benchmarks follow (these machines are noisy):

* CPU, not wall time: a client variant runs in a process of its own and reads
  ``getrusage(RUSAGE_SELF)`` around the measured part, so neither the fake server (another
  process) nor the start-up of the interpreter counts;
* side by side: the variants being compared run in the same invocation, interleaved in rotating
  order, repeated; figures are medians and ratios of neighbouring runs.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from liveactors._models import FAKE_TEXT_MODEL

T = TypeVar("T")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS_DIR = HERE / "results"
DOCS = REPO / "docs"
SERVER_SCRIPT = HERE / "_bench_server.py"

PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
#: Benchmarks of text throughput (throughput's TEXT variant, fan-out, reconnect, the fake
#: server's TEXT turns) run on the model only the fake server serves, the retired generation
#: that answered in TEXT: no current Live model writes text, and these figures measure the cost
#: per message of small text chunks, which audio's base64 would drown.
TEXT_MODEL = FAKE_TEXT_MODEL
#: Audio benchmarks run on a current native-audio model that frames its answers one audio part
#: per message, as the published figures were measured (gemini-3.8-live packs several parts and
#: the transcript into one message: fewer, larger messages).
AUDIO_MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
API_KEY = "bench-key"


# -- readings ----------------------------------------------------------------------------


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_kib() -> int:
    """Resident set size of this process now, in KiB (Linux; peak RSS elsewhere)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


# -- statistics --------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    """The median (0.0 for no values)."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100), linear between closest ranks (0.0 for no values)."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def rotations(names: Sequence[str], rounds: int) -> list[list[str]]:
    """``rounds`` orders of ``names``, each rotated by one: every variant runs first, middle and
    last equally often, so a drift in the machine's speed does not favour one."""
    return [[names[(r + i) % len(names)] for i in range(len(names))] for r in range(rounds)]


# -- the machine and the results ---------------------------------------------------------


def machine() -> dict[str, Any]:
    """Cores, memory, CPU model, Python and the date: stated next to every figure."""
    memory_gib = None
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    memory_gib = round(int(line.split()[1]) / 2**20, 1)
                    break
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        # Other work on the machine during the run (1-minute load average when it ended).
        "load_average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def save(
    name: str, results: dict[str, Any], *, quick: bool, results_dir: Path | None = None
) -> Path:
    """Write ``results`` (plus the machine) to ``<results_dir>/<name>[.quick].json``.

    Full runs also refresh ``docs/benchmarks.md`` and its plots when they write to the
    repository's own results folder; quick runs never touch the committed figures.
    """
    folder = results_dir or RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}{'.quick' if quick else ''}.json"
    document = {"benchmark": name, "quick": quick, "machine": machine(), "results": results}
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    if not quick and folder.resolve() == RESULTS_DIR.resolve():
        try:
            import _bench_report
        except ImportError:  # pragma: no cover - run from elsewhere
            return path
        _bench_report.refresh()
    return path


def note(message: str) -> None:
    """Progress for people, on stderr (stdout is for figures, or for one JSON object)."""
    print(message, file=sys.stderr, flush=True)


# -- TLS ---------------------------------------------------------------------------------


class TlsFiles:
    """A throwaway trustme CA and a certificate for 127.0.0.1, as PEM files in a temp dir."""

    def __init__(self) -> None:
        import trustme

        self._dir = tempfile.TemporaryDirectory(prefix="liveactors-bench-")
        folder = Path(self._dir.name)
        authority = trustme.CA()
        cert = authority.issue_cert("127.0.0.1", "localhost")
        self.cert = folder / "cert.pem"
        self.key = folder / "key.pem"
        self.ca = folder / "ca.pem"
        cert.cert_chain_pems[0].write_to_path(str(self.cert))
        for extra in cert.cert_chain_pems[1:]:
            with open(self.cert, "ab") as out:
                out.write(extra.bytes())
        cert.private_key_pem.write_to_path(str(self.key))
        authority.cert_pem.write_to_path(str(self.ca))

    def cleanup(self) -> None:
        self._dir.cleanup()


def client_ssl_context(ca_file: str) -> Any:
    """A client context that trusts only the benchmark CA."""
    import ssl

    return ssl.create_default_context(cafile=ca_file)


# -- the fake server in its own process --------------------------------------------------


class ServerProcess:
    """``_bench_server.py`` in a process of its own; commands and answers are JSON lines on
    its stdin and stdout (see that file)."""

    def __init__(self, *options: str) -> None:
        command = [sys.executable, str(SERVER_SCRIPT), *options]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("READY "):
            self.close()
            raise RuntimeError(f"the fake server did not start: {line!r}")
        self.url = line.split()[1]
        self.port = int(self.url.rsplit(":", 1)[1])

    def command(self, *words: object) -> dict[str, Any]:
        """Send one command line; the server's JSON answer."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(" ".join(str(w) for w in words) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the fake server process ended")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def stats(self) -> dict[str, Any]:
        """CPU seconds, RSS, messages sent, open connections, internal errors."""
        return self.command("stats")

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.flush()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_child(script: Path, args: Sequence[str], timeout: float = 600) -> dict[str, Any]:
    """Run ``script args`` in a fresh interpreter; its last stdout line, parsed as JSON."""
    done = subprocess.run(
        [sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed (exit {done.returncode})")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def profiled(run: Callable[[], T], label: str) -> T:
    """``run()``, under pyinstrument when ``LIVEACTORS_BENCH_PROFILE`` names a folder: the
    profile goes there as ``<label>-<pid>.txt`` (a call tree), ``.json`` (speedscope) and
    ``.pyisession`` (``pyinstrument --load``)."""
    folder = os.environ.get("LIVEACTORS_BENCH_PROFILE")
    if not folder:
        return run()
    from pyinstrument import Profiler
    from pyinstrument.renderers import SpeedscopeRenderer

    profiler = Profiler(interval=0.0005)
    profiler.start()
    try:
        return run()
    finally:
        profiler.stop()
        base = Path(folder) / f"{label}-{os.getpid()}"
        base.parent.mkdir(parents=True, exist_ok=True)
        base.with_suffix(".txt").write_text(
            profiler.output_text(unicode=True, show_all=False, timeline=False)
        )
        base.with_suffix(".json").write_text(profiler.output(SpeedscopeRenderer()))
        if profiler.last_session is not None:
            profiler.last_session.save(str(base.with_suffix(".pyisession")))


def timed(started: float) -> float:
    """Seconds since ``started`` (a ``time.perf_counter()`` reading), rounded."""
    return round(time.perf_counter() - started, 3)
