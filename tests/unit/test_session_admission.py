"""``Admission`` on trio's MockClock: slots in arrival order, patience, closing refuses the
waiting spawns, a slot is given back once, and the connect gate counts and spaces connects."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from liveactors import AdmissionTimeout, InvalidCommand
from liveactors._admission import Admission, Slot


@pytest.mark.parametrize("max_sessions", [0, -1, 1.5, "2", True])
def test_bad_max_sessions_are_refused(max_sessions: Any) -> None:
    with pytest.raises(InvalidCommand, match="max_sessions must be an int >= 1 or None"):
        Admission(max_sessions)


async def test_without_a_limit_every_spawn_is_admitted_and_counted() -> None:
    admission = Admission()
    slots = [await admission.admit(f"c{i}", None) for i in range(3)]
    assert (admission.sessions, admission.peak_sessions, admission.waiting) == (3, 3, 0)
    for slot in slots:
        slot.release()
        slot.release()  # only the first release counts
    assert (admission.sessions, admission.peak_sessions) == (0, 3)


async def test_slots_are_handed_out_in_arrival_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    admission = Admission(max_sessions=1)
    first = await admission.admit("first", None)
    admitted: list[tuple[str, Slot]] = []

    async def spawn(name: str) -> None:
        admitted.append((name, await admission.admit(name, None)))

    async with trio.open_nursery() as nursery:
        for name in ("a", "b", "c"):
            nursery.start_soon(spawn, name)
            await trio.testing.wait_all_tasks_blocked()
        assert admission.waiting == 3
        first.release()
        for _ in range(3):
            await trio.testing.wait_all_tasks_blocked()
            admitted[-1][1].release()
    assert [name for name, _ in admitted] == ["a", "b", "c"]
    assert (admission.sessions, admission.peak_sessions, admission.waiting) == (0, 1, 0)


async def test_patience_runs_out_with_admission_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    admission = Admission(max_sessions=1)
    await admission.admit("first", None)
    start = trio.current_time()
    with pytest.raises(AdmissionTimeout, match=r"within 2s for 'late'.*all 1 \(max_sessions\)"):
        await admission.admit("late", 2)
    assert trio.current_time() - start == pytest.approx(2)
    assert (admission.sessions, admission.waiting) == (1, 0)


async def test_closing_refuses_the_spawns_waiting_and_the_ones_to_come(
    autojump_clock: trio.testing.MockClock,
) -> None:
    admission = Admission(max_sessions=1)
    await admission.admit("first", None)
    refused: list[BaseException] = []

    async def spawn() -> None:
        try:
            await admission.admit("waiting", None)
        except InvalidCommand as exc:
            refused.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(spawn)
        await trio.testing.wait_all_tasks_blocked()
        admission.close()
    assert [str(e) for e in refused] == [
        "the orchestrator is shutting down: spawn() accepts no new work"
    ]
    with pytest.raises(InvalidCommand, match="shutting down: spawn_actor"):
        admission.check_open("spawn_actor()")
    with pytest.raises(InvalidCommand, match="shutting down"):
        await admission.admit("later", None)


async def test_the_gate_counts_connects_and_spaces_them(
    autojump_clock: trio.testing.MockClock,
) -> None:
    unlimited = Admission()
    for _ in range(3):
        await unlimited.gate()
    assert unlimited.connects == 3
    limited = Admission(connect_rate=2.0)
    start = trio.current_time()
    times = []
    for _ in range(3):
        await limited.gate()
        times.append(trio.current_time() - start)
    assert times == pytest.approx([0, 0.5, 1.0])
    assert limited.connects == 3
