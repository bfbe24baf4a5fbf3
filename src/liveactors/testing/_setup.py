"""What a ``setup`` message asks for, checked the way the service checks it.

:func:`read_setup` turns the (already normalised) body of a ``setup`` into a
:class:`SetupPlan`, or raises :class:`~liveactors.testing._wire.ProtocolViolation` with the close
the real service would send: no model (1007), an unknown or shut-down model (1008), or a setting
the model does not take (``_model_checks``). Which model the session runs on, and how the fake
plays it, comes from ``_profiles``. Everything else the connection needs from the setup —
modality, transcriptions, VAD, tools, context window and compression, resumption — is read here
once, so the connection only acts on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from .._models import Platform
from ._model_checks import check_config, check_modalities, model_name, not_found
from ._options import ServerOptions
from ._profiles import FakeModel, resolve_model
from ._wire import INVALID_ARGUMENT, ProtocolViolation

__all__ = [
    "SetupPlan",
    "declared_functions",
    "enum_name",
    "read_setup",
]

_MODALITIES: Final = {0: "MODALITY_UNSPECIFIED", 1: "TEXT", 2: "IMAGE", 3: "AUDIO", 4: "VIDEO"}
_HANDLING: Final = {1: "START_OF_ACTIVITY_INTERRUPTS", 2: "NO_INTERRUPTION"}


def enum_name(value: object, names: Mapping[int, str]) -> str:
    """A proto enum given by name or number, as its name (proto3 JSON accepts both)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return names.get(value, str(value))
    return str(value).upper() if value is not None else ""


@attrs.frozen
class SetupPlan:
    """How the connection behaves, as its setup asked."""

    model: str
    #: The model as the fake plays it (table entry or profile).
    fake_model: FakeModel
    #: "TEXT", "AUDIO" or "VIDEO" (a live avatar).
    modality: str
    input_transcription: bool
    output_transcription: bool
    #: Server-side voice activity detection (False: the client sends activityStart/End).
    auto_vad: bool
    silence_gap: float
    #: Whether user activity interrupts the model (not ``NO_INTERRUPTION``).
    interrupts: bool
    tools: Mapping[str, Mapping[str, Any]]
    window: int
    #: Sliding-window (trigger, target) tokens, or None without ``contextWindowCompression``.
    compression: tuple[int, int] | None
    initial_history: bool
    #: ``sessionResumption`` was present; ``handle`` (may be None) and ``transparent`` from it.
    resumption: bool
    handle: str | None
    transparent: bool


def read_setup(
    body: Mapping[str, Any],
    options: ServerOptions,
    *,
    platform: Platform = Platform.DEVELOPER,
    api_version: str = "v1beta",
    served: Callable[[str], bool] = lambda name: True,
) -> SetupPlan:
    """Check a setup body; raises ``ProtocolViolation`` with the service's close.

    ``served(bare_name)`` says whether the server serves a model at all (the ``models`` option).
    """
    model = body.get("model")
    if not model:
        raise ProtocolViolation(1007, INVALID_ARGUMENT)
    name = model_name(model, platform)
    if name is None or not served(name):
        raise not_found(model, platform, api_version)
    fake = resolve_model(
        name, options.model_profile, native_audio_refuses_text=options.native_audio_refuses_text
    )
    if fake.retired or platform not in fake.platforms:
        raise not_found(model, platform, api_version)
    generation = body.get("generationConfig") or {}
    requested = [enum_name(m, _MODALITIES) for m in generation.get("responseModalities") or []]
    modality = check_modalities(list(dict.fromkeys(requested)), fake, body, platform)
    check_config(body, fake, platform)
    realtime = body.get("realtimeInputConfig") or {}
    detection = realtime.get("automaticActivityDetection") or {}
    silence_ms = detection.get("silenceDurationMs")
    window = options.context_window or fake.window
    compression = body.get("contextWindowCompression")
    sliding: tuple[int, int] | None = None
    if compression is not None:
        # Defaults (the API reference): trigger 80 % of the window, target half the trigger.
        trigger = int(compression.get("triggerTokens") or window * 8 // 10)
        target = int((compression.get("slidingWindow") or {}).get("targetTokens") or trigger // 2)
        sliding = (trigger, target)
    resumption = body.get("sessionResumption")
    return SetupPlan(
        model=model,
        fake_model=fake,
        modality=modality,
        input_transcription="inputAudioTranscription" in body or fake.transcription_only,
        output_transcription="outputAudioTranscription" in body,
        auto_vad=not detection.get("disabled", False),
        silence_gap=silence_ms / 1000 if silence_ms else options.silence_gap,
        interrupts=enum_name(realtime.get("activityHandling"), _HANDLING) != "NO_INTERRUPTION",
        tools=declared_functions(body.get("tools")),
        window=window,
        compression=sliding,
        initial_history=bool(
            (body.get("historyConfig") or {}).get("initialHistoryInClientContent")
        ),
        resumption=resumption is not None,
        handle=(resumption or {}).get("handle") or None,
        transparent=bool((resumption or {}).get("transparent")),
    )


def declared_functions(tools: Any) -> dict[str, Mapping[str, Any]]:
    """The function declarations of a ``tools`` list, by name."""
    declared: dict[str, Mapping[str, Any]] = {}
    for tool in tools or ():
        if isinstance(tool, Mapping):
            for declaration in tool.get("functionDeclarations") or ():
                if isinstance(declaration, Mapping) and isinstance(declaration.get("name"), str):
                    declared[declaration["name"]] = declaration
    return declared
