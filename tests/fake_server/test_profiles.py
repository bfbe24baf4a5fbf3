"""Which model the fake plays: the library's model table, the profiles, and setup refusals."""

from __future__ import annotations

from typing import Any

import pytest

from liveactors._models import KNOWN_MODELS, Status
from liveactors.testing import ServerOptions
from liveactors.testing._profiles import resolve_model
from liveactors.testing._setup import read_setup
from liveactors.testing._wire import ProtocolViolation

from .conftest import (
    connect,
    current_setup,
    fake,
    session_ready,
    text_of,
    transcript_of,
    user_text,
)

INVALID = (1007, "Request contains an invalid argument.")
INTERNAL = (1011, "Internal error encountered.")


def _not_found(model: str) -> tuple[int, str]:
    reason = (
        f"{model} is not found for API version v1beta, or is not supported for bidiGenerateContent"
    )
    return 1008, reason.encode()[:123].decode()  # a close reason holds 123 bytes


def _combination(modality: str) -> tuple[int, str]:
    return (
        1007,
        f"The requested combination of response modalities ({modality}) is not supported "
        "by the model",
    )


async def _close_of(profile: str, setup: dict[str, Any]) -> tuple[int, str]:
    async with fake(model_profile=profile) as server, connect(server) as client:
        await client.send({"setup": setup})
        return await client.closed()


RETIRED = sorted(name for name, info in KNOWN_MODELS.items() if info.status is Status.RETIRED)


@pytest.mark.parametrize("name", RETIRED)
@pytest.mark.parametrize("profile", ["3.8", "2.5"])
async def test_shut_down_models_are_not_found(name: str, profile: str) -> None:
    assert "gemini-live-2.5-flash-preview" in RETIRED
    setup = {"model": f"models/{name}", "generationConfig": {"responseModalities": ["AUDIO"]}}
    assert await _close_of(profile, setup) == _not_found(f"models/{name}")


