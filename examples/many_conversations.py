"""Many conversations on one orchestrator, with a small live dashboard.

    python examples/many_conversations.py [--count 8] [--questions 4] [--max-sessions 6]

Each conversation asks a few questions. The orchestrator admits at most ``--max-sessions`` at
once (``spawn`` waits for a free slot, as the service limits concurrent sessions per project)
and spreads connects with ``connect_rate``. A dashboard follows every conversation through one
orchestrator-wide subscription with ``overflow="drop_oldest"`` — a live view must never slow the
conversations down — plus ``orch.statistics()`` and each conversation's ``statistics()``.

Against the fake server, connections live 1.2 seconds (the real ones live about ten minutes) and
a chaos task drops a random connection every 0.7 seconds, so you can watch the supervisors
hand off at every ``goAway`` and reconnect after every drop without losing a question.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from collections import Counter, defaultdict

import trio
from google.genai import types

import liveactors
from liveactors import events
from liveactors.testing import FakeServer, open_fake_server

MODEL = os.environ.get("LIVEACTORS_MODEL", liveactors.DEFAULT_MODEL)
#: The model speaks its answers; ``Reply.text`` is their transcript (on by default).
CONFIG = types.LiveConnectConfig(system_instruction="Answer in one short sentence.")
TURN_TIMEOUT = 60


class Dashboard:
    """What the live view shows, fed by one orchestrator-wide subscription."""

    def __init__(self) -> None:
        self.last_event: dict[str, str] = {}
        self.events: dict[str, int] = defaultdict(int)
        self.answered: dict[str, int] = defaultdict(int)
        self.dropped = 0

    async def follow(self, orch: liveactors.Orchestrator) -> None:
        # drop_oldest: when the view falls behind, old events are discarded (and counted);
        # the conversations never wait for it.
        async with orch.subscribe(buffer=64, overflow="drop_oldest") as stream:
            async for event in stream:
                self.last_event[event.conversation] = type(event).__name__
                self.events[event.conversation] += 1
                self.dropped = stream.statistics().dropped

    def render(self, orch: liveactors.Orchestrator, questions: int) -> str:
        s = orch.statistics()
        lines = [
            f"live {s.conversations:>3}   peak {s.peak_sessions}/{s.max_sessions}   "
            f"connects {s.connects}   reconnects {s.reconnects}   handoffs {s.handoffs}   "
            f"messages in/out {s.messages_in}/{s.messages_out}   view dropped {self.dropped}",
            f"{'conversation':<14}{'state':<14}{'answered':>9}{'conns':>7}{'events':>8}"
            "  last event",
        ]
        for conv in sorted(orch.conversations, key=lambda c: c.name):
            c = conv.statistics()
            lines.append(
                f"{c.name:<14}{c.state.value:<14}{self.answered[c.name]:>6}/{questions:<2}"
                f"{c.connections:>7}{self.events[c.name]:>8}  {self.last_event.get(c.name, '')}"
            )
        return "\n".join(lines)


async def show(orch: liveactors.Orchestrator, dashboard: Dashboard, questions: int) -> None:
    """Redraw the table in a terminal; print a progress line now and then otherwise."""
    tty = sys.stdout.isatty()
    while True:
        if tty:
            print("\x1b[H\x1b[J" + dashboard.render(orch, questions), flush=True)
            await trio.sleep(0.2)
        else:
            print(dashboard.render(orch, questions) + "\n", flush=True)
            await trio.sleep(1.0)


async def converse(
    orch: liveactors.Orchestrator, name: str, questions: int, dashboard: Dashboard
) -> list[tuple[str, str]]:
    conv = await orch.spawn(CONFIG, name=name)  # waits here while max_sessions are live
    answers = []
    for i in range(1, questions + 1):
        await trio.sleep(random.uniform(0.05, 0.3))  # the user thinks
        question = f"{name}, question {i}: what is {i} + {i}?"
        with trio.fail_after(TURN_TIMEOUT):
            reply = await conv.ask(question)
        answers.append((question, reply.text))
        dashboard.answered[name] += 1
    await conv.stop()  # frees the session slot for a conversation still waiting
    return answers


async def track_sessions(
    orch: liveactors.Orchestrator,
    sessions: dict[str, str],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Which session each conversation is on (for the final check). Unlike the dashboard
    this subscription must see every Connected event, so it keeps the default "block"."""
    async with orch.subscribe(events.Connected) as connected:
        task_status.started()
        async for event in connected:
            if isinstance(event, events.Connected) and event.session_id is not None:
                sessions[event.conversation] = event.session_id


