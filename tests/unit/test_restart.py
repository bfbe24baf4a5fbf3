"""``RestartPolicy`` validation and backoff, ``RestartBudget`` intensity window and reset."""

from __future__ import annotations

import itertools
import math
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from liveactors import InvalidCommand, RestartPolicy
from liveactors._restart import RestartBudget

MID = 0.5  # random() == 0.5 means "no jitter" in RestartPolicy.delay


def fixed(value: float) -> Any:
    return lambda: value


# -- validation -------------------------------------------------------------------------------


def test_defaults_are_the_documented_ones() -> None:
    policy = RestartPolicy()
    assert attrs.astuple(policy) == (5, 60.0, 0.1, 10.0, 0.2)


@pytest.mark.parametrize("field", ["max_restarts", "within", "backoff_initial", "backoff_max"])
@pytest.mark.parametrize("value", [-1, -0.5, "3", None, True, float("nan"), [1]])
def test_non_numbers_and_negatives_are_refused_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(InvalidCommand, match=rf"RestartPolicy\.{field} must be a number >= 0"):
        RestartPolicy(**{field: value})


@pytest.mark.parametrize("value", [-0.1, float("nan"), "0.2", False])
def test_bad_jitter_is_refused(value: Any) -> None:
    with pytest.raises(InvalidCommand, match=r"RestartPolicy\.jitter"):
        RestartPolicy(jitter=value)


def test_jitter_above_one_is_refused() -> None:
    with pytest.raises(InvalidCommand, match=r"jitter must be between 0 and 1, not 1\.5"):
        RestartPolicy(jitter=1.5)


def test_max_restarts_must_be_whole() -> None:
    with pytest.raises(InvalidCommand, match=r"max_restarts must be an int, not 2\.5"):
        RestartPolicy(max_restarts=2.5)  # type: ignore[arg-type]


def test_backoff_max_below_initial_is_refused() -> None:
    with pytest.raises(InvalidCommand, match=r"backoff_max must be >= backoff_initial \(1 < 2\)"):
        RestartPolicy(backoff_initial=2, backoff_max=1)


def test_invalid_command_is_a_value_error_too() -> None:
    with pytest.raises(ValueError):
        RestartPolicy(within=-1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_restarts": 0},
        {"within": 0},
        {"jitter": 0},
        {"jitter": 1},
        {"backoff_initial": 0, "backoff_max": 0},
        {"within": math.inf, "backoff_max": math.inf},
    ],
)
def test_boundary_values_are_accepted(kwargs: dict[str, Any]) -> None:
    policy = RestartPolicy(**kwargs)
    for name, value in kwargs.items():
        assert getattr(policy, name) == value


def test_policy_is_frozen() -> None:
    policy = RestartPolicy()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy.max_restarts = 9  # type: ignore[misc]


# -- backoff ----------------------------------------------------------------------------------


def test_backoff_doubles_from_initial_and_caps_at_max() -> None:
    policy = RestartPolicy(backoff_initial=0.1, backoff_max=1.0, jitter=0.2)
    delays = [policy.delay(n, fixed(MID)) for n in range(1, 8)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])


def test_jitter_spreads_the_delay_symmetrically() -> None:
    policy = RestartPolicy(backoff_initial=1.0, backoff_max=8.0, jitter=0.25)
    assert policy.delay(3, fixed(0.0)) == pytest.approx(4.0 * 0.75)
    assert policy.delay(3, fixed(MID)) == pytest.approx(4.0)
    assert policy.delay(3, fixed(0.999999)) == pytest.approx(4.0 * 1.25, rel=1e-5)


def test_no_jitter_means_exact_delays() -> None:
    policy = RestartPolicy(backoff_initial=0.5, backoff_max=4.0, jitter=0.0)
    assert {policy.delay(2, fixed(r)) for r in (0.0, 0.3, 0.99)} == {1.0}


@given(
    attempt=st.integers(min_value=1, max_value=5000),
    r=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    initial=st.floats(min_value=0.0, max_value=5.0),
    extra=st.floats(min_value=0.0, max_value=100.0),
    jitter=st.floats(min_value=0.0, max_value=1.0),
)
def test_delay_always_within_jitter_bounds_of_the_capped_base(
    attempt: int, r: float, initial: float, extra: float, jitter: float
) -> None:
    policy = RestartPolicy(backoff_initial=initial, backoff_max=initial + extra, jitter=jitter)
    base = min(policy.backoff_max, initial * 2.0 ** min(attempt - 1, 64))  # the cap in _restart
    delay = policy.delay(attempt, fixed(r))
    assert math.isfinite(delay)
    assert base * (1 - jitter) - 1e-9 <= delay <= base * (1 + jitter) + 1e-9


