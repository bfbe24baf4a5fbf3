"""``HandoffTimer``: when a connection ends after a goAway or for a stop, with plain numbers."""

from __future__ import annotations

import math

import pytest

from liveactors._handoff import (
    COVER_WAIT,
    GOAWAY_SLACK,
    IDLE_HANDLE_WAIT,
    Ending,
    HandoffTimer,
)

BUSY = {"turn_open": True, "outstanding": False, "handoff_ready": False}
ASKED = {"turn_open": False, "outstanding": True, "handoff_ready": False}
UNCOVERED = {"turn_open": False, "outstanding": False, "handoff_ready": False}
READY = {"turn_open": False, "outstanding": False, "handoff_ready": True}


def test_nothing_to_end_without_a_go_away_or_a_stop() -> None:
    timer = HandoffTimer()
    assert not timer.pausing_input
    for state in (BUSY, ASKED, UNCOVERED, READY):
        assert timer.ending(0.0, **state) is None
    assert timer.wake_at(0.0) == math.inf
    assert not timer.stop_overdue(1e9)


def test_go_away_at_a_covered_resumable_point_switches_at_once() -> None:
    timer = HandoffTimer()
    timer.go_away(100.0, 10.0)
    assert timer.pausing_input
    assert timer.ending(100.0, **READY) is Ending.HANDOFF


def test_go_away_lets_a_turn_run_until_the_service_closes_or_the_slack_ends() -> None:
    timer = HandoffTimer()
    timer.go_away(0.0, 10.0)
    assert timer.ending(0.0, **BUSY) is None
    assert timer.wake_at(0.0) == 9.0  # a margin before the deadline
    # Past that point a turn in progress still runs: the service closes at its deadline
    # after everything it sent, which is read, so nothing is asked twice.
    assert timer.ending(9.0, **BUSY) is None
    assert timer.wake_at(9.0) == 10.0 + GOAWAY_SLACK
    assert timer.ending(10.0 + GOAWAY_SLACK, **BUSY) is Ending.HANDOFF


def test_an_unanswered_question_counts_as_a_turn_in_progress() -> None:
    timer = HandoffTimer()
    timer.go_away(0.0, 10.0)
    assert timer.ending(5.0, **ASKED) is None
    assert timer.idle_switch_at == math.inf


def test_an_idle_point_no_handle_covers_waits_a_moment_for_the_handle() -> None:
    timer = HandoffTimer()
    timer.go_away(0.0, 300.0)  # minutes left: do not hold input that long
    assert timer.ending(0.0, **UNCOVERED) is None
    assert timer.wake_at(0.0) == IDLE_HANDLE_WAIT
    assert timer.ending(0.5, **UNCOVERED) is None
    assert timer.ending(0.6, **READY) is Ending.HANDOFF  # the handle came


def test_an_idle_point_switches_without_the_handle_after_the_wait() -> None:
    timer = HandoffTimer()
    timer.go_away(0.0, 300.0)
    assert timer.ending(0.0, **UNCOVERED) is None
    assert timer.ending(IDLE_HANDLE_WAIT, **UNCOVERED) is Ending.HANDOFF


def test_a_turn_starting_during_the_idle_wait_restarts_it() -> None:
    timer = HandoffTimer()
    timer.go_away(0.0, 300.0)
    assert timer.ending(0.0, **UNCOVERED) is None
    assert timer.ending(0.5, **BUSY) is None
    assert timer.idle_switch_at == math.inf
    assert timer.ending(2.0, **UNCOVERED) is None  # a fresh wait from here
    assert timer.ending(2.0 + IDLE_HANDLE_WAIT, **UNCOVERED) is Ending.HANDOFF


def test_a_short_go_away_switches_before_its_deadline_when_idle() -> None:
    timer = HandoffTimer()
    timer.go_away(0.0, 0.4)  # the margin is a quarter of it
    assert timer.ending(0.0, **UNCOVERED) is None
    wake = timer.wake_at(0.0)
    assert wake == pytest.approx(0.3)
    assert timer.ending(wake, **UNCOVERED) is Ending.HANDOFF


def test_a_second_go_away_only_brings_the_limits_forward() -> None:
    timer = HandoffTimer()
    timer.go_away(0.0, 10.0)
    timer.go_away(1.0, 60.0)
    assert (timer.switch_by, timer.deadline) == (9.0, 10.0 + GOAWAY_SLACK)
    timer.go_away(2.0, 2.0)
    assert (timer.switch_by, timer.deadline) == (3.5, 4.0 + GOAWAY_SLACK)


def test_a_new_connection_forgets_the_go_away_but_not_the_stop() -> None:
    timer = HandoffTimer()
    timer.stop_requested(0.0, 5.0)
    timer.drain()
    timer.go_away(0.0, 10.0)
    timer.ending(0.0, **READY | {"handoff_ready": False})
    timer.new_connection()
    assert not timer.holding and timer.deadline == math.inf and timer.cover_until is None
    # A stop that a dropped connection interrupted goes on draining on the next one.
    assert timer.draining and timer.stop_at == 5.0
    assert timer.pausing_input


def test_a_stop_waits_for_the_answer_then_ends() -> None:
    timer = HandoffTimer()
    timer.stop_requested(0.0, 5.0)
    assert timer.ending(0.0, **ASKED) is None  # not draining yet: input queued before goes out
    timer.drain()
    assert timer.ending(0.0, **ASKED) is None
    assert timer.ending(1.0, **BUSY) is None
    assert timer.wake_at(1.0) == 5.0
    assert timer.ending(2.0, **READY) is Ending.STOP


def test_a_stop_waits_a_moment_for_the_handle_covering_the_last_answer() -> None:
    timer = HandoffTimer()
    timer.stop_requested(0.0, 5.0)
    timer.drain()
    assert timer.ending(1.0, **UNCOVERED) is None
    assert timer.wake_at(1.0) == 1.0 + COVER_WAIT
    assert timer.ending(1.1, **UNCOVERED) is None
    assert timer.ending(1.0 + COVER_WAIT, **UNCOVERED) is Ending.STOP


def test_a_stop_ends_at_its_grace_whatever_is_in_flight() -> None:
    timer = HandoffTimer()
    timer.stop_requested(0.0, 5.0)
    timer.stop_requested(1.0, 60.0)  # a later, longer stop does not extend the first
    timer.drain()
    assert timer.ending(4.9, **BUSY) is None
    assert timer.ending(5.0, **BUSY) is Ending.STOP
    assert timer.stop_overdue(5.0)


def test_a_negative_grace_means_now() -> None:
    timer = HandoffTimer()
    timer.stop_requested(3.0, -1.0)
    assert timer.stop_at == 3.0 and timer.stop_overdue(3.0)


def test_a_stop_during_a_handoff_ends_as_a_stop_at_the_earlier_limit() -> None:
    timer = HandoffTimer()
    timer.go_away(0.0, 10.0)
    timer.stop_requested(0.0, 30.0)
    timer.drain()
    assert timer.ending(0.0, **READY) is Ending.STOP
    assert timer.wake_at(0.0) == 10.0 + GOAWAY_SLACK
    assert timer.ending(10.0 + GOAWAY_SLACK, **BUSY) is Ending.STOP


def test_delivery_limit_follows_how_the_connection_ends() -> None:
    timer = HandoffTimer()
    timer.go_away(0.0, 10.0)
    timer.stop_requested(0.0, 3.0)
    assert timer.delivery_limit(Ending.STOP) == 3.0
    assert timer.delivery_limit(Ending.HANDOFF) == 10.0 + GOAWAY_SLACK
