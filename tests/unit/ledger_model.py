"""A small model of the Live service's session state, and a driver that feeds an
``InputLedger`` the way the supervisor does (same call order), for scenario and stateful tests.

The model server (text only) keeps a session *history* of ``(role, text)`` entries. A
``clientContent`` with ``turnComplete`` appends the user's turn and queues a question; the server
answers queued questions one at a time in chunks, then ``turnComplete``. History messages
(``turnComplete`` false) are appended as they are. Handle modes (docs/protocol.md, "Handle modes"):

* ``per_turn``: a handle after setup and after every turn at idle, ``{}`` when a generation
  starts; each handle is a snapshot of the state.
* ``once``: one handle per connection, right after setup; it points at the live session, so
  resuming restores the session as it was when the connection ended. A turn cut by the drop
  waits for ``clientContent{turnComplete:true}`` and is then generated again from its start.
* ``transparent``: ``per_turn`` plus ``lastConsumedClientMessageIndex`` (setup = 0, +1 per client
  message, restarting per connection), and an update after a non-trigger message at idle.

The driver keeps what the supervisor keeps: the latest resumable handle, the per-connection
client index, messages in flight (sent but not yet read by the server; a drop loses them), and
input held during a GoAway handoff.
"""

from __future__ import annotations

import itertools
from collections import Counter, deque
from typing import Any, Literal

import attrs

from liveactors._protocol import encode
from liveactors._protocol.ledger import InputLedger, ResumePlan

Mode = Literal["per_turn", "once", "transparent"]

#: ("output", text) | ("turn_complete",) | ("update", handle | None, resumable, index | None)
Event = tuple[Any, ...]


def answer_chunks(question: str) -> list[str]:
    return [f"A({question}", ")"]


def answer(question: str) -> str:
    return "".join(answer_chunks(question))


def ask(question: str) -> dict[str, Any]:
    return encode.client_content(question)


def _text(turn: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in turn.get("parts", ()))


class Expired(Exception):
    """The handle is unknown (1008 session not found)."""


@attrs.define
class State:
    history: list[tuple[str, str]] = attrs.field(factory=list)
    #: Questions consumed and waiting for their turn.
    queue: list[str] = attrs.field(factory=list)
    current: str | None = None
    progress: int = 0
    #: once mode: the turn in progress was cut; it waits for a prompt to continue.
    needs_prompt: bool = False

    def copy(self) -> State:
        return attrs.evolve(self, history=list(self.history), queue=list(self.queue))

    def user_entries(self) -> list[str]:
        return [text for role, text in self.history if role == "user"]

    def model_entries(self) -> list[str]:
        return [text for role, text in self.history if role == "model"]


class ModelServer:
    def __init__(self, mode: Mode, *, busy_update: bool = True) -> None:
        self.mode = mode
        #: Send ``{}`` when a generation starts (False: say nothing while busy).
        self.busy_update = busy_update
        self.handles: dict[str, State] = {}
        self.state: State | None = None
        #: Client index on the current connection (setup = 0).
        self.index = 0
        self._ids = itertools.count(1)
        #: A ``turnComplete:true`` with no turns arrived with nothing to continue.
        self.spurious_prompts = 0

    @property
    def idle(self) -> bool:
        st = self.state
        return st is not None and st.current is None and not st.queue and not st.needs_prompt

    def connect(self, handle: str | None) -> list[Event]:
        if handle is None:
            state = State()
        else:
            if handle not in self.handles:
                raise Expired(handle)
            saved = self.handles[handle]
            state = saved if self.mode == "once" else saved.copy()
        self.state = state
        self.index = 0
        return [self._update()]

    def _update(self) -> Event:
        assert self.state is not None
        handle = f"h{next(self._ids)}"
        self.handles[handle] = self.state if self.mode == "once" else self.state.copy()
        index = self.index if self.mode == "transparent" and self.index else None
        return ("update", handle, True, index)

    def drop(self) -> None:
        st = self.state
        if st is not None and self.mode == "once" and st.current is not None:
            st.needs_prompt = True
            st.progress = 0
        self.state = None

    def expire(self) -> None:
        self.handles.clear()

    def receive(self, message: dict[str, Any]) -> list[Event]:
        st = self.state
        assert st is not None
        self.index += 1
        content = message.get("clientContent")
        trigger = False
        if content is not None:
            turns = content.get("turns", [])
            trigger = bool(content.get("turnComplete"))
            for turn in turns:
                st.history.append((turn.get("role", "user"), _text(turn)))
            if trigger and turns:
                st.queue.append("".join(_text(t) for t in turns if t.get("role") == "user"))
            elif trigger:
                if st.needs_prompt:
                    st.needs_prompt = False
                else:
                    self.spurious_prompts += 1
        realtime = message.get("realtimeInput")
        if realtime is not None and realtime.get("text"):
            trigger = True
            st.history.append(("user", realtime["text"]))
            st.queue.append(realtime["text"])
        if self.mode == "transparent" and not trigger and self.idle:
            return [self._update()]
        return []

    def step(self) -> list[Event]:
        """Generate the next chunk of the current answer (starting the next one if idle)."""
        st = self.state
        out: list[Event] = []
        if st is None or st.needs_prompt:
            return out
        if st.current is None:
            if not st.queue:
                return out
            st.current = st.queue.pop(0)
            st.progress = 0
            if self.mode != "once" and self.busy_update:
                out.append(("update", None, False, None))
        chunks = answer_chunks(st.current)
        out.append(("output", chunks[st.progress]))
        st.progress += 1
        if st.progress == len(chunks):
            st.history.append(("model", answer(st.current)))
            st.current = None
            out.append(("turn_complete",))
            if self.mode != "once" and not st.queue:
                out.append(self._update())
        return out


