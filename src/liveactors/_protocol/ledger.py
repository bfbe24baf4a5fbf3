"""What the service has of our input, and what to send again after a reconnect (sans-IO).

Theory of operation. Client input is grouped into *exchanges*: the messages up to and including
a *trigger* (``clientContent`` with ``turnComplete``, realtime text, ``audioStreamEnd``,
``activityEnd``) and the model turn that answers them. An exchange is:

* **open** until its trigger is sent (streamed audio stays open until server-side VAD answers
  it, which closes it);
* **answered** once the turn answering it completed (a lost connection does not count);
* **covered** once a resumption handle includes it; covered exchanges move to the transcript.

Every message gets a *position* in send order (renumbered when sent again). How a handle covers
input depends on how the service issues handles, which the ledger learns at run time (see
"Session resumption" in docs/protocol.md):

* ``PER_TURN``: a fresh handle at each idle point covers everything sent up to the last trigger
  whose turn completed on this connection before the handle arrived.
* ``ONCE``: one handle per connection restores the session as it was when the connection ended,
  so every answered exchange is covered.
* ``TRANSPARENT``: the service names the last consumed client index (Vertex).

After a reconnect the ledger plans what to send (:meth:`InputLedger.plan`): answered but
uncovered exchanges go back as history (``clientContent`` with ``turnComplete: false``) so the
model is not asked twice; unanswered input is sent again, in order. When the mode cannot tell
whether input was consumed, the plan is a fresh session that restores the transcript: a guess
would either lose or double a turn. Tool responses are never replayed: they answer the call ids
of one generation, and a regenerated turn asks again.

Bounded replay: realtime media older than ``replay_window`` is trimmed from the replay buffer
(:mod:`~liveactors._protocol.media_window`). Work per chunk or per event is O(1): the exchanges
waiting for an answer are kept in a queue of their own.

Where the parts live: the plan after a reconnect in :mod:`~liveactors._protocol.ledger_resume`,
the durable input of a cluster worker's journal in :mod:`~liveactors._protocol.ledger_adopt`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import attrs

from .exchange import (
    Exchange,
    Held,
    ResumePlan,
    history_message,
    is_end_marker,
    is_media,
    is_trigger,
    user_text,
)
from .handle_mode import HandleMode
from .ledger_adopt import DurableInput
from .ledger_resume import ResumePlanning
from .media_window import MediaWindow

__all__ = ["Exchange", "HandleMode", "InputLedger", "ResumePlan", "history_message", "is_trigger"]


@attrs.define
class InputLedger(ResumePlanning, DurableInput):
    """Tracks input from send to coverage by a handle, and the transcript behind it."""

    #: Most history entries kept in the transcript; older ones are forgotten, as the service's
    #: context-window compression forgets them too.
    transcript_limit: int = 400
    #: Realtime media sent this many seconds before the newest is trimmed from the replay
    #: buffer (``math.inf``: never).
    replay_window: float = 15.0
    mode: HandleMode = HandleMode.UNKNOWN
    exchanges: deque[Exchange] = attrs.field(factory=deque)
    transcript: deque[dict[str, Any]] = attrs.field(factory=deque, repr=False)
    _position: int = 0
    _numbers: int = 0
    #: Position of the last exchange answered on the current connection.
    _answered_upto: int = 0
    _handles_this_connection: int = 0
    #: A turn ended with the service idle (nothing asked, no call running) on this connection,
    #: and no resumption update has come since.
    _idle_end_without_update: bool = False
    #: Client index on the current connection -> position (transparent mode).
    _index_positions: dict[int, int] = attrs.field(factory=dict, repr=False)
    #: Model text of a turn nobody's input asked for (proactive audio, a tool result).
    _orphan_text: list[str] = attrs.field(factory=list, repr=False)
    #: Position of a transcript restored into a fresh session that no handle covers yet; until
    #: one does, a reconnect must restore it again.
    _restore_pending: int | None = None
    #: The initial history the conversation was seeded with, for models whose resumed session
    #: may have lost it (see :meth:`plan`).
    _seed: list[dict[str, Any]] = attrs.field(factory=list, repr=False)
    #: Tag of the latest input sent with one (see :meth:`sent`).
    last_sent_tag: str | None = None
    #: Entries ever added to the transcript (it keeps only the newest ``transcript_limit``).
    remembered: int = 0
    #: Keep :attr:`answered_log` and :attr:`seen_log` (a cluster worker's journal drains them).
    journaling: bool = False
    #: Exchanges answered since the journal last looked, in order.
    answered_log: list[Exchange] = attrs.field(factory=list, repr=False)
    #: Exchanges whose answer began since the journal last looked.
    seen_log: list[Exchange] = attrs.field(factory=list, repr=False)
    #: Held media, oldest first: what the replay window trims.
    _media: MediaWindow = attrs.field(factory=MediaWindow, repr=False)
    #: Exchanges triggered and not answered yet, oldest first: the first is being answered.
    _waiting: deque[Exchange] = attrs.field(factory=deque, repr=False)

    # -- sending ------------------------------------------------------------------------------

    def sent(
        self,
        message: dict[str, Any],
        index: int | None = None,
        now: float = 0.0,
        tag: str | None = None,
    ) -> Exchange | None:
        """Record an input message just sent, with its client ``index`` on this connection and
        the time ``now`` (the caller's clock; only differences matter). ``tag`` is the caller's
        name for it, kept with it (see :meth:`earliest_held_tag`).

        Returns the exchange it joined; tool responses join none.
        """
        if tag is not None:
            self.last_sent_tag = tag
        if "toolResponse" in message:
            return None
        position = self._next_position(index)
        open_exchange = bool(self.exchanges) and not self.exchanges[-1].triggered
        if not open_exchange and is_end_marker(message):
            # Server-side VAD already answered the stream this marker ends: it asks nothing.
            return None
        if open_exchange:
            exchange = self.exchanges[-1]
        else:
            self._numbers += 1
            exchange = Exchange(self._numbers)
            self.exchanges.append(exchange)
        if tag is not None:
            exchange.last_tag = tag
        if is_media(message):
            # Held compactly, apart from the other input (a media chunk is never a trigger
            # and carries no text).
            self._media.hold(exchange, position, message, now, tag, self.replay_window)
            return exchange
        exchange.held[position] = Held(position, message, now, tag)
        text = user_text(message)
        if text:
            exchange.user_text.append(text)
        if is_trigger(message):
            exchange.triggered = True
            exchange.position = position
            self._waiting.append(exchange)
        return exchange

    def _next_position(self, index: int | None) -> int:
        self._position += 1
        if index is not None:
            self._index_positions[index] = self._position
        return self._position

    def seeded(self, message: dict[str, Any]) -> None:
        """Initial history (``historyConfig.initialHistoryInClientContent``): the service takes
        it without answering, so it is the start of the transcript, not a question."""
        self._next_position(None)
        content = message.get("clientContent", {})
        for turn in content.get("turns", ()):
            self._remember(turn)
            if len(self._seed) < self.transcript_limit:
                self._seed.append(turn)

    # -- what the service said ----------------------------------------------------------------

    def answering(self) -> Exchange | None:
        """The exchange the model is answering now: the oldest unanswered triggered one, else
        the open one (server-side VAD answers streamed audio without a trigger)."""
        if self._waiting:
            return self._waiting[0]
        last = self.exchanges[-1] if self.exchanges else None
        if last is not None and not last.triggered and last.has_input:
            return last
        return None

    def model_output(self, text: str = "") -> None:
        """Model output (text or transcript) of the turn in progress."""
        self._once_evidence()
        exchange = self.answering()
        if exchange is None:
            if text:
                self._orphan_text.append(text)
            return
        if not exchange.output_seen and self.journaling:
            self.seen_log.append(exchange)
        exchange.output_seen = True
        if text:
            exchange.model_text.append(text)

    def input_transcript(self, text: str) -> None:
        """Transcript of the user's speech, kept for history restore."""
        exchange = self.answering()
        if exchange is not None:
            exchange.input_transcript.append(text)

    def turn_complete(self, *, calls_running: bool = False) -> Exchange | None:
        """The model's turn completed (a barge-in counts); returns the exchange it answered
        (None for a turn no input asked for).

        ``calls_running``: function calls are still executing (NON_BLOCKING ones), so the
        service is not idle and a per-turn service would send no handle yet.
        """
        exchange = self.answering()
        orphan = exchange is None
        if self._waiting and exchange is self._waiting[0]:
            self._waiting.popleft()
        if exchange is None:
            # A turn nobody's input asked for (proactive audio, a NON_BLOCKING result): it
            # joins the exchanges in order, already answered, so history keeps its place.
            self._numbers += 1
            exchange = Exchange(self._numbers, triggered=True, position=self._position)
            exchange.model_text = self._orphan_text
            self._orphan_text = []
            if self.exchanges and not self.exchanges[-1].triggered:
                self.exchanges.insert(len(self.exchanges) - 1, exchange)
            else:
                self.exchanges.append(exchange)
        elif not exchange.triggered:
            # Server-side VAD ended this turn: later input starts a new exchange.
            exchange.triggered = True
            last = exchange.last_position
            assert last is not None
            exchange.position = last
        exchange.answered = True
        exchange.output_seen = True
        if self.journaling and not orphan:
            self.answered_log.append(exchange)
        self._answered_upto = max(self._answered_upto, exchange.position)
        # Once-mode evidence: a per-turn service sends a handle whenever it goes idle after a
        # turn, so two turns in a row with no update between them, the first ending idle,
        # mean one handle per connection. (A single idle end is no proof: the handle may just
        # be late, e.g. behind a goAway.)
        if self._idle_end_without_update and self._handles_this_connection:
            self._learn(HandleMode.ONCE)
        self._idle_end_without_update = not calls_running and not self.outstanding
        if self.mode is HandleMode.ONCE:
            self._cover(lambda e: e.answered)
            self._restore_pending = None
        return None if orphan else exchange

    def go_away(self) -> None:
        """A ``goAway`` arrived: after an idle turn end with no resumable update since, it
        shows that this service issues one handle per connection."""
        self._once_evidence()

    def _once_evidence(self) -> None:
        # A per-turn service sends a resumable update at every idle point, before anything
        # else; a turn that ended idle followed by more output or a goAway, with none between,
        # means one handle per connection. Learned once, it is kept across reconnects.
        if self._idle_end_without_update and self._handles_this_connection:
            self._learn(HandleMode.ONCE)
            self._idle_end_without_update = False

    def turn_lost(self) -> None:
        """The connection died mid-turn: the partial answer will be regenerated."""
        exchange = self.answering()
        if exchange is not None:
            exchange.model_text.clear()
        self._orphan_text.clear()

    def resumption_update(self, *, resumable: bool) -> None:
        """A ``sessionResumptionUpdate`` arrived on the current connection."""
        if not resumable:
            # The 3.x service sends updates unasked, some without a handle: they are no
            # evidence of how handles are issued.
            return
        self._idle_end_without_update = False
        self._handles_this_connection += 1
        if self._handles_this_connection >= 2:
            self._learn(HandleMode.PER_TURN)
        if self.mode is HandleMode.ONCE:
            self._cover(lambda e: e.answered)
        elif self.mode is not HandleMode.TRANSPARENT:
            upto = self._answered_upto
            self._cover(lambda e: e.answered and e.position <= upto)
            if self._restore_pending is not None and upto > self._restore_pending:
                self._restore_pending = None

    def consumed_index(self, index: int) -> None:
        """Transparent resumption: the service consumed client messages up to ``index``."""
        self._learn(HandleMode.TRANSPARENT)
        position = max((p for i, p in self._index_positions.items() if i <= index), default=0)
        if self._restore_pending is not None and position >= self._restore_pending:
            self._restore_pending = None
        for exchange in self.exchanges:
            if exchange.position <= position and exchange.answered:
                _release(exchange)
                continue
            first = exchange.first_position
            if first is not None and first <= position:
                exchange.held = {p: h for p, h in exchange.held.items() if p > position}
                if exchange.media:
                    exchange.media.drop_upto(position)
        self._cover(lambda e: e.answered and not e.has_input)

    def _learn(self, mode: HandleMode) -> None:
        # Two resumable updates on one connection are proof of per-turn handles and correct
        # an earlier once guess; a consumed index is proof of transparent mode.
        if (
            self.mode is HandleMode.UNKNOWN
            or mode is HandleMode.TRANSPARENT
            or (mode is HandleMode.PER_TURN and self.mode is HandleMode.ONCE)
        ):
            self.mode = mode

    def _cover(self, covered: Callable[[Exchange], bool]) -> None:
        """Move leading covered exchanges into the transcript, keeping order."""
        while self.exchanges and covered(self.exchanges[0]):
            exchange = self.exchanges.popleft()
            # Never sent again. Its media ages out of the replay window as before rather than
            # going at once: what the conversation holds stays as steady as the stream.
            exchange.held.clear()
            if exchange.media is not None:
                exchange.media.retired = True
            for content in exchange.contents():
                self._remember(content)

    def _remember(self, content: dict[str, Any]) -> None:
        self.remembered += 1
        self.transcript.append(content)
        while len(self.transcript) > self.transcript_limit:
            self.transcript.popleft()

    @property
    def trimmed(self) -> int:
        """Media chunks trimmed so far (older than the replay window)."""
        return self._media.trimmed


def _release(exchange: Exchange) -> None:
    """``exchange`` holds nothing for a replay any more."""
    exchange.held.clear()
    if exchange.media is not None:
        exchange.media.clear()
