"""The input ledger's reconnect side: whether a handoff is safe now, and what a new connection
sends (resume, restore, replay); the theory is in :mod:`~liveactors._protocol.ledger`."""

from __future__ import annotations

from typing import Any

from .exchange import Exchange, Held, ResumePlan, history_message
from .handle_mode import HandleMode
from .ledger_state import LedgerState

__all__ = ["ResumePlanning"]


class ResumePlanning(LedgerState):
    """Plans the next connection from the ledger's exchanges, transcript and handle mode."""

    __slots__ = ()  # InputLedger is slotted

    @property
    def outstanding(self) -> bool:
        """Some question was sent and its answer has not completed yet."""
        return bool(self._waiting)

    @property
    def handoff_ready(self) -> bool:
        """Switching connections now loses and repeats nothing: every question was answered
        and (unless handles come once) covered by a handle. Open streamed input is fine: it is
        newer than the handle and is sent again."""
        if self.mode in (HandleMode.ONCE, HandleMode.TRANSPARENT):
            return not self._waiting
        # Only the newest exchange can be open (untriggered): nothing triggered is left when
        # there is none, or only that one.
        exchanges = self.exchanges
        return not exchanges or (len(exchanges) == 1 and not exchanges[0].triggered)

    def unanswered_input(self) -> list[dict[str, Any]]:
        """The input of every question sent whose answer never completed, in send order (what
        a conversation ending now leaves undelivered)."""
        return [m for e in self._waiting for m in e.messages]

    def new_connection(self) -> None:
        """A new connection starts: per-connection evidence and indices restart."""
        self._handles_this_connection = 0
        self._idle_end_without_update = False
        self._answered_upto = 0
        self._index_positions.clear()

    def plan(
        self, *, have_handle: bool, awaiting_tool: bool = False, reseed: bool = False
    ) -> ResumePlan:
        """What to send on the next connection (see :mod:`~liveactors._protocol.ledger`).
        Call after :meth:`new_connection`; the supervisor sends ``plan.messages`` first, in
        order, so they are numbered here as sent, with client indices 1, 2, ...

        ``awaiting_tool``: the cut turn waits on a blocking call the session keeps; its
        response, not a prompt to continue (which would barge in and cancel the call), resumes
        that turn.

        ``reseed``: a resumed session of this model may have lost the initial history it was
        seeded with (seen on the 3.8 generation), so a resume sends it again first, as history
        (``turnComplete`` false: the model takes it without answering).
        """
        seed = list(self._seed) if reseed else []
        outstanding = self.outstanding
        if not have_handle or self._restore_pending is not None:
            plan = self._plan_fresh()
        elif self.mode is HandleMode.ONCE:
            unanswered = list(self._waiting)
            if any(not e.output_seen for e in unanswered):
                plan = self._plan_fresh()
            else:
                history = self._restore([], seed)
                replay = self._replay([e for e in self.exchanges if not e.triggered])
                if unanswered and not awaiting_tool:
                    self._next_position(None)  # the prompt to continue
                prompt = bool(unanswered) and not awaiting_tool
                plan = ResumePlan(
                    resume=True, history=history, replay=replay, prompt_continue=prompt
                )
                plan = self._media.report(plan, [e for e in self.exchanges if not e.triggered])
        elif self.mode is HandleMode.UNKNOWN and (
            outstanding or any(e.answered for e in self.exchanges)
        ):
            # Cannot tell whether the handle already holds these questions or answers.
            plan = self._plan_fresh()
        else:
            answered = [e for e in self.exchanges if e.answered]
            history = self._restore(answered, seed)
            unanswered = [e for e in self.exchanges if not e.answered]
            replay = self._replay(unanswered)
            plan = ResumePlan(resume=True, history=history, replay=replay)
            plan = self._media.report(plan, unanswered)
        first = self._position - len(plan.messages)
        for index in range(1, len(plan.messages) + 1):
            self._index_positions[index] = first + index
        return plan

    def _plan_fresh(self) -> ResumePlan:
        answered = [e for e in self.exchanges if e.answered]
        history = self._restore(answered, list(self.transcript))
        self._restore_pending = self._position if history is not None else None
        unanswered = [e for e in self.exchanges if not e.answered]
        replay = self._replay(unanswered)
        return self._media.report(
            ResumePlan(resume=False, history=history, replay=replay), unanswered
        )

    def _restore(
        self, answered: list[Exchange], prefix: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        contents = prefix + [c for e in answered for c in e.contents()]
        if not contents:
            return None
        position = self._next_position(None)
        for exchange in answered:
            exchange.position = position
        return history_message(contents)

    def _replay(self, exchanges: list[Exchange]) -> tuple[dict[str, Any], ...]:
        out: list[dict[str, Any]] = []
        for exchange in exchanges:
            renumbered: dict[int, Held] = {}
            media = exchange.media
            position = None
            for _, item in exchange.entries():
                position = self._next_position(None)
                if isinstance(item, Held):
                    item.position = position
                    renumbered[position] = item
                    out.append(item.message)
                else:
                    assert media is not None
                    media.positions[item] = position
                    out.append(media.message(item))
            exchange.held = renumbered
            # The service transcribes the input again when it hears it again.
            exchange.input_transcript.clear()
            if exchange.triggered and position is not None:
                exchange.position = position
        return tuple(out)
