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
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol, TypeAlias

import attrs
import trio

from ._frames import kind_matches
from ._wire import DEADLINE_REASON, INTERNAL_REASON, QUOTA_REASON, SESSION_NOT_FOUND

__all__ = [
    "Close",
    "ConnectionFaults",
    "Drop",
    "Fault",
    "FaultTarget",
    "Faults",
    "GoAway",
    "Target",
]

Target: TypeAlias = int | Literal["next", "all", "open"]


@attrs.frozen
class Drop:
    """End the connection without a close frame (the client sees 1006)."""


@attrs.frozen
class Close:
    """Close the connection with a close frame."""

    code: int
    reason: str


@attrs.frozen
class GoAway:
    """Send ``goAway{timeLeft}``; with ``close``, end the connection when the time is up."""

    time_left: float
    close: bool = True
    code: int = 1011
    reason: str = DEADLINE_REASON


Action: TypeAlias = Drop | Close | GoAway


class FaultTarget(Protocol):
    """What a rule needs from a connection."""

    id: int
    opened_at: float
    #: Index of the last client message (setup = 0; -1 before any).
    index: int
    #: Server messages sent so far.
    server_count: int

    def spawn(self, fn: Callable[[], Awaitable[None]]) -> None:
        """Run ``fn`` in the connection's nursery."""

    async def apply_fault(self, action: Action) -> None:
        """Perform ``action`` now."""


class Fault:
    """The handle of one armed rule."""

    def __init__(self, faults: Faults, description: str) -> None:
        self._faults = faults
        self.description = description
        #: How many times the rule acted (messages delayed or stalled, connections hit).
        self.fired = 0
        self._fired_event = trio.Event()
        self._released = trio.Event()
        self.removed = False

    def __repr__(self) -> str:
        return f"<Fault {self.description} fired={self.fired}>"

    def _fire(self) -> None:
        self.fired += 1
        self._fired_event.set()

    async def wait(self) -> None:
        """Wait until the rule has acted at least once."""
        await self._fired_event.wait()

    def remove(self) -> None:
        """Disarm the rule (stalled messages are released)."""
        self._faults._remove(self)

    def release(self) -> None:
        """Let messages held by a :meth:`Faults.stall` rule go, and disarm it."""
        self.remove()


@attrs.define(eq=False)
class _Rule:
    fault: Fault
    action: Action | None
    target: Target
    #: How many more times it may act (None: unlimited).
    times: int | None
    client_messages: int | None = None
    server_messages: int | None = None
    before: str | None = None
    after: str | None = None
    nth: int = 1
    at: float | None = None
    after_seconds: float | None = None
    #: For delay/stall rules: which messages (None: all).
    kind: str | None = None
    delay: float | None = None
    stall: bool = False
    claimed: bool = False

    @property
    def timed(self) -> bool:
        return self.at is not None or self.after_seconds is not None

    @property
    def immediate(self) -> bool:
        return (
            self.action is not None
            and not self.timed
            and (
                self.client_messages is None
                and self.server_messages is None
                and self.before is None
                and self.after is None
            )
        )

    def use(self) -> bool:
        """Count one firing; False when the rule was already used up."""
        if self.fault.removed or self.times == 0:
            return False
        if self.times is not None:
            self.times -= 1
        self.fault._fire()
        if self.times == 0:
            self.fault.remove()
        return True


@attrs.define(eq=False)
class _Binding:
    rule: _Rule
    #: Client and server messages of the connection before the rule bound.
    client_base: int = 0
    server_base: int = 0
    #: How many server messages of the rule's kind were sent since it bound.
    seen: int = 0
    done: bool = False


