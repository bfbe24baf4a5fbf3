"""The Vertex AI Live API endpoint: where it is, which model path, which credentials.

Everything here follows what google-genai does for ``Client(vertexai=True)`` (``_api_client.py``
for the host and the environment, ``live.py`` for the URL, headers and model path) and Google
Cloud's Live API docs (cloud.google.com/vertex-ai/generative-ai/docs/live-api):

* URL ``wss://{host}/ws/google.cloud.aiplatform.{api_version}.LlmBidiService/BidiGenerateContent``;
  host ``aiplatform.googleapis.com`` for ``global``, ``aiplatform.{us|eu}.rep.googleapis.com`` for
  the multi-regions, else ``{location}-aiplatform.googleapis.com``.
* Auth: ``Authorization: Bearer <OAuth access token>`` (plus ``x-goog-user-project`` when the
  credentials name a quota project), or in express mode an API key in ``x-goog-api-key``.
* ``setup.model``: ``projects/{p}/locations/{l}/publishers/google/models/{m}``, or in express
  mode ``publishers/google/models/{m}``.

Credentials, project and key never appear in a ``repr``, a log record or an exception.
"""

from __future__ import annotations

import os
import re
import ssl
from typing import Final

import trio

from ._backend import DEFAULT_MODEL, check_api_version, check_key, check_seconds, ws_base
from ._connect import WebSocketTransport
from ._credentials import AccessTokens, TokenCredentials
from ._errors import InvalidCommand
from ._models import Platform
from ._protocol.setup import vertex_model_path
from ._transport import ConnectRequest, Transport

__all__ = ["VertexBackend", "vertex_host"]

_MULTI_REGIONS: Final = frozenset({"us", "eu"})
_LOCATION: Final = re.compile(r"[a-z][a-z0-9-]*")
# Project ids, project numbers and legacy domain-scoped ids ("example.com:proj"); no "/".
_PROJECT: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:_-]*")


def vertex_host(location: str) -> str:
    """The Vertex AI API host serving ``location`` (as google-genai picks it)."""
    if location == "global":
        return "aiplatform.googleapis.com"
    if location in _MULTI_REGIONS:
        return f"aiplatform.{location}.rep.googleapis.com"
    return f"{location}-aiplatform.googleapis.com"


