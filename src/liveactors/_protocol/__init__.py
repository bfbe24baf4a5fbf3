"""Sans-IO core of the Live protocol: bytes and commands in, frames and events out; no sockets,
no clocks (the caller passes the time where it matters).

* ``session``: one conversation's protocol state across its connections; the supervisor drives
  only this, and state changes only inside it.
* ``connection``: one connection's state machine (what may be sent now, client indices).
* ``tracker``: server messages -> typed events; turns, tool calls, the latest handle.
* ``ledger``: what the service has of our input and what a new connection sends again
  (``ledger_resume`` plans it, ``ledger_adopt`` takes over a journaled conversation,
  ``handle_mode`` is what it learns of the service's handles); ``exchange`` holds its values
  and ``media_window`` bounds the realtime media it keeps.
* ``setup``, ``encode``, ``decode``, ``close``, ``_wire``: the wire format itself.
"""
