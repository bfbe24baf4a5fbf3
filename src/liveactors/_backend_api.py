"""What the supervisor needs of a backend: the interface both endpoints implement.

:class:`~liveactors.GeminiBackend` (the Gemini Developer API) and
:class:`~liveactors.VertexBackend` (Vertex AI) differ in URL, credentials and model naming; the
rest of the library sees only this.
"""

from __future__ import annotations

import ssl
from typing import Protocol, runtime_checkable

from ._models import Platform
from ._transport import ConnectRequest, Transport

__all__ = ["Backend"]


@runtime_checkable
class Backend(Protocol):
    """Where conversations connect to, and with which credentials."""

    transport: Transport
    connect_timeout: float
    setup_timeout: float
    keepalive: float | None
    keepalive_timeout: float
    ssl_context: ssl.SSLContext | None

    @property
    def model(self) -> str:
        """The model name as the user gave it."""

    @property
    def model_resource(self) -> str:
        """The model as ``setup.model`` names it on this endpoint."""

    @property
    def platform(self) -> Platform:
        """Which endpoint this is."""

    @property
    def transparent_resumption(self) -> bool:
        """Whether sessions ask for transparent resumption by default."""

    async def prepare(self) -> None:
        """Awaited before every connect (refresh credentials, off the event loop)."""

    def connect_request(self) -> ConnectRequest:
        """What a transport needs for one new connection (URL, headers, TLS)."""
