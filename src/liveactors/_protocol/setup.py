"""``LiveConnectConfig`` -> the ``setup`` message, placed field by field as google-genai does.

google-genai flattens some config fields into ``setup.generationConfig`` and puts the rest at the
top of ``setup`` (``_live_converters._LiveConnectConfig_to_mldev`` and ``..._to_vertex``). We place
them the same way, but emit pure lowerCamelCase and standard base64, as a hand-written client
should. The golden tests compare the result with the SDK's own converters, for both endpoints.

The two endpoints do not accept the same fields. Where google-genai's converter for one endpoint
refuses a field (its ``_*_to_mldev`` / ``_*_to_vertex`` functions raise "only supported in ..."),
:func:`encode_setup` refuses it too, with :class:`~liveactors.InvalidConfig` naming the field and
the backend that takes it, instead of letting the service close the socket with 1007.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Final

import pydantic
from google.genai import types

from .._errors import InvalidCommand, InvalidConfig
from .._models import Platform, base_name
from ._wire import to_wire

__all__ = ["ConfigLike", "coerce_config", "encode_setup", "model_path", "vertex_model_path"]

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
    "explicit_vad_signal",  # Vertex AI only (refused on the Developer API before this)
)

_VERTEX: Final = Platform.VERTEX
_DEVELOPER: Final = Platform.DEVELOPER

# Fields only one endpoint accepts, as paths into the config ("[]": any item of a list), with
# that endpoint. From google-genai's converters: a field its ``_*_to_mldev`` converter refuses is
# Vertex-only, one its ``_*_to_vertex`` converter refuses is Developer-only.
_CONFIG_FIELDS: Final = (
    (("explicit_vad_signal",), _VERTEX),
    # Transparent resumption (replay by lastConsumedClientMessageIndex): the Developer API
    # closes with 1007 'Unknown name "transparent"'.
    (("session_resumption", "transparent"), _VERTEX),
    (("safety_settings", "[]", "method"), _VERTEX),
    (("generation_config", "enable_enhanced_civic_answers"), _DEVELOPER),
    (("speech_config", "voice_config", "replicated_voice_config", "consent_audio"), _DEVELOPER),
    (
        ("speech_config", "voice_config", "replicated_voice_config", "voice_consent_signature"),
        _DEVELOPER,
    ),
)
# ... inside one dumped Tool (tools[]) ...
_TOOL_FIELDS: Final = (
    (("retrieval",), _VERTEX),
    (("enterprise_web_search",), _VERTEX),
    (("parallel_ai_search",), _VERTEX),
    (("exa_ai_search",), _VERTEX),
    (("google_search", "blocking_confidence"), _VERTEX),
    (("google_search", "exclude_domains"), _VERTEX),
    (("google_maps", "grounding_types"), _VERTEX),
    (("google_maps", "auth_config", "api_key_config"), _VERTEX),
    (("google_maps", "auth_config", "auth_type"), _VERTEX),
    (("google_maps", "auth_config", "google_service_account_config"), _VERTEX),
    (("google_maps", "auth_config", "http_basic_auth_config"), _VERTEX),
    (("google_maps", "auth_config", "oauth_config"), _VERTEX),
    (("google_maps", "auth_config", "oidc_config"), _VERTEX),
    (("file_search",), _DEVELOPER),
    (("mcp_servers", "[]", "name"), _DEVELOPER),
    (("mcp_servers", "[]", "streamable_http_transport"), _DEVELOPER),
)
# ... and inside one dumped Part (system_instruction.parts[]).
_PART_FIELDS: Final = (
    (("function_call", "partial_args"), _VERTEX),
    (("function_call", "will_continue"), _VERTEX),
    (("function_call", "grounding_types"), _VERTEX),
    (("tool_call",), _DEVELOPER),
    (("tool_response",), _DEVELOPER),
    (("part_metadata",), _DEVELOPER),
    (("function_response", "will_continue"), _DEVELOPER),
    (("function_response", "parts", "[]", "media_processing"), _DEVELOPER),
)

_ENDPOINT: Final = {
    _VERTEX: ("Vertex AI", "VertexBackend"),
    _DEVELOPER: ("the Gemini Developer API", "GeminiBackend"),
}


def model_path(model: str) -> str:
    """``gemini-x`` -> ``models/gemini-x``; names already under ``models/`` or ``tunedModels/``
    pass through, as in google-genai."""
    _check_model_name(model)
    if model.startswith(("models/", "tunedModels/")):
        return model
    return f"models/{model}"


def vertex_model_path(model: str, project: str | None = None, location: str | None = None) -> str:
    """The model as Vertex AI's ``setup.model`` names it.

    ``gemini-x`` -> ``publishers/google/models/gemini-x``, ``meta/llama`` ->
    ``publishers/meta/models/llama`` (google-genai's ``t_model``), and with a project and
    location, ``projects/{project}/locations/{location}/publishers/...`` (what google-genai's
    ``live.py`` sends; express mode has neither). A full ``projects/...`` path passes through;
    a Developer-API spelling ``models/gemini-x`` is read as ``gemini-x``.
    """
    _check_model_name(model)
    if model.startswith("projects/"):
        return model
    if model.startswith("models/"):
        model = model.removeprefix("models/")
        _check_model_name(model)
    if model.startswith("publishers/"):
        path = model
    elif "/" in model:
        publisher, name = model.split("/", 1)
        path = f"publishers/{publisher}/models/{name}"
    else:
        path = f"publishers/google/models/{model}"
    if project and location:
        return f"projects/{project}/locations/{location}/{path}"
    return path


def _check_model_name(model: object) -> None:
    if not model or not isinstance(model, str):
        raise InvalidCommand("model must be a non-empty string")
    if ".." in model or "?" in model or "&" in model or not model.isprintable() or " " in model:
        raise InvalidCommand(f"invalid model name {model!r}")


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


def encode_setup(
    config: ConfigLike,
    model: str,
    *,
    handle: str | None = None,
    platform: Platform = Platform.DEVELOPER,
) -> dict[str, Any]:
    """Build the ``{"setup": {...}}`` message for ``config`` on ``model``.

    ``platform`` says which endpoint it is for: fields only the other one accepts raise
    :class:`~liveactors.InvalidConfig`. ``model`` is a bare name or the endpoint's resource
    path (``backend.model_resource``).

    ``handle`` resumes a session: it replaces ``sessionResumption.handle`` (and turns resumption
    on if the config had it off, since a handle means nothing without it).
    """
    cfg = coerce_config(config)
    vertex = platform is Platform.VERTEX
    resource = vertex_model_path(model) if vertex else model_path(model)
    check = _FieldCheck(platform, base_name(resource))
    check.refuse_foreign(cfg, _CONFIG_FIELDS, "")
    if cfg.http_options is not None:
        raise InvalidCommand(
            "LiveConnectConfig.http_options is not used by liveactors; "
            f"set base_url / api_version on {_ENDPOINT[platform][1]} instead"
        )
    setup: dict[str, Any] = {"model": resource}
    _check_modalities(cfg.response_modalities, platform)

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
    if vertex and "modelSelectionConfig" in generation:
        # google-genai's _GenerationConfig_to_vertex renames it.
        generation["modelConfig"] = generation.pop("modelSelectionConfig")
    if generation:
        setup["generationConfig"] = generation

    if cfg.system_instruction is not None:
        setup["systemInstruction"] = _system_instruction(cfg.system_instruction, check)
    if cfg.tools:
        setup["tools"] = _tools(cfg.tools, check)

    for field in _SETUP_FIELDS:
        value = getattr(cfg, field)
        if value is None:
            continue
        key, wire = _field_to_wire(field, value)
        setup[key] = wire

    if handle is not None:
        resumption = dict(setup.get("sessionResumption", {}))
        resumption["handle"] = handle
        setup["sessionResumption"] = resumption
    elif "sessionResumption" in setup and "handle" in setup["sessionResumption"]:
        # An explicit handle in the config is honoured as given.
        pass
    return {"setup": setup}


_LIVE_MODALITIES: Final = frozenset({"AUDIO", "TEXT"})


def _check_modalities(modalities: list[Any] | None, platform: Platform) -> None:
    """A Live session answers in exactly one modality: AUDIO or TEXT, or VIDEO (a live avatar,
    Vertex AI only); anything else is closed with 1007 by the service, so say so before
    connecting."""
    if modalities is None:
        return
    names = [getattr(m, "value", m) for m in modalities]
    allowed = _LIVE_MODALITIES | ({"VIDEO"} if platform is Platform.VERTEX else set())
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise InvalidCommand(
            f"response_modalities: {unknown[0]!r} is not a Live modality here "
            f"(use {' or '.join(repr(m) for m in sorted(allowed))})"
        )
    if len(set(names)) > 1:
        raise InvalidCommand(
            "response_modalities: a Live session answers in one modality, not several"
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


def _system_instruction(value: Any, check: _FieldCheck) -> Any:
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
        check.refuse_foreign(part, _PART_FIELDS, "system_instruction.parts[].")
    return to_wire(dumped)


def _user_content(value: Any) -> types.Content:
    try:
        if isinstance(value, types.Part) and value.function_call is not None:
            return types.ModelContent(parts=[value])
        return types.UserContent(parts=value)
    except (ValueError, pydantic.ValidationError) as exc:
        raise InvalidCommand(f"invalid system_instruction: {exc}") from None


def _tools(tools: list[Any], check: _FieldCheck) -> list[Any]:
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
        check.refuse_foreign(tool_dump, _TOOL_FIELDS, "tools[].")
    return [to_wire(tool_dump) for tool_dump in merged]


class _FieldCheck:
    """Refuses fields that only the other endpoint accepts (see the tables above): sending them
    would only get the socket closed with 1007, long after ``spawn`` returned."""

    __slots__ = ("model", "platform")

    def __init__(self, platform: Platform, model: str) -> None:
        self.platform = platform
        self.model = model

    def refuse_foreign(
        self, node: Any, table: tuple[tuple[tuple[str, ...], Platform], ...], where: str
    ) -> None:
        for path, only in table:
            if only is not self.platform and _present(node, path):
                field = where + ".".join(path).replace(".[]", "[]")
                endpoint, backend = _ENDPOINT[only]
                here, _ = _ENDPOINT[self.platform]
                instead = f"use {backend} ({endpoint}), or leave {field} unset"
                raise InvalidConfig(
                    f"{field} is only supported on {endpoint}, not on {here}; {instead}",
                    field=field,
                    model=self.model,
                    instead=instead,
                )


def _present(node: Any, path: tuple[str, ...]) -> bool:
    """Whether ``path`` leads to a value (not None) in ``node``: a pydantic model, a dict or a
    list (at ``"[]"``, any of its items)."""
    if not path:
        return node is not None
    key, rest = path[0], path[1:]
    if key == "[]":
        return isinstance(node, list | tuple) and any(_present(item, rest) for item in node)
    child = node.get(key) if isinstance(node, Mapping) else getattr(node, key, None)
    return child is not None and _present(child, rest)


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