def test_very_many_attempts_do_not_overflow() -> None:
    # Regression: 2.0 ** (attempt - 1) overflowed (OverflowError) past attempt 1025.
    policy = RestartPolicy(backoff_initial=0.1, backoff_max=10.0, jitter=0.0)
    assert policy.delay(2000, fixed(MID)) == 10.0


# -- the budget -------------------------------------------------------------------------------


def test_budget_allows_max_restarts_then_gives_up() -> None:
    budget = RestartBudget(RestartPolicy(max_restarts=3, within=60.0, jitter=0.0))
    delays = [budget.next_delay(now, fixed(MID)) for now in (0.0, 1.0, 2.0)]
    assert delays == pytest.approx([0.1, 0.2, 0.4])
    assert budget.next_delay(3.0, fixed(MID)) is None
    # Giving up does not count as an attempt; it stays given up inside the window.
    assert budget.next_delay(4.0, fixed(MID)) is None
    assert len(budget.attempts) == 3
    assert budget.consecutive == 3


def test_attempts_older_than_the_window_stop_counting() -> None:
    budget = RestartBudget(RestartPolicy(max_restarts=2, within=10.0, jitter=0.0))
    assert budget.next_delay(0.0, fixed(MID)) is not None
    assert budget.next_delay(5.0, fixed(MID)) is not None
    assert budget.next_delay(9.9, fixed(MID)) is None  # two attempts in the last 10 s
    # At t=10 the first attempt is exactly `within` old: still inside the window.
    assert budget.next_delay(10.0, fixed(MID)) is None
    # Just after, it has left the window: one more attempt is allowed...
    assert budget.next_delay(10.01, fixed(MID)) is not None
    # ...and the window is full again (attempts at 5.0 and 10.01).
    assert budget.next_delay(14.0, fixed(MID)) is None
    assert list(budget.attempts) == [5.0, 10.01]


def test_backoff_keeps_growing_across_the_window_until_progress() -> None:
    """Leaving the window frees budget but does not reset the backoff: only progress does."""
    budget = RestartBudget(RestartPolicy(max_restarts=2, within=1.0, jitter=0.0))
    delays = [budget.next_delay(t * 100.0, fixed(MID)) for t in range(4)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8])


def test_progress_resets_count_and_backoff() -> None:
    budget = RestartBudget(RestartPolicy(max_restarts=2, within=60.0, jitter=0.0))
    budget.next_delay(0.0, fixed(MID))
    budget.next_delay(1.0, fixed(MID))
    assert budget.next_delay(2.0, fixed(MID)) is None
    budget.progress()
    assert budget.consecutive == 0
    assert not budget.attempts
    assert budget.next_delay(3.0, fixed(MID)) == pytest.approx(0.1)
    assert budget.next_delay(4.0, fixed(MID)) == pytest.approx(0.2)
    assert budget.next_delay(5.0, fixed(MID)) is None


def test_zero_max_restarts_gives_up_at_once() -> None:
    budget = RestartBudget(RestartPolicy(max_restarts=0))
    assert budget.next_delay(0.0, fixed(MID)) is None
    assert budget.consecutive == 0


def test_a_window_that_never_fills_retries_forever_without_crashing() -> None:
    """``within`` shorter than the gap between attempts: the budget never runs out, and the
    ever-growing attempt count must not overflow the backoff (it did past ~1025 attempts)."""
    policy = RestartPolicy(max_restarts=1, within=1.0, backoff_initial=0.1, backoff_max=10.0)
    budget = RestartBudget(policy)
    now = 0.0
    for _ in range(3000):
        delay = budget.next_delay(now, fixed(0.9))
        assert delay is not None
        assert delay <= 10.0 * 1.2
        now += delay + 1.5
    assert budget.consecutive == 3000


def test_jitter_source_is_called_once_per_attempt() -> None:
    calls = itertools.count()

    def rnd() -> float:
        next(calls)
        return 0.5

    budget = RestartBudget(RestartPolicy(max_restarts=3))
    for now in (0.0, 1.0, 2.0, 3.0):
        budget.next_delay(now, rnd)
    assert next(calls) == 3  # the refused fourth attempt drew no jitter
