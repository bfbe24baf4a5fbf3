"""What a supervised conversation asks the service for, given the user's config."""

from __future__ import annotations

from typing import Any

from google.genai import types

from ._protocol.setup import ConfigLike, coerce_config

__all__ = ["live_config", "manual_vad"]


def live_config(config: ConfigLike) -> tuple[types.LiveConnectConfig, str | None]:
    """The config a supervised conversation connects with, and the handle it starts from.

    Session resumption is always on (the supervisor needs handles); sliding-window context
    compression is on unless the config sets ``context_window_compression`` itself, so sessions
    are not capped at 15 (audio) or 2 (video) minutes. An empty
    ``ContextWindowCompressionConfig()`` opts out: no compression is requested at all.
    """
    cfg = coerce_config(config)
    update: dict[str, Any] = {}
    handle = None
    if cfg.session_resumption is None:
        update["session_resumption"] = types.SessionResumptionConfig()
    elif cfg.session_resumption.handle:
        handle = cfg.session_resumption.handle
        update["session_resumption"] = cfg.session_resumption.model_copy(update={"handle": None})
    compression = cfg.context_window_compression
    if compression is None:
        update["context_window_compression"] = types.ContextWindowCompressionConfig(
            sliding_window=types.SlidingWindow()
        )
    elif not compression.model_dump(exclude_none=True):
        update["context_window_compression"] = None  # the explicit opt-out
    return (cfg.model_copy(update=update) if update else cfg), handle


def manual_vad(config: types.LiveConnectConfig) -> bool:
    """Whether the config turns server-side VAD off (the client sends activity signals)."""
    rtc = config.realtime_input_config
    aad = rtc.automatic_activity_detection if rtc is not None else None
    return bool(aad is not None and aad.disabled)
