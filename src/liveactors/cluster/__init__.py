"""liveactors beyond one process: conversations on a cluster of workers sharing Redis or Valkey.

Needs the ``cluster`` extra (``pip install 'liveactors[cluster]'``, which brings hiredis for
the lean Redis client, and coredis for Redis Cluster).

* Workers (:func:`run_worker`, :func:`open_worker`, ``liveactors worker``) claim conversations,
  run them, and keep each under a lease they renew; a worker that loses its lease stops acting
  for the conversation at once (fencing), and another worker resumes it from its stored handle
  and its durable input.
* Clients (:func:`open_client`) in any process spawn conversations, send commands that return
  once durably accepted, and read events with a gap-free ``seq`` from any point
  (:class:`RemoteConversation`).
* :class:`RedisHandleStore`: a :class:`~liveactors.HandleStore` in Redis, for orchestrators
  that only share handles.
* :class:`ClusterUnavailable`: Redis could not do what was asked; :class:`~liveactors.LeaseLost`:
  this worker no longer owns a conversation.

See docs/cluster.md for how to deploy it, what is guaranteed, and the failure table.
"""

from __future__ import annotations

from .._errors import LeaseLost
from ._client import ClusterClient, open_client
from ._handle_store import ClusterUnavailable, RedisHandleStore
from ._remote import RemoteConversation, RemoteState, RemoteSubscription
from ._worker import Worker, open_worker, run_worker

__all__ = [
    "ClusterClient",
    "ClusterUnavailable",
    "LeaseLost",
    "RedisHandleStore",
    "RemoteConversation",
    "RemoteState",
    "RemoteSubscription",
    "Worker",
    "open_client",
    "open_worker",
    "run_worker",
]
