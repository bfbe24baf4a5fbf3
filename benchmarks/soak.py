"""Chaos soak: many conversations for a simulated hour of random faults, judged from the log.

Runs on trio's ``MockClock`` (autojump) over the fake server's in-memory transport, so an hour
of service time takes minutes of CPU and every run with the same seed is the same run. Each
conversation asks unique questions at random intervals while a fault task hits random open
connections: abrupt drops, goAways (early with minutes left, and late), 1011 closes, refused
resumes and upgrades, expired handles. Conversations also meet a troublesome subscriber (slow
or stuck, of each overflow policy), tools that fail or return what JSON cannot hold, bursts of
input during handoffs, open microphones streaming silence, and stops followed by a respawn
under the same name.

Judged at the end:

* every acknowledged question (``ask`` accepted it) answered exactly once, according to the
  fake server's own record of completed turns, or handed back in an ``InputUndelivered``
  event;
* each incarnation's ``seq`` gap-free, from a recorder subscribed before its first connect;
* no task of the library left once the orchestrator closed;
* memory flat: what the library's objects retain (walked from the orchestrator, the fake
  server's excluded) at the end of the last quarter no more than 5 % above the second. The
  media payloads (audio held for a replay, a plan replaying it, subscribers' buffers) are
  judged apart and loosely: they are most of the total, bounded by design, and their level
  jumps with how many of the few open microphones are alive and which connection is
  mid-handoff, which says nothing of a leak (one would add megabytes a quarter).

``python benchmarks/soak.py`` runs 1,000 conversations for an hour and prints the figures;
``tests/test_soak.py`` runs 100 for ten simulated minutes.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
import types
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import attrs
import trio
import trio.testing

import liveactors
from liveactors import events
from liveactors._protocol.exchange import MediaRun
from liveactors.testing import FakeServer, open_fake_server

#: Functions the conversations declare; "call NAME {...}" questions make the fake call them.
TOOLS = [{"name": "lookup", "behavior": "BLOCKING", "parameters": {"type": "OBJECT"}}]
POLICIES = ("block", "drop_oldest", "error")


class Tools(liveactors.Conversation):
    """Tools that answer, fail, or return values JSON cannot hold."""

    async def on_tool_call(self, call: Any) -> Any:
        args = call.args or {}
        await trio.sleep(float(args.get("seconds", 0.5)))
        outcome = args.get("outcome", "ok")
        if outcome == "raise":
            raise RuntimeError("the lookup service is down")
        if outcome == "decimal":
            return {"price": Decimal("9.99"), "tags": {"a", "b"}}
        return {"found": args.get("q", "")}


@attrs.define
class Incarnation:
    """One spawn of a conversation: its events, in order, from before its first connect."""

    seqs: list[int] = attrs.field(factory=list)
    undelivered: list[str] = attrs.field(factory=list)
    closed: trio.Event = attrs.field(factory=trio.Event)
    #: Turns completed (not cut by a lost connection).
    turns: int = 0
    _turned: trio.Event = attrs.field(factory=trio.Event)

    def turn_complete(self) -> None:
        self.turns += 1
        self._turned.set()
        self._turned = trio.Event()

    async def answered(self, turns: int) -> None:
        """Until ``turns`` turns completed."""
        while self.turns < turns:
            await self._turned.wait()


@attrs.define
class Tally:
    asked: Counter[str] = attrs.field(factory=Counter)
    refused: int = 0
    incarnations: list[Incarnation] = attrs.field(factory=list)
    faults: Counter[str] = attrs.field(factory=Counter)
    respawns: int = 0
    handoff_bursts: int = 0
    #: Per quarter, the median reading of the library's state (held media excluded).
    memory: list[int] = attrs.field(factory=list)
    #: Per quarter, the median of the media payloads' bytes.
    media: list[int] = attrs.field(factory=list)
    #: The most chunks one exchange held in any reading.
    media_chunks_max: int = 0
    #: Questions asked so far (each question's text is unique).
    number: int = 0
    #: Incarnations that also streamed microphone audio.
    streams: int = 0
    #: What the server answers (a burst's pieces joined) -> the question that ends it.
    question_of: dict[str, str] = attrs.field(factory=dict)


class LibraryTasks(trio.abc.Instrument):
    """Counts the library's own tasks (the fake server's excluded) that are alive."""

    def __init__(self) -> None:
        self.alive: set[trio.lowlevel.Task] = set()

    @staticmethod
    def _ours(task: trio.lowlevel.Task) -> bool:
        module = getattr(task.coro, "cr_frame", None)
        name = module.f_globals.get("__name__", "") if module is not None else ""
        return name.startswith("liveactors") and not name.startswith("liveactors.testing")

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        if self._ours(task):
            self.alive.add(task)

    def task_exited(self, task: trio.lowlevel.Task) -> None:
        self.alive.discard(task)


#: A string or bytes this large is media (an audio chunk, raw or base64, or a replayed message
#: carrying one); anything of the library's own state is far smaller.
PAYLOAD = 1024


@attrs.define
class Retained:
    """One memory reading: what the library's objects hold, split into media payloads and
    the rest. Payloads sit in buffers bounded by design (the 15 s replay window, a plan
    replaying it, subscribers' buffers) and their level jumps with how many of the few open
    microphones are alive and which connection is mid-handoff; they are judged on their own,
    loosely, so that the rest can be judged tightly."""

    total: int = 0
    #: Bytes in media payloads (see :data:`PAYLOAD`).
    payload: int = 0
    #: The most chunks one exchange held for a replay.
    media_chunks_max: int = 0

    @property
    def state(self) -> int:
        """Everything but the media payloads: what must stay flat."""
        return self.total - self.payload


def _retained_bytes(root: object) -> Retained:
    """Bytes the library's own objects reachable from ``root`` hold: conversations, ledgers,
    mailboxes, subscriber buffers... The walk counts trio's objects but does not go through
    them (they lead to every task of the process, the fake server's included), nor through
    the fake server's objects, classes, modules or functions. Cheap enough to take at each
    quarter of a long run, unlike tracing every allocation."""
    seen: set[int] = set()
    stack = [root]
    reading = Retained()
    opaque = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, opaque):
            continue
        module = type(obj).__module__ or ""
        if module.startswith("liveactors.testing"):
            continue
        size = sys.getsizeof(obj)
        reading.total += size
        if isinstance(obj, (str, bytes)) and size >= PAYLOAD:
            reading.payload += size
        elif isinstance(obj, MediaRun):
            reading.media_chunks_max = max(reading.media_chunks_max, len(obj))
        if module.startswith(("trio", "_contextvars", "contextvars")):
            continue
        stack.extend(gc.get_referents(obj))
    return reading


async def _record(sub: liveactors.Subscription, life: Incarnation) -> None:
    async for event in sub:
        life.seqs.append(event.seq)
        if isinstance(event, events.InputUndelivered):
            for command in event.commands:
                text = _question_of(command)
                if text:
                    life.undelivered.append(text)
        if isinstance(event, events.TurnComplete) and event.reason != "CONNECTION_LOST":
            life.turn_complete()
        if isinstance(event, events.ConversationClosed):
            life.closed.set()
            return


def _question_of(message: Any) -> str:
    content = message.get("clientContent") if isinstance(message, dict) else None
    if content:
        return "".join(p.get("text", "") for t in content.get("turns", ()) for p in t["parts"])
    realtime = message.get("realtimeInput") if isinstance(message, dict) else None
    return str(realtime.get("text", "")) if realtime else ""


async def _microphone(conv: liveactors.ConversationRef) -> None:
    """An open microphone in a quiet room: silent 16 kHz audio, half a second at a time, for
    as long as the incarnation lives (the replay window keeps what it costs bounded)."""
    silence = bytes(16000)
    while True:
        await trio.sleep(0.5)
        try:
            await conv.send_audio(silence)
        except liveactors.LiveError:
            return


async def _troublesome(sub: liveactors.Subscription, rng: random.Random) -> None:
    """A slow reader, or one stuck for minutes before it reads again."""
    stuck = rng.random() < 0.5
    try:
        async for _ in sub:
            if stuck:
                await trio.sleep(rng.uniform(60, 240))
                stuck = False
            else:
                await trio.sleep(rng.uniform(0.01, 0.5))
    except liveactors.SubscriberOverflow:
        pass  # what the "error" policy does to a reader that falls behind


async def _conversation(
    orch: liveactors.Orchestrator,
    name: str,
    rng: random.Random,
    until: float,
    span: float,
    tally: Tally,
    streams: bool,
) -> None:
    """Spawn ``name``, ask until its lifetime ends, stop it, and spawn it again: until
    ``until``. ``streams``: each incarnation also has an open microphone."""
    while trio.current_time() < until:
        life = Incarnation()
        tally.incarnations.append(life)
        async with (
            trio.open_nursery() as nursery,
            orch.subscribe(conversation=name, buffer=1_000_000) as sub,
        ):
            nursery.start_soon(_record, sub, life)
            await _incarnation(orch, name, rng, until, span, tally, life, streams)
            # Its last events (InputUndelivered, ConversationClosed) reach the recorder.
            with trio.move_on_after(30):
                await life.closed.wait()
            nursery.cancel_scope.cancel()
        tally.respawns += 1


async def _incarnation(
    orch: liveactors.Orchestrator,
    name: str,
    rng: random.Random,
    until: float,
    span: float,
    tally: Tally,
    life: Incarnation,
    streams: bool,
) -> None:
    config = {"tools": [{"function_declarations": TOOLS}]}
    try:
        conv = await orch.spawn(config, name=name, actor=Tools)
    except liveactors.LiveError:
        tally.refused += 1
        await trio.sleep(5)
        return
    policy = rng.choice(POLICIES)
    async with trio.open_nursery() as nursery, conv.subscribe(buffer=8, overflow=policy) as bad:
        nursery.start_soon(_troublesome, bad, random.Random(rng.random()))
        if streams:
            tally.streams += 1
            nursery.start_soon(_microphone, conv)
        # Incarnations last a tenth to a third of the run: by the second quarter the run is
        # in its steady state, so the quarters compare like with like.
        lifetime = trio.current_time() + rng.uniform(0.1, 0.3) * span
        end = min(until, lifetime)
        while trio.current_time() < end:
            await trio.sleep(rng.expovariate(1 / 20))
            tally.number += 1
            question = _question(name, tally.number, rng)
            # Now and then a burst: two pieces of history, then the question, back to back
            # (it may land in a handoff); the model answers the three as one turn.
            pieces = [f"{question} (a)", f"{question} (b)"] if rng.random() < 0.05 else []
            tally.handoff_bursts += bool(pieces)
            answered = life.turns
            try:
                for piece in pieces:
                    await conv.send_text(piece, turn_complete=False)
                # Acknowledged once send_text returns: from then on it must be answered
                # exactly once, or handed back as undelivered.
                await conv.send_text(question)
            except liveactors.LiveError:
                tally.refused += 1
                break
            tally.asked[" ".join([*pieces, question])] += 1
            tally.question_of[" ".join([*pieces, question])] = question
            # Like a person, wait for the answer before asking again (a stuck subscriber of
            # the "block" policy holds the conversation up meanwhile: backpressure).
            with trio.move_on_at(end):
                await life.answered(answered + 1)
        nursery.cancel_scope.cancel()
    # A generous grace: what is still unanswered after it is handed back (InputUndelivered).
    await conv.stop(grace=60.0)


def _question(name: str, number: int, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.05:
        outcome = rng.choice(["ok", "raise", "decimal"])
        return f'call lookup {{"q": "{name}-{number}", "outcome": "{outcome}", "seconds": 1}}'
    return f"{name} question {number}"


async def _faults(server: FakeServer, rng: random.Random, until: float, tally: Tally) -> None:
    while trio.current_time() < until:
        await trio.sleep(rng.expovariate(1 / 2))
        open_ids = [c.id for c in server.log.connections if c.open]
        if not open_ids:
            continue
        target = rng.choice(open_ids)
        kind = rng.choice(
            ["drop", "goaway-early", "goaway-late", "1011", "refused-resume", "expired", "upgrade"]
        )
        tally.faults[kind] += 1
        if kind == "drop":
            server.faults.drop_now(target)
        elif kind == "goaway-early":
            server.faults.go_away_now(300.0, target)
        elif kind == "goaway-late":
            server.faults.go_away_now(rng.uniform(0.2, 5.0), target)
        elif kind == "1011":
            server.faults.close_now(1011, "Internal error encountered.", target)
        elif kind == "refused-resume":
            server.faults.reject_handles(1, code=1011, reason="Internal error encountered.")
            server.faults.drop_now(target)
        elif kind == "expired":
            server.faults.reject_handles(1)
            server.faults.drop_now(target)
        else:
            server.faults.refuse_upgrades(1, status=503)
            server.faults.drop_now(target)


async def soak(
    conversations: int, minutes: float, seed: int, memory: bool = True
) -> dict[str, Any]:
    """Run the soak (see the module docstring) and return its figures and verdicts."""
    rng = random.Random(seed)
    tally = Tally()
    tasks = LibraryTasks()
    trio.lowlevel.add_instrument(tasks)
    start = trio.current_time()
    span = minutes * 60
    until = start + span
    quarter = span / 4
    policy = liveactors.RestartPolicy(max_restarts=50, within=60.0, backoff_initial=0.1)
    async with open_fake_server(
        listen=False,
        record_client_messages=False,
        record_server_messages=False,
        chunks=2,
        chunk_delay=0.2,
        handle_validity=7200.0,
    ) as server:
        async with (
            liveactors.open_orchestrator(server.backend(), restart=policy) as orch,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(_faults, server, random.Random(rng.random()), until, tally)
            for index in range(conversations):
                child = random.Random(rng.random())
                # One conversation in twenty keeps a microphone open all the time.
                streams = index % 20 == 0
                nursery.start_soon(
                    _conversation, orch, f"c{index}", child, until, span, tally, streams
                )
            if memory:
                # The median of twenty readings per quarter: a single reading may land in a
                # burst (input held through a handoff, a stuck subscriber's backlog) or just
                # after respawns emptied conversations; the median is the quarter's level.
                for _ in range(4):
                    readings = []
                    for _ in range(20):
                        await trio.sleep(quarter / 20)
                        readings.append(_retained_bytes(orch))
                    middle = len(readings) // 2
                    tally.memory.append(sorted(r.state for r in readings)[middle])
                    tally.media.append(sorted(r.payload for r in readings)[middle])
                    tally.media_chunks_max = max(
                        tally.media_chunks_max, *(r.media_chunks_max for r in readings)
                    )
        await trio.testing.wait_all_tasks_blocked()
        left = len(tasks.alive)
        counts = server.log.answer_counts()
    trio.lowlevel.remove_instrument(tasks)

    undelivered = Counter(q for life in tally.incarnations for q in life.undelivered)
    unanswered = [q for q in tally.asked if counts.get(q, 0) == 0]
    handed_back = [q for q in unanswered if undelivered.get(tally.question_of.get(q, q))]
    lost = [q for q in unanswered if q not in handed_back]
    doubled = [q for q in tally.asked if counts.get(q, 0) > 1]
    gaps = 0
    for life in tally.incarnations:
        if life.seqs and life.seqs != list(range(life.seqs[0], life.seqs[0] + len(life.seqs))):
            gaps += 1
    growth = None
    if len(tally.memory) == 4 and tally.memory[1]:
        growth = tally.memory[3] / tally.memory[1] - 1.0
    media_growth = None
    if len(tally.media) == 4 and tally.media[1]:
        media_growth = tally.media[3] / tally.media[1] - 1.0
    return {
        "conversations": conversations,
        "simulated_minutes": minutes,
        "seed": seed,
        "questions": sum(tally.asked.values()),
        "answered": sum(1 for q in tally.asked if counts.get(q, 0) == 1),
        "undelivered": len(handed_back),
        "lost": len(lost),
        "duplicated": len(doubled),
        "refused_asks": tally.refused,
        "incarnations": len(tally.incarnations),
        "seq_gaps": gaps,
        "tasks_left": left,
        "faults": dict(tally.faults),
        "handoff_bursts": tally.handoff_bursts,
        "microphone_streams": tally.streams,
        "memory_by_quarter": tally.memory,
        "memory_growth_q4_vs_q2": growth,
        "media_by_quarter": tally.media,
        "media_growth_q4_vs_q2": media_growth,
        "media_chunks_held_max": tally.media_chunks_max,
        "examples": {"lost": lost[:5], "duplicated": doubled[:5]},
    }


def run(conversations: int, minutes: float, seed: int, memory: bool = True) -> dict[str, Any]:
    """The soak on a MockClock that jumps whenever every task waits."""
    clock = trio.testing.MockClock(autojump_threshold=0)
    wall = time.perf_counter()
    cpu = time.process_time()
    result = trio.run(soak, conversations, minutes, seed, memory, clock=clock)
    result["wall_seconds"] = round(time.perf_counter() - wall, 1)
    result["cpu_seconds"] = round(time.process_time() - cpu, 1)
    return result


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-memory", action="store_true", help="skip the memory readings")
    args = parser.parse_args(argv)
    result = run(args.conversations, args.minutes, args.seed, memory=not args.no_memory)
    json.dump(result, sys.stdout, indent=2)
    print()
    return result


if __name__ == "__main__":
    main()
