"""The input pump of an owned conversation: hands each command of its durable input stream to
the conversation, in stream order, exactly once under this lease.

It takes the command a notice carries when the notice says it follows the last one taken
(no read of the stream: SUBMIT publishes ``<previous id>\\n<id>\\n<command>\\n<name>`` to the
owner's inbox, the command left out above :data:`NOTICE_COMMAND`), and otherwise reads the
stream after the last one taken. Notices are only a nudge (Pub/Sub delivers at most once):
a pump that waited :data:`POLL` seconds for one reads the stream anyway. The worker looks for
such pumps (:meth:`InputPump.poll`) twice per ``POLL``: a timer per wait would cost a cancel
scope per input, 12 % of a worker's CPU on microphone audio.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Final

import trio

from .._errors import InvalidCommand
from ._commands import decode_command, wire_message
from ._redis import ClusterUnavailable
from ._resp import stream_id

if TYPE_CHECKING:
    from ._owned import Owned

__all__ = ["BATCH", "NOTICE_COMMAND", "OFFERED", "POLL", "InputPump"]

log = logging.getLogger("liveactors.cluster")

#: How long the pump sleeps between reads of a quiet input stream when no notice comes (a
#: notice published while the worker's subscription was down is lost; this bounds the cost).
POLL: Final = 5.0
#: Entries the pump reads per call.
BATCH: Final = 256
#: Notices whose commands wait for the pump, at most (beyond: it reads the stream instead).
OFFERED: Final = 1024
#: The longest command a notice carries (a longer one is read from the stream).
NOTICE_COMMAND: Final = 64 * 1024


class InputPump:
    """The input of ``owned``'s conversation, handed to it in order (see the module
    docstring)."""

    def __init__(self, owned: Owned) -> None:
        self.owned = owned
        #: The id of the last input taken.
        self.last_input = "0-0"
        #: Cancelled when the conversation takes no more input (a drain).
        self.scope = trio.CancelScope()
        self._poke = trio.Event()
        #: Read the input stream next (else take what notices carry).
        self._read_next = True
        #: Input the notices carried, not taken yet: (previous id, id, command).
        self._offered: deque[tuple[str, str, bytes]] = deque()
        #: Since when it waits for a notice (None: it is not waiting).
        self._waiting_since: float | None = None

    def poke(self) -> None:
        """Input may have arrived on the stream: read it."""
        self._read_next = True
        self._poke.set()

    def poll(self, now: float) -> None:
        """Read the stream if no notice came for :data:`POLL` seconds (as of ``now``): one
        published while the worker's subscription was down is lost."""
        since = self._waiting_since
        if since is not None and now - since >= POLL:
            self.poke()

    def offer(self, prev: str, entry_id: str, raw: bytes) -> None:
        """A notice of input ``entry_id`` (``raw``: its command, empty when too long to carry),
        appended right after ``prev``: the pump takes it as is when ``prev`` is the last input
        it took, and reads the stream otherwise."""
        if len(self._offered) >= OFFERED:
            self._offered.clear()
            self._read_next = True
        else:
            self._offered.append((prev, entry_id, raw))
        self._poke.set()

    async def run(self) -> None:
        """Hand the input to the conversation, in stream order: the commands that notices
        carry (see :meth:`offer`) while they follow on from the last one taken, else what a
        read of the stream after it returns."""
        owned = self.owned
        redis, ref = owned.worker.redis, owned.ref
        assert ref is not None
        with self.scope:
            while True:
                self._poke = trio.Event()
                if not self._read_next:
                    while self._offered:
                        prev, entry_id, raw = self._offered.popleft()
                        if stream_id(entry_id) <= stream_id(self.last_input):
                            continue  # a read took it already
                        if prev != self.last_input or not raw:
                            self._read_next = True  # one came in between, or it was too long
                            break
                        if not await self._take(entry_id, raw):
                            return
                if self._read_next:
                    self._offered.clear()
                    try:
                        entries = await redis.xrange(
                            f"read the input of {owned.name!r}",
                            owned.keys.input,
                            f"({self.last_input}",
                            "+",
                            count=BATCH,
                        )
                    except ClusterUnavailable as exc:
                        # The conversation runs on meanwhile (until the lease deadline).
                        log.warning("%s: %s", owned.name, exc)
                        with trio.move_on_after(0.5):
                            await self._poke.wait()
                        continue
                    # Read everything there was (else read on); then notices say what comes.
                    self._read_next = len(entries) == BATCH
                    for entry_id, fields in entries:
                        if not await self._take(entry_id, fields.get("c", b"")):
                            return
                if not self._read_next and not self._offered:
                    # Wait for a notice (one that came meanwhile is kept, since the event was
                    # made before it), or for the worker's poll (see ``poll``).
                    self._waiting_since = trio.current_time()
                    await self._poke.wait()
                    self._waiting_since = None

    async def _take(self, entry_id: str, raw: bytes) -> bool:
        """Hand one input command to the conversation; False after a stop."""
        name, ref = self.owned.name, self.owned.ref
        assert ref is not None
        self.last_input = entry_id
        try:
            cmd = decode_command(raw.decode())
        except (KeyError, TypeError, ValueError) as exc:  # (UnicodeDecodeError: a ValueError)
            log.error("%s: skipped input %s: %s", name, entry_id, exc)
            return True
        if cmd.kind == "stop":
            await ref.stop(grace=cmd.grace)
            return False
        if cmd.kind == "tool":
            try:
                await ref.send_tool_response(list(cmd.responses))
            except InvalidCommand as exc:
                log.info("%s: tool response %s not sent: %s", name, entry_id, exc)
            return True
        sup = ref._sup
        message = wire_message(sup, cmd)
        if message is not None:
            # (What it changes in the record, the next event's batch writes.)
            await sup.submit(message, tag=entry_id)
        return True