@pytest.mark.parametrize(
    ("profile", "setup", "close"),
    [
        # The current model: AUDIO only, and the 3.8 refusals.
        ("3.8", {"generationConfig": {"responseModalities": ["TEXT"]}}, INVALID),
        ("3.8", {"generationConfig": {"thinkingConfig": {"thinkingLevel": "LOW"}}}, INVALID),
        ("3.8", {"generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}}, INVALID),
        ("3.8", {"generationConfig": {"enableAffectiveDialog": True}}, INVALID),
        ("3.8", {"proactivity": {"proactiveAudio": False}}, INVALID),
        ("3.8", {"avatarConfig": {"avatarName": "Kira"}}, INVALID),  # Developer API
        ("3.8", {"generationConfig": {"responseModalities": ["VIDEO"]}}, INVALID),
        # An unknown name on the 3.1 profile behaves like gemini-3.1-flash-live-preview.
        ("3.1", {"generationConfig": {"responseModalities": ["TEXT"]}}, INTERNAL),
        ("3.1", {"generationConfig": {"thinkingConfig": {"thinkingBudget": 10}}}, INVALID),
        ("3.1", {"generationConfig": {"enableAffectiveDialog": True}}, INVALID),
        ("3.1", {"proactivity": {"proactiveAudio": True}}, INVALID),
        (
            "3.1",
            {"tools": [{"functionDeclarations": [{"name": "f", "behavior": "NON_BLOCKING"}]}]},
            INVALID,
        ),
        # The old half-cascade profile: a "native-audio" name still refuses TEXT.
        (
            "2.5",
            {
                "model": "models/gemini-test-native-audio",
                "generationConfig": {"responseModalities": ["TEXT"]},
            },
            _combination("TEXT"),
        ),
        (
            "2.5",
            {"generationConfig": {"responseModalities": ["TEXT", "AUDIO"]}},
            _combination("TEXT, AUDIO"),
        ),
    ],
)
async def test_what_each_generation_refuses(
    profile: str, setup: dict[str, Any], close: tuple[int, str]
) -> None:
    body = {"model": "models/gemini-unknown-live", **setup}
    assert await _close_of(profile, body) == close


@pytest.mark.parametrize(
    ("model", "setup", "close"),
    [
        # Names in the table behave as their entry says, whatever the profile.
        ("gemini-3.8-live", {"generationConfig": {"responseModalities": ["TEXT"]}}, INVALID),
        (
            "gemini-3.1-flash-live-preview",
            {"generationConfig": {"responseModalities": ["TEXT"]}},
            INTERNAL,
        ),
        (
            "gemini-2.5-flash-native-audio-preview-12-2025",
            {"generationConfig": {"responseModalities": ["TEXT"]}},
            _combination("TEXT"),
        ),
        (
            "gemini-2.5-flash-native-audio-preview-12-2025",
            {"generationConfig": {"thinkingConfig": {"thinkingLevel": "LOW"}}},
            INVALID,
        ),
        (
            "gemini-3.8-live-extended-thinking",
            {"generationConfig": {"thinkingConfig": {"thinkingLevel": "MINIMAL"}}},
            INVALID,
        ),
        (
            "gemini-3.5-transcribe-live",
            {"tools": [{"functionDeclarations": [{"name": "f"}]}]},
            INVALID,
        ),
        ("gemini-3.5-transcribe-live", {"outputAudioTranscription": {}}, INVALID),
        # Served on Vertex AI only.
        (
            "gemini-live-2.5-flash-native-audio",
            {},
            _not_found("models/gemini-live-2.5-flash-native-audio"),
        ),
    ],
)
async def test_table_models_refuse_what_their_entry_says(
    model: str, setup: dict[str, Any], close: tuple[int, str]
) -> None:
    assert await _close_of("2.5", {"model": f"models/{model}", **setup}) == close


@pytest.mark.parametrize(
    ("profile", "model", "setup"),
    [
        ("3.8", "gemini-3.8-live", {"proactivity": {"proactiveAudio": True}}),
        (
            "3.8",
            "gemini-3.8-live-extended-thinking",
            {"generationConfig": {"thinkingConfig": {"thinkingLevel": "HIGH"}}},
        ),
        ("3.8", "gemini-unknown", {"generationConfig": {"responseModalities": ["AUDIO"]}}),
        (
            "3.1",
            "gemini-unknown",
            {"generationConfig": {"thinkingConfig": {"thinkingLevel": "LOW"}}},
        ),
        (
            "2.5",
            "gemini-2.5-flash-native-audio-preview-09-2025",
            {
                "generationConfig": {
                    "enableAffectiveDialog": True,
                    "thinkingConfig": {"thinkingBudget": 0},
                },
                "proactivity": {"proactiveAudio": False},
            },
        ),
        ("2.5", "gemini-test-text", {"generationConfig": {"responseModalities": ["TEXT"]}}),
    ],
)
async def test_what_each_generation_accepts(
    profile: str, model: str, setup: dict[str, Any]
) -> None:
    async with fake(model_profile=profile) as server, connect(server) as client:
        await session_ready(client, {"setup": {"model": f"models/{model}", **setup}})
        assert server.log.last_connection.model == model


def test_resolution_from_the_table_and_the_profiles() -> None:
    current = resolve_model("models/gemini-3.8-live", "2.5")
    assert (current.generation, current.non_blocking_default, current.modalities) == (
        "3.8",
        True,
        frozenset({"AUDIO"}),
    )
    assert current.info is KNOWN_MODELS["gemini-3.8-live"]
    unknown = resolve_model("gemini-next", "3.8")
    assert (unknown.info, unknown.generation, unknown.non_blocking_default) == (None, "3.8", True)
    assert resolve_model("gemini-next", "3.1").async_calls is False
    half_cascade = resolve_model("gemini-next", "2.5")
    assert half_cascade.modalities == {"TEXT", "AUDIO"} and not half_cascade.non_blocking_default
    assert resolve_model("gemini-next-native-audio", "2.5").modalities == {"AUDIO"}
    assert (
        resolve_model("publishers/google/models/gemini-3.8-live", "2.5").name == "gemini-3.8-live"
    )
    assert resolve_model("gemini-2.0-flash-live-001", "3.8").retired


def test_read_setup_names_the_model_and_its_default_modality() -> None:
    plan = read_setup({"model": "models/gemini-3.5-transcribe-live"}, ServerOptions())
    assert (plan.modality, plan.input_transcription, plan.fake_model.transcription_only) == (
        "TEXT",
        True,
        True,
    )
    with pytest.raises(ProtocolViolation) as info:
        read_setup({"model": "gemini-3.8-live"}, ServerOptions())  # no "models/"
    assert info.value.code == 1008


async def test_an_unknown_name_on_the_current_profile_speaks() -> None:
    async with fake(model_profile="3.8") as server, connect(server) as client:
        await session_ready(client, current_setup("models/gemini-test-next"))
        await client.send(user_text("hi"))
        messages = await client.turn()
        assert text_of(messages) == ""  # no text parts: audio, and its transcript
        assert transcript_of(messages) == "echo #1: hi"
        assert set(messages[0]["serverContent"]) == {"modelTurn", "outputTranscription"}


def test_context_windows() -> None:
    assert resolve_model("gemini-3.8-live", "3.8").window == 131_072
    assert resolve_model("gemini-test-text", "2.5").window == 32_768
    assert resolve_model("gemini-test-native-audio", "2.5").window == 131_072
    # The library's fake-only text model is of the half-cascade kind.
    from liveactors._models import FAKE_TEXT_MODEL

    assert resolve_model(FAKE_TEXT_MODEL, "3.8").window == 32_768
