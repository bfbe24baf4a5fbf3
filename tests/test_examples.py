"""Every example runs as-is against the embedded fake server and prints what it should.

Each example is run as a script in a subprocess, in a temporary directory, with the API key
variables removed from the environment (so it uses the fake server and never the network), and
must exit 0 within a few seconds.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import struct
import subprocess
import sys
import wave
from pathlib import Path

import attrs
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

#: What each example must print (substrings of stdout), by file name.
EXPECTED: dict[str, list[str]] = {
    "text_chat.py": [
        "using the embedded fake server",
        "model> echo #1: Hello! Who are you?",
        "model> echo #2: Name one thing trio's nurseries guarantee.",
        "model> echo #3: Thanks, that is all.",
        "done: 3 turns",
    ],
    "audio_io.py": [
        "generated question.wav",
        "sent 20 chunks and audio_stream_end",
        "you said: <audio ",
        "model said: echo #1: <audio ",
        "wrote answer.wav: ",
    ],
    "tool_calling.py": [
        "[tool] get_weather(city='Paris') started",
        "model> It is 18 °C and cloudy in Paris.",
        "[tool] book_table(time='20:00', guests=2) started",
        "model> Booking it now.",
        "(tool calls in that turn: book_table)",
        "model (later)> Good news: your table for 2 at 20:00 is booked, confirmation T-42.",
        "done: 3 turns",
    ],
    "many_conversations.py": [
        "answered 32/32 questions in 8 conversations",
        "peak sessions 6 (max 6)",
        "every question answered exactly once: True",
    ],
    "testing_your_app.py": [
        "PASS test_answers_every_ticket_once",
        "PASS test_survives_a_dropped_connection",
        "PASS test_survives_a_goaway",
        "PASS test_restores_history_when_the_handle_is_refused",
        "6 passed, 0 failed",
    ],
    "transcript_recorder.py": [
        "recorded 7 rows to transcript.jsonl",
        "support-1  turn 1  user  (text) Where is my parcel?",
        "[cut: CONNECTION_LOST]",
        "support-1  turn 2  model (text) echo #1: Where is my parcel?",
        "support-1  turn 3  model (text) echo #2: Can you send it again?",
        "voice-1    turn 1  user  (transcript) <audio 1.00s>",
        "voice-1    turn 1  model (transcript) echo #1: <audio 1.00s>",
    ],
    "router.py": [
        "router listening on 127.0.0.1:",
        "< echo #1: Hi, I am Ada.",
        "< echo #2: What is my name?",
        "< echo #1: Hello from Bob!",
        "< echo #2: Bye.",
        "served 2 clients, each in its own conversation",
    ],
}


@attrs.frozen
class Run:
    """One finished run of an example."""

    stdout: str
    cwd: Path


#: Every run the tests look at: id -> (script or pytest, arguments). They all start at once
#: (the examples mostly wait on trio timers and each other), which keeps the module fast.
RUNS: dict[str, tuple[str, tuple[str, ...]]] = {
    **{name: (name, ()) for name in EXPECTED},
    "audio_io.py stereo": ("audio_io.py", ("stereo.wav", "reply.wav")),
    "transcript_recorder.py sqlite": ("transcript_recorder.py", ("transcript.sqlite",)),
    "testing_your_app.py under pytest": (
        "-m",
        ("pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLES / "testing_your_app.py")),
    ),
}


def _stereo_wav(path: Path) -> None:
    """1 s at 48 kHz, two channels: the first loud, the second silent."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(48_000)
        loud = struct.pack("<hh", 8000, 0) * 4800 + struct.pack("<hh", -8000, 0) * 4800
        wav.writeframes(loud * 5)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "LIVEACTORS_MODEL")
    }
    started = {}
    for run_id, (script, args) in RUNS.items():
        cwd = tmp_path_factory.mktemp(re.sub(r"\W+", "-", run_id))
        if run_id == "audio_io.py stereo":
            _stereo_wav(cwd / "stereo.wav")
        target = [script] if script == "-m" else [str(EXAMPLES / script)]
        started[run_id] = (
            cwd,
            subprocess.Popen(
                [sys.executable, *target, *args],
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
    done = {}
    try:
        for run_id, (cwd, process) in started.items():
            stdout, stderr = process.communicate(timeout=60)
            assert process.returncode == 0, (
                f"{run_id} exited {process.returncode}:\n{stdout}\n{stderr}"
            )
            done[run_id] = Run(stdout, cwd)
    finally:
        for _, process in started.values():
            if process.poll() is None:
                process.kill()
                process.communicate()
    return done


def test_every_example_is_tested() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_against_the_fake_server(name: str, runs: dict[str, Run]) -> None:
    out = runs[name].stdout
    for expected in EXPECTED[name]:
        assert expected in out, f"{name} did not print {expected!r}:\n{out}"


def test_audio_io_writes_a_24khz_wav(runs: dict[str, Run]) -> None:
    for run_id, answer in (("audio_io.py", "answer.wav"), ("audio_io.py stereo", "reply.wav")):
        with wave.open(str(runs[run_id].cwd / answer), "rb") as wav:
            assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 24_000)
            assert wav.getnframes() > 0
    # The 48 kHz stereo input: the first channel is kept and its rate declared.
    out = runs["audio_io.py stereo"].stdout
    assert "1.00s of 48000 Hz audio" in out
    assert "you said: <audio 1.00s>" in out


def test_transcript_recorder_files(runs: dict[str, Run]) -> None:
    path = runs["transcript_recorder.py"].cwd / "transcript.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [(r["conversation"], r["turn"], r["role"]) for r in rows] == [
        ("support-1", 1, "user"),
        ("support-1", 1, "model"),
        ("support-1", 2, "model"),
        ("support-1", 3, "user"),
        ("support-1", 3, "model"),
        ("voice-1", 1, "user"),
        ("voice-1", 1, "model"),
    ]
    assert rows[1]["interrupted"] is True and rows[2]["interrupted"] is False

    path = runs["transcript_recorder.py sqlite"].cwd / "transcript.sqlite"
    with sqlite3.connect(path) as db:
        stored = db.execute("SELECT conversation, turn, role, kind FROM transcript").fetchall()
    assert len(stored) == 7
    assert ("voice-1", 1, "user", "transcript") in stored


def test_testing_your_app_passes_under_pytest(runs: dict[str, Run]) -> None:
    assert "6 passed" in runs["testing_your_app.py under pytest"].stdout
