"""The fault rules bound to one connection of the fake server: which of them act at each step of
the connection (a client message, before and after each server message, a point in time), and the
server messages that delay and stall rules hold back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import attrs
import trio

from ._faults_rules import Action, _Rule
from ._frames import kind_matches

__all__ = ["ConnectionFaults", "FaultTarget"]


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
