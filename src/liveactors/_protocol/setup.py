"""``LiveConnectConfig`` -> the ``setup`` message, placed field by field as google-genai does.

google-genai flattens some config fields into ``setup.generationConfig`` and puts the rest at the
top of ``setup`` (``_live_converters._LiveConnectConfig_to_mldev``). We place them the same way,
but emit pure lowerCamelCase and standard base64, as a hand-written client should. The golden
tests compare the result with the SDK's own converter.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Final

import pydantic
from google.genai import types

from .._errors import InvalidCommand
from ._wire import to_wire

__all__ = ["ConfigLike", "coerce_config", "encode_setup", "model_path"]

ConfigLike = types.LiveConnectConfig | Mapping[str, Any] | None

# LiveConnectConfig fields that google-genai moves into ``setup.generationConfig``.
_GENERATION_FIELDS: Final = (
    "response_modalities",
    "temperature",
    "top_p",
    "top_k",
    "max_output_tokens",
    "media_resolution",
    "seed",
    "speech_config",
    "thinking_config",
    "enable_affective_dialog",
    "translation_config",
)

# Fields copied to the top of ``setup`` as they are (after key conversion).
_SETUP_FIELDS: Final = (
    "session_resumption",
    "input_audio_transcription",
    "output_audio_transcription",
    "realtime_input_config",
    "context_window_compression",
    "proactivity",
    "history_config",
    "avatar_config",
    "safety_settings",
    "labels",
)

_VERTEX_ONLY: Final = {
    "explicit_vad_signal": "explicit_vad_signal is only supported on Vertex AI",
}


def model_path(model: str) -> str:
    """``gemini-x`` -> ``models/gemini-x``; names already under ``models/`` or ``tunedModels/``
    pass through, as in google-genai."""
    if not model or not isinstance(model, str):
        raise InvalidCommand("model must be a non-empty string")
    if ".." in model or "?" in model or "&" in model:
        raise InvalidCommand(f"invalid model name {model!r}")
    if model.startswith(("models/", "tunedModels/")):
        return model
    return f"models/{model}"


def coerce_config(config: ConfigLike) -> types.LiveConnectConfig:
    """Accept a ``LiveConnectConfig``, a dict of its fields (either spelling) or None."""
    if config is None:
        return types.LiveConnectConfig()
    if isinstance(config, types.LiveConnectConfig):
        return config
    if isinstance(config, Mapping):
        try:
            return types.LiveConnectConfig.model_validate(dict(config))
        except pydantic.ValidationError as exc:
            raise InvalidCommand(f"invalid LiveConnectConfig: {_first_error(exc)}") from None
    raise InvalidCommand(
        f"config must be a LiveConnectConfig, a dict of its fields or None, "
        f"not {type(config).__name__}"
    )


def _first_error(exc: pydantic.ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return str(exc)
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"


def encode_setup(config: ConfigLike, model: str, *, handle: str | None = None) -> dict[str, Any]:
    """Build the ``{"setup": {...}}`` message for ``config`` on ``model``.

    ``handle`` resumes a session: it replaces ``sessionResumption.handle`` (and turns resumption
    on if the config had it off, since a handle means nothing without it).
    """
    cfg = coerce_config(config)
    for field, message in _VERTEX_ONLY.items():
        if getattr(cfg, field, None) is not None:
            raise InvalidCommand(message)
    if cfg.http_options is not None:
        raise InvalidCommand(
            "LiveConnectConfig.http_options is not used by liveactors; "
            "set base_url / api_version on GeminiBackend instead"
        )
    setup: dict[str, Any] = {"model": model_path(model)}
    _check_modalities(cfg.response_modalities)

    generation: dict[str, Any] = {}
    if cfg.generation_config is not None:
        generation.update(to_wire(cfg.generation_config.model_dump(exclude_none=True)))
    for field in _GENERATION_FIELDS:
        value = getattr(cfg, field)
        if value is None:
            continue
        if field == "speech_config" and value.multi_speaker_voice_config is not None:
            raise InvalidCommand(
                "speech_config.multi_speaker_voice_config is not supported in Live"
            )
        key, wire = _field_to_wire(field, value)
        if key in generation:
            raise InvalidCommand(
                f"{field} is set both directly and in generation_config; set it once"
            )
        generation[key] = wire
    if generation:
        setup["generationConfig"] = generation

    if cfg.system_instruction is not None:
        setup["systemInstruction"] = _system_instruction(cfg.system_instruction)
    if cfg.tools:
        setup["tools"] = _tools(cfg.tools)

    for field in _SETUP_FIELDS:
        value = getattr(cfg, field)
        if value is None:
            continue
        key, wire = _field_to_wire(field, value)
        setup[key] = wire

    for rule in setup.get("safetySettings", ()):
        if "method" in rule:
            raise InvalidCommand("safety_settings[].method is only supported on Vertex AI")

    if handle is not None:
        resumption = dict(setup.get("sessionResumption", {}))
        resumption["handle"] = handle
        setup["sessionResumption"] = resumption
    elif "sessionResumption" in setup and "handle" in setup["sessionResumption"]:
        # An explicit handle in the config is honoured as given.
        pass
    return {"setup": setup}


_LIVE_MODALITIES: Final = frozenset({"AUDIO", "TEXT"})


def _check_modalities(modalities: list[Any] | None) -> None:
    """A Live session answers in exactly one modality, AUDIO or TEXT; anything else is closed
    with 1007 by the service, so say so before connecting."""
    if modalities is None:
        return
    names = [getattr(m, "value", m) for m in modalities]
    unknown = [n for n in names if n not in _LIVE_MODALITIES]
    if unknown:
        raise InvalidCommand(
            f"response_modalities: {unknown[0]!r} is not a Live modality (use 'AUDIO' or 'TEXT')"
        )
    if len(set(names)) > 1:
        raise InvalidCommand(
            "response_modalities: a Live session answers in one modality, AUDIO or TEXT, not both"
        )


def _field_to_wire(field: str, value: Any) -> tuple[str, Any]:
    dumped = {field: value.model_dump(exclude_none=True) if _is_model(value) else value}
    dumped = _dump_nested(dumped)
    ((key, wire),) = to_wire(dumped).items()
    return key, wire


def _is_model(value: Any) -> bool:
    return isinstance(value, pydantic.BaseModel)


def _dump_nested(value: Any) -> Any:
    if _is_model(value):
        return value.model_dump(exclude_none=True)
    if isinstance(value, Mapping):
        return {k: _dump_nested(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_dump_nested(v) for v in value]
    return value


def _system_instruction(value: Any) -> Any:
    if isinstance(value, types.Content):
        content = value
    elif isinstance(value, Mapping):
        try:
            content = types.Content.model_validate(dict(value))
        except pydantic.ValidationError:
            content = _user_content(value)
    else:
        content = _user_content(value)
    dumped = content.model_dump(exclude_none=True)
    for part in dumped.get("parts") or ():
        _reject_vertex_only(part, _VERTEX_ONLY_PART_FIELDS, "system_instruction.parts[]")
    return to_wire(dumped)


def _user_content(value: Any) -> types.Content:
    try:
        if isinstance(value, types.Part) and value.function_call is not None:
            return types.ModelContent(parts=[value])
        return types.UserContent(parts=value)
    except (ValueError, pydantic.ValidationError) as exc:
        raise InvalidCommand(f"invalid system_instruction: {exc}") from None


def _tools(tools: list[Any]) -> list[Any]:
    """Mirror google-genai's ``t_tools``: every function declaration is merged into one tool,
    placed after the other tools."""
    merged: list[Any] = []
    declarations: list[dict[str, Any]] = []
    for origin in tools:
        tool = _tool(origin)
        if tool is None:
            continue
        dumped = tool.model_dump(exclude_none=True)
        functions = dumped.pop("function_declarations", None)
        if functions:
            declarations.extend(functions)
            if dumped:
                merged.append(dumped)
        else:
            dumped_with_functions = dict(dumped)
            if functions is not None:
                dumped_with_functions["function_declarations"] = functions
            merged.append(dumped_with_functions)
    if declarations:
        merged.append({"function_declarations": declarations})
    for tool_dump in merged:
        _reject_vertex_only(tool_dump, _VERTEX_ONLY_TOOL_FIELDS, "tools[]")
    return [to_wire(tool_dump) for tool_dump in merged]


# Fields google-genai refuses on the Developer API (its ``_*_to_mldev`` converters raise), as
# nested paths inside one dumped Tool / Part. Sending them would only get the socket closed.
_VERTEX_ONLY_TOOL_FIELDS: Final = (
    ("retrieval",),
    ("enterprise_web_search",),
    ("parallel_ai_search",),
    ("exa_ai_search",),
    ("google_search", "blocking_confidence"),
    ("google_search", "exclude_domains"),
    ("google_maps", "grounding_types"),
    ("google_maps", "auth_config", "api_key_config"),
    ("google_maps", "auth_config", "auth_type"),
    ("google_maps", "auth_config", "google_service_account_config"),
    ("google_maps", "auth_config", "http_basic_auth_config"),
    ("google_maps", "auth_config", "oauth_config"),
    ("google_maps", "auth_config", "oidc_config"),
)
_VERTEX_ONLY_PART_FIELDS: Final = (
    ("function_call", "partial_args"),
    ("function_call", "will_continue"),
    ("function_call", "grounding_types"),
)


def _reject_vertex_only(
    dumped: Mapping[str, Any], paths: tuple[tuple[str, ...], ...], where: str
) -> None:
    for path in paths:
        node: Any = dumped
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if node is not None:
            raise InvalidCommand(f"{where}.{'.'.join(path)} is only supported on Vertex AI")


def _tool(origin: Any) -> types.Tool | None:
    if not origin:
        return None
    if isinstance(origin, types.Tool):
        return origin
    if inspect.isfunction(origin) or inspect.ismethod(origin):
        fn: Callable[..., Any] = origin
        declaration = types.FunctionDeclaration.from_callable_with_api_option(
            callable=fn, api_option="GEMINI_API", use_json_schema=True
        )
        return types.Tool(function_declarations=[declaration])
    if isinstance(origin, Mapping):
        try:
            return types.Tool.model_validate(dict(origin))
        except pydantic.ValidationError as exc:
            raise InvalidCommand(f"invalid tool: {_first_error(exc)}") from None
    raise InvalidCommand(f"unsupported tool of type {type(origin).__name__}")
