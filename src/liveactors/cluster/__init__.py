"""liveactors beyond one process: state shared through Redis or Valkey.

Needs the ``cluster`` extra (``pip install 'liveactors[cluster]'``, which brings coredis).

What exists now:

* :class:`RedisHandleStore`: a :class:`~liveactors.HandleStore` in Redis or Valkey, so that a
  conversation stopped in one process resumes its session when any other process spawns its
  name (newest handle wins atomically; keys expire with the handle's validity; Redis Cluster
  compatible key layout; passwords and handles never in a repr, a log or an error).
* :class:`ClusterUnavailable`: what it raises when the server cannot do what was asked.

Workers that share conversations (durable input, events readable from any process, leases and
fencing, failover) are the next steps; see docs/cluster.md.
"""

from __future__ import annotations

from ._handle_store import ClusterUnavailable, RedisHandleStore

__all__ = ["ClusterUnavailable", "RedisHandleStore"]
