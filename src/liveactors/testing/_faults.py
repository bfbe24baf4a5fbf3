"""Fault injection: rules that make the fake server misbehave exactly when a test asks.

Every method of :class:`Faults` arms a rule and returns a :class:`Fault` handle (``fired``,
``await fault.wait()``, ``remove()``, ``release()`` for stalls). A rule targets connections:

* ``connection="next"`` (default) — the next connection accepted after the rule is armed;
* ``connection=<id>`` — that connection (open now or not yet);
* ``connection="all"`` — every connection, open now or later, each one independently;
* ``connection="open"`` — the connections open right now.

Actions: drop the connection without a close frame, close it with any code and reason, or send
``goAway`` (and close when its time is up). Conditions, at most one per rule:

* none — at once (for a new connection: right after the upgrade, before reading anything);
* ``after_client_messages=n`` — when the n-th client message arrives (setup is the 1st): it is
  logged but not acted on;
* ``after_server_messages=n`` — right after the n-th server message was sent;

(counts start when the rule binds: at the start of a new connection, at arming time for an
open one, so "the 2nd turnComplete from now" is ``before="turnComplete", nth=2``)
* ``before=kind`` / ``after=kind`` (``nth=k``) — right before/after the k-th server message of
  a kind (``"toolCall"``, ``"turnComplete"``, ``"sessionResumptionUpdate"``...); "before" means
  the message is never sent;
* ``at=t`` (trio time) or ``after_seconds=s`` (since the connection opened).

:meth:`Faults.exceed_quota` is ``close`` with the service's over-quota close (1011 "You exceeded
your current quota, please check your plan and billing details.").

Besides: :meth:`Faults.delay` and :meth:`Faults.stall` hold back server messages,
:meth:`Faults.refuse_upgrades` answers upgrades with an HTTP status (429 by default) and
:meth:`Faults.reject_handles` refuses resumptions with 1008 "session not found".

This module keeps the methods a test arms rules with; what a rule is lives in ``_faults_rules``,
how a connection's rules act in ``_faults_connection``, and the server's side in ``_faults_server``.
"""

from __future__ import annotations

import math

from ._faults_connection import ConnectionFaults, FaultTarget
from ._faults_rules import Action, Close, Drop, Fault, GoAway, Target, _Rule
from ._faults_server import ServerFaults
from ._wire import DEADLINE_REASON, INTERNAL_REASON, QUOTA_REASON, SESSION_NOT_FOUND

__all__ = [
    "Action",
    "Close",
    "ConnectionFaults",
    "Drop",
    "Fault",
    "FaultTarget",
    "Faults",
    "GoAway",
    "Target",
]


