"""Every knob of the fake server, with defaults that mimic the real service.

``open_fake_server(**options)`` builds one :class:`ServerOptions`; unknown option names are a
``TypeError``. Protocol durations (connection lifetime, GoAway lead, the early GoAway, session
limits, handle validity) are given in real-service seconds and multiplied by ``time_scale``, so a
test can keep realistic numbers and run them a hundred times faster. Explicit pacing knobs
(``chunk_delay``, ``response_latency``, ``silence_gap``, ``setup_latency``, ``barge_in_delay``,
``reissue_delay``) are taken as given.

Options that default to ``None`` follow the model the session runs on (its generation, see
``_profiles``); a bool or a number forces the behaviour on every model.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any, Final, Literal

import attrs

from ._model import Responder

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


def _delay_range(_: object, attribute: attrs.Attribute[Any], value: tuple[float, float]) -> None:
    low, high = value
    if not 0 <= low <= high:
        raise ValueError(f"{attribute.name} must be (low, high) with 0 <= low <= high")


def _early_goaway(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not (value[0] >= 0 and value[1] >= 0):
        raise ValueError(f"{attribute.name} must be (at, time_left), both >= 0")


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
    #: How a model name the library's model table does not know behaves: "3.8" like
    #: gemini-3.8-live, "3.1" like gemini-3.1-flash-live-preview, "2.5" the old half-cascade
    #: models (TEXT or AUDIO). Names in the table behave as their entry says; shut-down ones
    #: are refused (1008). Also ``FakeServer.backend()``'s default model.
    model_profile: Literal["3.8", "3.1", "2.5"] = attrs.field(
        default="3.8", validator=attrs.validators.in_(("3.8", "3.1", "2.5"))
    )
    #: Served model names (bare or with ``models/``); None serves every name.
    models: frozenset[str] | None = attrs.field(default=None, converter=_keys)
    #: Profile "2.5": refuse TEXT modality (1007) on names that contain ``native-audio``.
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
    #: Pace AUDIO (and avatar VIDEO) output: each chunk waits for the previous one to play at
    #: ``audio_speed`` times real time (gemini-3.8-live streams at about 3.3x).
    pace_audio: bool = False
    audio_speed: float = attrs.field(default=3.3, validator=_positive)

    # -- how the current generation behaves (None: as the session's model does) ------------
    #: Audio ``inlineData`` parts per ``serverContent`` (3.8: 3, else 1).
    audio_parts: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.ge(1))
    )
    #: The output transcription rides in the same message as the audio (3.x: yes).
    transcript_with_audio: bool | None = None
    #: Polite barge-in (3.8: yes): speech interrupts ``barge_in_delay`` seconds after it
    #: starts, and no new model turn starts while the user speaks.
    polite_barge_in: bool | None = None
    barge_in_delay: float = attrs.field(default=0.64, validator=_not_negative)
    #: New input while a BLOCKING call waits drops the call silently (no
    #: ``toolCallCancellation``) and re-issues it under a new id ``reissue_delay`` seconds
    #: later (3.8: yes).
    reissue_blocking_calls: bool | None = None
    reissue_delay: tuple[float, float] = attrs.field(default=(2.6, 3.6), validator=_delay_range)
    #: ``interactionStatus`` (IDLE / IN_PROGRESS) on every ``turnComplete`` (None: on models
    #: whose ``turnComplete`` does not mean idle, gemini-3.8-live-extended-thinking).
    interaction_status: bool | None = None
    #: Refuse ``clientContent`` (1007) once a model turn ran on the connection (None: on
    #: gemini-3.1-flash-live-preview, as observed; 3.8 accepts it throughout).
    refuse_late_client_content: bool | None = None
    #: ``voiceActivity{type, audioOffset}`` when the server VAD sees speech start and end.
    voice_activity: bool = False
    #: A bare ``{}`` frame after every n-th server message (None: never).
    empty_frames: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.ge(1))
    )
    #: A resumable ``sessionResumptionUpdate`` right after ``setupComplete`` even when the setup
    #: has no ``sessionResumption`` (resuming with it works).
    unsolicited_resumption: bool = False
    #: ``(at, time_left)``: ``goAway{timeLeft: time_left}`` ``at`` seconds into every connection,
    #: the connection then closing at the deadline (*scaled*). E.g. ``(1.0, 300.0)``.
    early_goaway: tuple[float, float] | None = attrs.field(default=None, validator=_early_goaway)
    #: Resuming forgets the history a client prefilled with ``clientContent`` (turns sent
    #: without ``turnComplete: true``, or as initial history), as seen on gemini-3.8-live
    #: (None: as the model's table entry says, ``resume_keeps_seed``).
    resume_loses_prefill: bool | None = None

    # -- limits (real-service seconds, multiplied by time_scale) ---------------------------
    #: Connection lifetime; None: unlimited.
    connection_lifetime: float | None = attrs.field(default=600.0, validator=_optional_positive)
    #: ``goAway`` this long before the lifetime ends (0: no goAway).
    goaway_before: float = attrs.field(default=10.0, validator=_not_negative)
    #: Close code and reason when the lifetime ends; None: the endpoint's (Developer API: 1011
    #: "Deadline expired before operation could complete."; Vertex AI: 1000 "The operation was
    #: cancelled.").
    lifetime_close: tuple[int, str] | None = None
    #: Session time limits without ``contextWindowCompression`` (None: unlimited).
    audio_session_limit: float | None = attrs.field(default=900.0, validator=_optional_positive)
    video_session_limit: float | None = attrs.field(default=120.0, validator=_optional_positive)
    #: Context window in tokens; None: 131072 for native-audio models (every model of the
    #: table), 32768 for profile-"2.5" names without ``native-audio``.
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
    #: Vertex AI mode: also serve the ``LlmBidiService`` path (Bearer token, or an API key in
    #: express mode), accept ``transparent`` resumption (``lastConsumedClientMessageIndex``) and
    #: the other Vertex-only fields.
    vertex: bool = False

    #: Multiplies every protocol duration above (0.01: ten-minute connections last 6 s).
    time_scale: float = attrs.field(default=1.0, validator=_positive)

    # -- quota ---------------------------------------------------------------------------------
    #: Concurrent sessions allowed; beyond it a setup is closed 1011 "Resource has been
    #: exhausted (e.g. check quota)." ("close") or the upgrade refused with HTTP 429 ("http").
    max_sessions: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.ge(0))
    )
    max_sessions_refusal: Literal["close", "http"] = attrs.field(
        default="close", validator=attrs.validators.in_(("close", "http"))
    )

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
