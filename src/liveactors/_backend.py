"""Where conversations connect to, and with which credentials.

:class:`GeminiBackend` resolves the API key (argument, then ``GEMINI_API_KEY``, then
``GOOGLE_API_KEY``), builds the endpoint URL and the auth headers, and hands a transport the
:class:`~liveactors._transport.ConnectRequest` for each new connection. The key goes in a header,
never in the URL, and never shows in a ``repr``, a log record or an exception.

The checks it shares with :class:`~liveactors.VertexBackend` (``_vertex.py``) live here too:
base URL, API key, API version, timeouts.
"""

from __future__ import annotations

import os
import re
import ssl
from typing import Final
from urllib.parse import urlsplit

import trio

from ._connect import WebSocketTransport
from ._errors import InvalidCommand
from ._models import RECOMMENDED, Platform
from ._protocol.setup import model_path
from ._transport import ConnectRequest, Transport

__all__ = ["DEFAULT_MODEL", "TEXT_MODEL", "GeminiBackend"]

#: The service's recommended Live model (GA since 2026-09). It answers in AUDIO only; the text
#: of its answers comes from output transcription, which liveactors requests by default.
DEFAULT_MODEL: Final = RECOMMENDED
#: Kept for old code: equal to :data:`DEFAULT_MODEL`. The half-cascade models that answered in
#: TEXT were shut down on 2025-12-09; text now comes from the output transcription.
TEXT_MODEL: Final = DEFAULT_MODEL

_DEFAULT_BASE_URL: Final = "wss://generativelanguage.googleapis.com"
_VERSION = re.compile(r"^v\d+(alpha|beta)?\d*$")
_EPHEMERAL_PREFIX: Final = "auth_tokens/"
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")


class GeminiBackend:
    """The Gemini Developer API's Live endpoint (or anything speaking it, like the fake server).

    ``transport`` replaces how connections are opened; tests pass the in-memory transport of
    :func:`liveactors.testing.open_fake_server`. ``keepalive``: after that many idle seconds a
    connection is pinged, and one that answers nothing within ``keepalive_timeout`` is treated
    as lost (the service's pongs have been seen to take 8 to 30 s, so keep that above 60);
    ``keepalive=None`` turns pinging off.
    """

    __slots__ = (
        "_key",
        "api_version",
        "base_url",
        "connect_timeout",
        "keepalive",
        "keepalive_timeout",
        "model",
        "setup_timeout",
        "ssl_context",
        "transport",
    )

    def __init__(
        self,
        api_key: str | None = None,
        model: str = DEFAULT_MODEL,
        base_url: str = _DEFAULT_BASE_URL,
        api_version: str = "v1beta",
        ssl_context: ssl.SSLContext | None = None,
        *,
        transport: Transport | None = None,
        connect_timeout: float = 10.0,
        setup_timeout: float = 10.0,
        keepalive: float | None = 30.0,
        keepalive_timeout: float = 90.0,
    ) -> None:
        key = api_key or os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")
        if not key:
            raise InvalidCommand(
                "no API key: pass api_key=..., or set GEMINI_API_KEY or GOOGLE_API_KEY"
            )
        if not isinstance(model, str) or not model:
            raise InvalidCommand("model must be a non-empty string")
        self._key = check_key(key)
        self.model = model
        self.base_url = ws_base(base_url)
        self.api_version = check_api_version(api_version, "v1beta")
        self.ssl_context = ssl_context
        self.transport: Transport = transport or WebSocketTransport()
        self.connect_timeout = connect_timeout
        self.setup_timeout = setup_timeout
        check_seconds("keepalive", keepalive)
        check_seconds("keepalive_timeout", keepalive_timeout)
        self.keepalive = keepalive
        self.keepalive_timeout = keepalive_timeout

    def __repr__(self) -> str:
        kind = "ephemeral token" if self.ephemeral else "API key"
        return (
            f"GeminiBackend(model={self.model!r}, base_url={self.base_url!r}, "
            f"api_version={self.api_version!r}, credentials=<{kind}, redacted>)"
        )

    @property
    def ephemeral(self) -> bool:
        """Whether the credential is an ephemeral token (``auth_tokens/...``)."""
        return self._key.startswith(_EPHEMERAL_PREFIX)

    @property
    def url(self) -> str:
        """The endpoint URL (no credentials in it)."""
        method = "BidiGenerateContentConstrained" if self.ephemeral else "BidiGenerateContent"
        return (
            f"{self.base_url}/ws/google.ai.generativelanguage."
            f"{self.api_version}.GenerativeService.{method}"
        )

    @property
    def platform(self) -> Platform:
        """Which endpoint this is: the Gemini Developer API."""
        return Platform.DEVELOPER

    @property
    def model_resource(self) -> str:
        """The model as ``setup.model`` names it (``models/...``)."""
        return model_path(self.model)

    @property
    def transparent_resumption(self) -> bool:
        """Whether sessions ask for transparent resumption by default (a Vertex AI feature)."""
        return False

    async def prepare(self) -> None:
        """Awaited before every connect (a Vertex backend refreshes its token here)."""
        await trio.lowlevel.checkpoint()

    def connect_request(self) -> ConnectRequest:
        """What a transport needs for one new connection."""
        if self.ephemeral:
            headers = (("Authorization", f"Token {self._key}"),)
        else:
            headers = (("x-goog-api-key", self._key),)
        return ConnectRequest(
            url=self.url,
            headers=headers,
            ssl_context=self.ssl_context,
            connect_timeout=self.connect_timeout,
        )


