"""One "process" of the process-restart test: spawn a named conversation against the fake
server at URL with a SQLite handle store, ask one question, print what happened as JSON, exit.

    python restart_client.py URL DB NAME QUESTION
"""

from __future__ import annotations

import json
import sys

import trio

import liveactors
from liveactors import events
from liveactors._models import FAKE_TEXT_MODEL


async def main(url: str, db: str, name: str, question: str) -> None:
    backend = liveactors.GeminiBackend(api_key="test-key", model=FAKE_TEXT_MODEL, base_url=url)
    store = liveactors.SQLiteHandleStore(db)
    try:
        async with liveactors.open_orchestrator(backend, handle_store=store) as orch:
            async with orch.subscribe(events.Connected) as connected:
                conv = await orch.spawn({"response_modalities": ["TEXT"]}, name=name)
                first = await connected.__anext__()
            reply = await conv.ask(question)
        stored = await store.load(name)
    finally:
        store.close()
    print(
        json.dumps(
            {
                "text": reply.text,
                "resumed": first.resumed,  # type: ignore[attr-defined]
                "session": first.session_id,  # type: ignore[attr-defined]
                "stored": None if stored is None else stored.handle,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:5])
