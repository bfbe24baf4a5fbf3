"""A custom actor: record conversations' transcripts to JSONL or SQLite.

    python examples/transcript_recorder.py [transcript.jsonl | transcript.sqlite]

``TranscriptRecorder`` is a ``liveactors.Actor``: it owns a mailbox and handles one message at a
time, in order, so its state needs no locks. It follows conversations (``Follow``): for each, a
task in the actor's own nursery subscribes to the conversation's events and forwards them into
the mailbox, where they meet the user's typed input (``UserText``) in one ordered stream. At
every ``TurnComplete`` it writes the turn — what the user typed or said (input transcript),
what the model said (its output transcript; or its text, on a model that writes text), the turn
number, and whether the turn was cut off — as rows of a JSONL file or an SQLite table. File and
database writes block, so they run in a worker thread (``trio.to_thread.run_sync``), off the
event loop.

Typed input needs a message because the event stream carries only what the *model* and the
connection do; spoken input comes back as ``InputTranscript`` events by itself.

The demo records a typed conversation (whose first answer is cut by a dropped connection on the
fake server, to show what a lost turn looks like) and a spoken one, then prints the transcript.
Both run on ``liveactors.DEFAULT_MODEL`` (gemini-3.8-live), which answers in speech only.
The default file, ``transcript.jsonl`` in the current directory, is started afresh each run.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import struct
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import trio
from google.genai import types

import liveactors
from liveactors import events
from liveactors.testing import FakeServer, open_fake_server

MODEL = os.environ.get("LIVEACTORS_MODEL", liveactors.DEFAULT_MODEL)
TURN_TIMEOUT = 60


# -- where rows go (blocking: every method runs in a worker thread) -------------------------------


class Sink(Protocol):
    def open(self) -> None: ...
    def write(self, rows: list[dict[str, Any]]) -> None: ...
    def close(self) -> None: ...


class JsonlSink:
    """One JSON object per line, appended and flushed per turn."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: Any = None

    def open(self) -> None:
        self._file = self.path.open("a", encoding="utf-8")

    def write(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class SqliteSink:
    """A ``transcript`` table; one transaction per turn."""

    COLUMNS = ("time", "conversation", "turn", "role", "kind", "text", "interrupted", "reason")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    def open(self) -> None:
        # Worker threads differ from call to call; the actor never writes concurrently.
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS transcript (time TEXT, conversation TEXT, turn INTEGER,"
            " role TEXT, kind TEXT, text TEXT, interrupted INTEGER, reason TEXT)"
        )

    def write(self, rows: list[dict[str, Any]]) -> None:
        assert self._db is not None
        with self._db:
            self._db.executemany(
                f"INSERT INTO transcript VALUES ({', '.join('?' * len(self.COLUMNS))})",
                [tuple(row.get(c) for c in self.COLUMNS) for row in rows],
            )

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


def sink_for(path: Path) -> Sink:
    return SqliteSink(path) if path.suffix in (".db", ".sqlite", ".sqlite3") else JsonlSink(path)


# -- the actor ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Follow:
    """Start recording a conversation; ``subscribed`` is set once no event can be missed."""

    conversation: liveactors.ConversationRef
    subscribed: trio.Event = field(default_factory=trio.Event, compare=False)


@dataclass(frozen=True)
class UserText:
    """The user typed ``text``, to be answered in model turn ``turn``."""

    conversation: str
    text: str
    turn: int


#: The events a transcript needs.
RECORDED = (
    events.TextDelta,
    events.OutputTranscript,
    events.InputTranscript,
    events.TurnComplete,
    events.ConversationClosed,
)


@dataclass
class _Turn:
    typed: list[dict[str, Any]] = field(default_factory=list)
    spoken: list[str] = field(default_factory=list)
    model: list[str] = field(default_factory=list)
    #: "transcript" (what the model said: every current Live model speaks) or "text".
    model_kind: str = "transcript"


class TranscriptRecorder(liveactors.Actor[Follow | UserText | events.Event]):
    mailbox_size = 256

    def __init__(self, path: Path, *, drain_timeout: float = 5.0) -> None:
        super().__init__("transcript-recorder")
        self.sink = sink_for(path)
        self.drain_timeout = drain_timeout
        self.rows = 0
        self._turns: dict[tuple[str, int], _Turn] = defaultdict(_Turn)
        self._following: set[str] = set()
        self._none_following = trio.Event()
        self._none_following.set()

    # -- the public side: helpers that send messages -------------------------------------------

    async def follow(self, conversation: liveactors.ConversationRef) -> None:
        """Record ``conversation`` from now on; returns once it is subscribed."""
        message = Follow(conversation)
        await self.send(message)
        await message.subscribed.wait()

    async def user_text(self, conversation: liveactors.ConversationRef, text: str) -> None:
        """Note what the user typed (before sending it): it is answered in the next turn."""
        turn = conversation.statistics().turns + 1
        await self.send(UserText(conversation.name, text, turn))

    async def stop(self) -> None:
        """Let the followed conversations' last events in (they end when their conversation
        closes), then write what is queued and stop."""
        with trio.move_on_after(self.drain_timeout):
            await self._none_following.wait()
        await super().stop()

    # -- the actor's life ----------------------------------------------------------------------

    async def on_start(self) -> None:
        await trio.to_thread.run_sync(self.sink.open)

    async def handle(self, message: Follow | UserText | events.Event) -> None:
        if isinstance(message, Follow):
            await self.nursery.start(self._forward, message.conversation)
            message.subscribed.set()
        elif isinstance(message, UserText):
            self._turns[message.conversation, message.turn].typed.append(
                _row(message.conversation, message.turn, "user", "text", message.text)
            )
        elif isinstance(message, events.TextDelta | events.OutputTranscript):
            turn = self._turns[message.conversation, message.turn]
            turn.model.append(message.text)
            if isinstance(message, events.TextDelta):
                turn.model_kind = "text"
        elif isinstance(message, events.InputTranscript) and not message.interim:
            # (Interim pieces, from the transcription models, are replaced by the final one.)
            self._turns[message.conversation, message.turn].spoken.append(message.text)
        elif isinstance(message, events.TurnComplete):
            await self._write_turns(message.conversation, upto=message.turn, ending=message)
        elif isinstance(message, events.ConversationClosed):
            await self._write_turns(message.conversation, upto=math.inf)
            self._following.discard(message.conversation)
            if not self._following:
                self._none_following.set()

    async def on_stop(self) -> None:
        for conversation in {name for name, _ in self._turns}:
            await self._write_turns(conversation, upto=math.inf)
        await trio.to_thread.run_sync(self.sink.close)

    async def _forward(
        self,
        conversation: liveactors.ConversationRef,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Subscribe (default "block" policy: a recorder must see every event) and forward the
        events into the mailbox, where they are handled in order with everything else."""
        self._following.add(conversation.name)
        self._none_following = trio.Event()
        async with conversation.subscribe(*RECORDED) as stream:
            task_status.started()
            async for event in stream:
                try:
                    await self.send(event)
                except liveactors.ConversationStopped:
                    return  # the recorder itself is stopping

    async def _write_turns(
        self, conversation: str, *, upto: float, ending: events.TurnComplete | None = None
    ) -> None:
        """Write the turns of ``conversation`` up to ``upto`` (typed input of the next turn
        waits: it is written just before that turn's answer)."""
        rows: list[dict[str, Any]] = []
        for key in sorted(k for k in self._turns if k[0] == conversation and k[1] <= upto):
            turn = self._turns.pop(key)
            rows += turn.typed
            if turn.spoken:
                rows.append(_row(conversation, key[1], "user", "transcript", "".join(turn.spoken)))
            if turn.model or (ending is not None and key[1] == ending.turn):
                row = _row(conversation, key[1], "model", turn.model_kind, "".join(turn.model))
                if ending is not None and key[1] == ending.turn:
                    row["interrupted"] = ending.interrupted
                    row["reason"] = ending.reason
                rows.append(row)
        if rows:
            await trio.to_thread.run_sync(self.sink.write, rows)
            self.rows += len(rows)


def _row(conversation: str, turn: int, role: str, kind: str, text: str) -> dict[str, Any]:
    return {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "conversation": conversation,
        "turn": turn,
        "role": role,
        "kind": kind,
        "text": text,
    }


# -- the demo -------------------------------------------------------------------------------------


def speech_like(seconds: float, rate: int = 16_000) -> bytes:
    """A voiced tone in syllable-like bursts: "speech" to the fake server's VAD."""
    n = int(seconds * rate)
    return struct.pack(
        f"<{n}h",
        *(
            int(6000 * math.sin(2 * math.pi * 150 * i / rate) * (0.6 + 0.4 * math.sin(i / 600)))
            for i in range(n)
        ),
    )


async def demo(backend: liveactors.GeminiBackend, path: Path, server: FakeServer | None) -> None:
    async with liveactors.open_orchestrator(backend) as orch:
        recorder = TranscriptRecorder(path)
        await orch.spawn_actor(recorder)

        # A typed conversation. The model answers in speech; liveactors asks for its
        # transcript by default, and that is what the recorder writes.
        text = await orch.spawn(
            types.LiveConnectConfig(system_instruction="Answer in one sentence."),
            name="support-1",
        )
        await recorder.follow(text)
        if server is not None:  # drop this connection in the middle of the first answer
            server.faults.drop(connection=server.open_connections[-1], after="modelTurn")
        for question in ["Where is my parcel?", "Can you send it again?"]:
            await recorder.user_text(text, question)
            with trio.fail_after(TURN_TIMEOUT):
                await text.ask(question)

        # A spoken conversation: input transcription (asked for here) and output
        # transcription (on by default) make the transcript.
        voice = await orch.spawn(
            types.LiveConnectConfig(input_audio_transcription=types.AudioTranscriptionConfig()),
            name="voice-1",
        )
        await recorder.follow(voice)
        async with voice.subscribe(events.TurnComplete) as turns:
            audio = speech_like(1.0)
            for start in range(0, len(audio), 3200):  # 100 ms chunks
                await voice.send_audio(audio[start : start + 3200])
            await voice.audio_stream_end()
            with trio.fail_after(TURN_TIMEOUT):
                async for done in turns:
                    if isinstance(done, events.TurnComplete) and done.reason != "CONNECTION_LOST":
                        break

        await text.stop()
        await voice.stop()
        await recorder.stop()  # writes the rest, closes the file
        print(f"recorded {recorder.rows} rows to {path}")


def read_back(path: Path) -> list[dict[str, Any]]:
    if isinstance(sink_for(path), SqliteSink):
        with sqlite3.connect(path) as db:
            db.row_factory = sqlite3.Row
            return [dict(row) for row in db.execute("SELECT * FROM transcript ORDER BY rowid")]
    with path.open(encoding="utf-8") as rows:
        return [json.loads(line) for line in rows]


async def main(argv: list[str]) -> None:
    path = Path(argv[0] if argv else "transcript.jsonl")
    await trio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))
    if os.environ.get("GEMINI_API_KEY"):
        print(f"using the real Live API with {MODEL}")
        await demo(liveactors.GeminiBackend(model=MODEL), path, None)
    else:
        print(f"GEMINI_API_KEY is not set: using the embedded fake server ({MODEL})")
        async with open_fake_server(listen=False, chunks=3) as server:
            await demo(server.backend(model=MODEL), path, server)

    for row in await trio.to_thread.run_sync(read_back, path):
        flags = f"  [cut: {row['reason']}]" if row.get("interrupted") else ""
        print(
            f"{row['conversation']:<10} turn {row['turn']}  {row['role']:<5} "
            f"({row['kind']}) {row['text']}{flags}"
        )


if __name__ == "__main__":
    trio.run(main, sys.argv[1:])
