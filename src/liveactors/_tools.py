"""Answering the model's function calls for a ``Conversation`` that answers them itself.

Each call runs in its own task of the conversation's nursery, so it survives a reconnect and
answers on whichever connection is current; a ``toolCallCancellation`` cancels its task and no
response goes out. A turn regenerated after a reconnect asks again with new call ids: the same
call (same name and arguments) of the same turn is answered by the run already under way, or by
its result, so the function never runs twice for one question.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import trio
from google.genai import types

from ._conversation import Conversation

__all__ = ["ToolRunner", "non_blocking_functions"]

log = logging.getLogger("liveactors.supervisor")


def non_blocking_functions(setup: Mapping[str, Any], *, default: bool = False) -> frozenset[str]:
    """Names of the functions that run NON_BLOCKING, read from the encoded ``setup`` message
    (so functions given as Python callables count too). ``default``: the model runs a
    declaration without ``behavior`` NON_BLOCKING (the 3.8 generation)."""
    names = set()
    for tool in setup.get("setup", {}).get("tools") or ():
        for declaration in tool.get("functionDeclarations") or ():
            name = declaration.get("name")
            behavior = declaration.get("behavior")
            if not name:
                continue
            if behavior == "NON_BLOCKING" or (default and behavior in (None, "UNSPECIFIED")):
                names.add(name)
    return frozenset(names)


@attrs.define(eq=False)
class _Run:
    """One execution of a function, possibly answering several call ids."""

    call: types.FunctionCall
    ids: list[str]
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    response: types.FunctionResponse | None = None


class ToolRunner:
    """Runs a conversation's function calls and hands their responses to ``answer``."""

    def __init__(
        self,
        name: str,
        actor: Conversation,
        non_blocking: frozenset[str],
        answer: Callable[[tuple[types.FunctionResponse, ...]], None],
    ) -> None:
        self._name = name
        self._actor = actor
        self._non_blocking = non_blocking
        self._answer_with = answer
        self.enabled = type(actor).answers_tool_calls()
        self._runs: dict[str, _Run] = {}
        #: Runs of the current turn by name and arguments (for calls asked again).
        self._by_key: dict[str, _Run] = {}
        #: Runs of the turn before, when user input interrupted it: the 3.x service drops a
        #: blocking call that new input interrupts and asks it again under a new id, seconds
        #: later, without a toolCallCancellation.
        self._interrupted_keys: dict[str, _Run] = {}

    def start(self, nursery: trio.Nursery, calls: tuple[types.FunctionCall, ...]) -> None:
        """Run each call (or join it to the run of the same call already under way)."""
        if not self.enabled:
            return
        for call in calls:
            if not call.id:
                continue
            key = f"{call.name}\0{json.dumps(call.args or {}, sort_keys=True, default=str)}"
            run = self._by_key.get(key) or self._interrupted_keys.pop(key, None)
            if run is not None:
                self._by_key[key] = run
                # The same call again after a reconnect: answer it from the run under way.
                run.ids.append(call.id)
                self._runs[call.id] = run
                if run.response is not None:
                    self._answer(run, [call.id])
                continue
            run = _Run(call, [call.id])
            self._runs[call.id] = run
            self._by_key[key] = run
            nursery.start_soon(self._run, run)

    def cancel(self, ids: tuple[str, ...]) -> None:
        """The model withdrew these calls: stop their runs; nothing is answered."""
        for call_id in ids:
            run = self._runs.pop(call_id, None)
            if run is None:
                continue
            if call_id in run.ids:
                run.ids.remove(call_id)
            if not run.ids:
                run.scope.cancel()
                for key, value in list(self._by_key.items()):
                    if value is run:
                        del self._by_key[key]

    def turn_done(self, *, interrupted: bool = False) -> None:
        """A turn completed: later calls with the same arguments are new calls, except the
        re-issue of a call that an interruption cut (see ``_interrupted_keys``)."""
        self._interrupted_keys = self._by_key if interrupted else {}
        self._by_key = {}

    async def _run(self, run: _Run) -> None:
        call = run.call
        with run.scope:
            try:
                handler = self._actor.on_tool_call
                if inspect.iscoroutinefunction(handler):
                    result = await handler(call)
                else:
                    result = await trio.to_thread.run_sync(handler, call, abandon_on_cancel=True)
            except Exception as exc:  # the user's function failed: the model hears why
                log.info("%s: tool %s raised %s", self._name, call.name, type(exc).__name__)
                result = {"error": f"{type(exc).__name__}: {exc}"}
        if run.scope.cancelled_caught:
            return
        run.response = self.response_for(call, result)
        self._answer(run, list(run.ids))

    def _answer(self, run: _Run, ids: list[str]) -> None:
        assert run.response is not None
        responses = tuple(run.response.model_copy(update={"id": i}) for i in ids)
        for call_id in ids:
            self._runs.pop(call_id, None)
        self._answer_with(responses)

    def response_for(self, call: types.FunctionCall, result: Any) -> types.FunctionResponse:
        """The response a call's result makes: a whole FunctionResponse as given, a dict with
        ``output`` or ``error`` as the body, anything else as ``{"output": result}``; NON_BLOCKING
        functions get their scheduling (``Conversation.scheduling``, default WHEN_IDLE)."""
        if isinstance(result, types.FunctionResponse):
            response = result.model_copy(update={"id": call.id, "name": result.name or call.name})
        else:
            if isinstance(result, dict) and ({"output", "error"} & result.keys()):
                body = result
            else:
                body = {"output": result}
            response = types.FunctionResponse(id=call.id, name=call.name, response=body)
        if call.name in self._non_blocking and response.scheduling is None:
            scheduling = self._actor.scheduling.get(call.name or "", "WHEN_IDLE")
            response = response.model_copy(
                update={"scheduling": types.FunctionResponseScheduling(scheduling)}
            )
        return response
