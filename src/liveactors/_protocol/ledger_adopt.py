"""The input ledger's durable side, for a cluster worker's journal: how far back its input is
still needed, and taking over a conversation another process ran."""

from __future__ import annotations

from typing import Any

from .handle_mode import HandleMode
from .ledger_state import LedgerState

__all__ = ["DurableInput"]


class DurableInput(LedgerState):
    """Journal support: the oldest input a replay still needs, and adopting journaled input."""

    __slots__ = ()  # InputLedger is slotted

    def earliest_held_tag(self) -> str | None:
        """The tag of the oldest input still held for a replay: every tagged input sent before
        it is covered by the latest handle, trimmed by the replay window, or a tool response,
        so none of it is ever sent again."""
        for exchange in self.exchanges:
            for _, item in exchange.entries():
                tag = exchange.tag_of(item)
                if tag is not None:
                    return tag
        return None

    def adopt(
        self,
        inputs: list[tuple[str, dict[str, Any], float]],
        answered: dict[str, list[str]],
        seen: set[str],
        mode: HandleMode,
        transcript: list[dict[str, Any]],
    ) -> None:
        """Take over a conversation another process ran: ``inputs`` (tag, message, send time)
        is its input that no handle covers, in order, as if sent on an earlier connection;
        ``answered`` maps the tag that ended an answered exchange to the model's answer text,
        ``seen`` holds the tags of exchanges whose answer had begun, ``mode`` is how its handles
        came and ``transcript`` its covered history. The next :meth:`plan` then resumes,
        restores and replays exactly as after a reconnect in one process."""
        self.mode = mode
        for content in transcript:
            self._remember(content)
        for tag, message, sent_at in inputs:
            exchange = self.sent(message, None, sent_at, tag)
            if exchange is None:
                continue
            if tag in answered:
                exchange.triggered = True
                exchange.answered = True
                exchange.output_seen = True
                exchange.model_text = list(answered[tag])
                if exchange in self._waiting:
                    self._waiting.remove(exchange)
            elif tag in seen:
                exchange.output_seen = True
