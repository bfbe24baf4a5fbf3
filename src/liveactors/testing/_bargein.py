"""Barge-in: client input while the model is busy.

A running turn is interrupted: ``interrupted`` → ``toolCallCancellation`` (its unanswered
blocking calls) → ``turnComplete``, never ``generationComplete`` (the API reference,
``BidiGenerateContentServerContent.generation_complete``). Once ``generationComplete`` is out,
the turn completes instead.

A turn paused on BLOCKING calls (nothing generating) is cancelled the same way on the older
models. On the 3.8 generation (``reissue_blocking_calls``) the service instead drops the call
silently — no ``toolCallCancellation``, a late response for its id is ignored — and issues the
same call again under a new id some seconds later (observed 2.6 to 3.6 s); the turn goes on
waiting for that one. :func:`reissue_due` sends it when the connection's timer says so.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import trio

from . import _frames as frames
from ._log import TurnRecord
from ._state import PendingCall
from ._tokens import text_tokens
from ._turns import reply_content

if TYPE_CHECKING:
    from ._session import Connection

__all__ = ["barge_in", "reissue_due"]

#: The golden ratio's fraction: spreads successive re-issue delays over their range.
_SPREAD = 0.6180339887


async def barge_in(conn: Connection) -> None:
    """Client input while the model is busy: interrupt it (or drop a waiting call, 3.8)."""
    state = conn.state
    turn = conn.running
    usage: dict[str, Any] = {}
    record: TurnRecord | None = None
    number: int | None = None
    conn.barge_at = math.inf
    if turn is not None:
        if turn.finishing:
            await turn.done.wait()  # generationComplete is out: let the turn complete
        else:
            turn.interrupt()
            await turn.done.wait()
            if turn.outcome != "completed":
                if turn.record.reply:
                    # Only what the client already got stays in the history.
                    content, tokens = reply_content(turn, conn.modality)
                    state.append(content, tokens, conn.modality)
                usage = turn.usage()
                record = turn.record
                number = turn.number
    waiting = state.waiting
    if number is None:
        if waiting is None:
            return
        if conn.behaviour.reissue:
            _drop_for_reissue(conn)
            return
        number = waiting.turn
    if record is None:
        record = conn.waiting_record
        if record is None or record.turn != number or record.outcome is not None:
            user_text = waiting.user_text if waiting is not None else ""
            record = conn.new_record(number, user_text, "toolResponse", True)
    cancelled: list[str] = []
    if waiting is not None and waiting.turn == number:
        cancelled = [i for i in waiting.call_ids if i not in waiting.responses]
        state.waiting = None
    for call_id in cancelled:
        state.pending_calls.pop(call_id, None)
    conn.waiting_record = None
    await conn.send(frames.INTERRUPTED)
    if cancelled:
        await conn.send(frames.tool_call_cancellation(cancelled))
    await conn.send(conn.turn_complete_frame(usage, interrupted=True))
    conn.settle(record, "interrupted")


def _drop_for_reissue(conn: Connection) -> None:
    """3.8: forget the waiting turn's unanswered calls; they come back under new ids."""
    state = conn.state
    waiting = state.waiting
    assert waiting is not None
    if waiting.reissue:
        return  # already dropped, the re-issue is on its way
    dropped = tuple(
        call
        for i in waiting.call_ids
        if i not in waiting.responses and (call := state.pending_calls.pop(i, None)) is not None
    )
    if not dropped:
        return
    low, high = conn.options.reissue_delay
    conn.core.reissues += 1
    delay = low + (high - low) * ((conn.core.reissues * _SPREAD) % 1.0)
    waiting.reissue = dropped
    waiting.reissue_at = trio.current_time() + delay
    waiting.call_ids = tuple(i for i in waiting.call_ids if i in waiting.responses)
    session = conn.session.id if conn.session else None
    conn.core.log.note(
        conn.id,
        session,
        "call_dropped",
        f"{[c.id for c in dropped]}: new input; re-issued in {delay:.2f}s",
    )
    conn.wake_timer()


async def reissue_due(conn: Connection) -> None:
    """Send the dropped calls again under new ids; the turn waits for those."""
    state = conn.state
    waiting = state.waiting
    if waiting is None or not waiting.reissue:
        return
    calls = waiting.reissue
    waiting.reissue = ()
    waiting.reissue_at = math.inf
    payload: list[dict[str, Any]] = []
    for call in calls:
        call_id = conn.core.next_call_id()
        state.pending_calls[call_id] = PendingCall(call_id, call.name, call.args, call.turn, True)
        function_call: dict[str, Any] = {"id": call_id, "name": call.name}
        if call.args:
            function_call["args"] = dict(call.args)
        payload.append(function_call)
    waiting.call_ids = (*waiting.call_ids, *(c["id"] for c in payload))
    content = {"role": "model", "parts": [{"functionCall": fc} for fc in payload]}
    state.append(content, text_tokens(json.dumps(payload)), "TEXT")
    if await conn.send(frames.tool_call(payload)) and conn.waiting_record is not None:
        conn.waiting_record.tool_calls.extend(c["id"] for c in payload)
