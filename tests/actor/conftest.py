"""Helpers for the conversation-actor tests: a fake server, a conversation on it, an event
recorder, and a task-leak detector built on trio instrumentation.

Everything time-dependent runs on ``MockClock(autojump_threshold=0)`` (the ``autojump_clock``
fixture) over the fake server's in-memory transport, so a test that "waits" 30 seconds takes
milliseconds and always sees the same interleaving.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import attrs
import trio

import liveactors
from liveactors import events
from liveactors._models import FAKE_TEXT_MODEL
from liveactors.testing import FakeServer, open_fake_server

TEXT_MODEL = FAKE_TEXT_MODEL
#: A native-audio model: the fake answers it only in AUDIO.
AUDIO_MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"

TEXT: dict[str, Any] = {"response_modalities": ["TEXT"]}
AUDIO: dict[str, Any] = {"response_modalities": ["AUDIO"]}
MANUAL_VAD: dict[str, Any] = {"automatic_activity_detection": {"disabled": True}}

#: A restart policy without jitter, so backoff delays are exact.
STEADY = liveactors.RestartPolicy(
    max_restarts=5, within=60.0, backoff_initial=0.5, backoff_max=4.0, jitter=0.0
)

#: A restart policy whose first backoff lasts 30 s: time to act while the conversation waits.
SLOW_RESTART = liveactors.RestartPolicy(
    max_restarts=5, within=600.0, backoff_initial=30.0, backoff_max=30.0, jitter=0.0
)

E = TypeVar("E", bound=events.Event)


def tools_config(*declarations: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A TEXT config declaring these functions."""
    config: dict[str, Any] = {
        "response_modalities": ["TEXT"],
        "tools": [{"function_declarations": list(declarations)}],
    }
    config.update(extra)
    return config


def function(name: str, *, non_blocking: bool = False, **params: str) -> dict[str, Any]:
    """A function declaration with string/number parameters (``params``: name -> JSON type)."""
    declaration: dict[str, Any] = {"name": name, "description": f"the {name} function"}
    if params:
        declaration["parameters"] = {
            "type": "OBJECT",
            "properties": {p: {"type": t.upper()} for p, t in params.items()},
        }
    if non_blocking:
        declaration["behavior"] = "NON_BLOCKING"
    return declaration


def pcm(seconds: float, *, loud: bool = True, rate: int = 16000) -> bytes:
    """16-bit mono PCM: a square wave (speech to the fake's VAD) or zeros (silence)."""
    samples = int(seconds * rate)
    if not loud:
        return bytes(2 * samples)
    high = (4000).to_bytes(2, "little", signed=True)
    low = (-4000).to_bytes(2, "little", signed=True)
    return b"".join(high if (i // 40) % 2 else low for i in range(samples))


@asynccontextmanager
async def fake(**options: Any) -> AsyncIterator[FakeServer]:
    """An in-memory fake server (unless ``listen=True``) that must log no internal error."""
    options.setdefault("listen", False)
    async with open_fake_server(**options) as server:
        yield server
        assert not server.log.errors, server.log.errors[0].detail


@asynccontextmanager
async def conversation(
    server: FakeServer,
    config: Any = None,
    *,
    model: str = TEXT_MODEL,
    name: str = "c1",
    actor: Any = liveactors.Conversation,
    restart: liveactors.RestartPolicy | None = None,
    backend: liveactors.GeminiBackend | None = None,
    **orchestrator: Any,
) -> AsyncIterator[tuple[liveactors.Orchestrator, liveactors.ConversationRef]]:
    """An orchestrator with one conversation spawned on ``server`` (TEXT unless ``config``)."""
    backend = backend or server.backend(model=model)
    async with liveactors.open_orchestrator(
        backend, restart=restart or STEADY, **orchestrator
    ) as orch:
        conv = await orch.spawn(TEXT if config is None else config, name=name, actor=actor)
        yield orch, conv


@attrs.define
class Recorder:
    """Collects every event of a subscription in a background task."""

    sub: liveactors.Subscription
    events: list[events.Event] = attrs.field(factory=list)
    done: trio.Event = attrs.field(factory=trio.Event)
    error: BaseException | None = None
    _changed: trio.Event = attrs.field(factory=trio.Event)

    async def run(self) -> None:
        try:
            async for event in self.sub:
                self.events.append(event)
                self._changed.set()
                self._changed = trio.Event()
        except liveactors.LiveError as exc:
            self.error = exc
        finally:
            self.done.set()
            self._changed.set()

    def of(self, cls: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, cls)]

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]

    async def wait_for(self, predicate: Callable[[], object]) -> None:
        while not predicate():
            if self.done.is_set():
                raise AssertionError(f"the subscription ended first: {self.kinds()}")
            await self._changed.wait()

    async def wait_for_event(self, cls: type[E], count: int = 1) -> E:
        await self.wait_for(lambda: len(self.of(cls)) >= count)
        return self.of(cls)[count - 1]


