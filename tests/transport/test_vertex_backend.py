"""``VertexBackend``: host per location, URL, headers, model paths, environment, and the access
token: loaded lazily, refreshed off the event loop only when near expiry, once for many connects,
and never shown anywhere."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import google.auth
import pytest
import trio
from google.auth import exceptions as auth_exceptions

from liveactors import DEFAULT_MODEL, ConnectionLost, InvalidCommand, SessionRejected
from liveactors._backend_api import Backend
from liveactors._credentials import CLOUD_PLATFORM_SCOPE, AccessTokens
from liveactors._models import Platform
from liveactors._vertex import VertexBackend, vertex_host

TOKEN = "ya29.SECRET-vertex-access-token-0123456789"
NEW_TOKEN = "ya29.SECRET-refreshed-token-9876543210"
KEY = "AIzaSyD-SECRET-express-key-0123456789"
PATH = "/ws/google.cloud.aiplatform.{version}.LlmBidiService/BidiGenerateContent"


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class FakeCredentials:
    """Duck-typed google-auth credentials: counts refreshes and notes the thread they ran in."""

    def __init__(
        self,
        token: str | None = TOKEN,
        expiry: datetime | None = None,
        *,
        valid: bool = True,
        new_token: str = NEW_TOKEN,
        lifetime: timedelta = timedelta(hours=1),
        delay: float = 0.0,
        error: Exception | None = None,
        quota_project_id: str | None = None,
        project_id: str | None = None,
    ) -> None:
        self.token = token
        self.expiry = expiry
        self.valid = valid
        self.new_token = new_token
        self.lifetime = lifetime
        self.delay = delay
        self.error = error
        self.quota_project_id = quota_project_id
        self.project_id = project_id
        self.refreshes = 0
        self.threads: list[int] = []
        self.requests: list[Any] = []

    def refresh(self, request: Any) -> None:
        self.threads.append(threading.get_ident())
        self.requests.append(request)
        if self.delay:
            time.sleep(self.delay)
        self.refreshes += 1
        if self.error is not None:
            raise self.error
        self.token = self.new_token
        self.expiry = utcnow() + self.lifetime
        self.valid = True


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "GOOGLE_CLOUD_PROJECT",
        "GOOGLE_CLOUD_LOCATION",
        "GOOGLE_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_APPLICATION_CREDENTIALS",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def no_adc(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Fails the test if ADC is loaded; returns the list of calls (empty)."""
    calls: list[Any] = []

    def default(**kwargs: Any) -> Any:
        calls.append(kwargs)
        raise AssertionError("Application Default Credentials must not be loaded here")

    monkeypatch.setattr(google.auth, "default", default)
    return calls


# --- where it connects ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "host"),
    [
        ("global", "aiplatform.googleapis.com"),
        ("us", "aiplatform.us.rep.googleapis.com"),
        ("eu", "aiplatform.eu.rep.googleapis.com"),
        ("us-central1", "us-central1-aiplatform.googleapis.com"),
        ("europe-west4", "europe-west4-aiplatform.googleapis.com"),
    ],
)
def test_host_per_location(location: str, host: str) -> None:
    assert vertex_host(location) == host
    backend = VertexBackend(project="proj-1", location=location, credentials=FakeCredentials())
    assert backend.url == f"wss://{host}" + PATH.format(version="v1beta1")
    assert backend.location == location


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
def test_url_and_api_version(version: str) -> None:
    backend = VertexBackend(project="p-1", credentials=FakeCredentials(), api_version=version)
    assert backend.url == "wss://aiplatform.googleapis.com" + PATH.format(version=version)


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("http://127.0.0.1:8080/", "ws://127.0.0.1:8080"),
        ("https://proxy.test/vertex/", "wss://proxy.test/vertex"),
        ("ws://[::1]:9000", "ws://[::1]:9000"),
    ],
)
def test_base_url_replaces_the_host(base_url: str, expected: str) -> None:
    backend = VertexBackend(
        project="p-1", location="us-central1", credentials=FakeCredentials(), base_url=base_url
    )
    assert backend.url == expected + PATH.format(version="v1beta1")


