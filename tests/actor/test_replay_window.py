"""Bounded replay: a microphone streaming through minutes of silence (no turn ever) keeps only
the replay window of audio for a replay, so memory stays flat and a reconnect replays seconds,
not minutes; what the replay lacks is reported (``ReplayTrimmed``, ``replay_trimmed``)."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

import liveactors
from liveactors import events
from liveactors._bus import Bus
from liveactors._session_config import session_setup
from liveactors._supervisor import Supervisor
from liveactors.testing import open_fake_server

from .conftest import AUDIO, AUDIO_MODEL, conversation, fake, pcm, recording

CHUNK = 0.1  # seconds of audio per send_audio, sent in real time


def held_chunks(conv: liveactors.ConversationRef) -> int:
    """Audio chunks the conversation's ledger holds for a replay."""
    ledger = conv._sup.session.ledger  # type: ignore[attr-defined]
    return sum(
        1 for e in ledger.exchanges for _, m in e.inputs if "audio" in m.get("realtimeInput", {})
    )


async def test_minutes_of_silent_mic_audio_keep_a_bounded_replay(
    autojump_clock: MockClock,
) -> None:
    silence = pcm(CHUNK, loud=False)
    async with (
        fake() as server,
        conversation(server, AUDIO, model=AUDIO_MODEL) as (_, conv),
        recording(conv.subscribe, events.ReplayTrimmed, events.Connected) as rec,
    ):
        sizes = []
        for n in range(3 * 60 * 10):  # three minutes of silence, 100 ms at a time
            await conv.send_audio(silence)
            await trio.sleep(CHUNK)
            if n % 300 == 299:
                sizes.append(held_chunks(conv))
        # Bounded by the 15 s window from the first sample on: flat, not growing.
        assert all(140 <= size <= 152 for size in sizes), sizes
        trimmed = conv.statistics().replay_trimmed
        assert trimmed == 1800 - held_chunks(conv)
        assert not server.log.model_turns()  # silence asked nothing

        first = server.log.connections[-1].id
        server.faults.drop_now()
        with trio.fail_after(30):
            await rec.wait_for_event(events.Connected)  # (the first came before recording)
            report = await rec.wait_for_event(events.ReplayTrimmed)
        # The reconnect replayed the last 15 s, not three minutes, and said what it lacks.
        second = server.log.connections[-1].id
        assert second != first
        held = held_chunks(conv)

        def replayed() -> int:
            return len(server.log.client_messages(second, kind="realtimeInput.audio"))

        with trio.fail_after(30):
            await server.log.wait_for(lambda: replayed() >= held)
        assert 140 <= replayed() <= 152
        assert report.chunks == trimmed
        assert report.seconds == pytest.approx(trimmed * CHUNK, rel=0.02)
        kinds = rec.kinds()
        assert kinds == ["Connected", "ReplayTrimmed"]
        # Speech after the reconnect is still answered.
        await conv.send_audio(pcm(1.0))
        await conv.audio_stream_end()
        with trio.fail_after(30):
            await server.log.wait_for(lambda: server.log.model_turns())


@pytest.mark.parametrize("bad", [-1.0, "15", True, float("nan")])
def test_the_replay_window_must_be_seconds(bad: object) -> None:
    backend = liveactors.GeminiBackend(api_key="test-key")
    with pytest.raises(liveactors.InvalidCommand, match="replay_window"):
        supervisor(backend, replay_window=bad)


def test_the_replay_window_reaches_the_ledger() -> None:
    backend = liveactors.GeminiBackend(api_key="test-key")
    assert supervisor(backend).session.ledger.replay_window == 15.0
    assert supervisor(backend, replay_window=5).session.ledger.replay_window == 5.0


def supervisor(backend: liveactors.GeminiBackend, **options: object) -> Supervisor:
    return Supervisor(
        name="c1",
        backend=backend,
        session=session_setup(None, backend),
        actor=liveactors.Conversation(),
        bus=Bus(),
        restart=liveactors.RestartPolicy(),
        **options,  # type: ignore[arg-type]
    )


async def test_open_orchestrator_takes_the_replay_window() -> None:
    async with open_fake_server(listen=False) as server:
        with pytest.raises(liveactors.InvalidCommand, match="replay_window"):
            async with liveactors.open_orchestrator(server.backend(), replay_window=-1.0):
                pass
        async with liveactors.open_orchestrator(server.backend(), replay_window=2.0) as orch:
            conv = await orch.spawn(None, name="c")
            assert orch.replay_window == 2.0
            assert conv.state is liveactors.ConversationState.READY
