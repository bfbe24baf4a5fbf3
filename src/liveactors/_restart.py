"""When to reconnect, and when to give up (pure: no trio, no clock of its own).

Every reconnect attempt, a refused resume included, counts toward ``max_restarts`` within
``within`` seconds, until a connection makes progress (setup completed and then a turn completed,
or a resumable handle arrived while no question was waiting for its answer), which resets the count
and the backoff. A handle in the middle of an unanswered question is not progress: a service that
hands one out and then drops the line before every answer would otherwise reset the count forever.
So a service that drops the line after every turn never kills a conversation that keeps moving,
while one that never lets a turn finish fails it after ``max_restarts`` tries. A GoAway handoff is
planned, not a restart, and never counts.

The service's concurrency limit (:class:`~liveactors.ServiceBusy`) is not a failure of the
conversation either: it is retried after a longer delay (2 s doubling to 60 s, jittered by half
either way so a fleet refused at once does not come back at once) that leaves the budget alone;
only a limit that does not lift for about twenty minutes fails the conversation.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import attrs

from ._errors import InvalidCommand

__all__ = ["RestartBudget", "RestartPolicy"]


#: Backoff exponents stop growing here: ``2.0 ** 1024`` overflows a float, and a policy whose
#: intensity window never fills (``within`` shorter than the gap between attempts) keeps counting
#: consecutive attempts for as long as the service stays down.
_MAX_EXPONENT = 64

#: Backoff after the service said it is at its concurrency limit.
BUSY_INITIAL = 2.0
BUSY_MAX = 60.0
#: Refusals in a row, without progress, after which the conversation fails after all (about
#: 20 minutes of waiting): a limit that never lifts is a problem for the operator.
BUSY_GIVE_UP = 25


def _non_negative(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    # ``not value >= 0`` also refuses NaN, which compares false with everything and would
    # otherwise slip through as a delay or a window that no comparison can ever end.
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise InvalidCommand(f"RestartPolicy.{attribute.name} must be a number >= 0, not {value!r}")


@attrs.frozen
class RestartPolicy:
    """Exponential backoff with jitter and an intensity limit for reconnects."""

    max_restarts: int = attrs.field(default=5, validator=_non_negative)
    within: float = attrs.field(default=60.0, validator=_non_negative)
    backoff_initial: float = attrs.field(default=0.1, validator=_non_negative)
    backoff_max: float = attrs.field(default=10.0, validator=_non_negative)
    jitter: float = attrs.field(default=0.2, validator=_non_negative)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.max_restarts, int):
            raise InvalidCommand(
                f"RestartPolicy.max_restarts must be an int, not {self.max_restarts!r}"
            )
        if self.jitter > 1:
            raise InvalidCommand(
                f"RestartPolicy.jitter must be between 0 and 1, not {self.jitter!r}"
            )
        if self.backoff_max < self.backoff_initial:
            raise InvalidCommand(
                "RestartPolicy.backoff_max must be >= backoff_initial "
                f"({self.backoff_max!r} < {self.backoff_initial!r})"
            )

    def delay(self, attempt: int, random: Callable[[], float]) -> float:
        """Backoff before attempt number ``attempt`` (1-based), with jitter from ``random()``
        in [0, 1)."""
        exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
        base = min(self.backoff_max, self.backoff_initial * 2.0**exponent)
        return max(0.0, base * (1.0 + self.jitter * (2.0 * random() - 1.0)))


@attrs.define
class RestartBudget:
    """The running count of reconnect attempts of one conversation."""

    policy: RestartPolicy
    #: Times of the attempts inside the intensity window.
    attempts: deque[float] = attrs.field(factory=deque)
    #: Attempts since the last progress (drives the backoff exponent).
    consecutive: int = 0
    #: Attempts refused by the service's concurrency limit since the last progress.
    busy: int = 0

    def next_delay(self, now: float, random: Callable[[], float]) -> float | None:
        """Count one more attempt at ``now``: its backoff delay, or None when the budget is
        spent and the conversation should fail."""
        window_start = now - self.policy.within
        while self.attempts and self.attempts[0] < window_start:
            self.attempts.popleft()
        if len(self.attempts) >= self.policy.max_restarts:
            return None
        self.attempts.append(now)
        self.consecutive += 1
        return self.policy.delay(self.consecutive, random)

    def busy_delay(self, random: Callable[[], float]) -> float | None:
        """The delay before retrying after the service's concurrency limit refused us (it
        does not count toward ``max_restarts``), or None after :data:`BUSY_GIVE_UP` refusals
        in a row."""
        if self.busy >= BUSY_GIVE_UP:
            return None
        self.busy += 1
        base = min(BUSY_MAX, BUSY_INITIAL * 2.0 ** min(self.busy - 1, _MAX_EXPONENT))
        return base * (0.5 + random())

    def progress(self) -> None:
        """The connection made progress: forget earlier failures."""
        self.attempts.clear()
        self.consecutive = 0
        self.busy = 0
