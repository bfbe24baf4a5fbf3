"""The extras stay optional: liveactors imports and runs without prometheus-client and
OpenTelemetry, imports neither by itself, and says which extra to install when asked for them."""

from __future__ import annotations

import subprocess
import sys
import textwrap

#: Runs a conversation on the fake server, then reports what got imported.
_RUN = """
import sys
import trio
import liveactors
from liveactors.testing import open_fake_server

async def main():
    async with open_fake_server(listen=False) as server:
        async with liveactors.open_orchestrator(server.backend()) as orch:
            conv = await orch.spawn(None)
            reply = await conv.ask("hello")
            assert reply.text, reply
            assert orch.statistics().turns == 1

trio.run(main)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("prometheus_client", "opentelemetry"))
print("LOADED", loaded)
"""

#: Makes prometheus-client and OpenTelemetry impossible to import, as if not installed.
_BLOCK = """
import importlib.abc, sys

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("prometheus_client", "opentelemetry"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, NotInstalled())
"""


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_liveactors_imports_neither_extra_by_itself() -> None:
    done = _python(_RUN)
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout


def test_liveactors_runs_without_the_extras_installed() -> None:
    done = _python(
        _BLOCK
        + _RUN
        + """
for module, extra in (("liveactors.metrics", "metrics"), ("liveactors.otel", "otel")):
    try:
        __import__(module)
    except ImportError as exc:
        assert f"pip install 'liveactors[{extra}]'" in str(exc), exc
        print("REFUSED", module)
    else:
        raise AssertionError(f"{module} imported without its extra")

from liveactors import _cli
assert _cli.main(["demo", "--metrics-port", "0"]) == 2
"""
    )
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout
    assert "REFUSED liveactors.metrics" in done.stdout
    assert "REFUSED liveactors.otel" in done.stdout
    assert "liveactors[metrics]" in done.stderr  # what the demo said