@pytest.mark.parametrize(
    "base_url",
    ["ftp://example.test", "example.test", f"ws://h/?key={KEY}", f"wss://user:{KEY}@example.test"],
)
def test_bad_base_url_is_refused_as_for_gemini(base_url: str) -> None:
    with pytest.raises(InvalidCommand, match="base_url") as caught:
        VertexBackend(api_key="k-123456", base_url=base_url)
    assert KEY not in str(caught.value)


@pytest.mark.parametrize("version", ["beta", "v1/../v2", "", "V1"])
def test_bad_api_version(version: str) -> None:
    with pytest.raises(InvalidCommand, match="api_version"):
        VertexBackend(api_key=KEY, api_version=version)


@pytest.mark.parametrize("location", ["US-CENTRAL1", "us central1", "a/b", "x.evil.test#", ""])
def test_bad_location(location: str) -> None:
    with pytest.raises(InvalidCommand, match="location"):
        VertexBackend(project="p-1", location=location or "?", credentials=FakeCredentials())


@pytest.mark.parametrize("project", ["a/b", "p q", "../x", "-p"])
def test_bad_project(project: str) -> None:
    with pytest.raises(InvalidCommand, match="project"):
        VertexBackend(project=project, credentials=FakeCredentials())


def test_what_the_supervisor_reads() -> None:
    backend: Backend = VertexBackend(
        project="p-1",
        credentials=FakeCredentials(),
        connect_timeout=3.5,
        setup_timeout=4.5,
        keepalive=None,
        keepalive_timeout=70,
    )
    assert isinstance(backend, Backend)
    assert backend.platform is Platform.VERTEX
    assert backend.transparent_resumption is True
    assert backend.model == DEFAULT_MODEL
    assert (backend.connect_timeout, backend.setup_timeout) == (3.5, 4.5)
    assert (backend.keepalive, backend.keepalive_timeout) == (None, 70)
    assert backend.ssl_context is None
    with pytest.raises(InvalidCommand, match="keepalive"):
        VertexBackend(project="p-1", credentials=FakeCredentials(), keepalive=0)


# --- which model ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "resource"),
    [
        ("gemini-3.8-live", "projects/p-1/locations/us-central1/publishers/google/models/"
         "gemini-3.8-live"),
        ("models/gemini-3.8-live", "projects/p-1/locations/us-central1/publishers/google/models/"
         "gemini-3.8-live"),
        ("publishers/google/models/gemini-x", "projects/p-1/locations/us-central1/publishers/"
         "google/models/gemini-x"),
        ("meta/llama-live", "projects/p-1/locations/us-central1/publishers/meta/models/"
         "llama-live"),
        ("projects/other/locations/europe-west4/publishers/google/models/gemini-y",
         "projects/other/locations/europe-west4/publishers/google/models/gemini-y"),
    ],
)  # fmt: skip
def test_model_resource_with_a_project(model: str, resource: str) -> None:
    backend = VertexBackend(
        project="p-1", location="us-central1", model=model, credentials=FakeCredentials()
    )
    assert backend.model == model
    assert backend.model_resource == resource


@pytest.mark.parametrize(
    ("model", "resource"),
    [
        ("gemini-3.8-live", "publishers/google/models/gemini-3.8-live"),
        ("publishers/google/models/gemini-x", "publishers/google/models/gemini-x"),
    ],
)
def test_model_resource_in_express_mode(model: str, resource: str) -> None:
    assert VertexBackend(api_key=KEY, model=model).model_resource == resource


@pytest.mark.parametrize("model", ["", "a/../b", "m?key=1", "m&x", "two words"])
def test_bad_model_names(model: str) -> None:
    with pytest.raises(InvalidCommand, match="model"):
        VertexBackend(api_key=KEY, model=model)


# --- project, location and credentials from the environment -------------------------------


def test_project_and_location_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "env-proj")
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "europe-west4")
    backend = VertexBackend(credentials=FakeCredentials())
    assert (backend.project, backend.location) == ("env-proj", "europe-west4")
    assert backend.model_resource.startswith("projects/env-proj/locations/europe-west4/")
    assert backend.url.startswith("wss://europe-west4-aiplatform.googleapis.com/")
    explicit = VertexBackend(project="arg-proj", location="us", credentials=FakeCredentials())
    assert (explicit.project, explicit.location) == ("arg-proj", "us")


