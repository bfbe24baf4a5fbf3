"""The chaos soak, small: 100 conversations for ten simulated minutes of random faults (the
benchmark, ``benchmarks/soak.py``, runs 1,000 for an hour). Judged from the fake server's log:
nothing acknowledged lost or answered twice, ``seq`` gap-free, no task left, memory flat."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def figures() -> dict[str, Any]:
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    import soak

    result: dict[str, Any] = soak.run(conversations=100, minutes=10.0, seed=2)
    return result


def test_every_acknowledged_question_is_answered_once_or_handed_back(
    figures: dict[str, Any],
) -> None:
    assert figures["questions"] > 1000
    assert figures["lost"] == 0, figures["examples"]
    assert figures["duplicated"] == 0, figures["examples"]
    assert figures["answered"] + figures["undelivered"] == figures["questions"]


def test_the_faults_really_happened(figures: dict[str, Any]) -> None:
    faults = figures["faults"]
    assert set(faults) == {
        "drop",
        "goaway-early",
        "goaway-late",
        "1011",
        "refused-resume",
        "expired",
        "upgrade",
    }
    assert min(faults.values()) >= 10
    assert figures["incarnations"] > 100  # stops and respawns under the same names
    assert figures["handoff_bursts"] > 0


def test_seq_is_gap_free_and_no_task_is_left(figures: dict[str, Any]) -> None:
    assert figures["seq_gaps"] == 0
    assert figures["tasks_left"] == 0


def test_memory_stays_flat(figures: dict[str, Any]) -> None:
    """The library's state (media payloads apart) no more than 5 % above the second quarter
    at the last: a leak of anything kept per question, turn, connection or incarnation shows
    up here. Its quarters stay within about 2 % of each other from run to run."""
    growth = figures["memory_growth_q4_vs_q2"]
    assert growth is not None
    assert growth <= 0.05, figures["memory_by_quarter"]


def test_media_payloads_stay_bounded(figures: dict[str, Any]) -> None:
    """Held audio jumps with how many microphones are alive and which connection is mid-handoff
    (up to about +40 % from one quarter's median to another's); unbounded, five microphones
    would add some 30 MB a quarter to the 4 MB they hold, far past doubling."""
    growth = figures["media_growth_q4_vs_q2"]
    assert growth is not None
    assert figures["media_by_quarter"][1] > 1_000_000  # the microphones' audio is there
    assert growth <= 1.0, figures["media_by_quarter"]
