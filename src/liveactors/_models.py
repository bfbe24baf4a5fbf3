"""What each known Live model accepts, in one table, checked before a socket opens (sans-IO).

The Live API refuses a setup it does not like by closing the socket (1007 invalid argument, 1008
unknown or retired model), long after the code that built the config has returned. This module
holds what is publicly documented about each model generation, so :func:`check_config` can say
*which* field is wrong, for *which* model, and what to use instead, at ``spawn``.

The table is the one place that knows model generations: the next one is a new row. A name not
in the table passes through unchecked, so a model works the day it ships. Sources: the Gemini API
model pages and deprecation list (ai.google.dev/gemini-api/docs/models, .../deprecations) and the
Vertex AI Live API guides; ``docs/models.md`` is the user-facing account.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

import attrs
from google.genai import types

from ._errors import InvalidConfig

__all__ = [
    "FAKE_TEXT_MODEL",
    "KNOWN_MODELS",
    "RECOMMENDED",
    "ModelInfo",
    "Platform",
    "Status",
    "Thinking",
    "base_name",
    "check_config",
    "default_modalities",
    "default_output_transcription",
    "lookup",
    "modalities_of",
]

#: The recommended Live model (GA since 2026-09).
RECOMMENDED: Final = "gemini-3.8-live"

#: A model only the fake server serves: the retired half-cascade generation, which answered in
#: TEXT (or AUDIO) with blocking tools, kept so tests can exercise text answers
#: (:class:`~liveactors.events.TextDelta`). The real service refuses this name.
FAKE_TEXT_MODEL: Final = "fake-half-cascade-live"


class Status(enum.Enum):
    """Where a model is in its life."""

    GA = "ga"
    PREVIEW = "preview"
    LEGACY = "legacy"
    #: Shut down by the service: every setup naming it is refused.
    RETIRED = "retired"
    #: Served only by the fake server of :mod:`liveactors.testing`, never by the service.
    FAKE = "fake"


class Thinking(enum.Enum):
    """Which thinking control a model takes, if any."""

    NONE = "none"
    BUDGET = "budget"
    LEVEL = "level"


class Platform(enum.Enum):
    """Which endpoint serves a model."""

    DEVELOPER = "developer"
    VERTEX = "vertex"


_BOTH: Final = frozenset({Platform.DEVELOPER, Platform.VERTEX})


@attrs.frozen
class ModelInfo:
    """What one Live model accepts and how it behaves by default."""

    name: str
    status: Status
    #: Response modalities it can answer in (one per session).
    modalities: frozenset[str] = frozenset({"AUDIO"})
    thinking: Thinking = Thinking.NONE
    #: Thinking levels it accepts when ``thinking`` is LEVEL (empty: any).
    thinking_levels: frozenset[str] = frozenset()
    affective_dialog: bool = False
    #: "no": refused; "optional": on or off; "always": on, and ``proactive_audio=False`` refused.
    proactive_audio: str = "no"
    #: Whether NON_BLOCKING function declarations are accepted.
    async_calls: bool = False
    #: Whether a declaration without ``behavior`` runs NON_BLOCKING (the 3.8 generation).
    non_blocking_default: bool = False
    #: The ``turnCoverage`` the service applies when the config does not set one.
    turn_coverage: str = "TURN_INCLUDES_ONLY_ACTIVITY"
    #: Speech-to-text only: no model turns, only input transcription.
    transcription_only: bool = False
    #: Live avatars (VIDEO modality with ``avatar_config``), Vertex only.
    avatars: bool = False
    #: Whether ``turnComplete`` can come while the model is still busy (watch
    #: ``interactionStatus``).
    turn_complete_not_idle: bool = False
    #: Whether ``clientContent`` is accepted after the session started (3.1 takes it only as
    #: initial history: text then goes as ``realtimeInput.text``).
    client_content_mid_session: bool = True
    #: Whether a resumed session keeps the initial history it was seeded with (the 3.8
    #: generation was seen to lose it: the library then seeds it again after a resume).
    resume_keeps_seed: bool = True
    platforms: frozenset[Platform] = _BOTH
    #: What to use instead (retired, legacy or refused settings).
    instead: str = RECOMMENDED
    #: The date a retired model was shut down.
    shut_down: str | None = None


def _retired(name: str, when: str, instead: str = RECOMMENDED) -> ModelInfo:
    return ModelInfo(name, Status.RETIRED, modalities=frozenset(), instead=instead, shut_down=when)


_NATIVE_AUDIO_25: Final = {
    "thinking": Thinking.BUDGET,
    "affective_dialog": True,
    "proactive_audio": "optional",
    "async_calls": True,
}

_38: Final = {
    "resume_keeps_seed": False,
    "proactive_audio": "always",
    "async_calls": True,
    "non_blocking_default": True,
    "turn_coverage": "TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO",
    "avatars": True,
}

#: Every Live model this version of liveactors knows, by bare name.
KNOWN_MODELS: Final[Mapping[str, ModelInfo]] = {
    info.name: info
    for info in (
        ModelInfo(RECOMMENDED, Status.GA, **_38),  # type: ignore[arg-type]
        ModelInfo(
            "gemini-3.8-live-extended-thinking",
            Status.GA,
            thinking=Thinking.LEVEL,
            thinking_levels=frozenset({"LOW", "MEDIUM", "HIGH"}),
            turn_complete_not_idle=True,
            **_38,  # type: ignore[arg-type]
        ),
        ModelInfo(
            "gemini-3.1-flash-live-preview",
            Status.LEGACY,
            thinking=Thinking.LEVEL,
            client_content_mid_session=False,
            turn_coverage="TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO",
        ),
        ModelInfo(
            "gemini-3.5-transcribe-live",
            Status.GA,
            modalities=frozenset({"TEXT"}),
            transcription_only=True,
        ),
        ModelInfo(
            "gemini-2.5-flash-native-audio-preview-12-2025",
            Status.PREVIEW,
            platforms=frozenset({Platform.DEVELOPER}),
            **_NATIVE_AUDIO_25,  # type: ignore[arg-type]
        ),
        ModelInfo(
            "gemini-2.5-flash-native-audio-preview-09-2025",
            Status.PREVIEW,
            platforms=frozenset({Platform.DEVELOPER}),
            **_NATIVE_AUDIO_25,  # type: ignore[arg-type]
        ),
        ModelInfo(
            "gemini-live-2.5-flash-native-audio",
            Status.GA,
            platforms=frozenset({Platform.VERTEX}),
            **_NATIVE_AUDIO_25,  # type: ignore[arg-type]
        ),
        ModelInfo(
            FAKE_TEXT_MODEL,
            Status.FAKE,
            modalities=frozenset({"TEXT", "AUDIO"}),
            thinking=Thinking.BUDGET,
            async_calls=True,
        ),
        _retired("gemini-live-2.5-flash-preview", "2025-12-09"),
        _retired("gemini-2.0-flash-live-001", "2025-12-09"),
        # A superseded preview: the service no longer serves it under this name.
        _retired("gemini-2.5-flash-preview-native-audio-dialog", "2025"),
        _retired("gemini-2.5-flash-exp-native-audio-thinking-dialog", "2025"),
    )
}


def base_name(model: str) -> str:
    """The bare model name of any spelling: ``models/x``, ``publishers/google/models/x`` and
    ``projects/p/locations/l/publishers/google/models/x`` all give ``x``."""
    return model.rsplit("/", 1)[-1]


def lookup(model: str) -> ModelInfo | None:
    """The table's entry for ``model`` (any spelling), or None for a name it does not know."""
    return KNOWN_MODELS.get(base_name(model))


