"""What a supervised conversation asks the service for, given the user's config and backend.

:func:`session_setup` is run once per conversation, at ``spawn``, before any socket opens: it
applies the library's defaults, checks the result against what the model is known to accept
(:mod:`liveactors._models`) and encodes the ``setup`` message, so every error about the config
is raised there, naming the field.
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs
from google.genai import types

from ._models import (
    ModelInfo,
    Platform,
    check_config,
    default_modalities,
    default_output_transcription,
    lookup,
    modalities_of,
)
from ._protocol.setup import ConfigLike, coerce_config, encode_setup

__all__ = ["SessionSetup", "live_config", "manual_vad", "session_setup"]


class _Backend(Protocol):
    @property
    def model(self) -> str: ...
    @property
    def model_resource(self) -> str: ...
    @property
    def platform(self) -> Platform: ...
    @property
    def transparent_resumption(self) -> bool: ...


@attrs.frozen
class SessionSetup:
    """A conversation's checked config, the handle it starts from and its ``setup`` message."""

    config: types.LiveConnectConfig
    handle: str | None = attrs.field(repr=False)
    setup: dict[str, Any] = attrs.field(repr=False)
    #: What the library knows of the model (None: a model it does not know).
    model: ModelInfo | None


def session_setup(config: ConfigLike, backend: _Backend) -> SessionSetup:
    """Defaults, checks and the setup message for ``config`` on ``backend`` (see module doc).

    Raises :class:`~liveactors.InvalidConfig` for a config the model is known to refuse and
    :class:`~liveactors.InvalidCommand` for one that cannot be encoded at all.
    """
    cfg, handle = live_config(
        config,
        model=backend.model,
        transparent=backend.transparent_resumption,
    )
    check_config(backend.model, cfg, platform=backend.platform)
    setup = encode_setup(cfg, backend.model_resource, platform=backend.platform)
    return SessionSetup(cfg, handle, setup, lookup(backend.model))


def live_config(
    config: ConfigLike, *, model: str = "", transparent: bool = False
) -> tuple[types.LiveConnectConfig, str | None]:
    """The config a supervised conversation connects with, and the handle it starts from.

    * Session resumption is always on (the supervisor needs handles), transparent where the
      backend supports it (Vertex AI), unless the config says otherwise.
    * Sliding-window context compression is on unless the config sets
      ``context_window_compression`` itself, so sessions are not capped at 15 (audio) or 2
      (video) minutes. An empty ``ContextWindowCompressionConfig()`` opts out.
    * Output transcription is requested for AUDIO answers (every current model answers in
      AUDIO only), so ``Reply.text`` and :class:`~liveactors.events.OutputTranscript` carry
      the model's words. Passing ``output_audio_transcription=None`` explicitly opts out.
    * A transcription model (``gemini-3.5-transcribe-live``) is asked for TEXT when the config
      names no modality.
    """
    cfg = coerce_config(config)
    update: dict[str, Any] = {}
    handle = None
    resumption = cfg.session_resumption
    if resumption is None:
        resumption = types.SessionResumptionConfig()
    elif resumption.handle:
        handle = resumption.handle
        resumption = resumption.model_copy(update={"handle": None})
    if transparent and resumption.transparent is None:
        resumption = resumption.model_copy(update={"transparent": True})
    if resumption is not cfg.session_resumption:
        update["session_resumption"] = resumption
    compression = cfg.context_window_compression
    if compression is None:
        update["context_window_compression"] = types.ContextWindowCompressionConfig(
            sliding_window=types.SlidingWindow()
        )
    elif not compression.model_dump(exclude_none=True):
        update["context_window_compression"] = None  # the explicit opt-out
    modalities = default_modalities(model)
    if modalities and not modalities_of(cfg):
        # A transcription model writes its transcript as TEXT: ask for that, not the default.
        update["response_modalities"] = modalities
    if (
        cfg.output_audio_transcription is None
        and "output_audio_transcription" not in cfg.model_fields_set
        and default_output_transcription(model, cfg)
    ):
        update["output_audio_transcription"] = types.AudioTranscriptionConfig()
    return (cfg.model_copy(update=update) if update else cfg), handle


def manual_vad(config: types.LiveConnectConfig) -> bool:
    """Whether the config turns server-side VAD off (the client sends activity signals)."""
    rtc = config.realtime_input_config
    aad = rtc.automatic_activity_detection if rtc is not None else None
    return bool(aad is not None and aad.disabled)
