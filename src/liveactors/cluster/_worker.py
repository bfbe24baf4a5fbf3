"""A worker: claims conversations that wait for one, keeps their leases, drains on request.

Theory of operation. Every conversation of the cluster has an entry in one sorted set of
leases, scored by when its lease expires (Redis's clock); a score of 0 means "waiting for a
worker" (just spawned, or given back by a draining worker). A worker with free capacity runs
the claim script: it takes the entries whose score is in the past — waiting ones first, then
orphans whose owner stopped renewing — grants each a lease and the next fencing token, and
returns them; the worker then runs an :class:`~._owned.Owned` for each. Claims happen when a
notice says work is waiting (spawn, release), and every ``poll`` seconds (an orphan's lease
expires silently).

Leases are renewed together, every ``renew`` seconds, by one script that also refreshes the
worker's heartbeat and reports the leases another worker took meanwhile. Each conversation's
local deadline is the time its last successful renewal was *sent* plus the lease, minus a
margin: always before the server's expiry, so a worker stops acting before anyone else may
start. When Redis is unreachable, renewals fail and conversations run on until that deadline,
then stop here; once Redis is back their leases have expired and any worker resumes them.

A cluster-wide ``max_sessions`` is enforced by the claim script itself: it counts the leases
that have not expired, so a dead worker's slots free themselves when its leases run out.
"""

from __future__ import annotations

import logging
import math
import secrets as _random
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import trio

from .._backend_api import Backend
from .._orchestrator import Orchestrator, open_orchestrator
from .._restart import RestartPolicy
from . import _pump, _scripts
from ._keys import Keys
from ._owned import Owned
from ._redis import ClusterUnavailable, Redis
from ._target import RedisTarget

__all__ = ["Worker", "open_worker", "run_worker"]

log = logging.getLogger("liveactors.cluster")

#: The local deadline comes this long before the server's lease expiry.
MARGIN: Final = 0.5
#: How long a conversation whose connection kept failing waits before a worker tries again
#: (the service may refuse a resume while the previous owner's socket is still open: a
#: frozen worker's, say).
RETRY_DELAY: Final = 5.0
#: After Redis was unreachable, how long a worker leaves the orphans it finds (the leases
#: that ran out during the outage) to their previous owners' late writes.
RESYNC: Final = 1.5
#: Most conversations one claim takes.
CLAIM_BATCH: Final = 16


