"""Where the cluster keeps things in Redis: one key layout, so every module names keys alike.

A conversation's keys share the hash tag ``{<name>}`` (one slot of a Redis Cluster, so a Lua
script may touch them all at once); the cluster-wide keys share ``{cluster}``. Channels are
not keys (Redis Cluster broadcasts them), so a script may publish to any.
"""

from __future__ import annotations

import attrs

__all__ = ["ConversationKeys", "Keys"]


@attrs.frozen
class ConversationKeys:
    """The keys of one conversation."""

    #: Hash: config, state, owner, fence, seq, turn, open, mode, started, created; ``in``, the
    #: id of the last input appended (SUBMIT's notice names it as the one before the next);
    #: ``batch``, the owner's last batch written (``<fence>:<number>``).
    meta: str
    #: Stream of durable input, one entry per command (field ``c``).
    input: str
    #: Capped stream of events, entry id ``<seq>-1``: field ``e`` the event (its JSON; for
    #: audio and video, the JSON, a NUL byte, then the raw bytes: ``_journal.py``), field ``a``
    #: the input id it answers, if any.
    events: str
    #: Hash: ``a:<input id>`` the answer to an uncovered answered exchange, ``s:<id>`` its
    #: answer had begun.
    answers: str
    #: The resumption handle (the layout of :class:`RedisHandleStore`).
    handle: str
    #: List: the covered history (what a fresh session is restored from), newest last.
    transcript: str

    def all(self) -> list[str]:
        """Every key, in the order the scripts take them."""
        return [self.meta, self.input, self.events, self.answers, self.handle, self.transcript]


@attrs.frozen
class Keys:
    """The key layout under one ``prefix``."""

    prefix: str

    def conversation(self, name: str) -> ConversationKeys:
        base = f"{self.prefix}:{{{_tag(name)}}}:"
        return ConversationKeys(
            meta=base + "meta",
            input=base + "in",
            events=base + "ev",
            answers=base + "ans",
            handle=base + "handle",
            transcript=base + "tx",
        )

    @property
    def leases(self) -> str:
        """Sorted set: conversation -> lease expiry (ms since the epoch, Redis's clock); 0
        means waiting for a worker."""
        return f"{self.prefix}:{{cluster}}:leases"

    @property
    def owners(self) -> str:
        """Hash: conversation -> ``<worker> <fence>`` of its current lease."""
        return f"{self.prefix}:{{cluster}}:owners"

    @property
    def fence(self) -> str:
        """Counter: every lease granted takes the next fencing token."""
        return f"{self.prefix}:{{cluster}}:fence"

    @property
    def workers(self) -> str:
        """Sorted set: worker id -> heartbeat expiry (ms)."""
        return f"{self.prefix}:{{cluster}}:workers"

    @property
    def wake(self) -> str:
        """Channel: a conversation waits for a worker (spawned, released, or orphaned)."""
        return f"{self.prefix}:wake"

    def inbox(self, worker: str) -> str:
        """Channel: input arrived for a conversation ``worker`` owns (the message:
        ``<previous input id>\n<input id>\n<command>\n<name>``, the command empty when longer
        than ``NOTICE_COMMAND``; see ``_pump.py``)."""
        return f"{self.prefix}:inbox:{worker}"


def _tag(name: str) -> str:
    """``name`` made safe inside a hash tag (reversible: ``%`` is encoded too)."""
    return name.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")
