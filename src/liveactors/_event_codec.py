"""Events as plain JSON and back, for carrying them between processes (Redis) and to browsers.

:func:`event_to_json` turns an event into a dict that ``json.dumps`` accepts as is;
:func:`event_from_json` rebuilds an equal event from such a dict. The shape is one flat object:
``"type"`` (the class name) and every attrs field under its own name, with

* ``bytes`` as standard base64;
* google-genai types as their ``model_dump(mode="json", exclude_none=True)``, rebuilt with
  ``model_validate``;
* tuples as lists;
* a :class:`~liveactors.events.ConversationFailed` error as ``{"class", "message"}`` plus
  ``"close": {"code", "reason"}`` when it carries a :class:`~liveactors._errors.CloseInfo`;
* secrets (the resumption handle) as ``null`` unless ``secrets=True``: this JSON also goes
  to browsers, and a handle lets whoever holds it take over the session.

This runs once per event on a hot path, so the work per class (resolving annotations, picking
converters) is done once, at import, into a plan; an event with no bytes or pydantic fields
costs a few dict operations and type checks each way.

A store that can hold bytes as they are (the cluster's journal) may carry an event's media (the
``data`` of an ``AudioChunk`` or a ``VideoChunk``) apart from the JSON: ``media=False`` writes
it as ``""``, and ``event_from_json(data, media=...)`` puts the bytes back.
"""

from __future__ import annotations

import binascii
import typing
from collections.abc import Callable, Mapping
from operator import attrgetter
from types import NoneType, UnionType
from typing import Any, Final

import attrs
import pydantic
from google.genai import types

from . import _errors
from . import events as ev
from ._errors import CloseInfo, LiveError, _ClosedError

__all__ = ["event_from_json", "event_to_json"]

_Convert = Callable[[Any], Any]

# Fields whose value must not leave the process unless the caller asks for secrets. A field
# events.py hides from its repr (``_redacted``) counts as secret too, so a new secret field
# marked the way events.py marks them is covered without touching this table.
_SECRET_FIELDS: Final = frozenset({(ev.ResumptionUpdate, "handle")})

# Exception classes a ConversationFailed error may be rebuilt as, by class name.
_ERROR_CLASSES: Final[dict[str, type[LiveError]]] = {
    name: obj
    for name, obj in vars(_errors).items()
    if isinstance(obj, type) and issubclass(obj, LiveError)
}


def _encode_bytes(value: bytes) -> str:
    return binascii.b2a_base64(value, newline=False).decode("ascii")


def _decode_bytes(value: str) -> bytes:
    return binascii.a2b_base64(value, strict_mode=True)


def _encode_model(value: pydantic.BaseModel) -> dict[str, Any]:
    return value.model_dump(mode="json", exclude_none=True)


def _encode_error(error: BaseException) -> dict[str, Any]:
    out: dict[str, Any] = {"class": type(error).__name__, "message": str(error)}
    close = getattr(error, "close", None)
    if isinstance(close, CloseInfo):
        out["close"] = {"code": close.code, "reason": close.reason}
    return out


def _decode_error(value: dict[str, Any]) -> LiveError:
    """The same class from liveactors._errors when it exists and takes a message, else a plain
    LiveError; the message (and close info, where the class keeps one) is preserved."""
    name, message, close = value.get("class"), value.get("message"), value.get("close")
    if type(name) is not str or type(message) is not str:
        raise ValueError("expected {'class': str, 'message': str}")
    info = None
    if close is not None:
        if (
            type(close) is not dict
            or type(close.get("code")) is not int
            or type(close.get("reason", "")) is not str
        ):
            raise ValueError("expected 'close' to be {'code': int, 'reason': str}")
        info = CloseInfo(close["code"], close.get("reason", ""))
    cls = _ERROR_CLASSES.get(name, LiveError)
    if issubclass(cls, _ClosedError):
        return cls(message, info)
    try:
        return cls(message)
    except TypeError:  # needs more than a message (InvalidConfig)
        return LiveError(message)