class Worker:
    """One worker process's part of the cluster (made by :func:`open_worker`)."""

    def __init__(
        self,
        *,
        worker_id: str,
        redis: Redis,
        orchestrator: Orchestrator,
        nursery: trio.Nursery,
        max_sessions: int | None,
        cluster_max_sessions: int | None,
        lease: float,
        renew: float,
        poll: float,
        events_cap: int,
        restart: RestartPolicy | None,
    ) -> None:
        self.id = worker_id
        self.redis = redis
        self.target: RedisTarget = redis.target
        self.keys = Keys(redis.target.prefix)
        self.orchestrator = orchestrator
        self.max_sessions = max_sessions
        self.cluster_max_sessions = cluster_max_sessions
        self.lease = lease
        self.renew = renew
        self.poll = poll
        self.events_cap = events_cap
        self.restart = restart
        self.owned: dict[str, Owned] = {}
        #: Redis was unreachable from here, and since when it answers again.
        self._cut_off = False
        self._back_at: float | None = None
        self.draining = False
        #: Set once a drain began and every conversation left.
        self.drained = trio.Event()
        self._nursery = nursery
        self._work = trio.Event()
        #: Conversations handed over, claimed and lost here (for statistics and tests).
        self.claimed = 0
        self.lost = 0

    def __repr__(self) -> str:
        return f"<Worker {self.id!r} owns={len(self.owned)}>"

    @property
    def free(self) -> int:
        """How many more conversations this worker may take now."""
        if self.draining:
            return 0
        if self.max_sessions is None:
            return CLAIM_BATCH
        return max(0, self.max_sessions - len(self.owned))

    # -- claiming ---------------------------------------------------------------------------------

    async def claim_loop(self) -> None:
        while not self.draining:
            taken = 0
            if self.free:
                try:
                    taken = await self._claim()
                except ClusterUnavailable as exc:
                    self._contact(lost=True)
                    log.warning("worker %s: %s", self.id, exc)
                else:
                    self._contact(lost=False)
            if taken and self.free:
                continue
            self._work = trio.Event()
            with trio.move_on_after(self.poll):
                await self._work.wait()

    async def _claim(self) -> int:
        keys = self.keys
        sent = trio.current_time()
        reply = await self.redis.script(
            "claim conversations",
            _scripts.CLAIM,
            [keys.leases, keys.owners, keys.fence],
            [
                self.id,
                round(self.lease * 1000),
                self.cluster_max_sessions or 0,
                min(CLAIM_BATCH, self.free),
                "1" if self._orphans_ok() else "0",
            ],
        )
        deadline = sent + self.lease - MARGIN
        for name, fence in zip(reply[::2], reply[1::2], strict=True):
            if self.draining:
                await self.release(name, f"{self.id} {fence}", "orphan")
                continue
            previous = self.owned.get(name)
            if previous is not None:
                # Claimed back after this worker's own lease ran out (it stalled): the old
                # run stops acting at once, and the new one waits for it to end.
                previous.lose("claimed again under a newer lease")
            owned = Owned(self, name, int(fence), deadline, previous)
            self.owned[name] = owned
            self.claimed += 1
            self._nursery.start_soon(owned.run, name=f"liveactors.cluster.owned:{name}")
        return len(reply) // 2

    def forget(self, owned: Owned) -> None:
        """``owned`` no longer runs here."""
        if self.owned.get(owned.name) is owned:
            del self.owned[owned.name]
        if self.draining and not self.owned:
            self.drained.set()

    def _contact(self, *, lost: bool) -> None:
        """Track Redis being reachable: when it comes back after an outage, the owners of
        the leases that ran out meanwhile get a moment to write what they recorded."""
        if lost:
            self._back_at = None
            self._cut_off = True
        elif self._back_at is None:
            self._back_at = trio.current_time()

    def _orphans_ok(self) -> bool:
        """Whether to take orphans now: not right after an outage of Redis (every lease ran
        out at once; their owners are alive and writing late: see ``RecordWriter.write_late``)."""
        if not self._cut_off or self._back_at is None:
            return not self._cut_off
        if trio.current_time() - self._back_at < RESYNC:
            return False
        self._cut_off = False
        return True

    def work_waiting(self) -> None:
        """A notice: some conversation waits for a worker."""
        self._work.set()

    async def release(self, name: str, token: str, how: str) -> None:
        """Give a lease back: ``"orphan"`` for another worker to take now, ``"retry"`` for
        one to take after ``RETRY_DELAY`` (its connection kept failing here), ``"remove"``
        when the conversation ended."""
        keys = self.keys
        await self.redis.script(
            f"release {name!r}",
            _scripts.RELEASE,
            [keys.leases, keys.owners],
            [name, token, how, keys.wake, round(RETRY_DELAY * 1000)],
        )

    # -- leases -----------------------------------------------------------------------------------

    async def renew_loop(self) -> None:
        while True:
            await self._renew_once()
            await trio.sleep(self.renew)

    async def _renew_once(self) -> None:
        keys = self.keys
        owned = [o for o in self.owned.values() if not o.lost]
        args: list[Any] = [self.id, round(self.lease * 1000)]
        for o in owned:
            args.extend((o.name, o.fence))
        sent = trio.current_time()
        try:
            lost = await self.redis.script(
                "renew leases", _scripts.RENEW, [keys.leases, keys.owners, keys.workers], args
            )
        except ClusterUnavailable as exc:
            self._contact(lost=True)
            log.warning("worker %s: %s (conversations run on until their leases end)", self.id, exc)
            return
        self._contact(lost=False)
        gone = set(lost)
        deadline = sent + self.lease - MARGIN
        for o in owned:
            if o.name in gone:
                self.lost += 1
                o.lose("another worker holds it")
            elif trio.current_time() < o.deadline:
                o.deadline = max(o.deadline, deadline)

    # -- notices ----------------------------------------------------------------------------------

    async def poll_loop(self) -> None:
        """Twice per ``POLL``: input pumps that waited that long for a notice read their
        stream (a notice can be lost; see ``_pump.py``)."""
        while True:
            await trio.sleep(_pump.POLL / 2)
            now = trio.current_time()
            for owned in list(self.owned.values()):
                owned.pump.poll(now)

    async def notice_loop(self) -> None:
        """Input notices for owned conversations, and "work waiting" notices (the
        subscription resubscribes by itself after a failure)."""
        inbox, wake = self.keys.inbox(self.id), self.keys.wake

        def subscribed() -> None:
            # Notices published while unsubscribed are lost: look now.
            self.work_waiting()
            for owned in list(self.owned.values()):
                owned.poke()

        def failed(exc: ClusterUnavailable) -> None:
            log.warning("worker %s: notices: %s", self.id, exc)

        async with self.redis.subscribe(
            [inbox, wake], on_subscribed=subscribed, on_error=failed
        ) as notices:
            async for channel, data in notices:
                if channel == wake:
                    self.work_waiting()
                    continue
                # ``<previous input id>\n<input id>\n<command>\n<name>`` (SUBMIT's).
                parts = data.split(b"\n", 3)
                if len(parts) == 4:
                    prev, entry_id, command, name = parts
                    target = self.owned.get(name.decode(errors="replace"))
                    if target is not None:
                        target.offer(prev.decode(), entry_id.decode(), command)
                else:  # an older client's notice: only the name (read the stream)
                    target = self.owned.get(data.decode(errors="replace"))
                    if target is not None:
                        target.poke()

    # -- draining ---------------------------------------------------------------------------------

    async def drain(self, grace: float = 10.0) -> None:
        """Stop taking work and hand every conversation over at a resumable point."""
        self.draining = True
        self._work.set()
        async with trio.open_nursery() as nursery:
            for owned in list(self.owned.values()):
                nursery.start_soon(owned.drain, grace)
        if not self.owned:
            self.drained.set()
        await self.drained.wait()