def default_output_transcription(model: str, config: types.LiveConnectConfig) -> bool:
    """Whether to request output transcription for ``config`` on ``model`` by default: every
    model answering in AUDIO (all current ones) or with a speaking avatar, so that text is
    there out of the box."""
    info = lookup(model)
    if info is not None and info.transcription_only:
        return False
    modalities = modalities_of(config)
    if modalities:
        return "AUDIO" in modalities or "VIDEO" in modalities  # an avatar speaks too
    # No modality set: the service answers in AUDIO, except on a model that only writes text.
    return info is None or "AUDIO" in info.modalities


def default_modalities(model: str) -> list[str] | None:
    """The response modalities to ask for when the config names none: TEXT for a
    transcription model (it only writes), else None (the service answers in AUDIO)."""
    info = lookup(model)
    if info is not None and info.transcription_only:
        return sorted(info.modalities)
    return None


def check_config(model: str, config: types.LiveConnectConfig, *, platform: Platform) -> None:
    """Raise :class:`~liveactors.InvalidConfig` if ``model`` is retired or is known to refuse
    ``config`` on ``platform``; names the table does not know pass unchecked."""
    info = lookup(model)
    if info is None:
        return
    name = info.name
    if info.status is Status.RETIRED:
        raise InvalidConfig(
            f"model {name!r} was shut down by the service ({info.shut_down}); "
            f"use {info.instead!r} instead",
            field="model",
            model=name,
            instead=info.instead,
        )
    if platform not in info.platforms:
        where = "Vertex AI" if Platform.VERTEX in info.platforms else "the Gemini Developer API"
        instead = RECOMMENDED if name != RECOMMENDED else ""
        raise InvalidConfig(
            f"model {name!r} is only served on {where}; use {instead!r} here, or "
            f"{'VertexBackend' if Platform.VERTEX in info.platforms else 'GeminiBackend'}",
            field="model",
            model=name,
            instead=instead,
        )
    _check_modalities(info, config, platform)
    _check_thinking(info, config)
    if config.enable_affective_dialog and not info.affective_dialog:
        _refuse(
            info,
            "enable_affective_dialog",
            "affective dialog is not available (the 3.x models removed it)",
            "leave enable_affective_dialog unset, or use "
            "'gemini-2.5-flash-native-audio-preview-12-2025'",
        )
    proactive = config.proactivity.proactive_audio if config.proactivity is not None else None
    if proactive is not None:
        if info.proactive_audio == "no":
            _refuse(info, "proactivity.proactive_audio", "proactive audio is not available", "")
        if info.proactive_audio == "always" and proactive is False:
            _refuse(
                info,
                "proactivity.proactive_audio",
                "proactive audio is always on and cannot be turned off",
                "leave proactivity unset",
            )
    if info.transcription_only:
        if config.tools:
            _refuse(info, "tools", "a transcription model calls no tools", "leave tools unset")
        if config.output_audio_transcription is not None:
            _refuse(
                info,
                "output_audio_transcription",
                "a transcription model does not speak",
                "use input_audio_transcription",
            )
    if not info.async_calls:
        for fn in _declarations(config):
            if _enum_name(fn.behavior) == "NON_BLOCKING":
                _refuse(
                    info,
                    f"tools[].function_declarations[{fn.name!r}].behavior",
                    "asynchronous (NON_BLOCKING) function calls are not supported",
                    f"leave behavior unset, or use {RECOMMENDED!r}",
                )
    if config.avatar_config is not None and not info.avatars:
        _refuse(info, "avatar_config", "live avatars are not available", f"use {RECOMMENDED!r}")


