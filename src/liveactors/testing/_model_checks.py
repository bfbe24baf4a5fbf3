"""What a model refuses in a ``setup``, and the close the service sends for it.

:func:`model_name` reads ``setup.model`` the way the endpoint spells it (``models/{m}`` on the
Developer API; ``projects/{p}/locations/{l}/publishers/google/models/{m}`` or, in express mode,
``publishers/google/models/{m}`` on Vertex AI). :func:`check_config` refuses what the model's
entry in the library's table says it does not take. The closes follow what is published and
observed:

* an unknown or shut-down model: 1008, the service's not-found text;
* TEXT on gemini-3.8-live: 1007 ``Request contains an invalid argument.``; on
  gemini-3.1-flash-live-preview: 1011 ``Internal error encountered.``
  (https://github.com/googleapis/python-genai/issues/2238); on the 2.5 native-audio models:
  1007 ``The requested combination of response modalities (TEXT) is not supported by the model``
  (google-genai ``tests/live_api/test_live_session.py``);
* settings a model does not take (thinking on 3.8, affective dialog or proactive audio on 3.x,
  ``proactiveAudio: false`` on 3.8, NON_BLOCKING declarations on 3.1, avatars outside Vertex AI):
  1007 ``Request contains an invalid argument.``
  (https://ai.google.dev/gemini-api/docs/models/gemini-3.8-live, "Migrating").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from .._models import Platform, Thinking
from ._profiles import FakeModel
from ._wire import INTERNAL_REASON, INVALID_ARGUMENT, ProtocolViolation

__all__ = ["check_config", "model_name", "not_found"]

_VERTEX_MODEL: Final = re.compile(
    r"^(?:projects/[^/]+/locations/[^/]+/)?publishers/google/models/([^/]+)$"
)
_DEVELOPER_MODEL: Final = re.compile(r"^models/([^/]+)$")
_BEHAVIORS: Final = {0: "BEHAVIOR_UNSPECIFIED", 1: "BLOCKING", 2: "NON_BLOCKING"}


def model_name(model: str, platform: Platform) -> str | None:
    """The bare model name of ``setup.model`` on ``platform``, or None if it is misspelt."""
    pattern = _VERTEX_MODEL if platform is Platform.VERTEX else _DEVELOPER_MODEL
    match = pattern.match(model)
    return match.group(1) if match else None


def not_found(model: str, platform: Platform, api_version: str) -> ProtocolViolation:
    """The close for a model the endpoint does not serve."""
    if platform is Platform.VERTEX:
        return ProtocolViolation(
            1008,
            f"Publisher model `{model}` was not found or your project does not have access to it.",
        )
    return ProtocolViolation(
        1008,
        f"{model} is not found for API version {api_version}, "
        "or is not supported for bidiGenerateContent",
    )


def _combination(modalities: list[str]) -> ProtocolViolation:
    return ProtocolViolation(
        1007,
        f"The requested combination of response modalities ({', '.join(modalities)}) "
        "is not supported by the model",
    )


def _invalid() -> ProtocolViolation:
    return ProtocolViolation(1007, INVALID_ARGUMENT)


def behavior_name(value: object) -> str:
    """A FunctionDeclaration's ``behavior`` as its enum name ("" when unset)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _BEHAVIORS.get(value, "")
    return str(value or "").upper()


def check_modalities(
    modalities: list[str], model: FakeModel, body: Mapping[str, Any], platform: Platform
) -> str:
    """The one response modality of the session; raises the model's refusal."""
    if not modalities:
        return model.default_modality
    if len(modalities) != 1:
        raise _combination(modalities)
    (modality,) = modalities
    if modality == "VIDEO" and model.avatars:
        if platform is not Platform.VERTEX or "avatarConfig" not in body:
            raise _invalid()
        return modality
    if modality in model.modalities:
        return modality
    if modality == "TEXT" and model.generation == "3.8":
        raise _invalid()
    if modality == "TEXT" and model.generation == "3.1" and not model.transcription_only:
        raise ProtocolViolation(1011, INTERNAL_REASON)
    raise _combination(modalities)


def check_config(body: Mapping[str, Any], model: FakeModel, platform: Platform) -> None:
    """Refuse what ``model`` does not take (the modality is checked by
    :func:`check_modalities`)."""
    if "avatarConfig" in body and (platform is not Platform.VERTEX or not model.avatars):
        raise _invalid()
    generation = body.get("generationConfig") or {}
    _check_thinking(generation.get("thinkingConfig") or {}, model)
    if generation.get("enableAffectiveDialog") and model.affective_dialog is False:
        raise _invalid()
    proactive = (body.get("proactivity") or {}).get("proactiveAudio")
    if proactive is True and model.proactive_audio == "no":
        raise _invalid()
    if proactive is False and model.proactive_audio == "always":
        raise _invalid()
    if not model.async_calls:
        for tool in body.get("tools") or ():
            for declaration in (tool or {}).get("functionDeclarations") or ():
                if behavior_name(declaration.get("behavior")) == "NON_BLOCKING":
                    raise _invalid()
    if model.transcription_only and (body.get("tools") or "outputAudioTranscription" in body):
        raise _invalid()


def _check_thinking(thinking: Mapping[str, Any], model: FakeModel) -> None:
    if model.thinking is None or not thinking:
        return
    budget = thinking.get("thinkingBudget")
    level = thinking.get("thinkingLevel")
    level = str(level).upper() if level is not None else None
    if model.thinking is Thinking.NONE:
        raise _invalid()  # gemini-3.8-live: "thinkingConfig is not supported"
    if model.thinking is Thinking.BUDGET and level is not None:
        raise _invalid()
    if model.thinking is Thinking.LEVEL:
        if budget is not None:
            raise _invalid()
        if level is not None and model.thinking_levels and level not in model.thinking_levels:
            raise _invalid()
