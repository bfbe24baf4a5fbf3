"""The ``liveactors`` command: help for every subcommand, the demo, and chat on the fake."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import liveactors

COMMAND = [sys.executable, "-m", "liveactors"]


def run(
    *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    return subprocess.run(
        [*COMMAND, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


@pytest.mark.parametrize("subcommand", ["demo", "chat", "fake-server"])
def test_every_subcommand_has_help(subcommand: str) -> None:
    done = run(subcommand, "--help")
    assert done.returncode == 0, done.stderr
    assert f"usage: liveactors {subcommand}" in done.stdout


def test_top_level_help_lists_the_subcommands() -> None:
    done = run("--help")
    assert done.returncode == 0
    for name in ("demo", "chat", "fake-server"):
        assert name in done.stdout


def test_demo_ends_by_itself_and_loses_nothing() -> None:
    done = run(
        "demo",
        "--conversations",
        "3",
        "--duration",
        "2.5",
        "--lifetime",
        "1.5",
        "--drop-every",
        "0.5",
        "--plain",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # On the default model (AUDIO answers, read through their transcript), no TEXT anywhere.
    assert f"playing {liveactors.DEFAULT_MODEL}" in done.stdout
    assert "No turn was lost" in done.stdout
    assert "lost:                 0" in done.stdout
    assert "answered twice:       0" in done.stdout
    assert "wrong replies:        0" in done.stdout
    asked = int(done.stdout.split("questions asked:")[1].split()[0])
    once = int(done.stdout.split("answered exactly once (server log):")[1].split()[0])
    assert asked > 10 and once == asked
    # Every setup the server received asked for spoken answers and their transcript.
    line = done.stdout.split("spoken answers with their transcript (server log):")[1]
    spoken, setups = map(int, line.split()[0].split("/"))
    assert spoken == setups >= 3


def test_demo_refuses_nonsense_options() -> None:
    done = run("demo", "--conversations", "0")
    assert done.returncode == 2
    assert "--conversations" in done.stderr


def test_chat_talks_to_the_embedded_fake_without_a_key() -> None:
    done = run("chat", stdin="hello there\nand again\n")
    assert done.returncode == 0, done.stderr
    assert "echo #1: hello there" in done.stdout
    assert "echo #2: and again" in done.stdout
    assert "fake server" in done.stderr
