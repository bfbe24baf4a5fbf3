"""Helpers for the orchestrator tests: configs, task-leak and connect-time instruments, and
checks over the fake server's connection log."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Any

import attrs
import trio

from liveactors import ConnectRequest, Link, Transport
from liveactors._models import FAKE_TEXT_MODEL
from liveactors.testing import ConnectionRecord, FakeServer, ServerLog

TEXT = {"response_modalities": ["TEXT"]}
TEXT_MODEL = FAKE_TEXT_MODEL


def backend(server: FakeServer, **kwargs: Any) -> Any:
    """A TEXT-model backend for ``server`` (with ``transport`` wrapped if given)."""
    return server.backend(model=TEXT_MODEL, **kwargs)


# -- tasks -------------------------------------------------------------------------------------


class TaskWatch(trio.abc.Instrument):
    """Every task spawned while installed, and which of them are still alive."""

    def __init__(self) -> None:
        self.alive: set[trio.lowlevel.Task] = set()
        self.spawned = 0

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.spawned += 1
        self.alive.add(task)

    def task_exited(self, task: trio.lowlevel.Task) -> None:
        self.alive.discard(task)

    def alive_outside(self, *nurseries: trio.Nursery) -> list[trio.lowlevel.Task]:
        """Live tasks that are not inside any of ``nurseries`` (the fake server's, say)."""
        return [t for t in self.alive if not any(descends_from(t, n) for n in nurseries)]


def descends_from(task: trio.lowlevel.Task, nursery: trio.Nursery) -> bool:
    current: trio.lowlevel.Task | None = task
    while current is not None:
        parent = current.parent_nursery
        if parent is None:
            return False
        if parent is nursery:
            return True
        current = parent.parent_task
    return False


@contextmanager
def watch_tasks() -> Iterator[TaskWatch]:
    watch = TaskWatch()
    trio.lowlevel.add_instrument(watch)
    try:
        yield watch
    finally:
        trio.lowlevel.remove_instrument(watch)


# -- connects ----------------------------------------------------------------------------------


@attrs.define
class RecordingTransport:
    """Wraps a transport and notes the trio time of every connect (client side)."""

    inner: Transport
    times: list[float] = attrs.Factory(list)

    def connect(self, request: ConnectRequest) -> AbstractAsyncContextManager[Link]:
        self.times.append(trio.current_time())
        return self.inner.connect(request)


def most_in_window(times: Iterable[float], width: float) -> int:
    """The most events inside any closed window ``[t, t + width]``."""
    ordered = sorted(times)
    best = 0
    for i, start in enumerate(ordered):
        end = bisect.bisect_right(ordered, start + width + 1e-9)
        best = max(best, end - i)
    return best


def check_rate(times: Iterable[float], rate: float, burst: float = 1.0, slack: int = 0) -> None:
    """A token bucket of ``rate``/s and ``burst`` lets at most ``burst + rate * w`` events
    into any window of width ``w`` (plus ``slack`` events, for timestamps taken on the real
    clock a little after the token was granted: a GC pause can shift one into a window)."""
    ordered = sorted(times)
    for width in (0.0, 0.5 / rate, 1 / rate, 5 / rate, 0.25, 1.0, 2.0):
        most = most_in_window(ordered, width)
        assert most <= burst + rate * width + slack + 1e-6, (width, most)


# -- the fake server's log ---------------------------------------------------------------------


def most_open_at_once(records: Iterable[ConnectionRecord]) -> int:
    """The most connections open at the same time, from the moments they opened: at each
    opening, the ones opened so far less the ones closed so far (a close at that very moment
    counts as before it; the opening connection itself counts as open)."""
    records = list(records)
    opens = sorted(r.opened_at for r in records)
    closes = sorted(r.closed_at for r in records if r.closed_at is not None)
    most = 0
    for record in records:
        t = record.opened_at
        count = bisect.bisect_right(opens, t) - bisect.bisect_right(closes, t)
        if record.closed_at is not None and record.closed_at <= t:
            count += 1
        most = max(most, count)
    return most


def answers_not_exactly_once(log: ServerLog) -> tuple[dict[str, list[str]], int]:
    """Inputs the fake did not answer exactly once, with their turns' outcomes; and how many
    answers were *unknowable*: completed on a line that had already been dropped (the drop
    raced the write of the ``turnComplete``, so whether the client got it depends on the
    network). Such an answer may stand alone (the client got it) or be followed by one answer
    on a later connection (it did not, and asked again); anything else is a failure."""
    closed = {c.id: c.closed_at for c in log.connections}
    turns: defaultdict[str, list[tuple[bool, float]]] = defaultdict(list)
    for turn in log.model_turns(outcome="completed"):
        end = closed[turn.connection]
        unknowable = end is not None and turn.ended_at is not None and turn.ended_at >= end
        turns[turn.user_text].append((unknowable, turn.started_at))
    bad: dict[str, list[str]] = {}
    unknowable_count = 0
    for text, answers in turns.items():
        answers.sort(key=lambda a: a[1])
        kinds = ["unknowable" if u else "answered" for u, _ in answers]
        unknowable_count += kinds.count("unknowable")
        if kinds not in (["answered"], ["unknowable"], ["unknowable", "answered"]):
            bad[text] = kinds
    return bad, unknowable_count
