"""Answering the model's function calls for a ``Conversation`` that answers them itself.

Each call runs in its own task of the conversation's nursery, so it survives a reconnect and
answers on whichever connection is current; a ``toolCallCancellation`` cancels its task and no
response goes out. A turn regenerated after a reconnect asks again with new call ids: the same
call (same name and arguments) of the same turn is answered by the run already under way, or by
its result, so the function never runs twice for one question.

What goes to the model is always sendable: a result that is not plain JSON (a ``Decimal``, a
set, a datetime, bytes, NaN, an arbitrary object) or too large is caught where the response is
made, and answered like an exception, through ``Conversation.on_tool_error``; both are logged
as a WARNING with the traceback, and the conversation carries on.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import pydantic
import trio
from google.genai import types

from ._conversation import Conversation
from ._errors import InvalidCommand
from ._observe import ConversationObserver
from ._protocol import encode

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
    #: The call's span (liveactors.otel), made when the call came; None when not tracing.
    span: object = None


class ToolRunner:
    """Runs a conversation's function calls and hands their responses to ``answer``."""

    def __init__(
        self,
        name: str,
        actor: Conversation,
        non_blocking: frozenset[str],
        answer: Callable[[tuple[types.FunctionResponse, ...]], None],
        observer: ConversationObserver | None = None,
    ) -> None:
        self._name = name
        #: Counts outcomes; with tracing on, a span per call, current inside the call's task.
        self._observer = ConversationObserver(name, "") if observer is None else observer
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
                self._observer.tool_joined(run.span, call.id)
                if run.response is not None:
                    self._answer(run, [call.id])
                continue
            run = _Run(call, [call.id], span=self._observer.tool_started(call))
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
        outcome, error = "cancelled", None
        try:
            outcome, error = await self._execute(run)
        finally:
            self._observer.tool_finished(run.span, outcome, error)

    async def _execute(self, run: _Run) -> tuple[str, Exception | None]:
        """Run the call and answer it; returns the outcome (ok, error, cancelled) and error."""
        call = run.call
        result: Any = None
        error: Exception | None = None
        with run.scope:
            try:
                # The call's span is the current one while the function runs (in this task,
                # and in the worker thread of a sync function), so the user's spans nest in it.
                with self._observer.tool_active(run.span):
                    result = await self._call(call)
            except Exception as exc:  # the user's function failed: the model hears why
                log.warning(
                    "%s: tool %s raised %s",
                    self._name,
                    call.name,
                    type(exc).__name__,
                    exc_info=True,
                )
                error = exc
        if run.scope.cancelled_caught:
            return "cancelled", None
        if error is None:
            try:
                run.response = self.response_for(call, result)
            except Exception as exc:  # not JSON, too large, not a valid FunctionResponse...
                log.warning("%s: %s", self._name, exc, exc_info=True)
                error = exc
        if error is not None:
            run.response = self._error_response(call, error)
        self._answer(run, list(run.ids))
        return ("ok" if error is None else "error"), error

    async def _call(self, call: types.FunctionCall) -> Any:
        """The actor's ``on_tool_call`` (a sync one in a worker thread)."""
        handler = self._actor.on_tool_call
        if inspect.iscoroutinefunction(handler):
            return await handler(call)
        return await trio.to_thread.run_sync(handler, call, abandon_on_cancel=True)

    def _answer(self, run: _Run, ids: list[str]) -> None:
        assert run.response is not None
        responses = tuple(run.response.model_copy(update={"id": i}) for i in ids)
        for call_id in ids:
            self._runs.pop(call_id, None)
        self._answer_with(responses)

    def response_for(self, call: types.FunctionCall, result: Any) -> types.FunctionResponse:
        """The response a call's result makes: a whole FunctionResponse as given, a dict with
        ``output`` or ``error`` as the body, anything else as ``{"output": result}``; NON_BLOCKING
        functions get their scheduling (``Conversation.scheduling``, default WHEN_IDLE).

        The check happens here, where the result is made, so nothing invalid ever reaches the
        writer: a result that is not plain JSON raises ``TypeError``, one too large to send
        ``ValueError``, each saying what is wrong.
        """
        if isinstance(result, types.FunctionResponse):
            response = result.model_copy(update={"id": call.id, "name": result.name or call.name})
        else:
            if isinstance(result, dict) and ({"output", "error"} & result.keys()):
                body = result
            else:
                body = {"output": result}
            try:
                response = types.FunctionResponse(id=call.id, name=call.name, response=body)
            except pydantic.ValidationError:  # a key that is not a str
                detail = encode.json_problem(body, "response") or "not a JSON object"
                raise TypeError(f"the result of {call.name} is not JSON: {detail}") from None
        problem = _problem(response)
        if isinstance(problem, TypeError):
            raise TypeError(f"the result of {call.name} is not JSON: {problem}")
        if problem is not None:
            raise ValueError(f"the result of {call.name} cannot be sent: {problem}")
        return self._scheduled(call, response)

    def _scheduled(
        self, call: types.FunctionCall, response: types.FunctionResponse
    ) -> types.FunctionResponse:
        """``response`` with the scheduling of a NON_BLOCKING function, unless it has its own."""
        if call.name in self._non_blocking and response.scheduling is None:
            scheduling = self._actor.scheduling.get(call.name or "", "WHEN_IDLE")
            response = response.model_copy(
                update={"scheduling": types.FunctionResponseScheduling(scheduling)}
            )
        return response

    def _error_response(self, call: types.FunctionCall, error: Exception) -> types.FunctionResponse:
        """The answer to a call that failed: the body ``on_tool_error`` makes of ``error``, or
        the default body when the hook fails or its body cannot be sent."""
        response = None
        try:
            body = self._actor.on_tool_error(call, error)
            if not isinstance(body, dict):
                raise TypeError(f"on_tool_error returned a {type(body).__name__}, not a dict")
            response = types.FunctionResponse(id=call.id, name=call.name, response=body)
            problem = _problem(response)
            if problem is not None:
                raise problem
        except Exception:
            log.warning(
                "%s: on_tool_error failed for %s; sending the default",
                self._name,
                call.name,
                exc_info=True,
            )
            response = None
        if response is None:
            response = types.FunctionResponse(
                id=call.id, name=call.name, response={"error": _describe(error)}
            )
        return self._scheduled(call, response)


#: The longest exception message the default error body quotes (the model needs the gist).
_MAX_ERROR_TEXT = 2000


def _problem(response: types.FunctionResponse) -> Exception | None:
    """Why ``response`` cannot be sent: a ``TypeError`` if its body is not plain JSON, a
    ``ValueError`` if the message would be too large (or otherwise unsendable); else None."""
    body = response.model_dump(include={"response"}).get("response")
    problem = encode.json_problem(body, "response")
    if problem is not None:
        return TypeError(problem)
    try:
        encode.check_message(encode.tool_response([response]), "response", body)
    except InvalidCommand as exc:
        return ValueError(str(exc))
    return None


def _describe(error: Exception) -> str:
    """``"TypeName: message"``, always sendable: a message that cannot be printed, is not valid
    Unicode or is huge is made safe (this is the last resort, so it must not fail)."""
    try:
        text = str(error)
    except Exception:
        text = "<the message could not be printed>"
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > _MAX_ERROR_TEXT:
        text = text[:_MAX_ERROR_TEXT] + "..."
    return f"{type(error).__name__}: {text}"
