"""Events in the journal's stream (cluster._journal.encode_event / decode_event), written and
read by orjson: the text means what the original standard-library codec wrote, both ways, so
workers and clients of either version read each other."""

from __future__ import annotations

import json
import math

import attrs
import pytest

from liveactors import events as ev
from liveactors._event_codec import event_from_json, event_to_json
from liveactors.cluster._journal import decode_event, encode_event
from test_event_codec import _BASE, EXAMPLES, HANDLE


def _old_encode(event: ev.Event) -> bytes:
    """What encode_event wrote before orjson: the standard library, media after a NUL."""
    data = getattr(event, "data", None)
    compact = {"ensure_ascii": False, "separators": (",", ":")}
    if type(data) is bytes and data:
        head = event_to_json(attrs.evolve(event, data=b""))  # type: ignore[call-arg]
        return json.dumps(head, **compact).encode() + b"\0" + data  # type: ignore[arg-type]
    return json.dumps(event_to_json(event), **compact).encode()  # type: ignore[arg-type]


def _old_decode(field: bytes) -> ev.Event:
    """How decode_event read before orjson."""
    head, media, data = field.partition(b"\0")
    event = event_from_json(json.loads(head))
    return attrs.evolve(event, data=data) if media else event  # type: ignore[call-arg]


def _same(back: ev.Event, event: ev.Event) -> None:
    if isinstance(event, ev.ResumptionUpdate):
        event = attrs.evolve(event, handle=None)  # never written without secrets
    if isinstance(event, ev.ConversationFailed):
        assert isinstance(back, ev.ConversationFailed)
        assert type(back.error) is type(event.error) and str(back.error) == str(event.error)
        back = attrs.evolve(back, error=event.error)
    assert back == event


def _encoded(event: ev.Event) -> bytes:
    field = encode_event(event)
    return field if isinstance(field, bytes) else field.encode()


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: type(e).__name__)
def test_old_and_new_interoperate(event: ev.Event) -> None:
    """New writer, old reader; old writer, new reader; new both ways. And the JSON is the
    same value as the old writer's."""
    new = _encoded(event)
    _same(_old_decode(new), event)
    _same(decode_event(_old_encode(event)), event)
    _same(decode_event(new), event)
    old_head, old_sep, old_media = _old_encode(event).partition(b"\0")
    head, sep, media = new.partition(b"\0")
    assert json.loads(head) == json.loads(old_head)
    assert (sep, media) == (old_sep, old_media)


def test_handle_never_in_the_stream() -> None:
    field = _encoded(ev.ResumptionUpdate(**_BASE, handle=HANDLE, resumable=True))
    assert HANDLE.encode() not in field


@pytest.mark.parametrize("text", ["lone \ud800 surrogate", "nul \x00 and ✓", "big"])
def test_what_orjson_refuses_still_travels(text: str) -> None:
    """Lone surrogates, integers beyond 64 bits, NaN and infinities: written by the standard
    library, read back the same by old and new readers."""
    seq = 2**70 if text == "big" else 1
    event = ev.TextDelta(conversation="c", seq=seq, turn=1, text=text)
    field = _encoded(event)
    assert decode_event(field) == event == _old_decode(field)
    for value in (math.nan, math.inf, -math.inf):
        go = _encoded(ev.GoAway(**_BASE, time_left=value))
        for back in (decode_event(go), _old_decode(go)):
            assert isinstance(back, ev.GoAway)
            assert repr(back.time_left) == repr(value)
    raw = ev.VoiceActivity(**_BASE, kind="x", raw={"a": [1, {"b": math.nan}], "c": None})
    back = decode_event(_encoded(raw))
    assert isinstance(back, ev.VoiceActivity) and math.isnan(back.raw["a"][1]["b"])


def test_media_for_a_type_without_media() -> None:
    with pytest.raises(ValueError, match="TurnComplete: has no media field"):
        decode_event(_encoded(ev.TurnComplete(**_BASE)) + b"\0abc")
