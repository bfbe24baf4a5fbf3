"""The cluster from any process (a web front end, a script): spawn, find, list and stop
conversations that workers run.

``spawn`` checks the config against the model as a local spawn would (``InvalidConfig`` before
anything is written), records the conversation, and offers it to the workers; it returns once
a worker has set up its first connection (or raises what failed it), like a local spawn.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
from google.genai import types

from .. import events as ev
from .._backend import DEFAULT_MODEL
from .._errors import AdmissionTimeout, ConversationStopped, InvalidCommand
from .._models import Platform, check_config
from .._protocol.setup import ConfigLike
from .._session_config import live_config
from . import _scripts
from ._keys import Keys
from ._redis import Redis
from ._remote import RemoteConversation
from ._target import RedisTarget

__all__ = ["ClusterClient", "open_client"]


class ClusterClient:
    """Spawns and finds conversations in the cluster (made by :func:`open_client`)."""

    def __init__(self, redis: Redis, *, model: str, platform: Platform) -> None:
        self.redis = redis
        self.keys = Keys(redis.target.prefix)
        self.model = model
        self.platform = platform

    def __repr__(self) -> str:
        return f"<ClusterClient {self.redis.target.url} prefix={self.keys.prefix!r}>"

    async def spawn(
        self, config: ConfigLike = None, *, name: str, ready_timeout: float | None = 60.0
    ) -> RemoteConversation:
        """Start a conversation called ``name`` on some worker; returns once its first
        connection is set up (:class:`~liveactors.AdmissionTimeout` after ``ready_timeout``
        seconds without one; the conversation stays queued for a worker).

        Safe to retry after :class:`ClusterUnavailable`: a conversation recorded with the same
        config and not taken by a worker yet is offered again, not refused as a duplicate."""
        if not isinstance(name, str) or not name:
            raise InvalidCommand(f"name must be a non-empty str, not {name!r}")
        stored = _config_json(config, self.model, self.platform)
        conv = RemoteConversation(self, name)
        keys = self.keys.conversation(name)
        created = await self.redis.script(f"create {name!r}", _scripts.SPAWN, keys.all(), [stored])
        if not created:
            raise InvalidCommand(f"a conversation named {name!r} is running in the cluster")
        what = f"offer {name!r} to the workers"
        # NX: a retried spawn must not reset the lease of a worker that claimed it meanwhile.
        await self.redis.zadd(what, self.keys.leases, {name: 0}, nx=True)
        await self.redis.publish(what, self.keys.wake, name)
        if ready_timeout is None:
            return conv
        with trio.move_on_after(ready_timeout) as waited:
            async with conv.subscribe(from_seq=1) as sub:
                async for event in sub:
                    if isinstance(event, ev.Connected):
                        return conv
                    if isinstance(event, ev.ConversationFailed):
                        raise event.error
                raise ConversationStopped(f"conversation {name!r} ended before it was set up")
        if waited.cancelled_caught:
            raise AdmissionTimeout(
                f"no worker set up {name!r} within {ready_timeout:g}s (it stays queued)"
            )
        return conv

    def get(self, name: str) -> RemoteConversation:
        """A handle on the conversation ``name`` (its commands raise if the cluster does not
        know it)."""
        return RemoteConversation(self, name)

    async def conversations(self) -> list[str]:
        """The names of the conversations the cluster runs or queues now."""
        return sorted(await self.redis.zrange("list the conversations", self.keys.leases))

    async def stop(self, name: str, *, grace: float = 5.0) -> None:
        """Stop ``name`` (see :meth:`RemoteConversation.stop`)."""
        await self.get(name).stop(grace=grace)

    async def config_of(self, name: str) -> types.LiveConnectConfig:
        """The config ``name`` was spawned with."""
        raw = await self.redis.hget(
            f"read the config of {name!r}", self.keys.conversation(name).meta, "config"
        )
        if raw is None:
            raise KeyError(f"no conversation named {name!r} in the cluster")
        return types.LiveConnectConfig.model_validate(json.loads(raw))


def _config_json(config: ConfigLike, model: str, platform: Platform) -> str:
    """The config as stored: what the user gave (fields they set, ``None`` opt-outs
    included), checked as a local spawn checks it."""
    if config is None:
        cfg = types.LiveConnectConfig()
    elif isinstance(config, types.LiveConnectConfig):
        cfg = config
    else:
        try:
            cfg = types.LiveConnectConfig.model_validate(config)
        except Exception as exc:
            raise InvalidCommand(f"config is not a LiveConnectConfig: {exc}") from None
    effective, _ = live_config(cfg, model=model)
    check_config(model, effective, platform=platform)
    return json.dumps(cfg.model_dump(mode="json", exclude_unset=True))


@asynccontextmanager
async def open_client(
    redis_url: str,
    *,
    prefix: str = "liveactors",
    model: str = DEFAULT_MODEL,
    vertex: bool = False,
    timeout: float = 10.0,  # noqa: ASYNC109 - per Redis reply, not for the block
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[ClusterClient]:
    """A client of the cluster under ``prefix`` for the ``async with`` (enter and leave it in
    one task). ``model`` (and ``vertex``: the workers run on Vertex AI) are what the workers
    run: configs are checked against them."""
    target = RedisTarget(redis_url, prefix=prefix, timeout=timeout, ssl_context=ssl_context)
    async with target.open() as redis:
        platform = Platform.VERTEX if vertex else Platform.DEVELOPER
        yield ClusterClient(redis, model=model, platform=platform)