class _Codec(typing.NamedTuple):
    """How one annotation travels: exact JSON types accepted back, and the converters."""

    accepts: frozenset[type]
    what: str  # for error messages
    encode: _Convert | None = None  # None: the value is JSON as is
    decode: _Convert | None = None  # None: the JSON value is the value


# Converters by annotation; _codec builds the rest (X | None, tuple[X, ...], google-genai
# types) from these.
_CODECS: Final[dict[Any, _Codec]] = {
    str: _Codec(frozenset({str}), "a string"),
    int: _Codec(frozenset({int}), "an integer"),
    float: _Codec(frozenset({float, int}), "a number", decode=float),
    bool: _Codec(frozenset({bool}), "a boolean"),
    bytes: _Codec(frozenset({str}), "a base64 string", _encode_bytes, _decode_bytes),
    dict[str, Any]: _Codec(frozenset({dict}), "an object"),
    LiveError: _Codec(frozenset({dict}), "an error object", _encode_error, _decode_error),
}


def _codec(annotation: Any) -> _Codec:
    """The codec of one resolved field annotation; TypeError for one this module cannot carry,
    so a new event field of a new kind fails at import rather than at runtime."""
    if annotation in _CODECS:
        return _CODECS[annotation]
    args = typing.get_args(annotation)
    if isinstance(annotation, UnionType) and len(args) == 2 and NoneType in args:
        inner = _codec(next(a for a in args if a is not NoneType))
        return inner._replace(accepts=inner.accepts | {NoneType}, what=f"{inner.what} or null")
    if typing.get_origin(annotation) is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _tuple_codec(_codec(args[0]))
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        what = f"a {annotation.__name__} object"
        return _Codec(frozenset({dict}), what, _encode_model, annotation.model_validate)
    raise TypeError(f"no JSON codec for annotation {annotation!r}")


def _tuple_codec(item: _Codec) -> _Codec:
    accepts, what, item_encode, item_decode = item

    def decode(values: list[Any]) -> tuple[Any, ...]:
        for index, value in enumerate(values):
            if type(value) not in accepts:
                raise ValueError(f"item {index}: expected {what}, got {type(value).__name__}")
        if item_decode is None:
            return tuple(values)
        return tuple(item_decode(value) for value in values)

    encode: _Convert = list if item_encode is None else lambda v: [item_encode(x) for x in v]
    return _Codec(frozenset({list}), f"a list (each {what})", encode, decode)


class _Plan(typing.NamedTuple):
    """Everything event_to_json / event_from_json need about one event class."""

    cls: type[ev.Event]
    name: str
    plain: tuple[str, ...]  # fields that are JSON as they are
    get_plain: Callable[[Any], tuple[Any, ...]]
    converted: tuple[tuple[str, _Convert], ...]  # (field, encoder)
    converted_bare: tuple[tuple[str, _Convert], ...]  # the same, less the media field
    media: str | None  # the bytes field carried apart with media=False
    secret: tuple[tuple[str, _Convert | None], ...]  # (field, encoder)
    fields: tuple[tuple[str, _Codec, bool], ...]  # (field, codec, required)


