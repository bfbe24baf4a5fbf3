"""A conversation's record as the ADOPT script returns it to a new owner, parsed: the config,
where the conversation stands (``seq``, ``turn``, handle mode), the handle, the input no
handle covers, the answers of exchanges no handle covers, and the covered history.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from google.genai import types

from .._protocol.ledger import HandleMode
from ._commands import Command, decode_command

__all__ = ["Record"]

log = logging.getLogger("liveactors.cluster")


class Record:
    """What :data:`~._scripts.ADOPT` returned, parsed."""

    def __init__(self) -> None:
        self.config: types.LiveConnectConfig | None = None
        self.seq = 0
        self.turn = 1
        self.turn_open = False
        self.started = False
        self.mode = HandleMode.UNKNOWN
        self.handle: str | None = None
        self.inputs: list[tuple[str, Command]] = []
        self.answered: dict[str, list[str]] = {}
        self.seen: set[str] = set()
        self.transcript: list[dict[str, Any]] = []

    @classmethod
    def parse(cls, reply: list[Any]) -> Record:
        out = cls()
        meta = _pairs(reply[1])
        config = meta.get("config")
        if config:
            out.config = types.LiveConnectConfig.model_validate(json.loads(config))
        out.seq = int(meta.get("seq", 0))
        out.turn = int(meta.get("turn", 1))
        out.turn_open = meta.get("open") == "1"
        out.started = meta.get("started") == "1"
        out.mode = HandleMode(meta.get("mode", "unknown"))
        for entry_id, fields in reply[2]:
            values = _pairs(fields)
            try:
                out.inputs.append((entry_id, decode_command(values["c"])))
            except (KeyError, ValueError) as exc:
                log.error("skipped input %s: %s", entry_id, exc)
        for field, value in _pairs(reply[3]).items():
            if field.startswith("a:"):
                out.answered[field[2:]] = [value] if value else []
            elif field.startswith("s:"):
                out.seen.add(field[2:])
        handle = reply[4][0] if reply[4] else None
        out.handle = handle or None
        out.transcript = [json.loads(entry) for entry in reply[5]]
        return out


def _pairs(flat: Any) -> dict[str, Any]:
    if isinstance(flat, dict):
        return dict(flat)
    items = list(flat)
    return dict(zip(items[::2], items[1::2], strict=True))
