"""The input ledger's state as its parts in other modules see it: the fields and helpers of
:class:`~liveactors._protocol.ledger.InputLedger`, declared for the type checker, so that
:mod:`~liveactors._protocol.ledger_resume` and :mod:`~liveactors._protocol.ledger_adopt` can be
mixins of it."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .exchange import Exchange
from .handle_mode import HandleMode
from .media_window import MediaWindow

__all__ = ["LedgerState"]


class LedgerState:
    """Declarations only: InputLedger defines every name here (see its fields)."""

    mode: HandleMode
    exchanges: deque[Exchange]
    transcript: deque[dict[str, Any]]
    _position: int
    _answered_upto: int
    _handles_this_connection: int
    _idle_end_without_update: bool
    _index_positions: dict[int, int]
    _restore_pending: int | None
    _seed: list[dict[str, Any]]
    _media: MediaWindow
    _waiting: deque[Exchange]

    if TYPE_CHECKING:
        #: ``sent(message, index, now, tag)``: record an input message just sent.
        sent: Callable[[dict[str, Any], int | None, float, str | None], Exchange | None]

        def _next_position(self, index: int | None) -> int: ...

        def _remember(self, content: dict[str, Any]) -> None: ...

    else:
        # No slots of its own, so InputLedger stays slotted (hidden from mypy, which would
        # take it for the whole slot list and refuse the fields above).
        __slots__ = ()
