"""Where conversations connect to, and with which credentials.

:class:`GeminiBackend` resolves the API key (argument, then ``GEMINI_API_KEY``, then
``GOOGLE_API_KEY``), builds the endpoint URL and the auth headers, and hands a transport the
:class:`~liveactors._transport.ConnectRequest` for each new connection. The key goes in a header,
never in the URL, and never shows in a ``repr``, a log record or an exception.
"""

from __future__ import annotations

import os
import re
import ssl
from typing import Final
from urllib.parse import urlsplit

from ._errors import InvalidCommand
from ._transport import ConnectRequest, Transport, WebSocketTransport

__all__ = ["DEFAULT_MODEL", "TEXT_MODEL", "GeminiBackend"]

#: Native-audio model: answers only in AUDIO (TEXT modality is refused with 1007).
DEFAULT_MODEL: Final = "gemini-2.5-flash-preview-native-audio-dialog"
#: Half-cascade model that can answer in TEXT.
TEXT_MODEL: Final = "gemini-live-2.5-flash-preview"

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
        if not isinstance(key, str) or not _PRINTABLE_ASCII.fullmatch(key):
            # Never echo the key itself: it may be right but for a stray character.
            raise InvalidCommand(
                "the API key must be a string of printable ASCII characters without spaces"
            )
        if not isinstance(model, str) or not model:
            raise InvalidCommand("model must be a non-empty string")
        if not _VERSION.match(api_version):
            raise InvalidCommand(f"api_version must look like 'v1beta', not {api_version!r}")
        self._key = key
        self.model = model
        self.base_url = _ws_base(base_url)
        self.api_version = api_version
        self.ssl_context = ssl_context
        self.transport: Transport = transport or WebSocketTransport()
        self.connect_timeout = connect_timeout
        self.setup_timeout = setup_timeout
        for what, value in (("keepalive", keepalive), ("keepalive_timeout", keepalive_timeout)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or not value > 0
            ):
                raise InvalidCommand(f"{what} must be a positive number of seconds, not {value!r}")
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

    def redact(self, text: str) -> str:
        """``text`` with the credential replaced, for anything that might echo it back."""
        return text.replace(self._key, "<redacted>") if self._key else text


def _ws_base(base_url: str) -> str:
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
