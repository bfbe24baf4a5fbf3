"""The registry: which conversation has which name, from ``spawn`` until it ended.

A name is claimed synchronously when ``spawn`` starts, before anything waits, so two concurrent
spawns of one name cannot both win: the second raises :class:`~liveactors.InvalidCommand`. A
conversation that closed or failed frees its name at once, even while its task still winds up
(``await conv.stop()`` then a spawn of the name just works); a spawn that failed frees it too.
Only conversations whose spawn returned are listed (:meth:`Registry.live`). An :class:`Entry`
is one conversation's record: its supervisor, cancel scope and slot, and how to stop it.

The registry also says once per process, at INFO, when it grows to ``GC_HINT_AT`` names with
Python's default garbage-collector settings: their pauses grow with the number of objects, and
the settings are the application's to change.
"""

from __future__ import annotations

import gc
import logging
from typing import Final

import attrs
import trio

from ._admission import Slot
from ._conversation import ConversationState
from ._errors import InvalidCommand
from ._supervisor import Supervisor

__all__ = ["GC_HINT_AT", "Entry", "Registry", "StartedFlag"]

log = logging.getLogger("liveactors.orchestrator")

#: From this many conversations in one orchestrator, Python's default GC settings cost real
#: latency (docs/scaling.md).
GC_HINT_AT: Final = 1000
_gc_hinted = False


def _hint_gc_once(conversations: int) -> None:
    global _gc_hinted
    if _gc_hinted or gc.get_threshold()[0] >= 10_000:
        return
    _gc_hinted = True
    log.info(
        "%d conversations with Python's default garbage-collector threshold: its pauses grow "
        "with them (over a second at 10,000); see docs/scaling.md (gc.freeze, gc.set_threshold)",
        conversations,
    )


@attrs.define(eq=False)
class Entry:
    """One name in the registry, from ``spawn`` until the conversation ended."""

    name: str
    supervisor: Supervisor | None = None
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    #: The session slot, once admitted (released when the conversation ends, or spawn fails).
    slot: Slot | None = None
    #: The first connection is up (``spawn`` returns / returned).
    started: bool = False
    #: The conversation task has begun (it, not ``spawn``, cleans up from then on).
    running: bool = False
    ended: bool = False
    #: Set once the conversation's task is over (name, slot and counters settled).
    done: trio.Event = attrs.Factory(trio.Event)
    last_handle: str | None = attrs.field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        """The conversation closed or failed (its task may still be winding up)."""
        return self.ended or (self.supervisor is not None and self.supervisor.finished)

    @property
    def live(self) -> bool:
        """Spawned, and not closed or failed yet."""
        return self.started and not self.finished

    async def stop(self, deadline: float) -> None:
        """Stop the conversation by ``deadline``: gracefully if it is connected or has a
        question in flight or input queued (delivered within the grace, else handed back), else
        (reconnecting, nothing owed) at once."""
        supervisor = self.supervisor
        assert supervisor is not None
        if supervisor.state is ConversationState.READY or supervisor.owes_input:
            with trio.move_on_at(deadline):
                # The supervisor sends what was accepted, lets the answer finish, waits a moment
                # for the handle covering it, and closes (1000) at the deadline at the latest;
                # this scope only catches one that cannot get there (reconnecting).
                await supervisor.stop(max(0.0, deadline - trio.current_time()))
        # Not connected and nothing in progress, or past the grace: cancel. A socket still open
        # is closed with 1000 on the way out.
        self.scope.cancel()
        await self.done.wait()


class StartedFlag:
    """The ``task_status`` handed to a supervisor: notes in the entry that it started."""

    def __init__(self, entry: Entry, inner: trio.TaskStatus[None]) -> None:
        self._entry = entry
        self._inner = inner

    def started(self, value: None = None) -> None:
        self._entry.started = True
        self._inner.started()


class Registry:
    """Names to entries (see the module docstring)."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        #: Entries whose conversation task runs (one that closed may have left the names to a
        #: new conversation of its name while its task winds up).
        self.running: set[Entry] = set()
        self._counter = 0

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[Entry]:
        """Every entry holding a name now, in spawn order."""
        return list(self._entries.values())

    def live(self) -> list[Entry]:
        """The entries of the conversations running now (spawned, not yet ended)."""
        return [e for e in self._entries.values() if e.supervisor is not None and e.live]

    def get(self, name: str) -> Entry | None:
        """The entry of the running conversation ``name``, if there is one."""
        entry = self._entries.get(name)
        if entry is None or entry.supervisor is None or not entry.live:
            return None
        return entry

    def claim(self, name: str | None) -> Entry:
        """Reserve ``name`` (or a fresh ``conversation-N``) synchronously."""
        if name is None:
            while True:
                self._counter += 1
                name = f"conversation-{self._counter}"
                if name not in self._entries:
                    break
        elif not isinstance(name, str) or not name:
            raise InvalidCommand(f"name must be a non-empty str, not {name!r}")
        elif name in self._entries and not self._entries[name].finished:
            what = "is already running" if self._entries[name].started else "is being spawned"
            raise InvalidCommand(
                f"a conversation named {name!r} {what}; pick another name or stop it first"
            )
        entry = self._entries[name] = Entry(name)
        if len(self._entries) >= GC_HINT_AT:
            _hint_gc_once(len(self._entries))
        return entry

    def free(self, entry: Entry) -> None:
        """``entry`` is over: free its name (if it is still its own) and its slot."""
        if self._entries.get(entry.name) is entry:
            del self._entries[entry.name]
        if entry.slot is not None:
            entry.slot.release()