class ConnectionFaults:
    """The rules bound to one connection; the connection consults it at every step."""

    def __init__(self, target: FaultTarget) -> None:
        self.target = target
        self._bindings: list[_Binding] = []
        #: Whether any rule is bound (the hot path checks this plain attribute first).
        self.active = False

    def _set(self, bindings: list[_Binding]) -> None:
        self._bindings = bindings
        self.active = bool(bindings)

    def bind(self, rule: _Rule) -> None:
        binding = _Binding(rule, self.target.index + 1, self.target.server_count)
        self._set([*self._bindings, binding])
        if rule.immediate:
            self.target.spawn(lambda: self._act_now(binding))
        elif rule.timed:
            self.target.spawn(lambda: self._act_later(binding))

    def unbind(self, rule: _Rule) -> None:
        self._set([b for b in self._bindings if b.rule is not rule])

    async def _act_now(self, binding: _Binding) -> None:
        if self._take(binding) and binding.rule.action is not None:
            await self.target.apply_fault(binding.rule.action)

    async def _act_later(self, binding: _Binding) -> None:
        rule = binding.rule
        when = rule.at if rule.at is not None else self.target.opened_at + (rule.after_seconds or 0)
        await trio.sleep_until(when)
        await self._act_now(binding)

    def _take(self, binding: _Binding) -> bool:
        if binding.done:
            return False
        binding.done = True
        if not binding.rule.use():
            return False
        self._set([b for b in self._bindings if b is not binding])
        return True

    def client_message(self, count: int) -> list[Action]:
        """The ``count``-th client message arrived (setup = 1)."""
        actions: list[Action] = []
        for binding in list(self._bindings):
            rule = binding.rule
            if (
                rule.client_messages == count - binding.client_base
                and rule.action
                and self._take(binding)
            ):
                actions.append(rule.action)
        return actions

    async def before_send(self, kind: str) -> list[Action]:
        """A server message of ``kind`` is about to go: delay, stall, or act instead."""
        actions: list[Action] = []
        for binding in list(self._bindings):
            rule = binding.rule
            if rule.fault.removed:
                continue
            if rule.delay is not None or rule.stall:
                if rule.kind is None or kind_matches(kind, rule.kind):
                    if not rule.use():
                        continue
                    if rule.stall:
                        await rule.fault._released.wait()
                    else:
                        await trio.sleep(rule.delay or 0)
            elif rule.before is not None and kind_matches(kind, rule.before):
                binding.seen += 1
                if binding.seen == rule.nth and rule.action and self._take(binding):
                    actions.append(rule.action)
        return actions

    def after_send(self, kind: str, count: int) -> list[Action]:
        """The ``count``-th server message, of ``kind``, has been sent."""
        actions: list[Action] = []
        for binding in list(self._bindings):
            rule = binding.rule
            if rule.action is None:
                continue
            if rule.server_messages == count - binding.server_base and self._take(binding):
                actions.append(rule.action)
            elif rule.after is not None and kind_matches(kind, rule.after):
                binding.seen += 1
                if binding.seen == rule.nth and self._take(binding):
                    actions.append(rule.action)
        return actions


class Faults:
    """Arms fault rules on one fake server (``server.faults``)."""

    def __init__(self) -> None:
        self._rules: list[_Rule] = []
        self._open: dict[int, ConnectionFaults] = {}
        self._upgrade_refusals: deque[tuple[int, bytes, Fault]] = deque()
        self._handle_rejections: deque[tuple[int, str, Fault]] = deque()

    # -- server side -----------------------------------------------------------------------

    def attach(self, target: FaultTarget) -> ConnectionFaults:
        """A connection opened: bind the rules that target it."""
        view = ConnectionFaults(target)
        self._open[target.id] = view
        for rule in list(self._rules):
            if rule.fault.removed:
                continue
            if rule.target == "all" or rule.target == target.id:
                view.bind(rule)
            elif rule.target == "next" and not rule.claimed:
                rule.claimed = True
                view.bind(rule)
        return view

    def detach(self, connection: int) -> None:
        """A connection closed."""
        self._open.pop(connection, None)

    def take_upgrade_refusal(self) -> tuple[int, bytes] | None:
        """The HTTP status and body to refuse this upgrade with, if a rule says so."""
        while self._upgrade_refusals:
            status, body, fault = self._upgrade_refusals[0]
            if fault.removed:
                self._upgrade_refusals.popleft()
                continue
            fault._fire()
            self._upgrade_refusals.popleft()
            return status, body
        return None

    def take_handle_rejection(self) -> tuple[int, str] | None:
        """The close code and reason to refuse this resumption with, if a rule says so."""
        while self._handle_rejections:
            code, reason, fault = self._handle_rejections.popleft()
            if not fault.removed:
                fault._fire()
                return code, reason
        return None

    def _arm(self, rule: _Rule) -> Fault:
        self._rules.append(rule)
        for connection, view in list(self._open.items()):
            if rule.target in ("all", "open") or rule.target == connection:
                view.bind(rule)
        return rule.fault

    def _remove(self, fault: Fault) -> None:
        fault.removed = True
        fault._released.set()
        for rule in [r for r in self._rules if r.fault is fault]:
            self._rules.remove(rule)
            for view in self._open.values():
                view.unbind(rule)

    def clear(self) -> None:
        """Disarm every rule and release every stalled message."""
        for rule in list(self._rules):
            rule.fault.remove()
        for _, _, fault in list(self._upgrade_refusals):
            fault.remove()
        for _, _, fault in list(self._handle_rejections):
            fault.remove()
        self._upgrade_refusals.clear()
        self._handle_rejections.clear()

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
