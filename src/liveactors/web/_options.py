"""The settings of one live endpoint, checked once when it is built."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Final, TypeAlias

import attrs
from starlette.requests import HTTPConnection

from .._errors import InvalidCommand
from .._protocol.setup import ConfigLike

__all__ = [
    "DEFAULT_AUDIO_BUFFER",
    "DEFAULT_EVENT_BUFFER",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "INPUT_RATE",
    "Authorize",
    "Options",
]

#: The rate of the PCM16 the browser sends (binary frames in).
INPUT_RATE: Final = 16_000
#: Largest frame a client may send: about 8 s of 16 kHz audio, or a long text.
DEFAULT_MAX_MESSAGE_BYTES: Final = 256 * 1024
#: Model audio held for a client that does not keep up: 10 s of 24 kHz PCM16.
DEFAULT_AUDIO_BUFFER: Final = 480_000
#: Other events (transcripts, turn ends...) held for a client that does not keep up.
DEFAULT_EVENT_BUFFER: Final = 256

#: ``authorize(connection)``: the config of the conversation to start (a
#: ``LiveConnectConfig``, a dict, or None for the library's default), or a ``Reject``
#: (returned or raised). Sync or async.
Authorize: TypeAlias = Callable[[HTTPConnection], Awaitable[Any] | Any]


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidCommand(f"{name} must be an int >= 1, not {value!r}")
    return value


@attrs.frozen
class Options:
    """What :func:`~liveactors.web.live_endpoint` was given (see its docstring)."""

    authorize: Authorize | None = None
    config: ConfigLike = None
    allowed_origins: frozenset[str] | None = None
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    keep_for: float = 0.0
    audio_buffer: int = DEFAULT_AUDIO_BUFFER
    event_buffer: int = DEFAULT_EVENT_BUFFER

    @classmethod
    def build(
        cls,
        *,
        authorize: Authorize | None,
        config: ConfigLike,
        allowed_origins: Collection[str] | None,
        max_message_bytes: int,
        keep_for: float,
        audio_buffer: int,
        event_buffer: int,
    ) -> Options:
        """Checked options: InvalidCommand naming the argument that is wrong."""
        if authorize is not None and not callable(authorize):
            raise InvalidCommand("authorize must be a callable or None")
        origins = None
        if allowed_origins is not None:
            if isinstance(allowed_origins, str):
                raise InvalidCommand("allowed_origins must be a collection of origins, not a str")
            origins = frozenset(normalize_origin(o) for o in allowed_origins)
        if isinstance(keep_for, bool) or not isinstance(keep_for, int | float):
            raise InvalidCommand(f"keep_for must be a number of seconds, not {keep_for!r}")
        if not (math.isfinite(keep_for) and keep_for >= 0):
            raise InvalidCommand(f"keep_for must be finite and >= 0, not {keep_for!r}")
        return cls(
            authorize=authorize,
            config=config,
            allowed_origins=origins,
            max_message_bytes=_check_positive_int("max_message_bytes", max_message_bytes),
            keep_for=float(keep_for),
            audio_buffer=_check_positive_int("audio_buffer", audio_buffer),
            event_buffer=_check_positive_int("event_buffer", event_buffer),
        )


def normalize_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, without a trailing slash (``*`` stays ``*``)."""
    if not isinstance(origin, str) or not origin:
        raise InvalidCommand(f"an origin must be a non-empty str, not {origin!r}")
    return origin.strip().rstrip("/").lower()
