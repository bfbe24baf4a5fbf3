"""``serve``: Hypercorn's trio worker, in the caller's trio loop (the orchestrator's)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import cast

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.typing import ASGIFramework
from starlette.applications import Starlette

from ._options import DEFAULT_MAX_MESSAGE_BYTES

__all__ = ["hypercorn_config", "serve"]


def hypercorn_config(
    host: str = "127.0.0.1", port: int = 8000, *, max_message_bytes: int | None = None
) -> Config:
    """A Hypercorn config for a live app: listen on ``host:port`` (0: a free port), refuse
    frames over ``max_message_bytes`` already while reading them (1009), no access log."""
    config = Config()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    config.bind = [f"{host}:{port}"]
    config.websocket_max_message_size = max_message_bytes or DEFAULT_MAX_MESSAGE_BYTES
    config.accesslog = None
    config.graceful_timeout = 2.0
    return config


async def serve(
    app: Starlette,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` (from :func:`~liveactors.web.app`) with Hypercorn on trio until
    ``shutdown_trigger`` returns (or the task is cancelled). ``nursery.start(serve, ...)``
    returns the URLs it listens on (``["http://127.0.0.1:PORT"]``), so port 0 works."""
    live = getattr(app.state, "live", None)
    limit = live.options.max_message_bytes if live is not None else None
    config = hypercorn_config(host, port, max_message_bytes=limit)
    # Starlette's ASGI types are looser than Hypercorn's; the app is an ASGI 3 app all the same.
    framework = cast(ASGIFramework, app)
    await hypercorn_serve(
        framework, config, shutdown_trigger=shutdown_trigger, task_status=task_status
    )