class Faults(ServerFaults):
    """Arms fault rules on one fake server (``server.faults``)."""

    # -- the public API --------------------------------------------------------------------

    def _rule(
        self,
        description: str,
        action: Action,
        connection: Target,
        *,
        after_client_messages: int | None,
        after_server_messages: int | None,
        before: str | None,
        after: str | None,
        nth: int,
        at: float | None,
        after_seconds: float | None,
    ) -> Fault:
        conditions = [
            c
            for c in (
                after_client_messages,
                after_server_messages,
                before,
                after,
                at,
                after_seconds,
            )
            if c is not None
        ]
        if len(conditions) > 1:
            raise ValueError("a fault rule takes at most one condition")
        if nth < 1:
            raise ValueError("nth counts from 1")
        if after_client_messages is not None and after_client_messages < 1:
            raise ValueError("after_client_messages counts from 1 (setup is the first)")
        if after_server_messages is not None and after_server_messages < 1:
            raise ValueError("after_server_messages counts from 1")
        # "next" and an id act once; "all" and "open" once per connection they bind to.
        times = 1 if connection == "next" or isinstance(connection, int) else None
        where = f" on {connection}" if isinstance(connection, int) else f" ({connection})"
        rule = _Rule(
            Fault(self, description + where),
            action,
            connection,
            times,
            client_messages=after_client_messages,
            server_messages=after_server_messages,
            before=before,
            after=after,
            nth=nth,
            at=at,
            after_seconds=after_seconds,
        )
        return self._arm(rule)

    def drop(
        self,
        *,
        connection: Target = "next",
        after_client_messages: int | None = None,
        after_server_messages: int | None = None,
        before: str | None = None,
        after: str | None = None,
        nth: int = 1,
        at: float | None = None,
        after_seconds: float | None = None,
    ) -> Fault:
        """Drop the connection without a close frame when the condition holds."""
        return self._rule(
            "drop",
            Drop(),
            connection,
            after_client_messages=after_client_messages,
            after_server_messages=after_server_messages,
            before=before,
            after=after,
            nth=nth,
            at=at,
            after_seconds=after_seconds,
        )

    def close(
        self,
        code: int = 1011,
        reason: str = INTERNAL_REASON,
        *,
        connection: Target = "next",
        after_client_messages: int | None = None,
        after_server_messages: int | None = None,
        before: str | None = None,
        after: str | None = None,
        nth: int = 1,
        at: float | None = None,
        after_seconds: float | None = None,
    ) -> Fault:
        """Close the connection with ``code`` and ``reason`` when the condition holds."""
        return self._rule(
            f"close {code}",
            Close(code, reason),
            connection,
            after_client_messages=after_client_messages,
            after_server_messages=after_server_messages,
            before=before,
            after=after,
            nth=nth,
            at=at,
            after_seconds=after_seconds,
        )

    def exceed_quota(
        self,
        *,
        connection: Target = "next",
        after_client_messages: int | None = None,
        after_server_messages: int | None = None,
        before: str | None = None,
        after: str | None = None,
        nth: int = 1,
        at: float | None = None,
        after_seconds: float | None = None,
    ) -> Fault:
        """Close the connection as over quota (1011 "You exceeded your current quota, ...")
        when the condition holds; with ``before="setupComplete"`` the setup is refused."""
        return self.close(
            1011,
            QUOTA_REASON,
            connection=connection,
            after_client_messages=after_client_messages,
            after_server_messages=after_server_messages,
            before=before,
            after=after,
            nth=nth,
            at=at,
            after_seconds=after_seconds,
        )

    def go_away(
        self,
        time_left: float = 10.0,
        *,
        close: bool = True,
        code: int = 1011,
        reason: str = DEADLINE_REASON,
        connection: Target = "next",
        after_client_messages: int | None = None,
        after_server_messages: int | None = None,
        before: str | None = None,
        after: str | None = None,
        nth: int = 1,
        at: float | None = None,
        after_seconds: float | None = None,
    ) -> Fault:
        """Send ``goAway{timeLeft}`` when the condition holds; with ``close``, close the
        connection with ``code``/``reason`` once ``time_left`` seconds have passed."""
        if not (time_left >= 0 and math.isfinite(time_left)):
            raise ValueError("time_left must be a finite number >= 0")
        return self._rule(
            f"goAway {time_left:g}s",
            GoAway(time_left, close, code, reason),
            connection,
            after_client_messages=after_client_messages,
            after_server_messages=after_server_messages,
            before=before,
            after=after,
            nth=nth,
            at=at,
            after_seconds=after_seconds,
        )

    def drop_now(self, connection: int | None = None) -> Fault:
        """Drop open connections now (``connection`` None: every open one)."""
        return self.drop(connection="open" if connection is None else connection)

    def close_now(
        self, code: int = 1011, reason: str = INTERNAL_REASON, connection: int | None = None
    ) -> Fault:
        """Close open connections now with ``code`` and ``reason``."""
        return self.close(code, reason, connection="open" if connection is None else connection)

    def go_away_now(
        self, time_left: float = 10.0, connection: int | None = None, *, close: bool = True
    ) -> Fault:
        """Send ``goAway`` on open connections now (and close them after ``time_left``)."""
        return self.go_away(
            time_left, close=close, connection="open" if connection is None else connection
        )

    def delay(
        self,
        seconds: float,
        *,
        kind: str | None = None,
        times: int | None = None,
        connection: Target = "next",
    ) -> Fault:
        """Hold each server message (of ``kind``) back ``seconds`` before sending it; ``times``
        limits how many messages are delayed."""
        if not seconds >= 0:
            raise ValueError("seconds must be >= 0")
        rule = _Rule(
            Fault(self, f"delay {seconds:g}s {kind or 'all'}"),
            None,
            connection,
            times,
            kind=kind,
            delay=seconds,
        )
        return self._arm(rule)

    def stall(self, *, kind: str | None = None, connection: Target = "next") -> Fault:
        """Hold server messages (of ``kind``) until ``fault.release()``; everything sent after
        them on that connection waits too, in order."""
        rule = _Rule(Fault(self, f"stall {kind or 'all'}"), None, connection, None, kind=kind)
        rule.stall = True
        return self._arm(rule)

    def refuse_upgrades(
        self, count: int = 1, *, status: int = 429, body: bytes | None = None
    ) -> Fault:
        """Answer the next ``count`` upgrade requests with HTTP ``status`` instead of 101."""
        if body is None:
            body = (
                b'{"error":{"code":429,"message":"Resource has been exhausted '
                b'(e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}'
                if status == 429
                else b'{"error":{"code":%d,"message":"Upgrade refused."}}' % status
            )
        fault = Fault(self, f"refuse {count} upgrade(s) with {status}")
        for _ in range(count):
            self._upgrade_refusals.append((status, body, fault))
        return fault

    def reject_handles(
        self, count: int = 1, *, code: int = 1008, reason: str = SESSION_NOT_FOUND
    ) -> Fault:
        """Refuse the next ``count`` resumption attempts (valid handles too) with a close."""
        fault = Fault(self, f"reject {count} handle(s)")
        for _ in range(count):
            self._handle_rejections.append((code, reason, fault))
        return fault
