"""Resumption handles in Redis or Valkey, shared by every process that spawns conversations.

One hash per conversation, ``<prefix>:{<name>}:handle`` with the fields ``h`` (the handle) and
``t`` (when it was saved, seconds since the epoch), expiring ``validity`` seconds after the
write. The name sits in a ``{...}`` hash tag, so every key of a conversation falls in one slot
of a Redis Cluster (``%``, ``{`` and ``}`` in a name are percent-encoded so that the tag is
always the whole name).

Newest wins, atomically: a write is a Lua script that compares its time with the stored one
and leaves a newer handle alone (no read-modify-write across round trips, so two processes
saving the same name at once cannot interleave). A delete writes a tombstone (an empty handle
with its time) under the same rule, so an older save arriving after it cannot bring a
forgotten handle back.

Each operation opens a client of its own (a batch of handles is one connection and one
pipeline): a client's connections live in a nursery that must be entered and left by one
task, and a store is called from several (the orchestrator's handle writer, ``spawn``, the
final flush at shutdown).
"""

from __future__ import annotations

import math
import ssl
import time
from collections.abc import Mapping
from typing import Final

from .._handles import HANDLE_VALIDITY, StoredHandle
from ._keys import Keys
from ._redis import ClusterUnavailable
from ._target import RedisTarget

__all__ = ["ClusterUnavailable", "RedisHandleStore"]

#: Compare-and-set: write the handle only if no newer one is stored; refresh the expiry.
#: KEYS[1] the conversation's hash; ARGV: handle ("" for a tombstone), saved_at, ttl in ms.
#: Returns 1 if written, 0 if a newer write was there already.
_SAVE_SCRIPT: Final = """
local stored = redis.call('HGET', KEYS[1], 't')
if stored and tonumber(stored) > tonumber(ARGV[2]) then
    return 0
end
redis.call('HSET', KEYS[1], 'h', ARGV[1], 't', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


class RedisHandleStore:
    """A :class:`~liveactors.HandleStore` in Redis or Valkey (≥ 7).

    * ``url``: ``redis://[user[:password]@]host[:port][/db]``, ``rediss://...`` (TLS) or
      ``unix://[:password]@/path/to.sock``; the password never shows in a ``repr``, a log line
      or an exception.
    * ``prefix``: every key starts with ``<prefix>:`` (no ``{`` or ``}`` in it).
    * ``validity``: how long a saved handle is kept (the key's TTL), in seconds; the service's
      validity by default.
    * ``timeout``: seconds to wait for a connection, and for each reply.
    * ``ssl_context``: for ``rediss://`` with a private CA or client certificates.

    Errors from the server or the network are raised as :class:`ClusterUnavailable`; the
    orchestrator's handle writer keeps the handles queued and retries.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "liveactors",
        validity: float = HANDLE_VALIDITY,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if isinstance(validity, bool) or not (0 < validity < math.inf):
            raise ValueError(f"validity must be a finite number of seconds > 0: {validity!r}")
        self._target = RedisTarget(
            url, prefix=prefix, timeout=timeout, ssl_context=ssl_context, label="handle store"
        )
        self.prefix = prefix
        self.validity = float(validity)
        self.timeout = float(timeout)

    @property
    def url(self) -> str:
        """The server's URL with its password replaced by ``<redacted>``."""
        return self._target.url

    def __repr__(self) -> str:
        return f"<RedisHandleStore {self.url} prefix={self.prefix!r}>"

    def key(self, name: str) -> str:
        """The key of ``name``'s handle: ``<prefix>:{<name>}:handle``."""
        return Keys(self.prefix).conversation(name).handle

    # -- the HandleStore interface ---------------------------------------------------------------

    async def load(self, name: str) -> StoredHandle | None:
        """The handle saved for ``name``, if any (and not expired or deleted)."""
        what = f"load the handle of {name!r}"
        async with self._target.open(what=what) as redis:
            handle, saved_at = await redis.hmget(what, self.key(name), ["h", "t"])
        if not handle or saved_at is None:
            return None
        return StoredHandle(handle, float(saved_at))

    async def save(self, name: str, handle: str, *, saved_at: float | None = None) -> None:
        """Remember ``handle`` for ``name``, unless a newer one (by ``saved_at``, now by
        default) is stored already."""
        await self.save_many({name: handle}, saved_at=saved_at)

    #: ``save_many`` takes :class:`~liveactors.StoredHandle` values and compares their own
    #: times: the orchestrator then passes when each handle arrived, not when its batch was
    #: written (a batch retried after an outage must not beat a newer handle saved meanwhile
    #: by another process).
    keeps_save_times = True

    async def save_many(
        self, handles: Mapping[str, str | StoredHandle], *, saved_at: float | None = None
    ) -> None:
        """Remember every ``name -> handle`` of ``handles`` (one connection, one pipeline), each
        unless a newer one is stored already. A :class:`~liveactors.StoredHandle` value carries
        its own time; plain strings take ``saved_at`` (now by default)."""
        if not handles:
            return
        stamp = time.time() if saved_at is None else saved_at
        items = [
            (name, h.handle, h.saved_at) if isinstance(h, StoredHandle) else (name, h, stamp)
            for name, h in handles.items()
        ]
        what = f"save {len(items)} handle(s)"
        secrets = [handle for _, handle, _ in items]
        calls = [([self.key(name)], self._args(handle, when)) for name, handle, when in items]
        async with self._target.open(what=what, secrets=secrets) as redis:
            await redis.scripts(what, _SAVE_SCRIPT, calls, secrets=secrets)

    async def delete(self, name: str, *, deleted_at: float | None = None) -> None:
        """Forget ``name``: a tombstone that an older save cannot overwrite."""
        stamp = time.time() if deleted_at is None else deleted_at
        what = f"delete the handle of {name!r}"
        async with self._target.open(what=what) as redis:
            await redis.script(what, _SAVE_SCRIPT, [self.key(name)], self._args("", stamp))

    # -- inside ----------------------------------------------------------------------------------

    def _args(self, handle: str, stamp: float) -> list[str]:
        return [handle, repr(float(stamp)), str(max(1, round(self.validity * 1000)))]