def _check_modalities(info: ModelInfo, config: types.LiveConnectConfig, platform: Platform) -> None:
    modalities = modalities_of(config)
    for modality in modalities:
        if modality == "VIDEO" and info.avatars:
            if platform is not Platform.VERTEX:
                _refuse(
                    info,
                    "response_modalities",
                    "VIDEO (live avatar) output is only available on Vertex AI",
                    "use VertexBackend with avatar_config",
                )
            if config.avatar_config is None:
                _refuse(
                    info,
                    "avatar_config",
                    "VIDEO output needs an avatar",
                    "set avatar_config (avatar_name or customized_avatar)",
                )
            continue
        if modality not in info.modalities:
            answers = " or ".join(sorted(info.modalities))
            hint = (
                "omit response_modalities (AUDIO) and read the text from OutputTranscript "
                "events or Reply.text; liveactors requests output transcription by default"
                if modality == "TEXT"
                else f"use {answers!r}"
            )
            _refuse(info, "response_modalities", f"it answers only in {answers}", hint)


def _check_thinking(info: ModelInfo, config: types.LiveConnectConfig) -> None:
    thinking = config.thinking_config
    if thinking is None and config.generation_config is not None:
        thinking = config.generation_config.thinking_config
    if thinking is None:
        return
    budget = thinking.thinking_budget
    level = _enum_name(thinking.thinking_level) if thinking.thinking_level is not None else None
    if info.thinking is Thinking.NONE and (budget is not None or level is not None):
        _refuse(
            info,
            "thinking_config",
            "thinking is not configurable",
            "leave thinking_config unset, or use 'gemini-3.8-live-extended-thinking'",
        )
    if info.thinking is Thinking.BUDGET and level is not None:
        _refuse(info, "thinking_config.thinking_level", "it takes a budget", "use thinking_budget")
    if info.thinking is Thinking.LEVEL:
        if budget is not None:
            _refuse(
                info, "thinking_config.thinking_budget", "it takes a level", "use thinking_level"
            )
        if level is not None and info.thinking_levels and level not in info.thinking_levels:
            allowed = ", ".join(sorted(info.thinking_levels))
            _refuse(
                info,
                "thinking_config.thinking_level",
                f"level {level} is not offered",
                f"use one of {allowed}",
            )


def _refuse(info: ModelInfo, field: str, why: str, instead: str) -> None:
    message = f"{field}: model {info.name!r} refuses this config: {why}"
    if instead:
        message += f"; {instead}"
    raise InvalidConfig(message, field=field, model=info.name, instead=instead)


def modalities_of(config: types.LiveConnectConfig) -> list[str]:
    """The response modalities ``config`` asks for (directly or in ``generation_config``)."""
    modalities: list[Any] | None = config.response_modalities
    if modalities is None and config.generation_config is not None:
        modalities = config.generation_config.response_modalities
    return [_enum_name(m) for m in modalities or ()]


def _declarations(config: types.LiveConnectConfig) -> list[types.FunctionDeclaration]:
    out: list[types.FunctionDeclaration] = []
    for tool in config.tools or ():
        if isinstance(tool, types.Tool):
            out.extend(tool.function_declarations or ())
    return out


def _enum_name(value: Any) -> str:
    return str(getattr(value, "value", value)).upper()
