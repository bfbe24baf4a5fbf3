"""End to end: an orchestrator saves its handles in Valkey; a new orchestrator (think: another
process, sharing nothing but the server) spawns the same name and resumes the same session."""

from __future__ import annotations

from cluster_helpers import ValkeyServer

from liveactors import events, open_orchestrator
from liveactors.cluster import RedisHandleStore
from liveactors.testing import open_fake_server


async def test_another_orchestrator_resumes_the_session_from_valkey(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    async with open_fake_server(listen=False) as server:
        first_store = RedisHandleStore(valkey_server.url, prefix=prefix)
        async with open_orchestrator(server.backend(), handle_store=first_store) as orch:
            conv = await orch.spawn(name="support-42")
            assert "one" in (await conv.ask("one")).text
            await orch.stop("support-42")
        stored = await first_store.load("support-42")
        assert stored is not None
        assert stored.handle == server.sessions["session-1"].handles[-1]

        # A separate store object and orchestrator: only the Valkey server is shared.
        second_store = RedisHandleStore(valkey_server.url, prefix=prefix)
        async with open_orchestrator(server.backend(), handle_store=second_store) as orch:
            async with orch.subscribe(events.Connected) as sub:
                conv = await orch.spawn(name="support-42")
                connected = await sub.__anext__()
            assert connected.resumed  # type: ignore[attr-defined]
            assert "two" in (await conv.ask("two")).text
        assert server.log.sessions == ["session-1"]
        second = server.log.connections[1]
        assert (second.session, second.resumed_from) == ("session-1", stored.handle)
        assert server.log.answered() == ["one", "two"]