def _plan(cls: type[ev.Event]) -> _Plan:
    hints = typing.get_type_hints(cls, localns={"types": types, "LiveError": LiveError})
    plain: list[str] = []
    converted: list[tuple[str, _Convert]] = []
    secret: list[tuple[str, _Convert | None]] = []
    fields: list[tuple[str, _Codec, bool]] = []
    for field in attrs.fields(cls):
        name = field.name
        if name == "type" or not field.init:
            raise TypeError(f"{cls.__name__}.{name}: cannot be carried as JSON")
        try:
            codec = _codec(hints[name])
        except TypeError as exc:
            raise TypeError(f"{cls.__name__}.{name}: {exc}") from None
        if (cls, name) in _SECRET_FIELDS or field.repr is ev._redacted:
            secret.append((name, codec.encode))
        elif codec.encode is None:
            plain.append(name)
        else:
            converted.append((name, codec.encode))
        fields.append((name, codec, field.default is attrs.NOTHING))
    getter = attrgetter(*plain)
    get_plain = getter if len(plain) > 1 else lambda event: (getter(event),)
    media = [name for name, codec, _ in fields if codec.encode is _encode_bytes]
    if len(media) > 1:
        raise TypeError(f"{cls.__name__}: more than one bytes field")
    bare = tuple(item for item in converted if item[0] not in media)
    return _Plan(
        cls,
        cls.__name__,
        tuple(plain),
        get_plain,
        tuple(converted),
        bare,
        media[0] if media else None,
        tuple(secret),
        tuple(fields),
    )


_PLANS: Final[dict[type, _Plan]] = {}
for _name in ev.__all__:
    _cls = getattr(ev, _name)
    if isinstance(_cls, type) and issubclass(_cls, ev.Event):
        _PLANS[_cls] = _plan(_cls)
_BY_NAME: Final[dict[str, _Plan]] = {plan.name: plan for plan in _PLANS.values()}
del _name, _cls


def event_to_json(event: ev.Event, *, secrets: bool = False, media: bool = True) -> dict[str, Any]:
    """A plain-JSON dict of ``event``: ``"type"`` and every field, bytes as base64.

    Secret fields (the resumption handle) are ``null`` unless ``secrets`` is true: keep them
    for a trusted store, never for a browser. With ``media`` false, the media field (see the
    module docstring) is ``""``: the caller carries its bytes. TypeError for a class not in
    ``events``.
    """
    plan = _PLANS.get(type(event))
    if plan is None:
        raise TypeError(f"not a liveactors event: {type(event).__name__}")
    out: dict[str, Any] = dict(zip(plan.plain, plan.get_plain(event), strict=True))
    out["type"] = plan.name
    if media or plan.media is None:
        converted = plan.converted
    else:
        converted, out[plan.media] = plan.converted_bare, ""
    for name, encode in converted:
        value = getattr(event, name)
        out[name] = None if value is None else encode(value)
    for name, encode_secret in plan.secret:
        value = getattr(event, name) if secrets else None
        out[name] = value if value is None or encode_secret is None else encode_secret(value)
    return out


def event_from_json(data: Mapping[str, Any], *, media: bytes | None = None) -> ev.Event:
    """The event :func:`event_to_json` made ``data`` from.

    ``media``, when given, is the value of the media field (see the module docstring), carried
    apart from ``data``. ValueError, naming the type and the field, for an unknown ``"type"``,
    a missing field (one with a default may be left out), a value of the wrong JSON type, or
    media for a type without a media field. Keys that name no field are ignored, so a newer
    writer's extra fields do not break an older reader.
    """
    if type(data) is not dict and not isinstance(data, Mapping):
        raise ValueError(f"an event must be a JSON object, not {type(data).__name__}")
    name = data.get("type")
    plan = _BY_NAME.get(name) if type(name) is str else None
    if plan is None:
        raise ValueError(f"unknown event type {name!r}")
    kwargs: dict[str, Any] = {}
    for field, (accepts, what, _, decode), required in plan.fields:
        try:
            value = data[field]
        except KeyError:
            if required:
                raise ValueError(f"{name}: missing field {field!r}") from None
            continue
        if type(value) not in accepts:
            raise ValueError(f"{name}.{field}: expected {what}, got {type(value).__name__}")
        if decode is not None and value is not None:
            try:
                value = decode(value)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{name}.{field}: {exc}") from exc
        kwargs[field] = value
    if media is not None:
        if plan.media is None:
            raise ValueError(f"{name}: has no media field")
        kwargs[plan.media] = media
    return plan.cls(**kwargs)