def test_location_defaults_to_global() -> None:
    assert VertexBackend(project="p-1", credentials=FakeCredentials()).location == "global"


def test_project_of_service_account_credentials() -> None:
    backend = VertexBackend(credentials=FakeCredentials(project_id="sa-proj"))
    assert backend.project == "sa-proj"


def test_no_project_and_no_key_says_what_is_missing(no_adc: list[Any]) -> None:
    with pytest.raises(InvalidCommand, match="GOOGLE_CLOUD_PROJECT") as caught:
        VertexBackend()
    assert "project" in str(caught.value)
    assert "api_key" in str(caught.value)
    assert no_adc == []  # nothing slow happens in the constructor


def test_adc_are_not_loaded_by_the_constructor(no_adc: list[Any]) -> None:
    backend = VertexBackend(project="p-1")
    assert "Application Default Credentials" in repr(backend)
    assert no_adc == []


# --- express mode --------------------------------------------------------------------------


async def test_express_mode_with_a_key(no_adc: list[Any]) -> None:
    backend = VertexBackend(api_key=KEY)
    assert backend.express and backend.project is None and backend.location == "global"
    await backend.prepare()
    request = backend.connect_request()
    assert request.headers == (("x-goog-api-key", KEY),)
    assert request.url == "wss://aiplatform.googleapis.com" + PATH.format(version="v1beta1")
    assert KEY not in request.url


def test_express_mode_from_google_api_key_only_without_a_project(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-developer-key")
    with pytest.raises(InvalidCommand, match="project"):
        VertexBackend()  # a Gemini Developer API key is not a Vertex key
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    assert VertexBackend().express
    assert not VertexBackend(project="p-1").express
    assert not VertexBackend(credentials=FakeCredentials(project_id="sa")).express
    with pytest.raises(InvalidCommand, match="project"):
        VertexBackend(location="us-central1")  # an explicit location means project mode
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "env-proj")
    assert not VertexBackend().express  # the implicit project wins over the implicit key
    assert VertexBackend(api_key=KEY).express  # an explicit key wins over it


def test_express_mode_ignores_the_environment_location(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "europe-west4")
    assert VertexBackend(api_key=KEY).location == "global"
    assert VertexBackend(api_key=KEY, location="us").location == "us"


@pytest.mark.parametrize(
    "options",
    [{"credentials": FakeCredentials()}, {"project": "p-1"}],
)
def test_express_mode_excludes_project_and_credentials(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidCommand, match="not both") as caught:
        VertexBackend(api_key=KEY, **options)
    assert KEY not in str(caught.value)


@pytest.mark.parametrize("key", [f"{KEY} ", f"{KEY}\r\nX-Evil: 1", f"{KEY}é"])
def test_malformed_keys_are_refused_without_showing_them(key: str) -> None:
    with pytest.raises(InvalidCommand) as caught:
        VertexBackend(api_key=key)
    assert KEY not in str(caught.value)


# --- the access token ----------------------------------------------------------------------


async def test_connect_request_needs_prepare_first() -> None:
    backend = VertexBackend(project="p-1", credentials=FakeCredentials(token=None))
    with pytest.raises(InvalidCommand, match="prepare"):
        backend.connect_request()
    await backend.prepare()
    assert backend.connect_request().headers == (("Authorization", f"Bearer {NEW_TOKEN}"),)


async def test_quota_project_goes_in_a_header() -> None:
    credentials = FakeCredentials(expiry=utcnow() + timedelta(hours=1), quota_project_id="billing")
    backend = VertexBackend(project="p-1", credentials=credentials)
    await backend.prepare()
    assert backend.connect_request().headers == (
        ("Authorization", f"Bearer {TOKEN}"),
        ("x-goog-user-project", "billing"),
    )


