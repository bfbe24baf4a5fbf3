"""Events as plain JSON and back (liveactors._event_codec): every event class round-trips
through real JSON text, secrets stay out unless asked for, and bad input names what is wrong."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from google.genai import types

from liveactors import _errors
from liveactors import events as ev
from liveactors._event_codec import event_from_json, event_to_json

HANDLE = "resumption-handle-SECRET-0123456789"

_BASE: dict[str, Any] = {"conversation": "support-7", "seq": 42, "turn": 3}

# One realistic instance of every event class; the coverage test below fails when events.__all__
# gains a class this list does not know.
EXAMPLES: list[ev.Event] = [
    ev.Connected(**_BASE, session_id="sess-1", resumed=True, connection=2),
    ev.Connected(**_BASE, session_id=None, resumed=False, connection=1),
    ev.TextDelta(**_BASE, text='Hello, wörld ✓ \n"quoted"'),
    ev.AudioChunk(**_BASE, data=bytes(range(256)) * 4),
    ev.AudioChunk(**_BASE, data=b"", mime_type="audio/pcm;rate=16000"),
    ev.InputTranscript(**_BASE, text="what's the weather", interim=True),
    ev.OutputTranscript(**_BASE, text="It is sunny."),
    ev.VideoChunk(**_BASE, data=b"\x00\x00\x00\x18ftypmp42\xff\xfe", init=True),
    ev.ModelPart(
        **_BASE,
        part=types.Part(
            inline_data=types.Blob(data=b"\x89PNG\r\n\x1a\n\x00\xff", mime_type="image/png")
        ),
    ),
    ev.ModelPart(
        **_BASE,
        part=types.Part(
            executable_code=types.ExecutableCode(
                code="print(1 + 1)", language=types.Language.PYTHON
            )
        ),
    ),
    ev.ModelPart(**_BASE, part=types.Part(text="thinking...", thought=True)),
    ev.Grounding(
        **_BASE,
        grounding_metadata=types.GroundingMetadata(
            web_search_queries=["weather paris"],
            grounding_chunks=[
                types.GroundingChunk(web=types.GroundingChunkWeb(uri="https://x.test", title="X"))
            ],
        ),
        url_context_metadata=types.UrlContextMetadata(
            url_metadata=[
                types.UrlMetadata(
                    retrieved_url="https://x.test/a",
                    url_retrieval_status=types.UrlRetrievalStatus.URL_RETRIEVAL_STATUS_SUCCESS,
                )
            ]
        ),
    ),
    ev.Grounding(**_BASE, grounding_metadata=None, url_context_metadata=None),
    ev.GenerationComplete(**_BASE),
    ev.TurnComplete(**_BASE),
    ev.TurnComplete(
        **_BASE,
        reason="NEED_MORE_INPUT",
        interrupted=True,
        interaction_status="IN_PROGRESS",
        waiting_for_input=True,
    ),
    ev.InteractionStatus(**_BASE, status="IDLE", waiting_for_input=True),
    ev.InteractionStatus(**_BASE, status=None),
    ev.Interrupted(**_BASE),
    ev.ToolCall(
        **_BASE,
        calls=(
            types.FunctionCall(
                id="call-1",
                name="get_weather",
                args={"city": "Paris", "days": 3, "units": ["C"], "nested": {"a": None}},
            ),
            types.FunctionCall(id="call-2", name="ping", args={}),
        ),
    ),
    ev.ToolCallCancelled(**_BASE, ids=("call-1", "call-2")),
    ev.GoAway(**_BASE, time_left=9.5),
    ev.ResumptionUpdate(
        **_BASE, handle=HANDLE, resumable=True, last_consumed_client_message_index=17
    ),
    ev.ResumptionUpdate(**_BASE, handle=None, resumable=False),
    ev.Usage(
        **_BASE,
        metadata=types.UsageMetadata(
            prompt_token_count=120,
            response_token_count=48,
            total_token_count=168,
            prompt_tokens_details=[
                types.ModalityTokenCount(modality=types.MediaModality.AUDIO, token_count=100),
                types.ModalityTokenCount(modality=types.MediaModality.TEXT, token_count=20),
            ],
        ),
    ),
    ev.VoiceActivity(
        **_BASE,
        kind="ACTIVITY_START",
        raw={"voiceActivity": {"voiceActivityType": "ACTIVITY_START", "audioOffset": "1.5s"}},
        audio_offset=1.5,
    ),
    ev.Reconnecting(**_BASE, reason="1011 'internal error'", attempt=2, delay=0.75),
    ev.HistoryRestored(**_BASE, turns=6),
    ev.ReplayTrimmed(**_BASE, chunks=300, seconds=30.0),
    ev.InputUndelivered(
        **_BASE,
        commands=(
            {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "hi"}]}]}},
            {"realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=16000", "data": "AAE="}}},
        ),
    ),
    ev.ConversationFailed(
        **_BASE,
        error=_errors.SessionRejected(
            "session rejected: policy", _errors.CloseInfo(1008, "Request contains an invalid arg")
        ),
    ),
    ev.ConversationFailed(
        **_BASE, error=_errors.ConnectionLost("restarts ran out", _errors.CloseInfo(1006))
    ),
    ev.ConversationFailed(**_BASE, error=_errors.ProtocolError("not JSON: b'\\x00'")),
    ev.ConversationClosed(**_BASE),
]


def _wire(event: ev.Event, *, secrets: bool = True) -> str:
    return json.dumps(event_to_json(event, secrets=secrets))


def _round_trip(event: ev.Event) -> ev.Event:
    return event_from_json(json.loads(_wire(event)))


def test_every_event_class_is_covered() -> None:
    """A new class in events.__all__ must get an example here (and so a round trip)."""
    public = {getattr(ev, name) for name in ev.__all__} - {ev.Event}
    assert {type(e) for e in EXAMPLES} == public


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: type(e).__name__)
def test_round_trip(event: ev.Event) -> None:
    data = event_to_json(event, secrets=True)
    assert data["type"] == type(event).__name__
    back = _round_trip(event)
    assert type(back) is type(event)
    if isinstance(event, ev.ConversationFailed):
        assert isinstance(back, ev.ConversationFailed)
        assert attrs.evolve(back, error=event.error) == event
        assert type(back.error) is type(event.error)
        assert str(back.error) == str(event.error)
        assert getattr(back.error, "close", None) == getattr(event.error, "close", None)
    else:
        assert back == event


def test_json_is_plain() -> None:
    """bytes travel as standard base64, tuples as lists, google-genai types as snake_case
    dicts without nulls."""
    audio = event_to_json(ev.AudioChunk(**_BASE, data=b"\xfb\xff"))
    assert audio["data"] == "+/8="
    call = event_to_json(EXAMPLES[[type(e) for e in EXAMPLES].index(ev.ToolCall)])
    assert call["calls"][0] == {
        "id": "call-1",
        "name": "get_weather",
        "args": {"city": "Paris", "days": 3, "units": ["C"], "nested": {"a": None}},
    }
    assert isinstance(event_to_json(ev.ToolCallCancelled(**_BASE, ids=("a",)))["ids"], list)
    failed = event_to_json(
        ev.ConversationFailed(
            **_BASE, error=_errors.SessionRejected("no", _errors.CloseInfo(1008, "bad"))
        )
    )
    assert failed["error"] == {
        "class": "SessionRejected",
        "message": "no",
        "close": {"code": 1008, "reason": "bad"},
    }


def test_handle_only_with_secrets() -> None:
    update = ev.ResumptionUpdate(**_BASE, handle=HANDLE, resumable=True)
    public = event_to_json(update)
    assert public["handle"] is None
    assert HANDLE not in json.dumps(public)
    assert HANDLE not in json.dumps(event_to_json(update, secrets=False))
    assert event_from_json(public) == attrs.evolve(update, handle=None)
    assert event_to_json(update, secrets=True)["handle"] == HANDLE


def test_error_classes_rebuilt() -> None:
    """A class of liveactors._errors that takes a message comes back as itself; one that needs
    more (InvalidConfig) or is unknown comes back as a plain LiveError, message kept."""

    def back(error: Exception) -> BaseException:
        event = ev.ConversationFailed(**_BASE, error=error)  # type: ignore[arg-type]
        rebuilt = _round_trip(event)
        assert isinstance(rebuilt, ev.ConversationFailed)
        return rebuilt.error

    expired = back(_errors.HandleExpired("gone", _errors.CloseInfo(1008, "session not found")))
    assert type(expired) is _errors.HandleExpired
    assert expired.close == _errors.CloseInfo(1008, "session not found")
    assert type(back(_errors.ServiceBusy("busy"))) is _errors.ServiceBusy
    assert back(_errors.ServiceBusy("busy")).close is None  # type: ignore[attr-defined]
    assert type(back(_errors.AdmissionTimeout("slow"))) is _errors.AdmissionTimeout
    config = back(_errors.InvalidConfig("no audio", field="f", model="m"))
    assert type(config) is _errors.LiveError and str(config) == "no audio"

    class Custom(_errors.LiveError):
        pass

    custom = back(Custom("mine"))
    assert type(custom) is _errors.LiveError and str(custom) == "mine"


def test_missing_defaults_are_filled() -> None:
    data = {"type": "TurnComplete", **_BASE}
    assert event_from_json(data) == ev.TurnComplete(**_BASE)
    assert event_from_json({**data, "from_a_newer_writer": 1}) == ev.TurnComplete(**_BASE)


def test_unknown_type() -> None:
    with pytest.raises(ValueError, match="NoSuchEvent"):
        event_from_json({"type": "NoSuchEvent", **_BASE})
    with pytest.raises(ValueError, match="unknown event type None"):
        event_from_json(dict(_BASE))
    with pytest.raises(TypeError, match="not a liveactors event"):
        event_to_json(object())  # type: ignore[arg-type]


def test_missing_field() -> None:
    data = event_to_json(ev.TextDelta(**_BASE, text="hi"))
    del data["text"]
    with pytest.raises(ValueError, match=r"TextDelta: missing field 'text'"):
        event_from_json(data)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"type": "TextDelta", **_BASE, "text": 5}, r"TextDelta\.text: expected a string"),
        ({"type": "TextDelta", **_BASE, "seq": "1", "text": ""}, r"TextDelta\.seq"),
        ({"type": "TextDelta", **_BASE, "seq": True, "text": ""}, r"TextDelta\.seq"),
        ({"type": "AudioChunk", **_BASE, "data": "not base64!"}, r"AudioChunk\.data"),
        ({"type": "ToolCallCancelled", **_BASE, "ids": ["a", 1]}, r"ToolCallCancelled\.ids"),
        ({"type": "ModelPart", **_BASE, "part": {"bogus": 1}}, r"ModelPart\.part"),
        ({"type": "ConversationFailed", **_BASE, "error": {}}, r"ConversationFailed\.error"),
        ({"type": "GoAway", **_BASE, "time_left": None}, r"GoAway\.time_left"),
    ],
)
def test_ill_typed_field(data: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        event_from_json(data)


def test_float_accepts_integer_json() -> None:
    event = event_from_json({"type": "GoAway", **_BASE, "time_left": 10})
    assert isinstance(event, ev.GoAway)
    assert type(event.time_left) is float
