"""``GeminiBackend``: endpoint URL, credentials (argument, then environment), what it shows."""

from __future__ import annotations

import pytest

from liveactors import DEFAULT_MODEL, GeminiBackend, InvalidCommand

KEY = "AIzaSyD-config-SECRET-0123456789"
TOKEN = "auth_tokens/SECRET-config-token-0123"
PATH = "/ws/google.ai.generativelanguage.{version}.GenerativeService.{method}"


@pytest.fixture(autouse=True)
def no_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)


@pytest.mark.parametrize(
    ("base_url", "version", "expected_base"),
    [
        (None, None, "wss://generativelanguage.googleapis.com"),
        (
            "wss://generativelanguage.googleapis.com/",
            "v1beta",
            "wss://generativelanguage.googleapis.com",
        ),
        ("https://example.test", "v1alpha", "wss://example.test"),
        ("https://example.test///", "v1", "wss://example.test"),
        ("HTTPS://Example.test", "v1beta", "wss://Example.test"),
        ("http://127.0.0.1:8080/", "v1beta", "ws://127.0.0.1:8080"),
        ("ws://[::1]:9000", "v1beta", "ws://[::1]:9000"),
        ("ws://proxy.test/live/", "v1beta", "ws://proxy.test/live"),
    ],
)
def test_url(base_url: str | None, version: str | None, expected_base: str) -> None:
    options = {}
    if base_url is not None:
        options["base_url"] = base_url
    if version is not None:
        options["api_version"] = version
    backend = GeminiBackend(api_key=KEY, **options)
    path = PATH.format(version=version or "v1beta", method="BidiGenerateContent")
    assert backend.url == expected_base + path
    assert backend.connect_request().url == backend.url
    assert KEY not in backend.url


def test_request_carries_the_key_in_a_header_only() -> None:
    request = GeminiBackend(api_key=KEY, connect_timeout=3.5).connect_request()
    assert request.headers == (("x-goog-api-key", KEY),)
    assert KEY not in request.url and "key=" not in request.url
    assert request.connect_timeout == 3.5
    assert request.max_message_size >= 16 * 2**20
    assert request.resource == PATH.format(version="v1beta", method="BidiGenerateContent")
    assert request.host == "generativelanguage.googleapis.com"


def test_ephemeral_token() -> None:
    backend = GeminiBackend(api_key=TOKEN, api_version="v1alpha")
    assert backend.ephemeral
    request = backend.connect_request()
    assert request.url.endswith(
        PATH.format(version="v1alpha", method="BidiGenerateContentConstrained")
    )
    assert request.headers == (("Authorization", f"Token {TOKEN}"),)
    assert TOKEN not in request.url and "access_token" not in request.url


def test_key_from_argument_then_gemini_then_google(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "google-env-key")
    assert GeminiBackend().connect_request().headers == (("x-goog-api-key", "google-env-key"),)
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-env-key")
    assert GeminiBackend().connect_request().headers == (("x-goog-api-key", "gemini-env-key"),)
    assert GeminiBackend(api_key="arg-key").connect_request().headers == (
        ("x-goog-api-key", "arg-key"),
    )


def test_no_key_anywhere() -> None:
    with pytest.raises(InvalidCommand, match="GEMINI_API_KEY"):
        GeminiBackend()


@pytest.mark.parametrize("key", [f"{KEY} ", f"{KEY}\n", f"{KEY}\r\nX-Evil: 1", f"{KEY}é", "a b"])
def test_malformed_keys_are_refused_without_showing_them(key: str) -> None:
    with pytest.raises(InvalidCommand) as caught:
        GeminiBackend(api_key=key)
    assert key.strip() not in str(caught.value)
    assert KEY not in str(caught.value)


@pytest.mark.parametrize(
    "base_url",
    [
        "ftp://example.test",
        "example.test",
        "ws://",
        "ws://host:port",
        f"ws://h/?key={KEY}",
        "ws://h/#x",
        f"wss://user:{KEY}@example.test",
    ],
)
def test_bad_base_url(base_url: str) -> None:
    with pytest.raises(InvalidCommand, match="base_url") as caught:
        GeminiBackend(api_key=KEY, base_url=base_url)
    assert KEY not in str(caught.value)


@pytest.mark.parametrize("version", ["beta", "v1/../v2", "", "V1"])
def test_bad_api_version(version: str) -> None:
    with pytest.raises(InvalidCommand, match="api_version"):
        GeminiBackend(api_key=KEY, api_version=version)


@pytest.mark.parametrize("key", [KEY, TOKEN])
def test_reprs_never_show_the_credential(key: str) -> None:
    backend = GeminiBackend(api_key=key)
    request = backend.connect_request()
    for text in (repr(backend), str(backend), repr(request), str(request)):
        assert key not in text
        assert key.split("/")[-1] not in text
    assert "redacted" in repr(backend)
    assert backend.model == DEFAULT_MODEL
