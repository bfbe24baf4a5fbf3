"""A faithful fake Gemini Live API server, for tests, examples, benchmarks and users' own tests.

::

    async with open_fake_server(listen=False) as server:          # in-memory only
        backend = server.backend()                                 # gemini-3.8-live
        ...
        assert server.log.answer_counts() == {"Hello": 1}

It speaks the ``BidiGenerateContent`` WebSocket protocol as the real service does (see
``docs/fake-server.md``), plays the current model generation (``model_profile="3.8"``; known
models as the library's model table says, older generations on request), answers with a
scriptable deterministic model (``echo #n: ...`` by default), keeps resumable sessions, enforces
the service's limits, logs everything, and misbehaves on request through ``server.faults``.
"""

from ._faults import Fault, Faults
from ._log import ClientMessage, ConnectionRecord, Note, ServerLog, ServerMessage, TurnRecord
from ._model import (
    CallTool,
    CloseConnection,
    DropConnection,
    EndGate,
    Hold,
    Pause,
    Reply,
    Responder,
    Say,
    SendMessage,
    SendPart,
    Step,
    TurnContext,
    WaitForInput,
    echo_responder,
)
from ._options import TEST_API_KEY, TEST_AUTH_TOKEN, ServerOptions
from ._resumption import Session
from ._server import FakeServer, StaticToken, open_fake_server
from ._state import SessionState

__all__ = [
    "TEST_API_KEY",
    "TEST_AUTH_TOKEN",
    "CallTool",
    "ClientMessage",
    "CloseConnection",
    "ConnectionRecord",
    "DropConnection",
    "EndGate",
    "FakeServer",
    "Fault",
    "Faults",
    "Hold",
    "Note",
    "Pause",
    "Reply",
    "Responder",
    "Say",
    "SendMessage",
    "SendPart",
    "ServerLog",
    "ServerMessage",
    "ServerOptions",
    "Session",
    "SessionState",
    "StaticToken",
    "Step",
    "TurnContext",
    "TurnRecord",
    "WaitForInput",
    "echo_responder",
    "open_fake_server",
]
