"""The curated public names: what the docs promise is there, and nothing private leaks."""

from __future__ import annotations

import inspect

import attrs

import liveactors
import liveactors.cluster
import liveactors.testing
from liveactors import events

# The names users rely on (README, docs/concepts.md and the API reference).
CONTRACT = {
    "GeminiBackend",
    "VertexBackend",
    "DEFAULT_MODEL",
    "TEXT_MODEL",
    "open_orchestrator",
    "Orchestrator",
    "ConversationRef",
    "ConversationState",
    "Conversation",
    "Actor",
    "RestartPolicy",
    "Reply",
    "LiveError",
    "ConnectionLost",
    "SessionRejected",
    "HandleExpired",
    "InvalidConfig",
    "ServiceBusy",
    "LeaseLost",
    "events",
}
# liveactors.cluster (docs/cluster.md): workers, clients, remote conversations, their errors.
CLUSTER = {
    "open_worker",
    "run_worker",
    "Worker",
    "open_client",
    "ClusterClient",
    "RemoteConversation",
    "RemoteState",
    "RemoteSubscription",
    "RedisHandleStore",
    "ClusterUnavailable",
    "LeaseLost",
}
EVENTS = {
    "Connected",
    "TextDelta",
    "AudioChunk",
    "InputTranscript",
    "OutputTranscript",
    "ModelPart",
    "GenerationComplete",
    "TurnComplete",
    "Interrupted",
    "ToolCall",
    "ToolCallCancelled",
    "GoAway",
    "ResumptionUpdate",
    "Usage",
    "Reconnecting",
    "ConversationFailed",
    "ConversationClosed",
    # The 3.x generation: interim transcripts, interaction status, live-avatar video.
    "InteractionStatus",
    "VideoChunk",
    "VoiceActivity",
    # Nothing lost silently: input handed back at the end, media trimmed from a replay.
    "InputUndelivered",
    "ReplayTrimmed",
}


def test_the_contract_is_exported() -> None:
    assert set(liveactors.__all__) >= CONTRACT
    assert set(events.__all__) >= EVENTS | {"Event"}
    assert set(liveactors.cluster.__all__) >= CLUSTER


def test_every_exported_name_exists_and_none_is_private() -> None:
    for module in (liveactors, events, liveactors.testing, liveactors.cluster):
        for name in module.__all__:
            assert hasattr(module, name), (module.__name__, name)
            assert not name.startswith("_"), name
        assert len(set(module.__all__)) == len(module.__all__)


def test_events_are_frozen_values_with_their_place_in_the_stream() -> None:
    for name in events.__all__:
        cls = getattr(events, name)
        assert inspect.isclass(cls) and issubclass(cls, events.Event)
        fields = [f.name for f in attrs.fields(cls)]
        assert fields[:3] == ["conversation", "seq", "turn"], name
        assert cls.__setattr__ is not object.__setattr__  # frozen


def test_the_errors_form_one_tree() -> None:
    errors = [
        getattr(liveactors, name)
        for name in liveactors.__all__
        if inspect.isclass(getattr(liveactors, name))
        and issubclass(getattr(liveactors, name), BaseException)
    ]
    assert len(errors) >= 8
    assert all(issubclass(error, liveactors.LiveError) for error in errors)
    assert issubclass(liveactors.HandleExpired, liveactors.SessionRejected)
    assert liveactors.ConnectionLost.retryable and not liveactors.SessionRejected.retryable
    assert issubclass(liveactors.InvalidCommand, ValueError)
    assert issubclass(liveactors.InvalidConfig, liveactors.InvalidCommand)
    assert issubclass(liveactors.ServiceBusy, liveactors.ConnectionLost)
    assert liveactors.ServiceBusy.retryable
    assert issubclass(liveactors.AdmissionTimeout, TimeoutError)
    assert issubclass(liveactors.LeaseLost, liveactors.LiveError)
    assert not liveactors.LeaseLost.retryable


def test_the_cluster_errors_join_the_tree() -> None:
    # One class, whichever module it is imported from.
    assert liveactors.cluster.LeaseLost is liveactors.LeaseLost
    assert issubclass(liveactors.cluster.ClusterUnavailable, liveactors.LiveError)
    for name in liveactors.cluster.__all__:
        value = getattr(liveactors.cluster, name)
        if inspect.isclass(value) and issubclass(value, BaseException):
            assert issubclass(value, liveactors.LiveError), name


def test_the_defaults_name_the_current_generation() -> None:
    assert liveactors.DEFAULT_MODEL == "gemini-3.8-live"
    # Old code importing TEXT_MODEL keeps working, on a model the service still serves.
    assert liveactors.TEXT_MODEL == liveactors.DEFAULT_MODEL


def test_the_version_is_the_installed_distribution() -> None:
    from importlib.metadata import version

    assert liveactors.__version__ == version("liveactors")