@pytest.mark.parametrize(
    ("token", "expiry", "valid", "refreshed"),
    [
        (TOKEN, timedelta(hours=1), True, False),
        (TOKEN, timedelta(minutes=6), True, False),
        (TOKEN, timedelta(minutes=4), True, True),
        (TOKEN, -timedelta(minutes=1), False, True),
        (None, timedelta(hours=1), True, True),
        (TOKEN, None, True, False),  # a token without expiry, still valid
        (TOKEN, None, False, True),
    ],
)
async def test_refresh_only_when_missing_or_near_expiry(
    token: str | None, expiry: timedelta | None, valid: bool, refreshed: bool
) -> None:
    credentials = FakeCredentials(
        token=token, expiry=None if expiry is None else utcnow() + expiry, valid=valid
    )
    backend = VertexBackend(project="p-1", credentials=credentials)
    await backend.prepare()
    assert credentials.refreshes == int(refreshed)
    expected = NEW_TOKEN if refreshed else TOKEN
    assert backend.connect_request().headers[0] == ("Authorization", f"Bearer {expected}")
    await backend.prepare()  # fresh now: no second refresh
    assert credentials.refreshes == int(refreshed)


async def test_an_aware_expiry_is_understood() -> None:
    soon = datetime.now(UTC) + timedelta(minutes=2)
    later = datetime.now(UTC) + timedelta(minutes=30)
    near = FakeCredentials(expiry=soon.astimezone(timezone(timedelta(hours=1))))
    far = FakeCredentials(expiry=later)
    for credentials in (near, far):
        await VertexBackend(project="p-1", credentials=credentials).prepare()
    assert (near.refreshes, far.refreshes) == (1, 0)


async def test_every_connect_checks_the_expiry_again() -> None:
    credentials = FakeCredentials(expiry=utcnow() + timedelta(hours=1), lifetime=timedelta(0))
    backend = VertexBackend(project="p-1", credentials=credentials)
    await backend.prepare()
    assert credentials.refreshes == 0
    credentials.expiry = utcnow() + timedelta(minutes=1)  # time passed
    await backend.prepare()
    assert credentials.refreshes == 1


async def test_refresh_runs_off_the_event_loop() -> None:
    credentials = FakeCredentials(token=None)
    backend = VertexBackend(project="p-1", credentials=credentials)
    await backend.prepare()
    assert credentials.threads and credentials.threads[0] != threading.get_ident()
    # google-auth's own transport, as google-genai passes it.
    assert type(credentials.requests[0]).__module__ == "google.auth.transport.requests"


async def test_concurrent_prepares_refresh_once() -> None:
    credentials = FakeCredentials(token=None, delay=0.05)
    backend = VertexBackend(project="p-1", credentials=credentials)
    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(backend.prepare)
    assert credentials.refreshes == 1
    assert backend.connect_request().headers[0] == ("Authorization", f"Bearer {NEW_TOKEN}")


async def test_refresh_never_waits_for_the_default_thread_pool() -> None:
    # Fill trio's default thread limiter with blocked "user tools": the refresh still runs.
    release = threading.Event()
    limiter = trio.to_thread.current_default_thread_limiter()
    credentials = FakeCredentials(token=None)
    backend = VertexBackend(project="p-1", credentials=credentials)
    async with trio.open_nursery() as nursery:
        for _ in range(int(limiter.total_tokens)):
            nursery.start_soon(trio.to_thread.run_sync, release.wait)
        await trio.sleep(0.05)
        assert limiter.available_tokens == 0
        with trio.fail_after(5):
            await backend.prepare()
        release.set()
    assert credentials.refreshes == 1


async def test_a_cancelled_prepare_returns_at_once() -> None:
    credentials = FakeCredentials(token=None, delay=0.5)
    backend = VertexBackend(project="p-1", credentials=credentials)
    start = time.monotonic()
    with trio.move_on_after(0.02):
        await backend.prepare()
    assert time.monotonic() - start < 0.3
    with trio.fail_after(5):
        await backend.prepare()  # waits for the refresh under way, then uses it
    assert credentials.refreshes == 1


