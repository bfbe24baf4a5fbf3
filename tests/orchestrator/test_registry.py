"""The registry: spawn, get, conversations, stop, names, subscribe, statistics."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from orch_helpers import TEXT, backend

import liveactors
from liveactors import (
    ConversationState,
    InvalidCommand,
    RestartPolicy,
    SessionRejected,
    events,
    open_orchestrator,
)
from liveactors.testing import open_fake_server


async def test_spawn_returns_once_connected_and_get_finds_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fake_server(listen=False) as server:
        async with open_orchestrator(backend(server)) as orch:
            conv = await orch.spawn(TEXT, name="c1")
            assert conv.state is ConversationState.READY
            assert [c.id for c in server.log.connections if c.setup_at is not None] == [1]
            assert orch.get("c1") is conv
            assert orch.conversations == [conv]
            assert (await conv.ask("hello")).text == "echo #1: hello"
        assert conv.state is ConversationState.CLOSED
        assert orch.conversations == []
        with pytest.raises(KeyError, match="no conversation named 'c1'"):
            orch.get("c1")


async def test_unnamed_conversations_get_fresh_names(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with (
        open_fake_server(listen=False) as server,
        open_orchestrator(backend(server)) as orch,
    ):
        taken = await orch.spawn(TEXT, name="conversation-2")
        first = await orch.spawn(TEXT)
        second = await orch.spawn(TEXT)
        assert first.name == "conversation-1"
        assert second.name == "conversation-3"  # conversation-2 is taken
        assert {c.name for c in orch.conversations} == {
            taken.name,
            first.name,
            second.name,
        }


async def test_a_dict_config_and_none_work(autojump_clock: trio.testing.MockClock) -> None:
    async with open_fake_server(listen=False) as server:
        async with open_orchestrator(backend(server)) as orch:
            conv = await orch.spawn({"response_modalities": ["TEXT"]}, name="dict")
            assert (await conv.ask("x")).text == "echo #1: x"
        setups = server.log.client_messages(kind="setup")
        assert setups[0].body["generationConfig"]["responseModalities"] == ["TEXT"]


async def test_a_duplicate_name_is_a_clear_error(autojump_clock: trio.testing.MockClock) -> None:
    async with (
        open_fake_server(listen=False) as server,
        open_orchestrator(backend(server)) as orch,
    ):
        await orch.spawn(TEXT, name="c1")
        with pytest.raises(InvalidCommand, match="'c1' is already running"):
            await orch.spawn(TEXT, name="c1")
        assert len(orch.conversations) == 1
        assert len(server.log.connections) == 1  # the refused spawn never connected


async def test_concurrent_spawns_of_one_name_one_wins(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with (
        open_fake_server(listen=False, setup_latency=0.5) as server,
        open_orchestrator(backend(server)) as orch,
    ):
        outcomes: list[Any] = []

        async def spawn() -> None:
            try:
                outcomes.append(await orch.spawn(TEXT, name="same"))
            except InvalidCommand as exc:
                outcomes.append(exc)

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(spawn)
        refs = [o for o in outcomes if isinstance(o, liveactors.ConversationRef)]
        errors = [o for o in outcomes if isinstance(o, InvalidCommand)]
        assert len(refs) == 1 and len(errors) == 4
        assert all("'same' is being spawned" in str(e) for e in errors)
        assert len(server.log.connections) == 1
        assert orch.statistics().sessions == 1


@pytest.mark.parametrize("name", ["", 7, b"c1"])
async def test_bad_names_are_refused(name: Any, autojump_clock: trio.testing.MockClock) -> None:
    async with (
        open_fake_server(listen=False) as server,
        open_orchestrator(backend(server)) as orch,
    ):
        with pytest.raises(InvalidCommand, match="name must be a non-empty str"):
            await orch.spawn(TEXT, name=name)
        assert orch.statistics().sessions == 0


async def test_bad_arguments_are_refused(autojump_clock: trio.testing.MockClock) -> None:
    async with open_fake_server(listen=False) as server:
        with pytest.raises(InvalidCommand, match="backend must be a GeminiBackend"):
            async with open_orchestrator("not a backend"):  # type: ignore[arg-type]
                pass
        for kwargs, match in [
            ({"max_sessions": 0}, "max_sessions must be an int >= 1"),
            ({"max_sessions": True}, "max_sessions must be an int >= 1"),
            ({"max_sessions": 2.5}, "max_sessions must be an int >= 1"),
            ({"connect_rate": 0}, "connect_rate must be a positive number"),
            ({"connect_rate": 5, "connect_burst": 0.5}, "burst must be a number >= 1"),
            ({"grace": -1}, "grace must be a number of seconds >= 0"),
            ({"grace": float("nan")}, "grace must be a number of seconds >= 0"),
            ({"handle_validity": "2h"}, "handle_validity must be a number"),
            ({"admission_timeout": -1}, "admission_timeout must be a number"),
            ({"restart": {"max_restarts": 1}}, "restart must be a RestartPolicy"),
        ]:
            with pytest.raises(InvalidCommand, match=match):
                async with open_orchestrator(backend(server), **kwargs):
                    pass
        async with open_orchestrator(backend(server)) as orch:
            with pytest.raises(InvalidCommand, match="actor must be a Conversation subclass"):
                await orch.spawn(TEXT, actor=int)  # type: ignore[arg-type]
            with pytest.raises(InvalidCommand, match="restart must be a RestartPolicy"):
                await orch.spawn(TEXT, restart=5)  # type: ignore[arg-type]
            with pytest.raises(InvalidCommand, match="admission_timeout must be a number"):
                await orch.spawn(TEXT, admission_timeout=-2)
            assert orch.statistics().sessions == 0
        assert server.log.connections == []


async def test_a_fatal_first_connect_raises_from_spawn_and_frees_name_and_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with (
        open_fake_server(listen=False) as server,
        open_orchestrator(backend(server), max_sessions=1) as orch,
    ):
        server.faults.close(1007, "Request contains an invalid argument.")
        with pytest.raises(SessionRejected, match="invalid argument") as caught:
            await orch.spawn(TEXT, name="c1")
        assert caught.value.code == 1007
        stats = orch.statistics()
        assert (stats.sessions, stats.rejected, stats.spawned, stats.failed) == (0, 1, 0, 0)
        with pytest.raises(KeyError):
            orch.get("c1")
        # The name and the only slot are free again: the same name spawns at once.
        with trio.fail_after(1):
            conv = await orch.spawn(TEXT, name="c1")
        assert (await conv.ask("hi")).text == "echo #1: hi"
        assert orch.statistics().spawned == 1


async def test_bad_credentials_are_rejected_at_spawn(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with (
        open_fake_server(listen=False) as server,
        open_orchestrator(server.backend(api_key="wrong", model="m")) as orch,
    ):
        with pytest.raises(SessionRejected) as caught:
            await orch.spawn(TEXT, name="c1")
        assert caught.value.code == 1007
        assert "wrong" not in str(caught.value)
        assert orch.statistics().rejected == 1


async def test_a_first_connect_that_keeps_dropping_gives_up_per_policy(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fake_server(listen=False) as server:
        policy = RestartPolicy(max_restarts=2, backoff_initial=0.1)
        async with open_orchestrator(backend(server), restart=policy, max_sessions=1) as orch:
            server.faults.drop(connection="all")
            with pytest.raises(liveactors.ConnectionLost):
                await orch.spawn(TEXT, name="c1")
            server.faults.clear()
            assert len(server.log.connections) == 3  # the first try and two restarts
            assert orch.statistics().sessions == 0
            await orch.spawn(TEXT, name="c1")


async def test_stop_by_name_closes_with_1000_and_frees_the_name(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with (
        open_fake_server(listen=False) as server,
        open_orchestrator(backend(server)) as orch,
    ):
        conv = await orch.spawn(TEXT, name="c1")
        await orch.stop("c1")
        assert conv.state is ConversationState.CLOSED
        assert orch.conversations == []
        record = server.log.connections[0]
        assert (record.close_code, record.cause) == (1000, "client")
        with pytest.raises(KeyError):
            await orch.stop("c1")
        again = await orch.spawn(TEXT, name="c1")
        assert again is not conv


async def test_stop_lets_the_answer_in_progress_finish(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fake_server(listen=False, response_latency=1.0) as server:
        async with open_orchestrator(backend(server)) as orch:
            conv = await orch.spawn(TEXT, name="c1")
            await conv.send_text("slow")
            await orch.stop("c1", grace=5)
        [turn] = server.log.model_turns()
        assert turn.outcome == "completed"
        record = server.log.connections[0]
        assert record.close_code == 1000
        assert record.closed_at is not None and turn.ended_at is not None
        assert record.closed_at >= turn.ended_at


async def test_stop_of_a_reconnecting_conversation_is_bounded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fake_server(listen=False) as server:
        policy = RestartPolicy(max_restarts=100, backoff_initial=5.0, backoff_max=5.0, jitter=0)
        async with open_orchestrator(backend(server), restart=policy) as orch:
            conv = await orch.spawn(TEXT, name="c1")
            async with conv.subscribe(events.Reconnecting) as sub:
                server.faults.drop_now()
                await sub.__anext__()
            start = trio.current_time()
            await orch.stop("c1", grace=1.0)
            assert conv.state is ConversationState.CLOSED
            assert trio.current_time() - start <= 1.0 + 10.0  # grace + connect timeout at most


async def test_subscribe_sees_every_conversation_filtered_by_type_and_name(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with (
        open_fake_server(listen=False) as server,
        open_orchestrator(backend(server)) as orch,
    ):
        async with (
            orch.subscribe(events.TurnComplete) as turns,
            orch.subscribe(conversation="b") as only_b,
            orch.subscribe(events.TextDelta, conversation="a") as a_text,
        ):
            a = await orch.spawn(TEXT, name="a")
            b = await orch.spawn(TEXT, name="b")
            await a.ask("one")
            await b.ask("two")
            assert orch.statistics().subscribers == 3
            await a.stop()
            # A subscription to a name outlives its conversation (for the next one of it).
            assert orch.statistics().subscribers == 3
            assert not a_text.ended
        seen = [(e.conversation, type(e)) for e in _drain(turns)]
        assert seen == [("a", events.TurnComplete), ("b", events.TurnComplete)]
        b_events = _drain(only_b)
        assert {e.conversation for e in b_events} == {"b"}
        assert [type(e) for e in b_events][:1] == [events.Connected]
        assert any(isinstance(e, events.TextDelta) for e in b_events)
        text = "".join(e.text for e in _drain(a_text))  # type: ignore[attr-defined]
        assert text == "echo #1: one"
        assert orch.statistics().subscribers == 0


async def test_orchestrator_wide_subscriptions_end_at_shutdown(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fake_server(listen=False) as server:
        received: list[events.Event] = []
        async with (
            trio.open_nursery() as outside,
            open_orchestrator(backend(server)) as orch,
        ):

            async def watch(task_status: trio.TaskStatus[None]) -> None:
                async with orch.subscribe(events.ConversationClosed) as sub:
                    task_status.started()
                    async for event in sub:
                        received.append(event)

            await outside.start(watch)
            await orch.spawn(TEXT, name="a")
            await orch.spawn(TEXT, name="b")
            # The watcher's iteration ended by itself once the orchestrator was gone.
        assert sorted(e.conversation for e in received) == ["a", "b"]


async def test_subscribe_accepts_a_conversation_ref(autojump_clock: trio.testing.MockClock) -> None:
    async with (
        open_fake_server(listen=False) as server,
        open_orchestrator(backend(server)) as orch,
    ):
        a = await orch.spawn(TEXT, name="a")
        async with orch.subscribe(events.TurnComplete, conversation=a) as sub:  # type: ignore[arg-type]
            await a.ask("x")
            assert [e.conversation for e in _drain(sub)] == ["a"]


async def test_statistics_count_conversations_that_ended(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fake_server(listen=False) as server:
        async with open_orchestrator(backend(server), max_sessions=3) as orch:
            a = await orch.spawn(TEXT, name="a")
            b = await orch.spawn(TEXT, name="b")
            c = await orch.spawn(TEXT, name="c")
            for conv in (a, b, c):
                await conv.ask("q1")
            await a.ask("q2")
            before = orch.statistics()
            assert (before.conversations, before.sessions, before.peak_sessions) == (3, 3, 3)
            assert before.turns == 4
            await a.stop()
            # b fails: the service rejects it mid-session.
            server.faults.close_now(1008, "Policy violation", connection=2)
            with trio.fail_after(5):
                await b.wait_closed()
            assert b.state is ConversationState.FAILED
            server.faults.close(1007, "bad", connection="next")
            with pytest.raises(SessionRejected):
                await orch.spawn(TEXT, name="d")
            after = orch.statistics()
            assert (after.conversations, after.sessions) == (1, 1)
            assert (after.spawned, after.closed, after.failed, after.rejected) == (3, 1, 1, 1)
            # Counters of a and b did not vanish with them.
            assert after.turns == 4
            assert after.messages_out >= before.messages_out
            assert after.messages_in >= before.messages_in
            assert after.tokens == before.tokens > 0
            assert after.connects == 4
            live = c.statistics()
            ended = after.messages_out - live.messages_out
            # a, b, and the setup d sent before it was rejected.
            assert ended == a.statistics().messages_out + b.statistics().messages_out + 1
            assert after.peak_sessions == 3
            assert after.max_sessions == 3
        final = orch.statistics()
        assert (final.conversations, final.sessions, final.closed, final.closing) == (0, 0, 2, True)
        assert final.turns == 4
        assert final.messages_out == after.messages_out


async def test_statistics_count_reconnects_and_handoffs_of_ended_conversations(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with (
        open_fake_server(listen=False) as server,
        open_orchestrator(backend(server)) as orch,
    ):
        conv = await orch.spawn(TEXT, name="a")
        async with conv.subscribe(events.Connected) as sub:
            server.faults.drop_now()
            await sub.__anext__()
            server.faults.go_away_now(2.0)
            await sub.__anext__()
        await conv.ask("x")
        await conv.stop()
        stats = orch.statistics()
        assert (stats.reconnects, stats.handoffs, stats.connects) == (1, 1, 3)
        assert stats.turns == 1


async def test_repr(autojump_clock: trio.testing.MockClock) -> None:
    async with open_fake_server(listen=False) as server:
        async with open_orchestrator(backend(server)) as orch:
            await orch.spawn(TEXT, name="a")
            assert repr(orch) == "<Orchestrator open conversations=1>"
        assert repr(orch) == "<Orchestrator closing conversations=0>"


def _drain(sub: liveactors.Subscription) -> list[events.Event]:
    out = []
    while (event := sub.receive_nowait()) is not None:
        out.append(event)
    return out


@pytest.mark.parametrize(("threshold", "hints"), [(700, 1), (50_000, 0)])
async def test_many_conversations_with_default_gc_settings_log_a_hint_once(
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    threshold: int,
    hints: int,
) -> None:
    import gc

    from liveactors import _registry

    monkeypatch.setattr(_registry, "GC_HINT_AT", 3)
    monkeypatch.setattr(_registry, "_gc_hinted", False)
    monkeypatch.setattr(gc, "get_threshold", lambda: (threshold, 10, 10))
    caplog.set_level("INFO", logger="liveactors.orchestrator")
    async with open_fake_server(listen=False) as server, open_orchestrator(backend(server)) as orch:
        for n in range(5):
            await orch.spawn(TEXT, name=f"c{n}")
    said = [r.getMessage() for r in caplog.records if "garbage-collector" in r.getMessage()]
    # Once, at the threshold, pointing at the guide; never once the application tuned it.
    assert len(said) == hints
    assert all("3 conversations" in m and "docs/scaling.md" in m for m in said)


async def test_a_subscription_to_a_name_follows_its_respawns(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with (
        open_fake_server(listen=False) as server,
        open_orchestrator(backend(server)) as orch,
    ):
        async with (
            orch.subscribe(conversation="c") as following,
            orch.subscribe(events.TurnComplete) as everywhere,
        ):
            first = await orch.spawn(TEXT, name="c")
            async with first.subscribe() as own:
                await first.ask("one")
                await first.stop()
                # The conversation's own subscription ends with it ...
                assert own.ended
            # ... the orchestrator's subscription to the name waits for the next one of it.
            assert not following.ended
            second = await orch.spawn(TEXT, name="c")
            await second.ask("two")
            got = _drain(following)
            assert not following.ended
            kinds = [type(e) for e in got]
            assert kinds.count(events.Connected) == 2
            assert kinds.count(events.ConversationClosed) == 1
            closed = kinds.index(events.ConversationClosed)
            assert kinds.index(events.Connected, closed) == closed + 1
            turns = [e for e in got if isinstance(e, events.TurnComplete)]
            assert [e.conversation for e in turns] == ["c", "c"]
            assert len(_drain(everywhere)) == 2
        assert orch.statistics().subscribers == 0


async def test_a_following_subscription_ends_at_shutdown(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fake_server(listen=False) as server:
        received: list[events.Event] = []
        async with (
            trio.open_nursery() as outside,
            open_orchestrator(backend(server)) as orch,
        ):

            async def watch(task_status: trio.TaskStatus[None]) -> None:
                async with orch.subscribe(events.ConversationClosed, conversation="c") as sub:
                    task_status.started()
                    async for event in sub:
                        received.append(event)

            await outside.start(watch)
            await orch.stop((await orch.spawn(TEXT, name="c")).name)
            await orch.spawn(TEXT, name="c")
            # The watcher's iteration ends by itself once the orchestrator is gone.
        assert [e.conversation for e in received] == ["c", "c"]
