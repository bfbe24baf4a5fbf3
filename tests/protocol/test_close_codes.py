"""Close codes and reasons (docs/protocol.md, "Errors and close codes") -> the typed error,
reason kept verbatim."""

from __future__ import annotations

import pytest

from liveactors import ConnectionLost, HandleExpired, LiveError, ServiceBusy, SessionRejected
from liveactors._protocol.close import classify_close, rejected_upgrade

LOST, REJECTED, EXPIRED, BUSY = "lost", "rejected", "expired", "busy"

CLOSES = [
    # (code, reason, kind)
    (1000, "", LOST),
    (1001, "", LOST),
    (1006, "", LOST),
    (
        1007,
        "Invalid JSON payload received. Unknown name \"responseModalities\" at 'setup': "
        "Cannot find field.",
        REJECTED,
    ),
    (1007, "Request contains an invalid argument.", REJECTED),
    (1007, "API key expired. Please renew the API key.", REJECTED),
    (1007, "User location is not supported for the API use.", REJECTED),
    (
        1007,
        "The requested combination of response modalities (TEXT) is not supported by the model",
        REJECTED,
    ),
    (
        1007,
        'Invalid JSON payload received. Unknown name "transparent" at '
        "'setup.session_resumption': Cannot find field.",
        REJECTED,
    ),
    (
        1008,
        "models/gemini-x is not found for API version v1alpha, or is not supported for "
        "bidiGenerateContent",
        REJECTED,
    ),
    (1008, "Operation is not implemented, or supported, or enabled.", REJECTED),
    (1008, "Publisher model projects/p/locations/l/gemini-x was not found", REJECTED),
    (1008, "BidiGenerateContent session not found", EXPIRED),
    (1008, "", REJECTED),
    (1011, "Deadline expired before operation could complete.", LOST),
    (
        1011,
        "Deadline expired before operation could complete. [ORIGINAL ERROR] RPC::DEADLINE_EXCEEDED",
        LOST,
    ),
    (1011, "Internal error encountered.", LOST),
    (1011, "", LOST),
    (1011, "RESOURCE_EXHAUSTED: You exceeded your current quota.", REJECTED),
    (
        1011,
        "You exceeded your current quota, please check your plan and billing details.",
        REJECTED,
    ),
    # The concurrency limit, not the plan's quota: wait and retry.
    (1011, "Resource has been exhausted (e.g. check quota).", BUSY),
    (1012, "", LOST),
    (1013, "", LOST),
    (1013, "Try again later.", LOST),
    (1008, "Request had invalid authentication credentials.", REJECTED),
    (
        1011,
        "Method doesn't allow unregistered callers (callers without established identity). "
        "Please use API Key or other form of API consumer identity to call this API.",
        REJECTED,
    ),
    (1000, "Authentication succeeded, bye", LOST),
    (4000, "application", REJECTED),
    (1002, "protocol error", LOST),
]

_TYPES = {
    LOST: ConnectionLost,
    REJECTED: SessionRejected,
    EXPIRED: HandleExpired,
    BUSY: ServiceBusy,
}


@pytest.mark.parametrize(("code", "reason", "kind"), CLOSES)
def test_close_code_table(code: int, reason: str, kind: str) -> None:
    error = classify_close(code, reason)
    assert type(error) is _TYPES[kind]
    assert isinstance(error, LiveError)
    assert error.code == code
    assert error.reason == reason  # verbatim
    assert error.retryable is (kind in (LOST, BUSY))
    if reason:
        assert repr(reason) in str(error)  # shown quoted, so control characters stay visible
    assert str(code) in str(error)


def test_handle_expired_is_a_session_rejected() -> None:
    error = classify_close(1008, "BidiGenerateContent session not found")
    assert isinstance(error, SessionRejected)
    assert not error.retryable


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (401, False),
        (403, False),
        (404, False),
        (400, False),
    ],
)
def test_rejected_upgrade(status: int, retryable: bool) -> None:
    error = rejected_upgrade(status, "body text")
    expected = ServiceBusy if status == 429 else ConnectionLost if retryable else SessionRejected
    assert type(error) is expected
    assert error.retryable is retryable
    assert f"HTTP {status}" in str(error)
    assert "body text" in str(error)


def test_rejected_upgrade_body_is_bounded() -> None:
    error = rejected_upgrade(404, "x" * 10_000)
    assert len(str(error)) < 200
