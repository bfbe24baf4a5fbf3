"""JSON for what the cluster stores in Redis (events, commands): orjson's speed with the
standard library's meaning.

orjson writes and reads a tenth as slowly as the standard library, but not always the same
thing: it writes NaN and infinities as ``null``, refuses integers beyond 64 bits and lone
surrogates, and reads an integer beyond 64 bits as a float. For those values (rare, checked
cheaply) the standard library does the work, so whatever was written by either, old workers
and clients or new ones, reads back as the same value.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

_orjson_dumps: Callable[[Any], bytes] | None
_orjson_loads: Callable[[bytes | str], Any] | None
try:
    from orjson import dumps as _orjson_dumps
    from orjson import loads as _orjson_loads
except ImportError:  # pragma: no cover - the standard library does it all
    _orjson_dumps = _orjson_loads = None

__all__ = ["dumps", "loads"]


def dumps(value: dict[str, Any]) -> bytes:
    """Compact JSON text of ``value``: by orjson unless it would write it differently from the
    standard library (which writes a NaN or an infinity as such where orjson writes ``null``,
    and takes what orjson refuses: integers beyond 64 bits, lone surrogates)."""
    if _orjson_dumps is not None:
        try:
            text = _orjson_dumps(value)
        except TypeError:  # orjson.JSONEncodeError
            pass
        else:
            if b"null" not in text or _ordinary(value):
                return text
    # ASCII, escapes and all: a lone surrogate has no UTF-8 (the standard library reads the
    # escape back as it is).
    return json.dumps(value, separators=(",", ":")).encode("ascii")


def loads(text: bytes | str) -> Any:
    """The value of JSON text: by orjson, or by the standard library for what orjson refuses
    and :func:`dumps` may have written (NaN, lone surrogates) or reads otherwise (an integer
    beyond 64 bits, which orjson makes a float)."""
    if _orjson_loads is not None:
        try:
            value = _orjson_loads(text)
        except ValueError:  # orjson.JSONDecodeError
            pass
        else:
            if type(value) is not dict or _ordinary(value):
                return value
    return json.loads(text)


# Floats at least this large might be integers orjson could not hold as such.
_BIG: Final = float(2**63)


def _ordinary(value: Any) -> bool:
    """Every float in ``value`` (nested in dicts and lists) is finite and below 2**63 in
    magnitude: orjson writes it as the standard library does, and did not read it from an
    integer literal."""
    for item in value.values() if type(value) is dict else value:
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue  # the usual values first: this runs for every event read
        if kind is float:
            if not -_BIG < item < _BIG:  # NaN too
                return False
        elif (kind is dict or kind is list or kind is tuple) and not _ordinary(item):
            return False
    return True