class Driver:
    """Plays the supervisor's part between one ``InputLedger`` and one ``ModelServer``."""

    def __init__(self, server: ModelServer, *, transcript_limit: int = 400) -> None:
        self.server = server
        self.ledger = InputLedger(transcript_limit=transcript_limit)
        self.handle: str | None = None
        self.index = 0
        self.in_flight: deque[dict[str, Any]] = deque()
        self.turn_open = False
        self.going_away = False
        self.held: list[str] = []
        self.questions: list[str] = []
        #: How often the ledger reported each question answered, and with what text.
        self.answered: Counter[str] = Counter()
        self.answer_text: dict[str, str] = {}
        self.orphan_turns = 0
        self.plans: list[ResumePlan] = []
        self.connect()

    # -- the supervisor's connection loop -------------------------------------------------

    def connect(self, *, refused: int = 0) -> ResumePlan:
        """``_connection``: new_connection, plan, connect; ``refused`` attempts fail first."""
        while True:
            self.ledger.new_connection()
            plan = self.ledger.plan(have_handle=self.handle is not None)
            self.plans.append(plan)
            if refused:
                refused -= 1
                self.ledger.turn_lost()  # _recover after a failed attempt
                continue
            try:
                events = self.server.connect(self.handle if plan.resume else None)
            except Expired:
                self.handle = None  # HandleExpired: start fresh
                self.ledger.turn_lost()
                continue
            break
        self.index = 0
        self.turn_open = False
        self.going_away = False
        for message in plan.messages:
            self.index += 1
            self.in_flight.append(message)
        self.process(events)
        return plan

    def drop(self, *, refused: int = 0) -> ResumePlan:
        """The connection died (abrupt close): what was in flight is lost; reconnect."""
        self.in_flight.clear()
        self.server.drop()
        self.ledger.turn_lost()
        plan = self.connect(refused=refused)
        self.flush_held()
        return plan

    def go_away(self) -> None:
        self.going_away = True

    def handoff_ready(self) -> bool:
        return self.going_away and not self.turn_open and self.ledger.handoff_ready

    def handoff(self, *, deadline: bool = False) -> ResumePlan:
        """Close the old socket (what was sent reaches the server first) and resume: when
        the ledger says it is safe, or when the goAway's time is up (``deadline``)."""
        assert self.going_away
        assert deadline or self.handoff_ready()
        while self.in_flight:
            self.deliver()
        self.server.drop()
        if self.turn_open:
            self.ledger.turn_lost()  # a turn cut by the deadline is answered again
        plan = self.connect()
        self.flush_held()
        return plan

    # -- input ----------------------------------------------------------------------------

    def ask(self, question: str) -> None:
        self.questions.append(question)
        if self.going_away:
            self.held.append(question)
        else:
            self.send(ask(question))

    def send(self, message: dict[str, Any]) -> None:
        self.index += 1
        self.ledger.sent(message, self.index)
        self.in_flight.append(message)

    def flush_held(self) -> None:
        held, self.held = self.held, []
        for question in held:
            self.send(ask(question))

    # -- the service ----------------------------------------------------------------------

    def deliver(self) -> None:
        self.process(self.server.receive(self.in_flight.popleft()))

    def step(self) -> None:
        self.process(self.server.step())

    def process(self, events: list[Event]) -> None:
        ledger = self.ledger
        for event in events:
            if event[0] == "output":
                self.turn_open = True
                ledger.model_output(event[1])
            elif event[0] == "turn_complete":
                self.turn_open = False
                exchange = ledger.turn_complete()
                if exchange is None:
                    self.orphan_turns += 1
                else:
                    question = "".join(exchange.user_text)
                    self.answered[question] += 1
                    self.answer_text[question] = "".join(exchange.model_text)
            else:
                _, handle, resumable, index = event
                if resumable:
                    self.handle = handle
                ledger.resumption_update(resumable=resumable)
                if index is not None:
                    ledger.consumed_index(index)

    def settle(self, limit: int = 500) -> None:
        """Let the service read everything and answer everything (handoff if one is due)."""
        for _ in range(limit):
            if self.going_away and self.handoff_ready():
                self.handoff()
            elif self.in_flight:
                self.deliver()
            elif self.server.state is not None and not self.server.idle:
                self.step()
            elif self.going_away:
                self.handoff(deadline=True)  # nothing moves any more: the time runs out
            else:
                return
        raise AssertionError("the conversation did not settle")

    # -- what must hold -------------------------------------------------------------------

    def check_no_duplicate_input(self) -> None:
        st = self.server.state
        if st is None:
            return
        counts = Counter(st.user_entries())
        twice = sorted(q for q, n in counts.items() if n > 1)
        assert not twice, f"the service holds user input twice: {twice} in {st.history}"

    def check_settled(self) -> None:
        """Every question answered exactly once, in order, nothing lost, nothing doubled."""
        self.check_no_duplicate_input()
        st = self.server.state
        assert st is not None
        assert self.orphan_turns == 0
        assert self.server.spurious_prompts == 0, "asked to continue a turn that was not cut"
        for question in self.questions:
            assert self.answered[question] == 1, (question, dict(self.answered))
            assert self.answer_text[question] == answer(question), question
        assert st.user_entries() == self.questions, st.history
        assert st.model_entries() == [answer(q) for q in self.questions], st.history
        for question in self.questions:
            asked = st.history.index(("user", question))
            assert st.history.index(("model", answer(question))) > asked
        assert not any(e.triggered and not e.answered for e in self.ledger.exchanges)
