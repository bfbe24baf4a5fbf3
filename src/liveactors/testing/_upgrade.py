"""The HTTP upgrade request: which endpoint, which credential, and whether to accept it.

Endpoints (ai.google.dev/api/live; google-genai ``live.py``):
``/ws/google.ai.generativelanguage.{v1,v1alpha,v1beta}.GenerativeService.{BidiGenerateContent,
BidiGenerateContentConstrained}``, repeated slashes collapsed (the SDK asks for ``//ws/...``); in
Vertex mode also
``/ws/google.cloud.aiplatform.{v1,v1beta1}.LlmBidiService/BidiGenerateContent``. Anything else is
an HTTP 404.

Credentials: an API key in ``x-goog-api-key`` or ``?key=`` for ``BidiGenerateContent``; an
ephemeral token in ``Authorization: Token ...`` or ``?access_token=`` for the Constrained method;
``Authorization: Bearer ...`` on the Vertex path, or there an API key in ``x-goog-api-key``
(Vertex AI express mode, as google-genai sends it). A missing or unknown credential is, by
default, not refused here: the real service accepts the upgrade and closes with 1007 on the first
message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Final
from urllib.parse import parse_qs

import attrs

from ._options import ServerOptions

__all__ = ["HttpRefusal", "Upgrade", "inspect_upgrade"]

_PATH: Final = re.compile(
    r"^/ws/google\.ai\.generativelanguage\.(v1|v1alpha|v1beta)\.GenerativeService\."
    r"(BidiGenerateContent|BidiGenerateContentConstrained)$"
)
_VERTEX_PATH: Final = re.compile(
    r"^/ws/google\.cloud\.aiplatform\.(v1|v1beta1)\.LlmBidiService/(BidiGenerateContent)$"
)
_SLASHES: Final = re.compile(r"/{2,}")

MISSING_KEY: Final = "API key missing. Please pass a valid API key."
UNKNOWN_KEY: Final = "API key not valid. Please pass a valid API key."
BAD_TOKEN: Final = "Invalid auth token. Please pass a valid ephemeral token (auth_tokens/...)."


@attrs.frozen
class Upgrade:
    """An upgrade to accept; ``auth_error`` set means "accept, then close 1007 with it"."""

    path: str
    api_version: str
    method: str
    vertex: bool
    auth_error: str | None


@attrs.frozen
class HttpRefusal:
    """An upgrade to answer with an HTTP error instead of 101."""

    status: int
    body: bytes


def _error_body(status: int, message: str, code_name: str) -> bytes:
    error = {"error": {"code": status, "message": message, "status": code_name}}
    return json.dumps(error).encode()


def _header(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def inspect_upgrade(
    target: str, headers: Sequence[tuple[bytes, bytes]], options: ServerOptions
) -> Upgrade | HttpRefusal:
    """Decide what to do with an upgrade request for ``target`` (path and query)."""
    # Not urlsplit: it would read the SDK's "//ws/..." as a host named "ws".
    raw_path, _, raw_query = target.partition("?")
    path = _SLASHES.sub("/", raw_path)
    match = _PATH.match(path)
    vertex = False
    if match is None and options.vertex:
        match = _VERTEX_PATH.match(path)
        vertex = match is not None
    if match is None:
        return HttpRefusal(404, _error_body(404, f"Method not found: {raw_path}", "NOT_FOUND"))
    version, method = match.group(1), match.group(2)
    query = parse_qs(raw_query)
    authorization = _header(headers, b"authorization") or ""
    if vertex:
        credential = authorization[7:] if authorization[:7].lower() == "bearer " else None
        # Express mode: an API key instead of an OAuth token.
        credential = credential or _header(headers, b"x-goog-api-key") or _first(query, "key")
        error = _check(credential, options.api_keys, None, UNKNOWN_KEY)
    elif method == "BidiGenerateContentConstrained":
        credential = authorization[6:] if authorization[:6].lower() == "token " else None
        credential = credential or _first(query, "access_token")
        error = _check(credential, options.auth_tokens, "auth_tokens/", BAD_TOKEN)
    else:
        credential = _header(headers, b"x-goog-api-key") or _first(query, "key")
        error = _check(credential, options.api_keys, None, UNKNOWN_KEY)
    if error is not None and options.auth_failure != "close":
        status = int(options.auth_failure)
        name = "UNAUTHENTICATED" if status == 401 else "PERMISSION_DENIED"
        return HttpRefusal(status, _error_body(status, error, name))
    return Upgrade(path, version, method, vertex, error)


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _check(
    credential: str | None, accepted: frozenset[str] | None, prefix: str | None, unknown: str
) -> str | None:
    """None when ``credential`` is acceptable, else the close reason."""
    if not credential:
        return MISSING_KEY if prefix is None else BAD_TOKEN
    if accepted is None:
        if prefix is not None and not credential.startswith(prefix):
            return unknown
        return None
    return None if credential in accepted else unknown
