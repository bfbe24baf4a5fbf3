"""What every connection of one fake server shares: options, log, faults, sessions, id counters."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from .._models import base_name
from ._faults import Faults
from ._log import ServerLog
from ._model import Responder, echo_responder
from ._options import ServerOptions
from ._resumption import SessionRegistry

if TYPE_CHECKING:
    from ._session import Connection

__all__ = ["ServerCore"]


class ServerCore:
    """The state of one server, handed to each connection it accepts."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.log = ServerLog(
            record_client_messages=options.record_client_messages,
            record_server_messages=options.record_server_messages,
        )
        self.faults = Faults()
        self.registry = SessionRegistry(options.scaled(options.handle_validity))
        self.responder: Responder = options.responder or echo_responder
        #: Open connections by id.
        self.open: dict[int, Connection] = {}
        #: Server messages sent, over all connections (benchmarks read it).
        self.messages_sent = 0
        #: Dropped BLOCKING calls re-issued so far (spreads their delays deterministically).
        self.reissues = 0
        self._connection_ids = itertools.count(1)
        self._call_ids = itertools.count(1)
        self._models = (
            None if options.models is None else frozenset(base_name(m) for m in options.models)
        )

    def next_connection_id(self) -> int:
        return next(self._connection_ids)

    def next_call_id(self) -> str:
        """A fresh, opaque function-call id."""
        return f"fc-{next(self._call_ids)}"

    def model_served(self, name: str) -> bool:
        """Whether this server serves the model ``name`` (bare) at all (the ``models`` option)."""
        return self._models is None or name in self._models
