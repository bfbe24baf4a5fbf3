"""Every knob of the fake server, with defaults that mimic the real service.

``open_fake_server(**options)`` builds one :class:`ServerOptions`; unknown option names are a
``TypeError``. Protocol durations (connection lifetime, GoAway lead, session limits, handle
validity) are given in real-service seconds and multiplied by ``time_scale``, so a test can keep
realistic numbers and run them a hundred times faster. Explicit pacing knobs (``chunk_delay``,
``response_latency``, ``silence_gap``, ``setup_latency``) are taken as given.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any, Final, Literal

import attrs

from ._model import Responder
from ._wire import DEADLINE_REASON

__all__ = ["TEST_API_KEY", "TEST_AUTH_TOKEN", "ServerOptions"]

#: The API key the fake server accepts by default.
TEST_API_KEY: Final = "test-key"
#: The ephemeral token the fake server accepts by default (``BidiGenerateContentConstrained``).
TEST_AUTH_TOKEN: Final = "auth_tokens/test-token"


def _keys(value: Iterable[str] | str | None) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return frozenset({value})
    return frozenset(value)


def _positive(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, not {value!r}")


def _not_negative(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be >= 0, not {value!r}")


def _optional_positive(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be > 0 or None, not {value!r}")


@attrs.frozen(kw_only=True)
class ServerOptions:
    """Options of :func:`liveactors.testing.open_fake_server` (see ``docs/fake-server.md``)."""

    # -- where it listens ------------------------------------------------------------------
    #: Interface and port of the TCP listener (port 0: any free port).
    host: str = "127.0.0.1"
    port: int = 0
    #: False: no TCP listener at all, only in-memory connections through ``FakeServer.dial``
    #: (what MockClock-autojump tests use).
    listen: bool = True
    #: Serve wss:// with this server-side context.
    ssl_context: ssl.SSLContext | None = None
    #: Serve wss:// with a throwaway certificate for 127.0.0.1/localhost (needs ``trustme``);
    #: clients get a trusting context from ``FakeServer.client_ssl_context``.
    tls: bool = False

    # -- authentication --------------------------------------------------------------------
    #: Accepted API keys (``x-goog-api-key`` or ``?key=``); None accepts any non-empty key.
    api_keys: frozenset[str] | None = attrs.field(
        default=frozenset({TEST_API_KEY}), converter=_keys
    )
    #: Accepted ephemeral tokens (``Authorization: Token`` or ``?access_token=``, Constrained
    #: method); None accepts any ``auth_tokens/...`` token.
    auth_tokens: frozenset[str] | None = attrs.field(
        default=frozenset({TEST_AUTH_TOKEN}), converter=_keys
    )
    #: How a missing or unknown credential is refused: "close" accepts the upgrade and closes
    #: 1007 on the first message (as observed on the real service), 401/403 refuse the upgrade.
    auth_failure: Literal["close", 401, 403] = attrs.field(
        default="close", validator=attrs.validators.in_(("close", 401, 403))
    )

    # -- models and setup ------------------------------------------------------------------
    #: Known model names (with or without ``models/``); None accepts any ``models/...`` name.
    models: frozenset[str] | None = attrs.field(default=None, converter=_keys)
    #: Refuse TEXT modality (1007) on models whose name contains ``native-audio``.
    native_audio_refuses_text: bool = True
    #: Seconds between receiving ``setup`` and sending ``setupComplete``.
    setup_latency: float = attrs.field(default=0.0, validator=_not_negative)
    #: Close 1007 when a message arrives during ``setup_latency`` (before ``setupComplete``);
    #: by default such messages are queued and processed after it.
    strict_before_setup: bool = False

    # -- framing ---------------------------------------------------------------------------
    #: Server frames as "binary" (what the real service sends) or "text".
    frame_type: Literal["binary", "text"] = attrs.field(
        default="binary", validator=attrs.validators.in_(("binary", "text"))
    )
    max_message_size: int = 16 * 2**20

    # -- the deterministic model -----------------------------------------------------------
    #: Scripts the model; None: :func:`~liveactors.testing.echo_responder`.
    responder: Responder | None = None
    #: Pieces each reply text is split into (one model chunk each).
    chunks: int = attrs.field(default=2, validator=attrs.validators.ge(1))
    #: Seconds between two chunks of a reply.
    chunk_delay: float = attrs.field(default=0.0, validator=_not_negative)
    #: Seconds between the end of user input and the first chunk.
    response_latency: float = attrs.field(default=0.0, validator=_not_negative)
    #: Seconds of 24 kHz audio per chunk in AUDIO modality.
    audio_chunk_seconds: float = attrs.field(default=0.1, validator=_positive)
    #: Automatic VAD: seconds without speech that end a user turn (``silenceDurationMs`` in the
    #: setup overrides it).
    silence_gap: float = attrs.field(default=0.5, validator=_positive)
    #: Automatic VAD: a chunk with a sample at least this loud (absolute 16-bit value) is speech.
    vad_threshold: int = attrs.field(default=100, validator=attrs.validators.ge(1))

    # -- limits (real-service seconds, multiplied by time_scale) ---------------------------
    #: Connection lifetime; None: unlimited.
    connection_lifetime: float | None = attrs.field(default=600.0, validator=_optional_positive)
    #: ``goAway`` this long before the lifetime ends (0: no goAway).
    goaway_before: float = attrs.field(default=10.0, validator=_not_negative)
    #: Close code and reason when the lifetime ends (Vertex-like: ``(1000, "")``).
    lifetime_close: tuple[int, str] = (1011, DEADLINE_REASON)
    #: Session time limits without ``contextWindowCompression`` (None: unlimited).
    audio_session_limit: float | None = attrs.field(default=900.0, validator=_optional_positive)
    video_session_limit: float | None = attrs.field(default=120.0, validator=_optional_positive)
    #: Context window in tokens; None: 131072 for native-audio models, 32768 otherwise.
    context_window: int | None = None

    # -- resumption ------------------------------------------------------------------------
    #: "per_turn": a fresh handle after setupComplete and after every turn at idle, ``{}`` while
    #: busy, each handle a snapshot. "once": one handle per connection, right after setupComplete,
    #: restoring the session as it was when the connection ended.
    handle_mode: Literal["per_turn", "once"] = attrs.field(
        default="per_turn", validator=attrs.validators.in_(("per_turn", "once"))
    )
    #: Handle lifetime after the session's last connection ended.
    handle_validity: float = attrs.field(default=7200.0, validator=_positive)
    #: Refuse (1011) a resume while the session's previous connection is still open.
    resume_while_open_fails: bool = True
    #: Vertex semantics: ``transparent`` resumption with ``lastConsumedClientMessageIndex``.
    vertex: bool = False

    #: Multiplies every protocol duration above (0.01: ten-minute connections last 6 s).
    time_scale: float = attrs.field(default=1.0, validator=_positive)

    # -- robustness ------------------------------------------------------------------------
    #: Refuse upgrades with HTTP 429 beyond this many open connections.
    max_connections: int | None = None
    handshake_timeout: float = attrs.field(default=10.0, validator=_positive)
    close_timeout: float = attrs.field(default=2.0, validator=_positive)
    #: Keep every client / server message in the log (turn off for long benchmarks: streamed
    #: audio adds up). Connections, turns and notes are always recorded.
    record_client_messages: bool = True
    record_server_messages: bool = True

    def scaled(self, seconds: float) -> float:
        """A protocol duration after ``time_scale``."""
        return seconds * self.time_scale