async def chaos(server: FakeServer) -> None:
    """Fake server only: drop a random open connection every 0.7 seconds."""
    while True:
        await trio.sleep(0.7)
        if server.open_connections:
            server.faults.drop_now(random.choice(server.open_connections))


async def run(
    backend: liveactors.GeminiBackend, args: argparse.Namespace, server: FakeServer | None
) -> None:
    dashboard = Dashboard()
    results: dict[str, list[tuple[str, str]]] = {}
    sessions: dict[str, str] = {}  # conversation -> the session it is connected to
    async with liveactors.open_orchestrator(
        backend, max_sessions=args.max_sessions, connect_rate=20.0
    ) as orch:
        async with trio.open_nursery() as background:
            background.start_soon(dashboard.follow, orch)
            background.start_soon(show, orch, dashboard, args.questions)
            if server is not None:
                background.start_soon(chaos, server)
                await background.start(track_sessions, orch, sessions)

            async def one(name: str) -> None:
                results[name] = await converse(orch, name, args.questions, dashboard)

            async with trio.open_nursery() as conversations:
                for n in range(1, args.count + 1):
                    conversations.start_soon(one, f"conv-{n:02d}")
            background.cancel_scope.cancel()
        stats = orch.statistics()

    asked = args.count * args.questions
    answered = sum(len(a) for a in results.values())
    print(f"\nanswered {answered}/{asked} questions in {args.count} conversations")
    print(
        f"peak sessions {stats.peak_sessions} (max {stats.max_sessions}), "
        f"{stats.connects} connects, {stats.reconnects} reconnects, {stats.handoffs} handoffs, "
        f"{dashboard.dropped} dashboard events dropped"
    )
    name, answers = sorted(results.items())[0]
    print(f"for example, {name}: {answers[-1][0]!r} -> {answers[-1][1]!r}")
    if server is not None:
        # Each conversation's last session (where resumption carried it) must hold every one
        # of its questions exactly once: nothing lost across drops and handoffs, nothing
        # asked twice. (Sessions a conversation abandoned for a fresh one do not count.)
        once = True
        for name, answers in results.items():
            history = server.sessions[sessions[name]].state.history
            said = Counter(
                part.get("text")
                for entry in history
                if entry.role == "user"
                for part in entry.content.get("parts", ())
            )
            once = once and all(said[question] == 1 for question, _ in answers)
        print(f"every question answered exactly once: {once}")
        if not once or answered != asked:
            raise SystemExit(1)


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=8, help="conversations (default 8)")
    parser.add_argument("--questions", type=int, default=4, help="questions each (default 4)")
    parser.add_argument("--max-sessions", type=int, default=6, help="live at once (default 6)")
    args = parser.parse_args(argv)
    if os.environ.get("GEMINI_API_KEY"):
        print(f"using the real Live API with {MODEL}")
        await run(liveactors.GeminiBackend(model=MODEL), args, None)
    else:
        print(f"GEMINI_API_KEY is not set: using the embedded fake server ({MODEL})")
        async with open_fake_server(
            listen=False,
            time_scale=0.002,  # a 600 s connection lifetime becomes 1.2 s
            goaway_before=60,  # goAway 60 (scaled: 0.12) seconds before the end
            response_latency=0.05,
            chunks=3,
            chunk_delay=0.02,
        ) as server:
            await run(server.backend(model=MODEL), args, server)


if __name__ == "__main__":
    trio.run(main, sys.argv[1:])