class VertexBackend:
    """The Vertex AI Live API endpoint (what ``genai.Client(vertexai=True)`` connects to).

    With a project, connections authenticate with an OAuth access token: from ``credentials``
    (any google-auth credentials object), or else from Application Default Credentials, loaded
    on the first connect. The token is refreshed in a worker thread before a connect when it has
    less than five minutes left. ``project`` defaults to ``GOOGLE_CLOUD_PROJECT`` (then to the
    ``project_id`` of the credentials passed in); ``location`` to ``GOOGLE_CLOUD_LOCATION``,
    then ``"global"``.

    Express mode: with ``api_key=...``, or with ``GOOGLE_API_KEY`` set and no project, location
    or credentials given (google-genai's precedence), connections send the key in
    ``x-goog-api-key`` and name the model ``publishers/google/models/{model}``; no project.

    ``base_url`` replaces the host (a proxy, or :func:`liveactors.testing.open_fake_server`'s
    URL). Sessions ask for transparent resumption by default: Vertex AI reports which client
    messages each resumption handle covers, so nothing is replayed twice or lost. The other
    arguments are as for :class:`~liveactors.GeminiBackend`.
    """

    __slots__ = (
        "_key",
        "_tokens",
        "api_version",
        "base_url",
        "connect_timeout",
        "keepalive",
        "keepalive_timeout",
        "location",
        "model",
        "project",
        "setup_timeout",
        "ssl_context",
        "transport",
    )

    def __init__(
        self,
        project: str | None = None,
        location: str | None = None,
        model: str = DEFAULT_MODEL,
        credentials: TokenCredentials | None = None,
        api_key: str | None = None,
        api_version: str = "v1beta1",
        base_url: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        *,
        transport: Transport | None = None,
        connect_timeout: float = 10.0,
        setup_timeout: float = 10.0,
        keepalive: float | None = 30.0,
        keepalive_timeout: float = 90.0,
    ) -> None:
        if api_key is not None and credentials is not None:
            raise InvalidCommand("pass credentials=... or api_key=... (express mode), not both")
        if api_key is not None and project is not None:
            raise InvalidCommand(
                "api_key=... is Vertex AI express mode, which takes no project; "
                "pass a project (with credentials) or an API key, not both"
            )
        env_project = os.environ.get("GOOGLE_CLOUD_PROJECT") or None
        if api_key is None and credentials is None and not (project or location or env_project):
            # google-genai's precedence: an explicit project or location, or an implicit
            # project, beats an implicit key.
            api_key = os.environ.get("GOOGLE_API_KEY") or None
        self._key = None if api_key is None else check_key(api_key)
        if self._key is None:
            project = project or env_project or _project_of(credentials)
            if not project:
                raise InvalidCommand(
                    "no Google Cloud project: pass project=..., or set GOOGLE_CLOUD_PROJECT "
                    "(or pass api_key=... for Vertex AI express mode)"
                )
            if not isinstance(project, str) or not _PROJECT.fullmatch(project):
                raise InvalidCommand(f"invalid project {project!r}")
            location = location or os.environ.get("GOOGLE_CLOUD_LOCATION") or "global"
        else:
            project = None
            location = location or "global"  # express mode lives on the global endpoint
        if not isinstance(location, str) or not _LOCATION.fullmatch(location):
            raise InvalidCommand(
                f"location must be a Vertex AI location such as 'global', 'us' or "
                f"'us-central1', not {location!r}"
            )
        self.project: str | None = project
        self.location: str = location
        self.model = model
        vertex_model_path(model)  # refuses an empty or malformed name now, not at spawn
        self.api_version = check_api_version(api_version, "v1beta1")
        self.base_url = ws_base(base_url or f"wss://{vertex_host(location)}")
        self.ssl_context = ssl_context
        self.transport: Transport = transport or WebSocketTransport()
        self.connect_timeout = connect_timeout
        self.setup_timeout = setup_timeout
        check_seconds("keepalive", keepalive)
        check_seconds("keepalive_timeout", keepalive_timeout)
        self.keepalive = keepalive
        self.keepalive_timeout = keepalive_timeout
        self._tokens = AccessTokens(credentials)

    def __repr__(self) -> str:
        if self._key is not None:
            kind = "express-mode API key"
        elif self._tokens.given:
            kind = "credentials"
        else:
            kind = "Application Default Credentials"
        return (
            f"VertexBackend(project={self.project!r}, location={self.location!r}, "
            f"model={self.model!r}, base_url={self.base_url!r}, "
            f"api_version={self.api_version!r}, credentials=<{kind}, redacted>)"
        )

    @property
    def express(self) -> bool:
        """Whether this is Vertex AI express mode (an API key, no project)."""
        return self._key is not None

    @property
    def url(self) -> str:
        """The endpoint URL (no credentials in it)."""
        return (
            f"{self.base_url}/ws/google.cloud.aiplatform.{self.api_version}"
            ".LlmBidiService/BidiGenerateContent"
        )

    @property
    def platform(self) -> Platform:
        """Which endpoint this is: Vertex AI."""
        return Platform.VERTEX

    @property
    def model_resource(self) -> str:
        """The model as ``setup.model`` names it: ``projects/{p}/locations/{l}/publishers/google/
        models/{m}``, or ``publishers/google/models/{m}`` in express mode; a full path as given."""
        return vertex_model_path(self.model, self.project, self.location)

    @property
    def transparent_resumption(self) -> bool:
        """Vertex AI supports transparent resumption, so sessions ask for it by default."""
        return True

    async def prepare(self) -> None:
        """Make sure the access token is good for the next connect: loads Application Default
        Credentials on first use and refreshes a token within five minutes of expiry, in a
        worker thread (concurrent calls refresh once). Express mode has nothing to do.

        Raises :class:`~liveactors.SessionRejected` when there are no usable credentials and
        :class:`~liveactors.ConnectionLost` when the token endpoint cannot be reached.
        """
        if self._key is not None:
            await trio.lowlevel.checkpoint()
            return
        await self._tokens.ensure()

    def connect_request(self) -> ConnectRequest:
        """What a transport needs for one new connection (after :meth:`prepare`)."""
        if self._key is not None:
            headers: tuple[tuple[str, str], ...] = (("x-goog-api-key", self._key),)
        else:
            token = self._tokens.token
            if token is None:
                raise InvalidCommand(
                    "VertexBackend has no access token yet: await backend.prepare() before "
                    "connect_request()"
                )
            headers = (("Authorization", f"Bearer {token}"),)
            quota_project = self._tokens.quota_project
            if quota_project is not None:
                headers += (("x-goog-user-project", quota_project),)
        return ConnectRequest(
            url=self.url,
            headers=headers,
            ssl_context=self.ssl_context,
            connect_timeout=self.connect_timeout,
        )


def _project_of(credentials: TokenCredentials | None) -> str | None:
    """The project a service account's credentials name, if any."""
    project = getattr(credentials, "project_id", None)
    return project if isinstance(project, str) and project else None