async def test_adc_are_loaded_once_on_the_first_prepare(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = FakeCredentials(token=None, quota_project_id="quota-proj")
    calls: list[dict[str, Any]] = []
    threads: list[int] = []

    def default(**kwargs: Any) -> tuple[FakeCredentials, str]:
        calls.append(kwargs)
        threads.append(threading.get_ident())
        return loaded, "adc-proj"

    monkeypatch.setattr(google.auth, "default", default)
    backend = VertexBackend(project="p-1")
    assert calls == []
    await backend.prepare()
    await backend.prepare()
    assert calls == [{"scopes": [CLOUD_PLATFORM_SCOPE]}]
    assert threads[0] != threading.get_ident()
    assert loaded.refreshes == 1
    assert backend.connect_request().headers == (
        ("Authorization", f"Bearer {NEW_TOKEN}"),
        ("x-goog-user-project", "quota-proj"),
    )
    assert backend.project == "p-1"  # the argument, not ADC's project


# --- errors --------------------------------------------------------------------------------


async def test_no_adc_is_a_clear_session_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    def default(**kwargs: Any) -> Any:
        raise auth_exceptions.DefaultCredentialsError("Your default credentials were not found.")

    monkeypatch.setattr(google.auth, "default", default)
    backend = VertexBackend(project="p-1")
    with pytest.raises(SessionRejected, match="no Google Cloud credentials") as caught:
        await backend.prepare()
    message = str(caught.value)
    assert "gcloud auth application-default login" in message
    assert "GOOGLE_APPLICATION_CREDENTIALS" in message
    assert "api_key" in message
    assert not caught.value.retryable


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (auth_exceptions.RefreshError(f"invalid_grant: token {TOKEN} revoked"), SessionRejected),
        (
            auth_exceptions.RefreshError(f"temporarily unavailable {TOKEN}", retryable=True),
            ConnectionLost,
        ),
        (auth_exceptions.TransportError(f"connection reset while sending {TOKEN}"), ConnectionLost),
        (OSError(f"network down {TOKEN}"), ConnectionLost),
        (RuntimeError(f"odd {TOKEN}"), SessionRejected),
    ],
)
async def test_refresh_errors_become_liveactors_errors_without_secrets(
    error: Exception, kind: type[Exception], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    credentials = FakeCredentials(expiry=utcnow() - timedelta(seconds=1), valid=False, error=error)
    backend = VertexBackend(project="p-1", credentials=credentials)
    with pytest.raises(kind, match="access token") as caught:
        await backend.prepare()
    assert type(caught.value) is kind
    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(caught.value)
    assert caught.value.__cause__ is None
    assert type(error).__name__ in str(caught.value)
    assert TOKEN not in caplog.text


@pytest.mark.parametrize("token", ["", f"{TOKEN}\r\nX-Evil: 1", f"{TOKEN} "])
async def test_a_malformed_token_is_refused_without_showing_it(token: str) -> None:
    credentials = FakeCredentials(token=None, new_token=token)
    backend = VertexBackend(project="p-1", credentials=credentials)
    with pytest.raises(SessionRejected, match="access token") as caught:
        await backend.prepare()
    assert TOKEN not in str(caught.value)


# --- secrets never shown -------------------------------------------------------------------


async def test_secrets_never_in_reprs_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    credentials = FakeCredentials(token=None)
    backend = VertexBackend(project="p-1", credentials=credentials)
    await backend.prepare()
    request = backend.connect_request()
    express = VertexBackend(api_key=KEY)
    express_request = express.connect_request()
    texts = [repr(backend), str(backend), repr(request), str(request), caplog.text]
    texts += [repr(express), str(express), repr(express_request), str(express_request)]
    texts += [repr(backend._tokens)]
    for text in texts:
        assert NEW_TOKEN not in text and TOKEN not in text and KEY not in text
    assert "redacted" in repr(backend) and "redacted" in repr(express)
    assert "express" in repr(express)


async def test_a_refresh_that_hangs_is_a_retryable_error() -> None:
    credentials = FakeCredentials(token=None, delay=0.5)
    tokens = AccessTokens(credentials, timeout=0.05)
    with pytest.raises(ConnectionLost, match="access token within"):
        await tokens.ensure()
    with trio.fail_after(5):
        assert await AccessTokens(credentials).ensure() == NEW_TOKEN
