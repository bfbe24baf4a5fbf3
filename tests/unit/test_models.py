"""The model table: what each known Live model refuses, raised as InvalidConfig before any
socket opens, naming the field, the model and what to use instead."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from google.genai import types

import liveactors
from liveactors._models import (
    FAKE_TEXT_MODEL,
    KNOWN_MODELS,
    Platform,
    Status,
    check_config,
    lookup,
)
from liveactors._session_config import live_config
from liveactors.testing import open_fake_server

DEV, VERTEX = Platform.DEVELOPER, Platform.VERTEX
TOOL = {"function_declarations": [{"name": "lookup", "behavior": "NON_BLOCKING"}]}

# (model, config fields, platform, the field named, a word of the advice)
REFUSALS: list[tuple[str, dict[str, Any], Platform, str, str]] = [
    ("gemini-3.8-live", {"response_modalities": ["TEXT"]}, DEV, "response_modalities", "AUDIO"),
    (
        "gemini-3.8-live",
        {"generation_config": {"response_modalities": ["TEXT"]}},
        DEV,
        "response_modalities",
        "OutputTranscript",
    ),
    (
        "gemini-3.8-live",
        {"thinking_config": {"thinking_level": "LOW"}},
        DEV,
        "thinking_config",
        "extended-thinking",
    ),
    (
        "gemini-3.8-live",
        {"thinking_config": {"thinking_budget": 1024}},
        DEV,
        "thinking_config",
        "extended-thinking",
    ),
    (
        "gemini-3.8-live",
        {"enable_affective_dialog": True},
        DEV,
        "enable_affective_dialog",
        "native-audio",
    ),
    (
        "gemini-3.8-live",
        {"proactivity": {"proactive_audio": False}},
        DEV,
        "proactivity.proactive_audio",
        "always on",
    ),
    (
        "gemini-3.8-live",
        {"response_modalities": ["VIDEO"], "avatar_config": {"avatar_name": "Kai"}},
        DEV,
        "response_modalities",
        "Vertex",
    ),
    ("gemini-3.8-live", {"response_modalities": ["VIDEO"]}, VERTEX, "avatar_config", "avatar"),
    (
        "gemini-3.8-live-extended-thinking",
        {"thinking_config": {"thinking_level": "MINIMAL"}},
        DEV,
        "thinking_config.thinking_level",
        "HIGH",
    ),
    (
        "gemini-3.8-live-extended-thinking",
        {"thinking_config": {"thinking_budget": 512}},
        DEV,
        "thinking_config.thinking_budget",
        "thinking_level",
    ),
    (
        "gemini-3.1-flash-live-preview",
        {"response_modalities": ["TEXT"]},
        DEV,
        "response_modalities",
        "AUDIO",
    ),
    (
        "gemini-3.1-flash-live-preview",
        {"tools": [TOOL]},
        DEV,
        "tools[].function_declarations['lookup'].behavior",
        "gemini-3.8-live",
    ),
    (
        "gemini-3.1-flash-live-preview",
        {"enable_affective_dialog": True},
        DEV,
        "enable_affective_dialog",
        "",
    ),
    (
        "gemini-3.1-flash-live-preview",
        {"proactivity": {"proactive_audio": True}},
        DEV,
        "proactivity.proactive_audio",
        "",
    ),
    (
        "gemini-3.1-flash-live-preview",
        {"avatar_config": {"avatar_name": "Kai"}},
        VERTEX,
        "avatar_config",
        "gemini-3.8-live",
    ),
    (
        "gemini-2.5-flash-native-audio-preview-12-2025",
        {"response_modalities": ["TEXT"]},
        DEV,
        "response_modalities",
        "AUDIO",
    ),
    (
        "gemini-2.5-flash-native-audio-preview-09-2025",
        {"thinking_config": {"thinking_level": "LOW"}},
        DEV,
        "thinking_config.thinking_level",
        "thinking_budget",
    ),
    (
        "gemini-2.5-flash-native-audio-preview-12-2025",
        {"response_modalities": ["AUDIO"]},
        VERTEX,
        "model",
        "GeminiBackend",
    ),
    ("gemini-live-2.5-flash-native-audio", {}, DEV, "model", "VertexBackend"),
    (
        "gemini-3.5-transcribe-live",
        {"response_modalities": ["AUDIO"]},
        DEV,
        "response_modalities",
        "TEXT",
    ),
    ("gemini-3.5-transcribe-live", {"tools": [TOOL]}, DEV, "tools", "transcription"),
    (
        "gemini-3.5-transcribe-live",
        {"response_modalities": ["TEXT"], "output_audio_transcription": {}},
        DEV,
        "output_audio_transcription",
        "input_audio_transcription",
    ),
]

RETIRED = [info.name for info in KNOWN_MODELS.values() if info.status is Status.RETIRED]


@pytest.mark.parametrize(("model", "fields", "platform", "field", "advice"), REFUSALS)
def test_every_known_refusal_names_field_model_and_what_to_use(
    model: str, fields: dict[str, Any], platform: Platform, field: str, advice: str
) -> None:
    config = types.LiveConnectConfig.model_validate(fields)
    with pytest.raises(liveactors.InvalidConfig) as caught:
        check_config(model, config, platform=platform)
    error = caught.value
    assert isinstance(error, liveactors.InvalidCommand) and isinstance(error, ValueError)
    assert error.field == field
    assert error.model == model
    assert field in str(error) and model in str(error)
    assert advice in str(error)


def test_the_retired_models_are_the_ones_the_service_shut_down() -> None:
    assert set(RETIRED) >= {
        "gemini-live-2.5-flash-preview",
        "gemini-2.0-flash-live-001",
        "gemini-2.5-flash-preview-native-audio-dialog",
    }


@pytest.mark.parametrize("model", RETIRED)
@pytest.mark.parametrize(
    "spelling", ["{}", "models/{}", "projects/p/locations/l/publishers/google/models/{}"]
)
def test_a_retired_model_is_refused_in_any_spelling(model: str, spelling: str) -> None:
    with pytest.raises(liveactors.InvalidConfig, match="shut down") as caught:
        check_config(spelling.format(model), types.LiveConnectConfig(), platform=DEV)
    assert caught.value.field == "model"
    assert caught.value.instead == liveactors.DEFAULT_MODEL


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"response_modalities": ["AUDIO"]},
        {"tools": [{"function_declarations": [{"name": "f"}]}]},
        {"tools": [TOOL]},
        {"proactivity": {"proactive_audio": True}},
        {"speech_config": {"voice_config": {"prebuilt_voice_config": {"voice_name": "Kore"}}}},
        {"output_audio_transcription": {}, "input_audio_transcription": {}},
    ],
)
def test_configs_the_default_model_accepts_pass(fields: dict[str, Any]) -> None:
    config = types.LiveConnectConfig.model_validate(fields)
    check_config(liveactors.DEFAULT_MODEL, config, platform=DEV)
    check_config(liveactors.DEFAULT_MODEL, config, platform=VERTEX)


def test_avatars_and_thinking_pass_where_they_are_offered() -> None:
    avatar = types.LiveConnectConfig.model_validate(
        {"response_modalities": ["VIDEO"], "avatar_config": {"avatar_name": "Kai"}}
    )
    check_config("gemini-3.8-live", avatar, platform=VERTEX)
    thinking = types.LiveConnectConfig.model_validate(
        {"thinking_config": {"thinking_level": "HIGH"}}
    )
    check_config("gemini-3.8-live-extended-thinking", thinking, platform=DEV)
    budget = types.LiveConnectConfig.model_validate({"thinking_config": {"thinking_budget": 512}})
    check_config("gemini-2.5-flash-native-audio-preview-12-2025", budget, platform=DEV)


def test_an_unknown_model_passes_through_unchecked() -> None:
    anything = types.LiveConnectConfig.model_validate(
        {
            "response_modalities": ["TEXT"],
            "thinking_config": {"thinking_budget": 1},
            "enable_affective_dialog": True,
            "proactivity": {"proactive_audio": False},
        }
    )
    assert lookup("gemini-9.0-live-next") is None
    check_config("gemini-9.0-live-next", anything, platform=DEV)


def non_blocking_by_default(model: str) -> bool:
    info = lookup(model)
    return info is not None and info.non_blocking_default


def test_non_blocking_is_the_default_of_the_38_generation_only() -> None:
    assert non_blocking_by_default("gemini-3.8-live")
    assert non_blocking_by_default("models/gemini-3.8-live-extended-thinking")
    assert not non_blocking_by_default("gemini-3.1-flash-live-preview")
    assert not non_blocking_by_default("gemini-2.5-flash-native-audio-preview-12-2025")
    assert not non_blocking_by_default("gemini-9.0-live-next")


def test_output_transcription_is_requested_by_default_and_can_be_declined() -> None:
    on, _ = live_config(None, model="gemini-3.8-live")
    assert on.output_audio_transcription is not None
    off, _ = live_config({"output_audio_transcription": None}, model="gemini-3.8-live")
    assert off.output_audio_transcription is None
    text, _ = live_config({"response_modalities": ["TEXT"]}, model=FAKE_TEXT_MODEL)
    assert text.output_audio_transcription is None  # text answers need no transcript
    transcribe, _ = live_config(None, model="gemini-3.5-transcribe-live")
    assert transcribe.output_audio_transcription is None
    unknown, _ = live_config(None, model="gemini-9.0-live-next")
    assert unknown.output_audio_transcription is not None


def test_transparent_resumption_is_the_vertex_default_unless_the_config_says_otherwise() -> None:
    on, _ = live_config(None, transparent=True)
    assert on.session_resumption is not None and on.session_resumption.transparent is True
    off, _ = live_config({"session_resumption": {"transparent": False}}, transparent=True)
    assert off.session_resumption is not None and off.session_resumption.transparent is False
    developer, _ = live_config(None)
    assert developer.session_resumption is not None
    assert developer.session_resumption.transparent is None


async def test_spawn_raises_before_any_socket_opens() -> None:
    async with open_fake_server(listen=False) as server:
        backend = server.backend(model=liveactors.DEFAULT_MODEL)
        async with liveactors.open_orchestrator(backend, max_sessions=1) as orch:
            with pytest.raises(liveactors.InvalidConfig, match="response_modalities"):
                await orch.spawn({"response_modalities": ["TEXT"]}, name="c")
            retired = server.backend(model="gemini-live-2.5-flash-preview")
            async with liveactors.open_orchestrator(retired) as old:
                with pytest.raises(liveactors.InvalidConfig, match="shut down"):
                    await old.spawn(None, name="c")
            # The name and the only session slot are still free.
            conv = await orch.spawn(None, name="c")
            assert conv.state is liveactors.ConversationState.READY
            await trio.lowlevel.checkpoint()
        assert len(server.log.connections) == 1
