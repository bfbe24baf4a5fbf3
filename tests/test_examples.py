"""Every example runs as-is against the embedded fake server and prints what it should.

Each example is run as a script in a subprocess, in a temporary directory, with the API key
variables removed from the environment (so it uses the fake server and never the network), and
must exit 0 within a few seconds.
"""

from __future__ import annotations

import ast
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

import liveactors
from liveactors.testing import open_fake_server

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

#: Every example says which model the fake server plays: the default one.
HEADER = f"using the embedded fake server ({liveactors.DEFAULT_MODEL})"

#: What each example must print (substrings of stdout), by file name. The fake's default
#: model says "echo #n: <what the user said>" in speech; the examples print its transcript.
EXPECTED: dict[str, list[str]] = {
    "text_chat.py": [
        HEADER,
        # streamed OutputTranscript pieces, joined on one line
        "model> echo #1: Hello! Who are you?\n",
        # ask(): Reply.text is the transcript, Reply.audio the speech
        "model> echo #2: Name one thing trio's nurseries guarantee.",
        "       (turn 2, ",
        "model> echo #3: Thanks, that is all.",
        "done: 3 turns",
    ],
    "audio_io.py": [
        HEADER,
        "generated question.wav",
        "sent 20 chunks and audio_stream_end",
        "you said: <audio ",
        "model said: echo #1: <audio ",
        "wrote answer.wav: ",
    ],
    "tool_calling.py": [
        HEADER,
        # BLOCKING: answered inside the turn
        "[tool] get_weather(city='Paris') started",
        "model> It is 18 °C and cloudy in Paris.",
        # NON_BLOCKING by default, SILENT: no turn of its own
        "[tool] note_preference(preference='vegetarian') started",
        "model> Noted.",
        # NON_BLOCKING by default, WHEN_IDLE: a later turn, which knows the SILENT result
        "[tool] book_table(time='20:00', guests=2) started",
        "model> Booking it now.",
        "(tool calls in that turn: book_table)",
        "model (later)> Good news: your table for 2 at 20:00 is booked, confirmation T-42. "
        "I told them: vegetarian.",
        "done: 4 turns",
    ],
    "many_conversations.py": [
        HEADER,
        "answered 32/32 questions in 8 conversations",
        "peak sessions 6 (max 6)",
        "-> 'echo #4: conv-01, question 4: what is 4 + 4?'",
        "every question answered exactly once: True",
    ],
    "testing_your_app.py": [
        "PASS test_answers_every_ticket_once",
        "PASS test_with_a_scripted_model",
        "PASS test_survives_a_dropped_connection",
        "PASS test_survives_a_goaway",
        "PASS test_restores_history_when_the_handle_is_refused",
        "PASS test_a_refused_config_fails_at_spawn",
        "PASS test_an_unknown_model_is_left_to_the_service",
        "7 passed, 0 failed",
    ],
    "transcript_recorder.py": [
        HEADER,
        "recorded 7 rows to transcript.jsonl",
        "support-1  turn 1  user  (text) Where is my parcel?",
        "[cut: CONNECTION_LOST]",
        "support-1  turn 2  model (transcript) echo #1: Where is my parcel?",
        "support-1  turn 3  model (transcript) echo #2: Can you send it again?",
        "voice-1    turn 1  user  (transcript) <audio 1.00s>",
        "voice-1    turn 1  model (transcript) echo #1: <audio 1.00s>",
    ],
    "router.py": [
        HEADER,
        "router listening on 127.0.0.1:",
        "< echo #1: Hi, I am Ada.",
        "< echo #2: What is my name?",
        "< echo #1: Hello from Bob!",
        "< echo #2: Bye.",
        "served 2 clients, each in its own conversation",
    ],
    "fastapi_app.py": [
        HEADER,
        "serving on ws://127.0.0.1:",
        "[ada] < echo #1: Hi, I am Ada.",
        "[ada] < echo #2: What is my name?",
        "[bob] < echo #1: Hello from Bob!",
        "[bob] < echo #2: Bye.",
        "served 2 clients, each in its own conversation",
        "every question answered exactly once: True",
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
    assert [(r["conversation"], r["turn"], r["role"], r["kind"]) for r in rows] == [
        ("support-1", 1, "user", "text"),
        ("support-1", 1, "model", "transcript"),  # cut by the dropped connection
        ("support-1", 2, "model", "transcript"),
        ("support-1", 3, "user", "text"),
        ("support-1", 3, "model", "transcript"),
        ("voice-1", 1, "user", "transcript"),
        ("voice-1", 1, "model", "transcript"),
    ]
    assert rows[1]["interrupted"] is True and rows[2]["interrupted"] is False
    # The cut answer was answered again, whole, on the new connection.
    assert rows[2]["text"] == "echo #1: Where is my parcel?"

    path = runs["transcript_recorder.py sqlite"].cwd / "transcript.sqlite"
    with sqlite3.connect(path) as db:
        stored = db.execute("SELECT conversation, turn, role, kind FROM transcript").fetchall()
    assert len(stored) == 7
    assert ("voice-1", 1, "user", "transcript") in stored


def test_testing_your_app_passes_under_pytest(runs: dict[str, Run]) -> None:
    assert "7 passed" in runs["testing_your_app.py under pytest"].stdout


def test_examples_ask_for_no_text_modality() -> None:
    """Every example runs on the default model (AUDIO only): no TEXT modality, no TEXT_MODEL
    (except in the test showing that such a config is refused)."""
    for path in EXAMPLES.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        tree.body = [
            node
            for node in tree.body
            if not (isinstance(node, ast.AsyncFunctionDef) and "refused" in node.name)
        ]
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword):
                assert node.arg != "response_modalities", f"{path.name}:{node.value.lineno}"
            elif isinstance(node, ast.Constant):
                assert node.value not in ("TEXT", "response_modalities"), (
                    f"{path.name}:{node.lineno}"
                )
            elif isinstance(node, ast.Attribute):
                assert node.attr != "TEXT_MODEL", f"{path.name}:{node.lineno}"
        assert "liveactors.DEFAULT_MODEL" in source, path.name


# -- the README's and the getting-started page's programs ----------------------------------------

README = EXAMPLES.parent / "README.md"
GETTING_STARTED = EXAMPLES.parent / "docs" / "getting-started.md"


def python_blocks(path: Path) -> list[str]:
    """The ```python blocks of a Markdown file, in order."""
    return re.findall(r"^```python\n(.*?)^```", path.read_text(encoding="utf-8"), re.M | re.S)


async def run_program(code: str, where: str) -> None:
    """Run a page's complete program (one that ends with ``trio.run(main)``) in this trio run."""
    assert code.rstrip().endswith("trio.run(main)"), f"{where}: not a complete program"
    namespace: dict[str, object] = {"__name__": where}
    exec(compile(code.rstrip().removesuffix("trio.run(main)"), where, "exec"), namespace)
    main = namespace["main"]
    assert callable(main)
    await main()


async def test_the_readme_program_runs_on_the_default_model(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's usage example, with its ``GeminiBackend()`` pointed at a fake server."""
    async with open_fake_server(listen=False) as server:
        made = []

        def backend(**kwargs: object) -> liveactors.GeminiBackend:
            made.append(kwargs)
            return server.backend(**kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(liveactors, "GeminiBackend", backend)
        await run_program(python_blocks(README)[0], "README.md")

    assert made == [{}]  # the default model, nothing else
    assert capsys.readouterr().out == "echo #1: Hello\necho #2: And again?\n"
    assert server.log.answer_counts() == {"Hello": 1, "And again?": 1}
    setup = server.log.client_messages(kind="setup")[0].body
    assert setup["model"] == f"models/{liveactors.DEFAULT_MODEL}"
    assert "responseModalities" not in setup.get("generationConfig", {})
    assert "outputAudioTranscription" in setup  # what OutputTranscript comes from
    assert server.log.errors == []


async def test_the_getting_started_program_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The first program of docs/getting-started.md runs as printed (it opens its own fake)."""
    await run_program(python_blocks(GETTING_STARTED)[0], "getting-started.md")
    assert capsys.readouterr().out == "echo #1: Hello!\necho #2: How are you?\n"
