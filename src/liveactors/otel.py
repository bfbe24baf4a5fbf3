"""OpenTelemetry spans of liveactors: one per conversation, per connection, per turn and per tool
call.

::

    import liveactors.otel

    liveactors.otel.instrument()   # the global TracerProvider (or pass one)

Conversations spawned from then on are traced (:func:`uninstrument` stops it for later ones)::

    liveactors.conversation            (the spawner's span is its parent, if there is one)
    └── liveactors.connection          (one per connection: first, reconnects, handoffs)
        └── liveactors.turn            (one per model turn; usage as attributes)
            └── execute_tool NAME      (one per function call a Conversation answers itself)
                └── your spans         (the call's span is current while the function runs)

Only ``opentelemetry-api`` is used: without an SDK configured the spans are no-ops. The span
attributes are listed in docs/observability.md. Needs the ``otel`` extra:
``pip install 'liveactors[otel]'``.

Context. The conversation's span takes as parent the trace context current in the task that
calls ``spawn`` (trio copies a task's context variables into the tasks it starts). The tool-call
span is made current inside the call's own task — and, for a sync function, in the worker
thread it runs in — so spans the function starts nest under it.
"""

from __future__ import annotations

try:
    from opentelemetry import context as _context
    from opentelemetry import trace as _trace
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "liveactors.otel needs opentelemetry-api: pip install 'liveactors[otel]'"
    ) from exc

from collections.abc import Sequence
from importlib.metadata import version as _version
from typing import TYPE_CHECKING, Final

from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
from opentelemetry.util.types import AttributeValue

from . import _observe
from . import events as ev

if TYPE_CHECKING:
    from google.genai import types

    from ._errors import LiveError
    from ._supervisor import Supervisor

__all__ = ["TRACER_NAME", "instrument", "instrumented", "uninstrument"]

#: The instrumentation scope of liveactors' spans.
TRACER_NAME: Final = "liveactors"

#: The events that belong to a model turn: the first of a turn starts its span.
_TURN_EVENTS: Final = frozenset(
    {
        ev.TextDelta,
        ev.AudioChunk,
        ev.OutputTranscript,
        ev.InputTranscript,
        ev.VideoChunk,
        ev.ModelPart,
        ev.Grounding,
        ev.GenerationComplete,
        ev.ToolCall,
        ev.Usage,
        ev.Interrupted,
        ev.TurnComplete,
    }
)


def instrument(tracer_provider: TracerProvider | None = None) -> None:
    """Trace every conversation spawned from now on, with ``tracer_provider`` (default: the
    global one, as ``opentelemetry.trace.set_tracer_provider`` sets it). Calling it again
    replaces the provider for later conversations."""
    tracer = _trace.get_tracer(TRACER_NAME, _version("liveactors"), tracer_provider)

    def factory(name: str, model: str) -> _observe.ConversationTrace:
        return _ConversationTrace(tracer, name, model)

    _observe.tracer_factory = factory


def uninstrument() -> None:
    """Conversations spawned from now on are not traced (running ones keep their spans)."""
    _observe.tracer_factory = None


def instrumented() -> bool:
    """Whether conversations spawned now are traced."""
    return _observe.tracer_factory is not None


def _model_name(model: str) -> str:
    """``models/gemini-3.8-live`` (or a Vertex resource path) -> ``gemini-3.8-live``."""
    return model.rsplit("/", 1)[-1]