@asynccontextmanager
async def recording(
    subscribe: Any, *event_types: type[events.Event], **kw: Any
) -> AsyncIterator[Recorder]:
    """Record a subscription (``conv.subscribe`` or ``orch.subscribe``) in a background task."""
    async with subscribe(*event_types, **kw) as sub, trio.open_nursery() as nursery:
        recorder = Recorder(sub)
        nursery.start_soon(recorder.run)
        yield recorder
        nursery.cancel_scope.cancel()


async def drain(sub: liveactors.Subscription) -> list[events.Event]:
    """Every event of ``sub`` until it ends."""
    return [event async for event in sub]


def check_seq(evs: Iterable[events.Event], *, first: int = 1) -> None:
    """``seq`` is gap-free and increasing, starting at ``first``."""
    seqs = [e.seq for e in evs]
    assert seqs == list(range(first, first + len(seqs))), seqs


def client_bodies(server: FakeServer, kind: str) -> list[Any]:
    """The bodies of the client messages of ``kind``, in order."""
    return [m.body for m in server.log.client_messages(kind=kind)]


def user_texts(server: FakeServer) -> list[str]:
    """The text of every clientContent user part the server received, in order."""
    return [
        part["text"]
        for body in client_bodies(server, "clientContent")
        for turn in body.get("turns", ())
        if turn.get("role", "user") == "user"
        for part in turn.get("parts", ())
        if "text" in part
    ]


class TaskWatch(trio.abc.Instrument):
    """Counts tasks spawned below some nurseries/tasks and tells which are still alive.

    A task is *watched* when one of its ancestors is a watched task and none is an ignored
    nursery (the fake server's, whose tasks belong to the server, not to the code under test).
    """

    def __init__(self, root: trio.lowlevel.Task, ignore: Iterable[trio.Nursery] = ()) -> None:
        self.root = root
        self.ignore = set(ignore)
        self.spawned: list[trio.lowlevel.Task] = []
        self.exited: set[trio.lowlevel.Task] = set()

    def _watched(self, task: trio.lowlevel.Task) -> bool:
        nursery = task.parent_nursery
        while nursery is not None:
            if nursery in self.ignore:
                return False
            parent = nursery.parent_task
            if parent is self.root:
                return True
            nursery = parent.parent_nursery
        return False

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        if self._watched(task):
            self.spawned.append(task)

    def task_exited(self, task: trio.lowlevel.Task) -> None:
        self.exited.add(task)

    def alive(self) -> list[str]:
        return [t.name for t in self.spawned if t not in self.exited]


@asynccontextmanager
async def watch_tasks(server: FakeServer) -> AsyncIterator[TaskWatch]:
    """Watch every task the test task starts from here on, except the fake server's."""
    watch = TaskWatch(trio.lowlevel.current_task(), ignore=[server._nursery])
    trio.lowlevel.add_instrument(watch)
    try:
        yield watch
    finally:
        trio.lowlevel.remove_instrument(watch)


def tree_below(nursery: trio.Nursery) -> list[trio.lowlevel.Task]:
    """Every task alive below ``nursery`` (a walk of ``child_tasks``/``child_nurseries``)."""
    out: list[trio.lowlevel.Task] = []
    stack = [nursery]
    while stack:
        current = stack.pop()
        for task in current.child_tasks:
            out.append(task)
            stack.extend(task.child_nurseries)
    return out


def conversation_tasks(orch: liveactors.Orchestrator) -> list[str]:
    """Names of the tasks alive for the orchestrator's conversations: each conversation's task
    in the orchestrator's nursery and everything below it."""
    out = []
    for task in orch._nursery.child_tasks:
        if task.name.endswith("Orchestrator._run"):
            out.append(task.name)
            out.extend(t.name for n in task.child_nurseries for t in tree_below(n))
    return out


def close_codes(server: FakeServer) -> list[int | None]:
    return [c.close_code for c in server.log.connections]
