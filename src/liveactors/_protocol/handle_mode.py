"""How the service issues resumption handles, a value the ledger learns at run time (see
"Session resumption" in docs/protocol.md)."""

from __future__ import annotations

import enum

__all__ = ["HandleMode"]


class HandleMode(enum.Enum):
    """How the service issues resumption handles (learned at run time)."""

    UNKNOWN = "unknown"
    PER_TURN = "per_turn"
    ONCE = "once"
    TRANSPARENT = "transparent"
