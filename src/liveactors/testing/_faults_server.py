"""The server's side of fault injection: the rules armed on one fake server, bound to each
connection as it opens, and the upgrade refusals and handle rejections handed out in turn.
:class:`~._faults.Faults` adds the methods a test arms rules with.
"""

from __future__ import annotations

from collections import deque

from ._faults_connection import ConnectionFaults, FaultTarget
from ._faults_rules import Fault, _Rule

__all__ = ["ServerFaults"]


class ServerFaults:
    """The rules armed on one fake server, as its connections consult them."""

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
