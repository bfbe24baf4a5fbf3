"""Checks of the orchestrator's arguments, shared by ``open_orchestrator`` and ``spawn``: each
raises :class:`~liveactors.InvalidCommand` naming the argument, before anything starts."""

from __future__ import annotations

import math
from collections.abc import Callable

from ._conversation import Conversation
from ._errors import InvalidCommand
from ._restart import RestartPolicy

__all__ = ["check_duration", "check_restart", "instantiate"]


def check_duration(what: str, value: object) -> None:
    """``value`` is a number of seconds >= 0 (not NaN, not a bool)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or value < 0
    ):
        raise InvalidCommand(f"{what} must be a number of seconds >= 0, not {value!r}")


def check_restart(restart: object) -> None:
    """``restart`` is a :class:`~liveactors.RestartPolicy`."""
    if not isinstance(restart, RestartPolicy):
        raise InvalidCommand(f"restart must be a RestartPolicy, not {type(restart).__name__}")


def instantiate(
    actor: type[Conversation] | Callable[[], Conversation] | Conversation,
) -> Conversation:
    """The conversation actor ``spawn`` runs: ``actor`` itself, or what calling it makes."""
    if isinstance(actor, Conversation):
        return actor
    if isinstance(actor, type) and not issubclass(actor, Conversation):
        raise InvalidCommand(f"actor must be a Conversation subclass, not {actor.__name__}")
    if not callable(actor):
        raise InvalidCommand(
            f"actor must be a Conversation subclass, instance or factory, not {actor!r}"
        )
    instance = actor()
    if not isinstance(instance, Conversation):
        raise InvalidCommand(
            f"actor factory must return a Conversation, not {type(instance).__name__}"
        )
    return instance