class _Turn:
    """A turn span and the usage reported in it (set as attributes when it ends)."""

    __slots__ = ("input", "modalities", "number", "output", "reports", "span", "thoughts", "total")

    def __init__(self, span: Span, number: int) -> None:
        self.span = span
        self.number = number
        self.input = self.output = self.total = self.thoughts = self.reports = 0
        self.modalities: dict[str, int] = {}

    def usage(self, metadata: types.UsageMetadata) -> None:
        self.reports += 1
        self.input += metadata.prompt_token_count or 0
        self.output += metadata.response_token_count or 0
        self.total += metadata.total_token_count or 0
        self.thoughts += metadata.thoughts_token_count or 0
        modalities = self.modalities
        for keys, details in (
            (_INPUT_KEYS, metadata.prompt_tokens_details),
            (_OUTPUT_KEYS, metadata.response_tokens_details),
        ):
            for detail in details or ():
                if detail.token_count:
                    key = keys.get(detail.modality) or _modality_key(keys, detail.modality)
                    modalities[key] = modalities.get(key, 0) + detail.token_count

    def end(self, *, reason: str | None, interrupted: bool) -> None:
        # One call: the SDK takes its lock once for all of them.
        attributes: dict[str, AttributeValue] = {"liveactors.turn.interrupted": interrupted}
        if reason:
            attributes["liveactors.turn.reason"] = reason
        if self.reports:
            attributes["gen_ai.usage.input_tokens"] = self.input
            attributes["gen_ai.usage.output_tokens"] = self.output
            attributes["liveactors.usage.total_tokens"] = self.total
            if self.thoughts:
                attributes["liveactors.usage.thoughts_tokens"] = self.thoughts
            attributes.update(self.modalities)
        self.span.set_attributes(attributes)
        self.span.end()


#: Attribute names of per-modality token counts, by modality (filled as modalities are seen).
_INPUT_KEYS: dict[object, str] = {}
_OUTPUT_KEYS: dict[object, str] = {}


def _modality_key(keys: dict[object, str], modality: object) -> str:
    """``liveactors.usage.input_tokens.audio``: the attribute of ``modality``'s tokens."""
    name = getattr(modality, "value", None) or "unspecified"
    direction = "input" if keys is _INPUT_KEYS else "output"
    key = keys[modality] = f"liveactors.usage.{direction}_tokens.{str(name).lower()}"
    return key


