"""What a connection runs next, and the resumption updates that say whether it is busy.

After every client message and every finished turn, :func:`pump` decides: the continuation of a
turn whose tool calls are all answered, then a user turn, then a turn for a NON_BLOCKING result;
and, when nothing runs and no call is pending, the session is idle and (in "per_turn" handle
mode) gets a fresh resumption handle (:func:`announce_idle`); ``{}`` once when it becomes busy
(:func:`announce_busy`). A transcription-only model never starts a turn; on the 3.8 generation
no turn starts while the user speaks.

At most one turn task runs per connection (:func:`_launch`); :func:`turn_ended` settles what the
task leaves behind.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from . import _frames as frames
from ._turns import RunningTurn, run_turn

if TYPE_CHECKING:
    from ._session import Connection

__all__ = ["announce_busy", "announce_idle", "more_to_come", "pump", "turn_ended"]


def more_to_come(conn: Connection) -> bool:
    """Whether the model goes on at once after the current turn (``IN_PROGRESS``)."""
    waiting = conn.state.waiting if conn.session is not None else None
    return (
        conn.user_turn is not None
        or bool(conn.tool_turns)
        or conn.vad.active
        or (waiting is not None and waiting.ready())
    )


async def pump(conn: Connection) -> None:
    """Start whatever should run next, or announce that the session is idle."""
    if conn.closing or not conn.setup_done or conn.running is not None:
        return
    if conn.model.transcription_only:
        conn.user_turn = None  # a transcription model never answers
        await announce_idle(conn)
        return
    if conn.behaviour.polite and conn.vad.active:
        return  # the model keeps quiet while the user speaks
    state = conn.state
    waiting = state.waiting
    starts = (waiting is not None and waiting.ready()) or (
        waiting is None and (conn.user_turn is not None or bool(conn.tool_turns))
    )
    if starts and conn.compression is None and state.total_tokens > conn.window:
        # The model is about to read a context larger than its window.
        await conn.close(
            1007,
            f"The input token count ({state.total_tokens}) exceeds the maximum number of "
            f"tokens allowed ({conn.window}).",
            cause="context_window",
        )
        return
    if waiting is not None:
        if waiting.ready():
            _start_continuation(conn)
        else:
            await announce_busy(conn)
    elif conn.user_turn is not None:
        _start_user_turn(conn)
    elif conn.tool_turns:
        _start_tool_turn(conn)
    elif state.pending_calls:
        await announce_busy(conn)
    else:
        await announce_idle(conn)


def _start_user_turn(conn: Connection) -> None:
    trigger = conn.user_turn or "clientContent"
    conn.user_turn = None
    state = conn.state
    state.turn += 1
    taken = state.take_input()
    user_text = " ".join(taken)
    record = conn.new_record(state.turn, user_text, trigger, False)
    _launch(conn, RunningTurn(state.turn, user_text, taken, trigger, record, dict(state.tokens)))


def _start_continuation(conn: Connection) -> None:
    state = conn.state
    waiting = state.waiting
    assert waiting is not None
    state.waiting = None
    results = tuple(waiting.responses[i] for i in waiting.call_ids)
    record = conn.waiting_record
    if record is None or record.turn != waiting.turn or record.outcome is not None:
        record = conn.new_record(waiting.turn, waiting.user_text, "toolResponse", True)
    conn.waiting_record = None
    taken = [waiting.user_text] if waiting.user_text else []
    turn = RunningTurn(
        waiting.turn,
        waiting.user_text,
        taken,
        "toolResponse",
        record,
        dict(state.tokens),
        tool_results=results,
        continuation=True,
    )
    _launch(conn, turn)


def _start_tool_turn(conn: Connection) -> None:
    result = conn.tool_turns.pop(0)
    state = conn.state
    state.turn += 1
    record = conn.new_record(state.turn, "", "toolResponse", False)
    turn = RunningTurn(
        state.turn, "", [], "toolResponse", record, dict(state.tokens), tool_results=(result,)
    )
    _launch(conn, turn)


def _launch(conn: Connection, turn: RunningTurn) -> None:
    assert conn._nursery is not None
    conn.running = turn
    conn.answered_once = True
    conn.barge_at = math.inf  # a polite barge-in pending was for the turn before
    conn._nursery.start_soon(_turn_task, conn, turn)


async def _turn_task(conn: Connection, turn: RunningTurn) -> None:
    try:
        await run_turn(conn, turn)
    except Exception as exc:
        turn_ended(conn, turn)
        await conn._internal_error(exc)
        return
    finally:
        turn_ended(conn, turn)
    if not conn.closing and not turn.interrupted:
        await pump(conn)


def turn_ended(conn: Connection, turn: RunningTurn) -> None:
    """The turn's task is over (completed, paused on calls, interrupted or cut)."""
    if conn.running is turn:
        conn.running = None
        if turn.outcome != "waiting":
            conn.barge_at = math.inf  # nothing left to interrupt
    if turn.done.is_set():
        return
    if turn.outcome == "waiting":
        conn.waiting_record = turn.record
    elif turn.outcome is None and not turn.interrupted:
        conn.cut(turn)
    turn.done.set()


async def announce_busy(conn: Connection) -> None:
    """The session is not resumable now: ``{}`` (once per busy period, per_turn mode)."""
    if not conn.resumption or conn.options.handle_mode != "per_turn":
        return
    if conn.announced == "busy":
        return
    conn.announced = "busy"
    await conn.send(frames.NOT_RESUMABLE)


async def announce_idle(conn: Connection) -> None:
    """The session is idle: a fresh handle to a snapshot of it (per_turn mode)."""
    if not conn.resumption or conn.options.handle_mode != "per_turn":
        return
    if conn.announced == "idle":
        return
    conn.announced = "idle"
    assert conn.session is not None
    # A spoken turn in progress is not consumed yet: a transparent client replays it.
    consumed = conn.vad.start_index - 1 if conn.vad.active else conn.index
    handle = conn.core.registry.issue(conn.session, conn.state.copy(), consumed)
    await conn.send(frames.resumption_update(handle, consumed if conn.transparent else None))
