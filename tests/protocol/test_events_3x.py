"""Server messages of the 3.x generation -> events: several parts per message, interim
transcripts, interaction status, voice activity offsets, live-avatar video, bare frames."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from liveactors import events as ev
from liveactors._protocol.connection import ConnectionState, LiveConnection
from liveactors._protocol.tracker import EventTracker


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def audio_part(data: bytes) -> dict[str, Any]:
    return {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": b64(data)}}


def test_audio_parts_and_the_transcript_of_one_message_all_arrive_in_part_order() -> None:
    tracker = EventTracker("c")
    out = tracker.events(
        {
            "serverContent": {
                "outputTranscription": {"text": "Hello"},
                "modelTurn": {"parts": [audio_part(b"\x01\x02"), audio_part(b"\x03\x04")]},
            }
        }
    )
    assert [type(e) for e in out] == [ev.AudioChunk, ev.AudioChunk, ev.OutputTranscript]
    assert [e.data for e in out[:2]] == [b"\x01\x02", b"\x03\x04"]  # type: ignore[attr-defined]
    assert out[2].text == "Hello"  # type: ignore[attr-defined]
    assert [e.seq for e in out] == [1, 2, 3]
    assert tracker.turn_text == ["Hello"]


def test_an_interrupted_turn_needs_no_generation_complete() -> None:
    tracker = EventTracker("c")
    tracker.events({"serverContent": {"modelTurn": {"parts": [audio_part(b"\x00\x00")]}}})
    out = tracker.events({"serverContent": {"interrupted": True}})
    out += tracker.events({"serverContent": {"turnComplete": True}})
    assert [type(e) for e in out] == [ev.Interrupted, ev.TurnComplete]
    assert out[1].interrupted  # type: ignore[attr-defined]
    assert tracker.turn == 2


def test_interaction_status_and_waiting_for_input_ride_on_turn_complete() -> None:
    tracker = EventTracker("c")
    [done] = tracker.events(
        {
            "serverContent": {
                "turnComplete": True,
                "turnCompleteReason": "NEED_MORE_INPUT",
                "interactionStatus": "IN_PROGRESS",
                "waitingForInput": True,
            }
        }
    )
    assert isinstance(done, ev.TurnComplete)
    assert done.reason == "NEED_MORE_INPUT"
    assert done.interaction_status == "IN_PROGRESS"
    assert done.waiting_for_input is True


def test_interaction_status_without_turn_complete_is_an_event_of_its_own() -> None:
    tracker = EventTracker("c")
    [status] = tracker.events({"serverContent": {"interactionStatus": "IDLE"}})
    assert isinstance(status, ev.InteractionStatus)
    assert (status.status, status.waiting_for_input) == ("IDLE", False)
    [waiting] = tracker.events({"serverContent": {"waitingForInput": True}})
    assert isinstance(waiting, ev.InteractionStatus)
    assert (waiting.status, waiting.waiting_for_input) == (None, True)


def test_interim_input_transcripts_are_marked_and_the_final_one_is_not() -> None:
    tracker = EventTracker("c")
    out = tracker.events({"serverContent": {"interimInputTranscription": {"text": "hel"}}})
    out += tracker.events({"serverContent": {"interimInputTranscription": {"text": "hello th"}}})
    out += tracker.events({"serverContent": {"inputTranscription": {"text": "hello there"}}})
    assert [(e.text, e.interim) for e in out] == [  # type: ignore[attr-defined]
        ("hel", True),
        ("hello th", True),
        ("hello there", False),
    ]


@pytest.mark.parametrize(
    ("message", "kind", "offset"),
    [
        (
            {"voiceActivity": {"type": "ACTIVITY_START", "audioOffset": "1.250s"}},
            "ACTIVITY_START",
            1.25,
        ),
        ({"voiceActivity": {"voiceActivityType": "ACTIVITY_END"}}, "ACTIVITY_END", None),
        (
            {"voiceActivityDetectionSignal": {"vadSignalType": "VAD_SIGNAL_TYPE_SOS"}},
            "VAD_SIGNAL_TYPE_SOS",
            None,
        ),
    ],
)
def test_voice_activity_with_its_audio_offset(
    message: dict[str, Any], kind: str, offset: float | None
) -> None:
    [event] = EventTracker("c").events(message)
    assert isinstance(event, ev.VoiceActivity)
    assert (event.kind, event.audio_offset) == (kind, offset)


def test_avatar_video_arrives_as_video_chunks_with_the_init_segment_marked() -> None:
    init = b"\x00\x00\x00\x18ftypiso6" + bytes(16)
    media = b"\x00\x00\x00\x10moof" + bytes(8)
    tracker = EventTracker("c")
    out = tracker.events(
        {
            "serverContent": {
                "modelTurn": {
                    "parts": [
                        {"inlineData": {"mimeType": "video/mp4", "data": b64(init)}},
                        {"inlineData": {"mimeType": "video/mp4", "data": b64(media)}},
                    ]
                },
                "outputTranscription": {"text": "Hi"},
            }
        }
    )
    assert [type(e) for e in out] == [ev.VideoChunk, ev.VideoChunk, ev.OutputTranscript]
    first, second = out[0], out[1]
    assert isinstance(first, ev.VideoChunk) and isinstance(second, ev.VideoChunk)
    assert (first.init, second.init) == (True, False)
    assert (first.data, second.data) == (init, media)
    assert "bytes>" in repr(first) and "ftyp" not in repr(first)


def test_bare_frames_are_ignored_before_and_after_setup_complete() -> None:
    conn = LiveConnection()
    conn.send_setup({"setup": {"model": "models/gemini-3.8-live"}})
    assert conn.receive(b"{}") == {}
    assert conn.state is ConnectionState.SETUP_SENT
    conn.receive(b'{"setupComplete": {}}')
    assert conn.state is ConnectionState.READY
    tracker = EventTracker("c")
    assert tracker.events(conn.receive(b"{}")) == []
    assert tracker.seq == 0


def test_an_unsolicited_update_without_a_handle_keeps_the_last_good_one() -> None:
    tracker = EventTracker("c")
    tracker.events({"sessionResumptionUpdate": {"newHandle": "h1", "resumable": True}})
    [event] = tracker.events({"sessionResumptionUpdate": {}})
    assert isinstance(event, ev.ResumptionUpdate)
    assert event.handle is None and not event.resumable
    assert tracker.handle == "h1"


def test_in_progress_marks_the_model_busy_until_it_says_idle() -> None:
    """On extended thinking a turnComplete is not an idle point when the service says
    ``interactionStatus: IN_PROGRESS``; a handoff must wait for IDLE."""
    tracker = EventTracker("c")
    tracker.events({"serverContent": {"turnComplete": True, "interactionStatus": "IN_PROGRESS"}})
    assert tracker.model_busy
    tracker.events({"serverContent": {"turnComplete": True}})  # no status: unchanged
    assert tracker.model_busy
    tracker.events({"serverContent": {"interactionStatus": "IDLE"}})
    assert not tracker.model_busy
