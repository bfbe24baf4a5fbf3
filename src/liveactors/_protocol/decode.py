"""Server frames -> JSON objects -> google-genai ``LiveServerMessage`` values.

The service sends one JSON object per frame, usually as a binary frame of UTF-8. Parsing is
lenient in the ways the protocol requires (unknown fields ignored, defaults omitted, int64 as
string or number, Durations as strings) and strict about shape: anything that is not a JSON
object raises :class:`~liveactors.ProtocolError`, never something else.

The hot path (events) works on the parsed dict directly; :func:`server_message` builds the
pydantic value only when someone asks for it.
"""

from __future__ import annotations

import collections.abc
import contextlib
import json
import types as types_module
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, NamedTuple, TypeVar

import pydantic
from google.genai import types

from .._errors import ProtocolError

__all__ = ["TOP_LEVEL_KEYS", "parse_frame", "server_message", "validate"]

#: The top-level keys of a server message (camelCase, as the service emits them).
TOP_LEVEL_KEYS: Final = frozenset(
    {
        "setupComplete",
        "serverContent",
        "toolCall",
        "toolCallCancellation",
        "goAway",
        "sessionResumptionUpdate",
        "usageMetadata",
        "voiceActivityDetectionSignal",
        "voiceActivity",
    }
)

_loads: Callable[[str | bytes | bytearray], Any] = json.loads
try:
    # orjson parses a 3.8 audio message (20 KB, mostly base64) in half the time json does.
    import orjson
except ImportError:  # pragma: no cover - the standard library's
    pass
else:
    _loads = orjson.loads


def parse_frame(frame: str | bytes | bytearray | memoryview) -> dict[str, Any]:
    """One WebSocket frame (text, or binary UTF-8) -> its JSON object."""
    try:
        if isinstance(frame, memoryview):
            frame = frame.tobytes()
        message = _loads(frame)
    except RecursionError:
        raise ProtocolError("server frame nests too deeply") from None
    except (ValueError, TypeError) as exc:
        # json.JSONDecodeError and UnicodeDecodeError are both ValueErrors.
        raise ProtocolError(f"server frame is not UTF-8 JSON: {_short(exc)}") from None
    if type(message) is not dict:
        raise ProtocolError(f"server frame is a JSON {type(message).__name__}, not an object")
    return message


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 120 else text[:117] + "..."


_M = TypeVar("_M", bound=pydantic.BaseModel)


def validate(model: type[_M], data: object, where: str) -> _M:
    """Validate ``data`` (camelCase or snake_case keys) as ``model``, ignoring unknown fields."""
    if not isinstance(data, Mapping):
        raise ProtocolError(f"{where} must be a JSON object, not {type(data).__name__}")
    try:
        return model.model_validate(_known_fields(model, data))
    except pydantic.ValidationError as exc:
        errors = exc.errors()
        loc = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
        msg = errors[0]["msg"] if errors else "invalid"
        raise ProtocolError(f"invalid {where}: {loc}: {msg}") from None
    except (Exception, RecursionError) as exc:
        # google-genai's own validators raise more than ValidationError on odd input (its
        # case-insensitive enums call .upper() on whatever they get); all of it is a bad frame.
        raise ProtocolError(f"invalid {where}: {type(exc).__name__}: {_short(exc)}") from None


_FIELD_CACHE: dict[type[pydantic.BaseModel], dict[str, tuple[str, Any]]] = {}


def _fields_of(model: type[pydantic.BaseModel]) -> dict[str, tuple[str, Any]]:
    """Wire name (camel and snake) -> (python name, annotation) for a pydantic model."""
    fields = _FIELD_CACHE.get(model)
    if fields is None:
        fields = {}
        for name, info in model.model_fields.items():
            fields[name] = (name, info.annotation)
            if info.alias:
                fields[info.alias] = (name, info.annotation)
        _FIELD_CACHE[model] = fields
    return fields


def _known_fields(model: type[pydantic.BaseModel], data: Mapping[str, Any]) -> dict[str, Any]:
    """Drop unknown keys at every depth, as google-genai does, so new server fields never break
    old clients."""
    fields = _fields_of(model)
    out: dict[str, Any] = {}
    for key, value in data.items():
        found = fields.get(key)
        if found is None:
            continue
        name, annotation = found
        out[name] = _strip(annotation, value)
    return out


def _strip(annotation: Any, value: Any) -> Any:
    shape = _shape_of(annotation)
    if isinstance(value, Mapping):
        if shape.model is not None:
            return _known_fields(shape.model, value)
        if shape.map_of is not None:
            sub = shape.map_of
            return {
                k: _known_fields(sub, v) if isinstance(v, Mapping) else v for k, v in value.items()
            }
    elif isinstance(value, list) and shape.list_of is not None:
        sub = shape.list_of
        return [_known_fields(sub, v) if isinstance(v, Mapping) else v for v in value]
    return value


class _Shape(NamedTuple):
    """Where an annotation like ``Optional[list[Part]]`` holds pydantic models."""

    model: type[pydantic.BaseModel] | None  # the value itself
    list_of: type[pydantic.BaseModel] | None  # the items of a list
    map_of: type[pydantic.BaseModel] | None  # the values of a dict keyed by user names


_NO_SHAPE: Final = _Shape(None, None, None)
_SHAPES: dict[Any, _Shape] = {}


def _shape_of(annotation: Any) -> _Shape:
    try:
        cached = _SHAPES.get(annotation)
    except TypeError:
        cached = None
    if cached is not None:
        return cached
    model = list_of = map_of = None
    for arm in _union_arms(annotation):
        origin = typing.get_origin(arm)
        if isinstance(arm, type) and issubclass(arm, pydantic.BaseModel):
            model = model or arm
        elif origin in (list, tuple, Sequence, collections.abc.Sequence):
            list_of = list_of or _first_model(typing.get_args(arm)[:1])
        elif origin in (dict, Mapping, collections.abc.Mapping):
            map_of = map_of or _first_model(typing.get_args(arm)[1:2])
    shape = _Shape(model, list_of, map_of) if model or list_of or map_of else _NO_SHAPE
    with contextlib.suppress(TypeError):
        _SHAPES[annotation] = shape
    return shape


def _union_arms(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) in (typing.Union, types_module.UnionType):
        arms: list[Any] = []
        for arm in typing.get_args(annotation):
            arms.extend(_union_arms(arm))
        return arms
    return [annotation]


def _first_model(args: tuple[Any, ...]) -> type[pydantic.BaseModel] | None:
    for arg in args:
        for arm in _union_arms(arg):
            if isinstance(arm, type) and issubclass(arm, pydantic.BaseModel):
                return arm
    return None


def server_message(message: Mapping[str, Any] | str | bytes) -> types.LiveServerMessage:
    """A whole server message as google-genai's ``LiveServerMessage`` (unknown fields dropped)."""
    if not isinstance(message, Mapping):
        message = parse_frame(message)
    data = dict(message)
    activity = data.get("voiceActivity")
    if isinstance(activity, Mapping) and "type" in activity:
        # google-genai renames this one field on the way in.
        activity = dict(activity)
        activity["voiceActivityType"] = activity.pop("type")
        data["voiceActivity"] = activity
    return validate(types.LiveServerMessage, data, "server message")