@asynccontextmanager
async def open_worker(
    backend: Backend,
    redis_url: str,
    *,
    worker_id: str | None = None,
    max_sessions: int | None = None,
    cluster_max_sessions: int | None = None,
    prefix: str = "liveactors",
    lease: float = 6.0,
    renew: float = 2.0,
    poll: float = 0.5,
    events_cap: int = 10_000,
    restart: RestartPolicy | None = None,
    redis_timeout: float = 5.0,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[Worker]:
    """Run a worker for the ``async with``: it claims conversations until :meth:`Worker.drain`
    or the block's end (which drains it too, unless it ends by an exception).

    * ``worker_id``: unique in the cluster (default: a random one); no spaces.
    * ``max_sessions``: most conversations on this worker; ``cluster_max_sessions``: most
      live sessions in the whole cluster (give every worker the same value).
    * ``lease`` / ``renew``: how long a lease lasts and how often it is renewed (at most half
      the lease); ``poll``: how often to look for orphans (their leases expire silently).
    * ``events_cap``: events kept per conversation stream (older ones are trimmed).
    * ``restart``: the local supervisors' :class:`~liveactors.RestartPolicy`.
    * ``redis_timeout``: longest wait for one Redis reply; ``ssl_context`` for ``rediss://``
      with a private CA or client certificates.
    """
    _check(lease=lease, renew=renew, poll=poll)
    if renew * 2 > lease:
        raise ValueError(f"renew ({renew}s) must be at most half the lease ({lease}s)")
    target = RedisTarget(redis_url, prefix=prefix, timeout=redis_timeout, ssl_context=ssl_context)
    worker_id = worker_id or f"worker-{_random.token_hex(4)}"
    if " " in worker_id or not worker_id:
        raise ValueError(f"worker_id must be a non-empty string without spaces: {worker_id!r}")
    async with (
        target.open() as redis,
        open_orchestrator(backend, max_sessions=max_sessions, restart=restart) as orchestrator,
        trio.open_nursery() as nursery,
    ):
        worker = Worker(
            worker_id=worker_id,
            redis=redis,
            orchestrator=orchestrator,
            nursery=nursery,
            max_sessions=max_sessions,
            cluster_max_sessions=cluster_max_sessions,
            lease=lease,
            renew=renew,
            poll=poll,
            events_cap=events_cap,
            restart=restart,
        )
        await worker._renew_once()
        service = trio.CancelScope()

        async def services() -> None:
            with service:
                async with trio.open_nursery() as inner:
                    inner.start_soon(worker.renew_loop)
                    inner.start_soon(worker.notice_loop)
                    inner.start_soon(worker.claim_loop)
                    inner.start_soon(worker.poll_loop)

        nursery.start_soon(services)
        try:
            yield worker
            await worker.drain()
        finally:
            service.cancel()
            nursery.cancel_scope.cancel()


async def run_worker(
    backend: Backend,
    redis_url: str,
    *,
    worker_id: str | None = None,
    max_sessions: int | None = None,
    task_status: trio.TaskStatus[Worker] = trio.TASK_STATUS_IGNORED,
    **options: Any,
) -> None:
    """Run a worker until it is drained (:meth:`Worker.drain`, SIGTERM in the CLI) or
    cancelled; ``options`` as for :func:`open_worker`."""
    async with open_worker(
        backend, redis_url, worker_id=worker_id, max_sessions=max_sessions, **options
    ) as worker:
        task_status.started(worker)
        await worker.drained.wait()


def _check(**durations: float) -> None:
    for what, value in durations.items():
        if isinstance(value, bool) or not (0 < value < math.inf):
            raise ValueError(f"{what} must be a finite number of seconds > 0: {value!r}")
