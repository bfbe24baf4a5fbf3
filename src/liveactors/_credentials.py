"""Google Cloud access tokens for Vertex AI, refreshed off the event loop.

A Vertex AI connection is authorised at its WebSocket upgrade by ``Authorization: Bearer
<token>``, an OAuth 2 access token that lives about an hour (google-genai's ``live.py`` does the
same). :class:`AccessTokens` holds one credentials object, the caller's or Application Default
Credentials (ADC, ``google.auth.default``) loaded on first use, and makes sure before each connect
that its token has at least :data:`REFRESH_MARGIN` left. An open connection is not cut when the
token expires, so a token that is good at the upgrade is all a connection needs.

google-auth blocks (file reads, a ``gcloud`` subprocess, HTTP to the token endpoint or the
metadata server), so loading and refreshing run in a worker thread, under a
:class:`trio.CapacityLimiter` of this object's own: concurrent connects queue behind one refresh
(the thread checks again once its turn comes, so a fleet reconnecting at once refreshes once), and
tools that run in trio's default thread pool never wait behind it, nor it behind them.

google-auth's errors become liveactors errors here, once: no credentials at all, or credentials
the token endpoint refuses, are :class:`~liveactors.SessionRejected` (retrying would not help); a
network failure on the way to the token endpoint is :class:`~liveactors.ConnectionLost`, which the
supervisor retries with backoff. Their messages never carry the token or other secrets of the
credentials, and neither does anything logged here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

import trio

from ._errors import ConnectionLost, LiveError, SessionRejected

__all__ = [
    "CLOUD_PLATFORM_SCOPE",
    "REFRESH_MARGIN",
    "REFRESH_TIMEOUT",
    "AccessTokens",
    "TokenCredentials",
]

logger = logging.getLogger("liveactors.vertex")

#: The OAuth scope Vertex AI needs (what google-genai asks ADC for).
CLOUD_PLATFORM_SCOPE: Final = "https://www.googleapis.com/auth/cloud-platform"
#: A token with less than this left is refreshed before a connect.
REFRESH_MARGIN: Final = timedelta(minutes=5)
#: Seconds a load or refresh may take before the connect gives up (and is retried).
REFRESH_TIMEOUT: Final = 60.0

_PRINTABLE_ASCII: Final = re.compile(r"[\x21-\x7e]+")
# Attributes of google-auth credentials that hold secrets, redacted from any error text.
_SECRET_ATTRIBUTES: Final = ("token", "refresh_token", "_refresh_token", "client_secret", "_secret")

NO_CREDENTIALS: Final = (
    "no Google Cloud credentials: run `gcloud auth application-default login`, set "
    "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, run on Google Cloud with a "
    "service account, pass credentials=..., or pass api_key=... for Vertex AI express mode"
)


class TokenCredentials(Protocol):
    """What liveactors uses of a credentials object: any ``google.auth.credentials.Credentials``
    fits. ``expiry`` (a UTC datetime) and ``quota_project_id`` are read when present."""

    @property
    def token(self) -> str | None:
        """The current access token, or None before the first refresh."""
        ...

    def refresh(self, request: Any, /) -> None:
        """Get a new token (blocking: runs in a worker thread)."""
        ...


Loader = Callable[[], tuple[TokenCredentials, str | None]]


def application_default_credentials() -> tuple[TokenCredentials, str | None]:
    """ADC with the cloud-platform scope, and the project they name (blocking)."""
    import google.auth  # imported when ADC are used, not before

    credentials, project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    return credentials, project


def _google_request() -> Any:
    from google.auth.transport.requests import Request

    return Request()


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AccessTokens:
    """One credentials object and the access token it gives, refreshed when near expiry.

    ``credentials=None`` loads ADC (``load``) in a worker thread on the first :meth:`ensure`.
    ``now`` returns the current time (aware, or naive UTC as google-auth uses); tests inject it.
    A load or refresh that takes longer than ``timeout`` seconds is left to finish in its
    thread while :meth:`ensure` raises :class:`~liveactors.ConnectionLost`.
    """

    __slots__ = (
        "_credentials",
        "_limiter",
        "_load",
        "_margin",
        "_now",
        "_request",
        "_timeout",
        "given",
        "refreshes",
    )

    def __init__(
        self,
        credentials: TokenCredentials | None = None,
        *,
        load: Loader = application_default_credentials,
        now: Callable[[], datetime] = _utcnow,
        margin: timedelta = REFRESH_MARGIN,
        request: Callable[[], Any] = _google_request,
        timeout: float = REFRESH_TIMEOUT,
    ) -> None:
        self._credentials = credentials
        #: Whether the credentials were passed in (else they are ADC).
        self.given = credentials is not None
        self._load = load
        self._now = now
        self._margin = margin
        self._request = request
        self._timeout = timeout
        self._limiter = trio.CapacityLimiter(1)
        #: How many times a token was fetched (for statistics and tests).
        self.refreshes = 0

    def __repr__(self) -> str:
        kind = "not loaded yet" if self._credentials is None else type(self._credentials).__name__
        return f"<AccessTokens {kind}, token redacted>"

    @property
    def loaded(self) -> bool:
        """Whether there is a credentials object yet (ADC load lazily)."""
        return self._credentials is not None

    @property
    def token(self) -> str | None:
        """The current access token (None before the first :meth:`ensure`)."""
        if self._credentials is None:
            return None
        token = self._credentials.token
        return token if isinstance(token, str) and token else None

    @property
    def quota_project(self) -> str | None:
        """The credentials' quota project (``x-goog-user-project``), if they name one."""
        project = getattr(self._credentials, "quota_project_id", None)
        return project if isinstance(project, str) and _PRINTABLE_ASCII.fullmatch(project) else None

    def stale(self) -> bool:
        """Whether the token is missing, or expires within the margin, or the credentials say
        they are not valid (when they give no expiry)."""
        if self.token is None:
            return True
        expiry = getattr(self._credentials, "expiry", None)
        if not isinstance(expiry, datetime):
            return getattr(self._credentials, "valid", True) is False
        return _as_utc(expiry) - self._margin <= _as_utc(self._now())

    async def ensure(self) -> str:
        """A token good for at least the margin: refreshed in a worker thread when stale.

        Raises :class:`~liveactors.SessionRejected` (no credentials, refused credentials) or
        :class:`~liveactors.ConnectionLost` (the token endpoint could not be reached).
        """
        if not self.stale():
            await trio.lowlevel.checkpoint()
            return self._checked_token()
        try:
            # Abandoned on cancel (a timeout, a shutdown): the thread finishes on its own and
            # keeps the limiter until then, so no second refresh overlaps it.
            with trio.move_on_after(self._timeout) as waited:
                await trio.to_thread.run_sync(
                    self._refresh_in_thread, limiter=self._limiter, abandon_on_cancel=True
                )
        except LiveError:
            raise
        except Exception as exc:
            raise self._translate(exc) from None
        if waited.cancelled_caught:
            raise ConnectionLost(
                f"no Google Cloud access token within {self._timeout:g}s "
                "(the token endpoint or metadata server did not answer)"
            )
        return self._checked_token()

    def _refresh_in_thread(self) -> None:
        """Runs in the worker thread, one at a time: load ADC if needed, then refresh if the
        token is still stale (another connect may have refreshed it while this one waited)."""
        if self._credentials is None:
            self._credentials, _ = self._load()
        if not self.stale():
            return
        logger.debug("refreshing the Google Cloud access token")
        self._credentials.refresh(self._request())
        self.refreshes += 1

    def _checked_token(self) -> str:
        token = self.token
        if token is None:
            raise SessionRejected("the Google Cloud credentials gave no access token")
        if not _PRINTABLE_ASCII.fullmatch(token):
            # Never shown: it goes in a header, and a stray character is all that is wrong.
            raise SessionRejected("the Google Cloud credentials gave a malformed access token")
        return token

    def _translate(self, exc: Exception) -> LiveError:
        from google.auth import exceptions as auth

        if isinstance(exc, auth.DefaultCredentialsError):
            return SessionRejected(f"{NO_CREDENTIALS} ({self._detail(exc)})")
        what = f"could not refresh the Google Cloud access token: {self._detail(exc)}"
        if isinstance(exc, auth.TransportError | OSError) or getattr(exc, "retryable", False):
            return ConnectionLost(what)
        return SessionRejected(what)

    def _detail(self, exc: Exception) -> str:
        text = f"{type(exc).__name__}: {exc}"
        for name in _SECRET_ATTRIBUTES:
            secret = getattr(self._credentials, name, None)
            if isinstance(secret, str) and len(secret) >= 4:
                text = text.replace(secret, "<redacted>")
        return text if len(text) <= 300 else text[:297] + "..."


def _as_utc(moment: datetime) -> datetime:
    """Naive UTC (google-auth's convention) for comparisons, from naive or aware."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)
