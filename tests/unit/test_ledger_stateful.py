"""Random conversations with random faults: the ledger against the model service.

Hypothesis drives a ``Driver`` (the supervisor's part) and a ``ModelServer`` with random
questions, deliveries, generation steps, drops (with refused reconnects), GoAway handoffs and
deadlines, and expired handles. After every step the service must never hold a user input
twice; at the end, once everything settles, every question must have been answered exactly
once, in order, with its own answer, and the service's history must hold all of it.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from ledger_model import Driver, Mode, ModelServer

from liveactors._protocol.ledger import HandleMode


def machine(mode: Mode, *, expire: bool, learn_once_first: bool = False) -> type[Any]:
    class Conversation(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.d = Driver(ModelServer(mode))
            self.n = 0
            if learn_once_first:
                for _ in range(2):
                    self.ask()
                    self.d.settle()
                assert self.d.ledger.mode is HandleMode.ONCE

        @rule()
        def ask(self) -> None:
            self.n += 1
            self.d.ask(f"q{self.n}")

        @precondition(lambda self: self.d.in_flight)
        @rule()
        def deliver(self) -> None:
            self.d.deliver()

        @rule()
        def step(self) -> None:
            self.d.step()

        @rule(refused=st.integers(min_value=0, max_value=2))
        def drop(self, refused: int) -> None:
            self.d.drop(refused=refused)

        @precondition(lambda self: not self.d.going_away)
        @rule()
        def go_away(self) -> None:
            self.d.go_away()

        @precondition(lambda self: self.d.handoff_ready())
        @rule()
        def handoff(self) -> None:
            self.d.handoff()

        @precondition(lambda self: self.d.going_away)
        @rule()
        def deadline(self) -> None:
            self.d.handoff(deadline=True)

        if expire:

            @rule()
            def expire_handles(self) -> None:
                self.d.server.expire()

        @invariant()
        def never_holds_input_twice(self) -> None:
            self.d.check_no_duplicate_input()

        @invariant()
        def transcript_within_its_limit(self) -> None:
            assert len(self.d.ledger.transcript) <= self.d.ledger.transcript_limit

        def teardown(self) -> None:
            self.d.settle()
            self.d.check_settled()

    return Conversation


_COMMON: dict[str, Any] = {
    "stateful_step_count": 40,
    "deadline": None,
    "database": None,
    "derandomize": True,
    "suppress_health_check": list(HealthCheck),
}
PASSING = settings(max_examples=150, **_COMMON)


def run(mode: Mode, config: settings, **options: bool) -> None:
    cls = machine(mode, **options)
    cls.TestCase.settings = config
    cls.TestCase().runTest()


@pytest.mark.parametrize("mode", ["per_turn", "transparent"])
def test_random_faults_lose_and_double_nothing(mode: Mode) -> None:
    run(mode, PASSING, expire=False)


def test_random_faults_against_a_once_service_whose_mode_is_known() -> None:
    run("once", PASSING, expire=False, learn_once_first=True)


def test_random_faults_with_expired_handles() -> None:
    run("per_turn", PASSING, expire=True)


def test_random_faults_against_a_once_service_from_the_start() -> None:
    run("once", PASSING, expire=False)