def check_key(key: object) -> str:
    """``key`` if it can go in a header as it is; never echoes it (it may be right but for a
    stray character)."""
    if not isinstance(key, str) or not _PRINTABLE_ASCII.fullmatch(key):
        raise InvalidCommand(
            "the API key must be a string of printable ASCII characters without spaces"
        )
    return key


def check_api_version(api_version: object, example: str) -> str:
    """``api_version`` if it looks like ``v1``, ``v1beta`` or ``v1beta1`` (it goes in the path)."""
    if not isinstance(api_version, str) or not _VERSION.match(api_version):
        raise InvalidCommand(f"api_version must look like {example!r}, not {api_version!r}")
    return api_version


def check_seconds(what: str, value: float | None) -> None:
    """Refuse a ``value`` that is neither None nor a positive number of seconds."""
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not value > 0
    ):
        raise InvalidCommand(f"{what} must be a positive number of seconds, not {value!r}")


def ws_base(base_url: str) -> str:
    """``base_url`` as a ``ws://`` or ``wss://`` origin (plus path prefix), checked: no query,
    fragment or user info, since a credential there would leak into logs."""
    if not isinstance(base_url, str) or "://" not in base_url:
        raise InvalidCommand("base_url must be a ws://, wss://, http:// or https:// URL")
    scheme, rest = base_url.split("://", 1)
    scheme = {"https": "wss", "http": "ws"}.get(scheme.lower(), scheme.lower())
    if scheme not in ("ws", "wss"):
        raise InvalidCommand(f"base_url must use ws, wss, http or https, not {scheme!r}")
    url = f"{scheme}://{rest.rstrip('/')}"
    # The messages below never repeat the URL: a query or user info may hold a credential.
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises ValueError for a bad port
    except ValueError:
        raise InvalidCommand("base_url has an invalid host or port") from None
    if not parts.hostname:
        raise InvalidCommand("base_url has no host")
    if parts.query or parts.fragment:
        raise InvalidCommand(
            "base_url must not have a query or fragment (pass the API key as api_key)"
        )
    if parts.username is not None or parts.password is not None:
        raise InvalidCommand("base_url must not contain user info (pass the API key as api_key)")
    return url
