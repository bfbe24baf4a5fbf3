"""``toolResponse``: function results, matched to pending calls and scheduled.

A response for a BLOCKING call fills the waiting turn's slot; the turn continues once every call
has one. A response for a NON_BLOCKING call is scheduled as its ``scheduling`` says (google-genai
``types.FunctionResponseScheduling``; https://ai.google.dev/gemini-api/docs/live-tools):

* ``SILENT`` — added to the context, no generation;
* ``WHEN_IDLE`` (the default) — a new turn once the current output is over;
* ``INTERRUPT`` — interrupt the current output and answer now.

``willContinue: true`` keeps the call open for more responses. ``scheduling`` belongs beside
``response``; a docs sample puts it inside ``response``, which is honoured too. A response whose
id matches no pending call (unknown, late, cancelled, dropped) is ignored and logged. On Vertex
AI the ``id`` is optional: a response without one answers the oldest pending call of that name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from ._bargein import barge_in
from ._setup import enum_name
from ._state import PendingCall
from ._tokens import text_tokens

if TYPE_CHECKING:
    from ._session import Connection

__all__ = ["tool_response"]

_SCHEDULING: Final = {0: "SCHEDULING_UNSPECIFIED", 1: "SILENT", 2: "WHEN_IDLE", 3: "INTERRUPT"}


def _match(conn: Connection, response: Mapping[str, Any]) -> PendingCall | None:
    pending = conn.state.pending_calls
    call_id = response.get("id")
    if isinstance(call_id, str):
        return pending.get(call_id)
    if conn.on_vertex and call_id is None:
        name = response.get("name")
        return next((c for c in pending.values() if c.name == name), None)
    return None


async def tool_response(conn: Connection, body: Mapping[str, Any]) -> None:
    """Act on one ``toolResponse`` message."""
    state = conn.state
    session = conn.session.id if conn.session else None
    for response in body.get("functionResponses") or ():
        call = _match(conn, response)
        if call is None:
            conn.core.log.note(
                conn.id,
                session,
                "ignored_tool_response",
                f"{response.get('id')!r}: no pending call with this id "
                "(unknown, late, cancelled or dropped)",
            )
            continue
        if response.get("id") is None:
            response = {**response, "id": call.id}
        content = {"role": "user", "parts": [{"functionResponse": response}]}
        state.append(content, text_tokens(json.dumps(response)), "TEXT")
        if call.blocking:
            del state.pending_calls[call.id]
            if state.waiting is not None and call.id in state.waiting.call_ids:
                state.waiting.responses[call.id] = response
            continue
        if not response.get("willContinue"):
            del state.pending_calls[call.id]
        inner = response.get("response")
        scheduling = enum_name(
            response.get("scheduling")
            or (inner.get("scheduling") if isinstance(inner, Mapping) else None)
            or "WHEN_IDLE",
            _SCHEDULING,
        )
        if scheduling == "SILENT":
            continue
        if scheduling == "INTERRUPT" and conn.running is not None:
            await barge_in(conn)
        conn.tool_turns.append(response)
