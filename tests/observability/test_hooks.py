"""The hook points in isolation: a tool call's outcome is counted (cancelled included), and the
tracing seam is untouched while liveactors.otel is off."""

from __future__ import annotations

from typing import Any

import trio
from google.genai import types

import liveactors
from liveactors import _observe
from liveactors._tools import ToolRunner


async def test_tool_call_outcomes_are_counted() -> None:
    release = trio.Event()

    async def slow(city: str) -> str:
        await release.wait()
        return city

    async def broken(city: str) -> str:
        raise RuntimeError(city)

    class Tools(liveactors.Conversation):
        functions = {"slow": slow, "broken": broken}

    observer = _observe.ConversationObserver("c", "m")
    answered: list[Any] = []
    runner = ToolRunner("c", Tools(), frozenset(), answered.append, observer)
    calls = [
        types.FunctionCall(id="1", name="slow", args={"city": "a"}),
        types.FunctionCall(id="2", name="slow", args={"city": "b"}),
        types.FunctionCall(id="3", name="broken", args={"city": "c"}),
    ]
    async with trio.open_nursery() as nursery:
        runner.start(nursery, tuple(calls))
        await trio.testing.wait_all_tasks_blocked()
        runner.cancel(("2",))  # the model withdrew it
        await trio.testing.wait_all_tasks_blocked()
        release.set()
    assert observer.telemetry.tool_calls == {("ok",): 1, ("cancelled",): 1, ("error",): 1}
    assert len(answered) == 2
    assert observer.trace is None  # not tracing: no span was made


def test_usage_by_modality() -> None:
    telemetry = _observe.Telemetry()
    telemetry.usage(
        types.UsageMetadata(
            prompt_token_count=12,
            response_token_count=20,
            thoughts_token_count=3,
            total_token_count=35,
            prompt_tokens_details=[types.ModalityTokenCount(modality="TEXT", token_count=10)],
            response_tokens_details=[types.ModalityTokenCount(modality="AUDIO", token_count=20)],
        )
    )
    telemetry.usage(types.UsageMetadata(prompt_token_count=5, total_token_count=5))
    assert telemetry.tokens == {
        ("in", "text"): 10,
        ("in", "unspecified"): 2 + 5,  # what the details do not cover
        ("out", "audio"): 20,
        ("out", "thoughts"): 3,
    }
