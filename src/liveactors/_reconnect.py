"""Reconnecting after a failed connection: how long to back off, or when to give up.

Every failed connection is a restart under the :class:`~liveactors.RestartPolicy` (a budget of
attempts within a time window, reset by progress), except a refusal by the service's
concurrency limit (:class:`~liveactors.ServiceBusy`): those wait longer and have a budget of
their own, so a fleet refused at once does not fail at once. The backoff is a sleep that a stop
requested meanwhile cuts short at its grace.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import attrs
import trio

from ._errors import LiveError, ServiceBusy
from ._restart import RestartBudget, RestartPolicy

__all__ = ["Backoff", "Reconnects"]

log = logging.getLogger("liveactors.supervisor")


@attrs.frozen
class Backoff:
    """The wait before the next connect attempt (its ``attempt`` number, for the event)."""

    delay: float
    attempt: int


class Reconnects:
    """One conversation's reconnects (see the module docstring)."""

    __slots__ = ("_budget", "_rng", "_sleep", "busy_retries", "name", "policy", "reconnects")

    def __init__(self, name: str, policy: RestartPolicy, rng: Callable[[], float]) -> None:
        self.name = name
        self.policy = policy
        self._budget = RestartBudget(policy)
        self._rng = rng
        #: The backoff in progress, if any.
        self._sleep: trio.CancelScope | None = None
        #: Reconnects after a failure (handoffs not included).
        self.reconnects = 0
        #: Retries after the service's concurrency limit refused a connect.
        self.busy_retries = 0

    def progress(self) -> None:
        """The connection made progress: the budget and the backoff start over."""
        self._budget.progress()

    def after(self, failure: LiveError, now: float) -> Backoff:
        """The backoff after ``failure``; raises it when the budget is spent."""
        budget = self._budget
        if isinstance(failure, ServiceBusy):
            delay = budget.busy_delay(self._rng)
            if delay is None:
                log.warning("%s: the service's concurrency limit did not lift", self.name)
                raise failure
            self.busy_retries += 1
            log.info("%s: the service is at its concurrency limit; retrying", self.name)
            return Backoff(delay, budget.busy)
        delay = budget.next_delay(now, self._rng)
        if delay is None:
            log.warning(
                "%s: giving up after %d reconnect attempts", self.name, self.policy.max_restarts
            )
            raise failure
        self.reconnects += 1
        return Backoff(delay, budget.consecutive)

    async def sleep(self, delay: float, *, until: float = math.inf) -> None:
        """Back off for ``delay`` seconds, but not past ``until`` (a stop's grace)."""
        with trio.CancelScope(deadline=until) as self._sleep:
            await trio.sleep(delay)
        self._sleep = None

    def cut_short(self, until: float) -> None:
        """A stop was requested: a backoff in progress ends at ``until`` at the latest."""
        if self._sleep is not None:
            self._sleep.deadline = min(self._sleep.deadline, until)
