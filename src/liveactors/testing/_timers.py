"""The timed events of one connection, run by one task for the connection's whole life.

* **Lifetime**: ``goAway{timeLeft: goaway_before}`` at ``lifetime - goaway_before``, then the
  endpoint's close at ``lifetime`` (Developer API: 1011 "Deadline expired before operation could
  complete."; Vertex AI: 1000 "The operation was cancelled."), counted from the upgrade.
* **Early goAway** (``early_goaway=(at, time_left)``): ``goAway{timeLeft}`` ``at`` seconds in,
  and the close when that time is up (seen on gemini-3.8-live: 300 s left, 1 s in).
* **Session time** without compression (15 min audio, 2 min with video): close 1011 and the
  session is over.
* The silence gap that ends a spoken turn, a polite barge-in falling due, a dropped BLOCKING
  call to re-issue.

The task sleeps until the earliest deadline; whatever moves a deadline calls
``Connection.wake_timer`` so it recomputes them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import trio

from . import _frames as frames
from ._bargein import barge_in, reissue_due
from ._wire import DEADLINE_REASON

if TYPE_CHECKING:
    from ._session import Connection

__all__ = ["run_timers"]


def _session_deadline(conn: Connection) -> float:
    session = conn.session
    if not conn.setup_done or session is None or conn.compression is not None:
        return math.inf
    options = conn.options
    limit = options.video_session_limit if session.has_video else options.audio_session_limit
    if limit is None:
        return math.inf
    return conn.setup_at + options.scaled(limit) - session.used_seconds


def _plan(conn: Connection) -> tuple[float, float]:
    """When the connection ends, and when its goAway goes out."""
    options = conn.options
    end_at = goaway_at = math.inf
    if options.connection_lifetime is not None:
        lifetime = options.scaled(options.connection_lifetime)
        end_at = conn.opened_at + lifetime
        lead = min(options.scaled(options.goaway_before), lifetime)
        if lead > 0:
            goaway_at = end_at - lead
    if options.early_goaway is not None:
        at, time_left = (options.scaled(s) for s in options.early_goaway)
        early = conn.opened_at + at
        if early < goaway_at:
            goaway_at = early
            end_at = min(end_at, early + time_left)
    return end_at, goaway_at


def _reissue_at(conn: Connection) -> float:
    if not conn.setup_done or conn.session is None or conn.state.waiting is None:
        return math.inf
    return conn.state.waiting.reissue_at


async def run_timers(conn: Connection) -> None:
    """GoAway, the end of the lifetime, the session limit, spoken turns, polite barge-ins."""
    end_at, goaway_at = _plan(conn)
    while not conn.closing:
        session_end = _session_deadline(conn)
        deadline = min(
            end_at,
            session_end,
            conn.vad.deadline,
            conn.barge_at,
            _reissue_at(conn),
            goaway_at if not conn.goaway_sent else math.inf,
        )
        with trio.CancelScope() as conn.timer_scope:
            await trio.sleep_until(deadline)
        conn.timer_scope = None
        now = trio.current_time()
        if now >= end_at:
            code, reason = conn.lifetime_close
            await conn.close(code, reason, cause="lifetime")
            return
        if now >= session_end and now >= _session_deadline(conn):
            assert conn.session is not None
            conn.session.terminated = True
            await conn.close(1011, DEADLINE_REASON, cause="session_limit")
            return
        if not conn.goaway_sent and now >= goaway_at:
            conn.goaway_sent = True
            # The planned lead, not "end_at - now": a timer a hair late must not turn
            # "10s" into "9.998734s".
            await conn.send(frames.go_away(end_at - goaway_at))
        if now >= conn.barge_at:
            conn.barge_at = math.inf
            if conn.busy() and conn.interrupts:
                await barge_in(conn)
                await conn.pump()
        if now >= _reissue_at(conn):
            await reissue_due(conn)
            await conn.pump()
        if now >= conn.vad.deadline:
            await conn.end_spoken_turn()