class _ConversationTrace:
    """The spans of one conversation (the :class:`~liveactors._observe.ConversationTrace` that
    the supervisor's observer forwards to)."""

    __slots__ = (
        "_connection",
        "_connection_context",
        "_conversation",
        "_conversation_context",
        "_name",
        "_parent",
        "_tracer",
        "_turn",
        "model",
    )

    def __init__(self, tracer: Tracer, name: str, model: str) -> None:
        self._tracer = tracer
        self._name = name
        self.model = _model_name(model)
        #: The spawner's context (this runs in the task that calls spawn).
        self._parent = _context.get_current()
        self._conversation: Span = _trace.INVALID_SPAN
        self._conversation_context = self._parent
        self._connection: Span | None = None
        self._connection_context = self._parent
        self._turn: _Turn | None = None

    def _start(
        self, name: str, context: _context.Context, attributes: dict[str, AttributeValue]
    ) -> Span:
        attributes["liveactors.conversation"] = self._name
        return self._tracer.start_span(
            name, context=context, kind=SpanKind.INTERNAL, attributes=attributes
        )

    # -- the conversation ---------------------------------------------------------------------

    def started(self) -> None:
        span = self._start(
            "liveactors.conversation", self._parent, {"gen_ai.request.model": self.model}
        )
        self._conversation = span
        self._conversation_context = _trace.set_span_in_context(span)

    def finished(self, sup: Supervisor, error: LiveError | None) -> None:
        self._end_turn(reason="CONNECTION_LOST", interrupted=True)
        span = self._conversation
        span.set_attribute("liveactors.conversation.state", sup.state.value)
        span.set_attribute("liveactors.conversation.connections", sup.connections)
        span.set_attribute("liveactors.conversation.reconnects", sup.reconnects.reconnects)
        span.set_attribute("liveactors.conversation.handoffs", sup.handoffs)
        span.set_attribute("liveactors.conversation.turns", sup.session.turns_completed)
        span.set_attribute("liveactors.conversation.tokens", sup.tokens)
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()

    def reconnecting(self, cause: str, reason: str, attempt: int, delay: float) -> None:
        self._conversation.add_event(
            "reconnecting",
            {
                "liveactors.reconnect.cause": cause,
                "liveactors.reconnect.reason": reason,
                "liveactors.reconnect.attempt": attempt,
                "liveactors.reconnect.delay": delay,
            },
        )

    # -- connections --------------------------------------------------------------------------

    def connection_started(self, number: int, cause: str) -> None:
        span = self._start(
            "liveactors.connection",
            self._conversation_context,
            {"liveactors.connection.number": number, "liveactors.connection.cause": cause},
        )
        self._connection = span
        self._connection_context = _trace.set_span_in_context(span)

    def connected(self, event: ev.Connected) -> None:
        span = self._connection
        if span is None:
            return
        span.set_attribute("liveactors.connection.resumed", event.resumed)
        if event.session_id:
            span.set_attribute("liveactors.session_id", event.session_id)
        span.add_event("ready")

    def connection_ended(
        self, ending: str, code: str, initiator: str, error: BaseException | None
    ) -> None:
        self._end_turn(reason="CONNECTION_LOST", interrupted=True)
        span = self._connection
        if span is None:
            return
        self._connection = None
        span.set_attribute("liveactors.connection.ending", ending)
        span.set_attribute("liveactors.close.code", code)
        span.set_attribute("liveactors.close.initiator", initiator)
        if ending == "failure" and error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()

    def go_away(self, time_left: float) -> None:
        if self._connection is not None:
            self._connection.add_event("goaway", {"liveactors.goaway.time_left": time_left})

    # -- turns --------------------------------------------------------------------------------

    def frame(self, events: Sequence[ev.Event]) -> None:
        if self._turn is not None:
            return
        for event in events:
            if type(event) in _TURN_EVENTS:
                self._start_turn(event.turn)
                return

    def _start_turn(self, number: int) -> _Turn:
        context = (
            self._connection_context if self._connection is not None else self._conversation_context
        )
        span = self._start("liveactors.turn", context, {"liveactors.turn.number": number})
        self._turn = _Turn(span, number)
        return self._turn

    def _end_turn(self, *, reason: str | None, interrupted: bool) -> None:
        turn = self._turn
        if turn is not None:
            self._turn = None
            turn.end(reason=reason, interrupted=interrupted)

    def usage(self, metadata: types.UsageMetadata) -> None:
        turn = self._turn
        if turn is None:
            return
        turn.usage(metadata)

    def turn_complete(self, event: ev.TurnComplete) -> None:
        if self._turn is None:
            self._start_turn(event.turn)
        self._end_turn(reason=event.reason, interrupted=event.interrupted)

    # -- tool calls ---------------------------------------------------------------------------

    def tool_started(self, call: types.FunctionCall) -> object:
        if self._turn is not None:
            context = _trace.set_span_in_context(self._turn.span)
        elif self._connection is not None:
            context = self._connection_context
        else:
            context = self._conversation_context
        name = call.name or ""
        return self._start(
            f"execute_tool {name}",
            context,
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": name,
                "gen_ai.tool.type": "function",
                "gen_ai.tool.call.id": call.id or "",
            },
        )

    def tool_joined(self, span: object, call_id: str) -> None:
        assert isinstance(span, Span)
        span.add_event("asked_again", {"gen_ai.tool.call.id": call_id})

    def tool_active(self, span: object) -> _ActiveSpan:
        assert isinstance(span, Span)
        return _ActiveSpan(span)

    def tool_finished(self, span: object, outcome: str, error: BaseException | None) -> None:
        assert isinstance(span, Span)
        span.set_attribute("liveactors.tool_call.outcome", outcome)
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()


class _ActiveSpan:
    """Makes a span the current one in this task's context (trio: each task has its own)."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: Span) -> None:
        self._span = span
        self._token: object = None

    def __enter__(self) -> None:
        self._token = _context.attach(_trace.set_span_in_context(self._span))

    def __exit__(self, *exc: object) -> None:
        _context.detach(self._token)  # type: ignore[arg-type]
