"""Hypothesis fuzzing of the decoding path: nothing but ``LiveError`` ever comes out, quickly.

The path under test is the one the conversation runs for every frame:
``LiveConnection.receive`` (``parse_frame``) -> ``EventTracker.events``, plus
``server_message`` for whoever asks for the pydantic value. Inputs are arbitrary bytes,
arbitrary JSON (biased towards the protocol's own keys so it reaches deep code) and mutated
versions of the realistic frames of docs/protocol.md ("Server messages", "Turn orderings").
Sizes are bounded and every example has a deadline, so a hang or a super-linear blow-up fails
too.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import time
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liveactors import LiveError
from liveactors._protocol.connection import LiveConnection
from liveactors._protocol.decode import parse_frame, server_message
from liveactors._protocol.setup import encode_setup
from liveactors._protocol.tracker import EventTracker

# google-genai warns about enum values it does not know; a fuzzer makes plenty.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# LIVEACTORS_FUZZ_EXAMPLES=5000 for a deep run; the default keeps the suite fast.
EXAMPLES = int(os.environ.get("LIVEACTORS_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(milliseconds=400),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,
)

REALISTIC = [
    '{"setupComplete":{}}',
    '{"setupComplete":{"sessionId":"abc-123"}}',
    '{"serverContent":{"modelTurn":{"role":"model","parts":[{"inlineData":'
    '{"mimeType":"audio/pcm;rate=24000","data":"AID/f/7///4="}}]}}}',
    '{"serverContent":{"modelTurn":{"role":"model","parts":[{"text":"Paris."}]}}}',
    '{"serverContent":{"modelTurn":{"parts":[{"executableCode":{"language":"PYTHON",'
    '"code":"print(1)"}},{"text":"hm","thought":true}]}}}',
    '{"serverContent":{"outputTranscription":{"text":"It\'s sunny"}}}',
    '{"serverContent":{"inputTranscription":{"text":"what\'s the weather"}}}',
    '{"serverContent":{"generationComplete":true}}',
    '{"serverContent":{"turnComplete":true,"turnCompleteReason":"NEED_MORE_INPUT"},'
    '"usageMetadata":{"promptTokenCount":162,"responseTokenCount":42,"totalTokenCount":204,'
    '"promptTokensDetails":[{"modality":"TEXT","tokenCount":139}]}}',
    '{"serverContent":{"interrupted":true}}',
    '{"serverContent":{"groundingMetadata":{"webSearchQueries":["q"]},'
    '"urlContextMetadata":{"urlMetadata":[{"retrievedUrl":"https://x.test"}]}}}',
    '{"toolCall":{"functionCalls":[{"id":"fc-1","name":"get_weather","args":{"city":"Paris"}}]}}',
    '{"toolCallCancellation":{"ids":["fc-1"]}}',
    '{"goAway":{"timeLeft":"10s"}}',
    '{"sessionResumptionUpdate":{"newHandle":"CiQ2ZDk","resumable":true}}',
    '{"sessionResumptionUpdate":{}}',
    '{"sessionResumptionUpdate":{"newHandle":"CiQ3","resumable":true,'
    '"lastConsumedClientMessageIndex":"42"}}',
    '{"usageMetadata":{"candidatesTokenCount":5,"totalTokenCount":9}}',
    '{"voiceActivity":{"type":"ACTIVITY_START","audioOffset":"1.200s"}}',
    '{"voiceActivityDetectionSignal":{"vadSignalType":"VAD_SIGNAL_TYPE_SOS"}}',
]
PARSED = [json.loads(f) for f in REALISTIC]

PROTOCOL_KEYS = sorted(
    {
        "setupComplete",
        "serverContent",
        "modelTurn",
        "parts",
        "text",
        "thought",
        "inlineData",
        "mimeType",
        "data",
        "inputTranscription",
        "outputTranscription",
        "generationComplete",
        "turnComplete",
        "turnCompleteReason",
        "interrupted",
        "groundingMetadata",
        "urlContextMetadata",
        "toolCall",
        "functionCalls",
        "id",
        "name",
        "args",
        "toolCallCancellation",
        "ids",
        "goAway",
        "timeLeft",
        "sessionResumptionUpdate",
        "newHandle",
        "resumable",
        "lastConsumedClientMessageIndex",
        "usageMetadata",
        "totalTokenCount",
        "promptTokensDetails",
        "voiceActivity",
        "type",
        "voiceActivityDetectionSignal",
        "vadSignalType",
        "sessionId",
        "role",
        "executableCode",
        "code",
        "candidatesTokenCount",
    }
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["10s", "1.500s", "-1s", "AID/f/7///4=", "audio/pcm;rate=24000", "42"])
)
keys = st.sampled_from(PROTOCOL_KEYS) | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=25,
)
json_objects = st.dictionaries(keys, json_values, max_size=5)


def pipeline(frame: str | bytes, tracker: EventTracker | None = None) -> None:
    """Run one frame down the decoding path; LiveErrors are fine, anything else fails."""
    conn = LiveConnection()
    conn.send_setup(encode_setup(None, "m"))
    conn.receive(b'{"setupComplete":{}}')
    tracker = tracker or EventTracker("fuzz")
    with contextlib.suppress(LiveError):
        parse_frame(frame)
    try:
        message = conn.receive(frame)
    except LiveError:
        return
    with contextlib.suppress(LiveError):
        tracker.events(message)
    with contextlib.suppress(LiveError):
        server_message(message)


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(frame: bytes) -> None:
    pipeline(frame)


@FUZZ
@given(st.text(max_size=512))
def test_arbitrary_text(frame: str) -> None:
    pipeline(frame)


@FUZZ
@given(json_values)
def test_arbitrary_json(value: Any) -> None:
    pipeline(json.dumps(value))


@FUZZ
@given(json_objects)
def test_arbitrary_json_objects_with_protocol_keys(value: dict[str, Any]) -> None:
    pipeline(json.dumps(value).encode())


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_paths(v, (*prefix, i)))
    return out


@st.composite
def mutated_frames(draw: st.DrawFn) -> Any:
    frame = copy.deepcopy(draw(st.sampled_from(PARSED)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(frame)
        path = draw(st.sampled_from(paths))
        if not path:
            continue
        parent = frame
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        action = draw(st.sampled_from(["replace", "delete", "add", "wrap"]))
        if action == "replace":
            parent[last] = draw(json_values)
        elif action == "delete" and isinstance(parent, dict):
            del parent[last]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(keys)] = draw(json_values)
        elif action == "wrap":
            parent[last] = draw(st.sampled_from([[parent[last]], {"x": parent[last]}]))
    return frame


@FUZZ
@given(mutated_frames())
def test_mutated_realistic_frames(frame: Any) -> None:
    pipeline(json.dumps(frame))


@FUZZ
@given(
    st.sampled_from(REALISTIC),
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=400), st.binary(min_size=0, max_size=3)),
        min_size=1,
        max_size=4,
    ),
)
def test_byte_mutated_realistic_frames(frame: str, edits: list[tuple[int, bytes]]) -> None:
    raw = bytearray(frame.encode())
    for position, replacement in edits:
        position %= len(raw) + 1
        raw[position : position + len(replacement) or position + 1] = replacement
    pipeline(bytes(raw))


@settings(FUZZ, max_examples=max(EXAMPLES * 2 // 3, 1))
@given(st.lists(mutated_frames() | st.sampled_from(PARSED), min_size=2, max_size=12))
def test_sequences_of_frames_through_one_tracker(frames: list[Any]) -> None:
    tracker = EventTracker("fuzz")
    for frame in frames:
        pipeline(json.dumps(frame), tracker)
    tracker.connection_lost()
    tracker.tool_responded(list(tracker.pending_calls))
    assert [tracker.seq, tracker.turn] >= [0, 1]


@pytest.mark.parametrize(
    "frame",
    [
        json.dumps({"serverContent": {"modelTurn": {"parts": [{"text": "x" * (4 * 2**20)}]}}}),
        '{"toolCall":{"functionCalls":[{"id":"a","args":'
        + '{"a":' * 900
        + "1"
        + "}" * 900
        + "}]}}",
        json.dumps({"toolCallCancellation": {"ids": [str(i) for i in range(100_000)]}}),
        '{"goAway":{"timeLeft":"' + "9" * 100_000 + 's"}}',
        '{"sessionResumptionUpdate":{"lastConsumedClientMessageIndex":"' + "9" * 4000 + '"}}',
    ],
    ids=["4MiB-text", "deep-args", "100k-ids", "long-duration", "long-int64"],
)
def test_huge_frames_are_handled_quickly(frame: str) -> None:
    start = time.perf_counter()
    pipeline(frame)
    assert time.perf_counter() - start < 5  # generous: the point is "no blow-up, no hang"
