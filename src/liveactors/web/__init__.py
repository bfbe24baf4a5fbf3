"""liveactors in a web service: a WebSocket endpoint that bridges a browser to a conversation.

One socket, one conversation: binary frames carry 16 kHz PCM16 in and 24 kHz PCM16 out, text
frames carry JSON (commands in; events, by class name, out). It is a Starlette route running in
the orchestrator's own trio loop under Hypercorn's trio worker::

    async with liveactors.open_orchestrator(backend) as orch:
        await liveactors.web.serve(liveactors.web.app(orch), "127.0.0.1", 8000)

:func:`live_endpoint` is the route alone (mount it in your own Starlette app); :func:`app` adds
the voice-chat page at ``/``. The protocol, backpressure, reconnects and security notes are in
docs/web.md. Needs the ``web`` extra: ``pip install 'liveactors[web]'``.
"""

try:
    import hypercorn as _hypercorn  # noqa: F401
    import starlette as _starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "liveactors.web needs Starlette and Hypercorn: pip install 'liveactors[web]'"
    ) from exc

from ._app import app
from ._endpoint import LiveEndpoint, live_endpoint
from ._guard import Reject
from ._options import Authorize
from ._outbox import OutboxStatistics
from ._serve import hypercorn_config, serve

__all__ = [
    "Authorize",
    "LiveEndpoint",
    "OutboxStatistics",
    "Reject",
    "app",
    "hypercorn_config",
    "live_endpoint",
    "serve",
]
