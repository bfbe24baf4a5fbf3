"""What ``liveactors demo --cluster`` shows: each conversation's owner (read from the cluster),
answers and moves, as a table redrawn in place on a terminal (else a progress line a second),
and the summary that checks every question against the fake server's log; kept apart from the
demo's flow, which only produces what is shown."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

import attrs
import trio

if TYPE_CHECKING:
    from .cluster import RemoteConversation

__all__ = [
    "Row",
    "Run",
    "Table",
    "progress",
    "read_owners",
    "refresh",
    "shows",
    "summary",
    "watch_owners",
]


@attrs.define
class Row:
    """What the table shows of one conversation."""

    owner: str = ""
    state: str = "pending"
    asked: int = 0
    answered: int = 0
    wrong: int = 0
    #: (from, to, seconds after the kill) of each change of owner.
    moves: list[tuple[str, str, float]] = attrs.field(factory=list)
    #: Seconds from the kill to its first answer after it.
    answering_again: float | None = None


@attrs.define
class Run:
    """What the demo's tasks share, and the view shows."""

    rows: dict[str, Row]
    worker_ids: list[str]
    started: float = 0.0
    victim: str | None = None
    killed_at: float | None = None
    #: The conversations the victim owned when it was killed.
    orphans: tuple[str, ...] = ()
    questions: list[str] = attrs.field(factory=list)
    drops: int = 0
    #: Lines worth keeping: the kill, each move.
    log: list[str] = attrs.field(factory=list)

    def clock(self) -> str:
        return f"[{trio.current_time() - self.started:5.1f}s]"

    def since_kill(self) -> float:
        assert self.killed_at is not None
        return trio.current_time() - self.killed_at


async def watch_owners(convs: list[RemoteConversation], state: Run) -> None:
    """Read the owners ten times a second, until cancelled."""
    while True:
        await read_owners(convs, state)
        await trio.sleep(0.1)


async def read_owners(convs: list[RemoteConversation], state: Run) -> None:
    """Each conversation's owner and state into its row; each change of owner after the kill
    as a move, with a log line."""
    for conv in convs:
        now = await conv.state()
        row = state.rows[conv.name]
        owner = now.owner or ""
        if row.owner and owner and owner != row.owner and state.killed_at is not None:
            after = state.since_kill()
            row.moves.append((row.owner, owner, after))
            state.log.append(
                f"{state.clock()} {conv.name} moved {row.owner} -> {owner}, "
                f"{after:.1f}s after the kill"
            )
        row.owner = owner or row.owner
        row.state = now.state


async def refresh(show: Callable[[Run], None], every: float, state: Run) -> None:
    """Show the run every ``every`` seconds, until cancelled."""
    while True:
        show(state)
        await trio.sleep(every)


def _owners_line(state: Run) -> str:
    parts = []
    for worker_id in state.worker_ids:
        if worker_id == state.victim:
            parts.append(f"{worker_id} KILLED")
        else:
            count = sum(1 for row in state.rows.values() if row.owner == worker_id)
            parts.append(f"{worker_id} owns {count}")
    return ", ".join(parts)


class Table:
    """A table redrawn in place on a terminal."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.drawn = 0

    def draw(self, state: Run) -> None:
        lines = [
            _owners_line(state),
            f"{'conversation':<16} {'owner':<10} {'answered':>8}  {'state':<9} moved",
        ]
        for name, row in state.rows.items():
            moved = ", ".join(f"{a} -> {b} after {t:.1f}s" for a, b, t in row.moves)
            lines.append(f"{name:<16} {row.owner:<10} {row.answered:>8}  {row.state:<9} {moved}")
        lines.extend(line for line in state.log if "SIGKILL" in line)
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}F")  # back to the table's first line
        self.out.write("".join(f"{line}\x1b[K\n" for line in lines))
        self.out.flush()
        self.drawn = len(lines)


def shows(out: TextIO, live: bool) -> Callable[[Run], None]:
    """How to show the run: the live table, else (a pipe, ``--plain``) the plain progress."""
    return Table(out).draw if live else progress(out)


def progress(out: TextIO) -> Callable[[Run], None]:
    """Plain progress, for a pipe or ``--plain``: each new log line, then the answers so far
    and who owns how many."""
    printed = 0

    def show(state: Run) -> None:
        nonlocal printed
        for line in state.log[printed:]:
            print(line, file=out)
        printed = len(state.log)
        answered = sum(r.answered for r in state.rows.values())
        print(f"{state.clock()} {answered} answers; {_owners_line(state)}", file=out, flush=True)

    return show


def summary(counts: Counter[str], state: Run, out: TextIO, *, lease: float, renew: float) -> int:
    """Print the summary; 0 when every question was answered exactly once and the killed
    worker's conversations all moved, else 1."""
    questions = state.questions
    rows = state.rows.values()
    once = sum(1 for q in questions if counts.get(q) == 1)
    lost = sum(1 for q in questions if counts.get(q, 0) == 0)
    doubled = sum(1 for q in questions if counts.get(q, 0) > 1)
    answered = sum(r.answered for r in rows)
    wrong = sum(r.wrong for r in rows)
    moved = [name for name in state.orphans if state.rows[name].moves]
    routes = Counter(f"{a} -> {b}" for name in moved for a, b, _ in state.rows[name].moves)
    taken = [state.rows[name].moves[0][2] for name in moved]
    again = [t for name in moved if (t := state.rows[name].answering_again) is not None]
    routes_text = ", ".join(f"{route}: {n}" for route, n in sorted(routes.items()))
    killed = f"{state.victim} killed with SIGKILL" if state.victim else "none killed"
    print("", file=out)
    print(f"conversations:        {len(state.rows)}", file=out)
    print(f"workers:              {len(state.worker_ids)}, {killed}", file=out)
    print(
        f"conversations moved:  {len(moved)} of {len(state.orphans)}"
        + (f" ({routes_text})" if routes_text else ""),
        file=out,
    )
    print(f"questions asked:      {len(questions)}", file=out)
    print(f"questions answered:   {answered}", file=out)
    print(f"answered exactly once (server log): {once}", file=out)
    print(f"lost:                 {lost}", file=out)
    print(f"doubled:              {doubled}", file=out)
    print(f"wrong replies:        {wrong}", file=out)
    print(f"connections dropped:  {state.drops}", file=out)
    if taken:
        print(
            f"failover:             taken over {_span(taken)} after the kill, answering again "
            f"{_span(again)} after it (lease {lease:g}s, renewed every {renew:g}s)",
            file=out,
        )
    ok = (
        lost == doubled == wrong == 0
        and answered == len(questions)
        and bool(moved)
        and len(moved) == len(state.orphans)
    )
    if ok:
        print(
            f"\nNothing was lost or doubled: {state.victim}'s {len(moved)} conversation(s) "
            f"moved, and all {len(questions)} questions were answered exactly once.",
            file=out,
        )
    else:
        print("\nSOMETHING WAS LOST, DOUBLED OR LEFT BEHIND; see above.", file=out)
    return 0 if ok else 1


def _span(values: list[float]) -> str:
    if not values:
        return "(none)"
    low, high = f"{min(values):.1f}", f"{max(values):.1f}"
    return f"{low}s" if low == high else f"{low}-{high}s"
