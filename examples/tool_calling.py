"""Function calling: a blocking function, and a NON_BLOCKING one answered with scheduling.

    python examples/tool_calling.py

A ``Conversation`` subclass answers the model's tool calls itself: ``functions`` maps names to
callables (sync ones run in a worker thread, async ones in the conversation's nursery) and
``scheduling`` says when the model should use a NON_BLOCKING function's result.

* ``get_weather`` is an ordinary (blocking) function: the model waits for its result and
  answers in the same turn.
* ``book_table`` is declared ``NON_BLOCKING``: the model keeps talking ("booking it now") and
  the turn completes; when the booking is done its result goes back with ``WHEN_IDLE``
  scheduling, and the model tells the user about it in a new turn.

Against the fake server a small responder plays the model (see ``fake_model``); with
``GEMINI_API_KEY`` set the real model decides to call the functions itself.
"""

from __future__ import annotations

import os
from typing import Any

import trio
from google.genai import types

import liveactors
from liveactors import events
from liveactors.testing import CallTool, Say, TurnContext, open_fake_server

MODEL = os.environ.get("LIVEACTORS_MODEL", liveactors.TEXT_MODEL)
TURN_TIMEOUT = 60


# -- the functions ------------------------------------------------------------------------------


def get_weather(city: str) -> dict[str, Any]:
    """A sync function: runs in a worker thread, so it may block (an HTTP call, say)."""
    return {"city": city, "temperature_c": 18, "sky": "cloudy"}


async def book_table(time: str, guests: int = 2) -> dict[str, Any]:
    """An async function: runs in the conversation's nursery; takes a while."""
    await trio.sleep(0.3)  # the restaurant's booking system is slow
    return {"confirmation": "T-42", "time": time, "guests": guests}


DECLARATIONS = [
    types.FunctionDeclaration(
        name="get_weather",
        description="Current weather in a city.",
        parameters=types.Schema(
            type=types.Type.OBJECT,
            properties={"city": types.Schema(type=types.Type.STRING)},
            required=["city"],
        ),
    ),
    types.FunctionDeclaration(
        name="book_table",
        description="Book a restaurant table. Takes a while; the user may keep talking.",
        behavior=types.Behavior.NON_BLOCKING,
        parameters=types.Schema(
            type=types.Type.OBJECT,
            properties={
                "time": types.Schema(type=types.Type.STRING, description="24h, like 20:00"),
                "guests": types.Schema(type=types.Type.INTEGER),
            },
            required=["time"],
        ),
    ),
]


class Concierge(liveactors.Conversation):
    """A conversation that answers its own tool calls."""

    functions = {"get_weather": get_weather, "book_table": book_table}
    #: NON_BLOCKING results: "WHEN_IDLE" (the default) speaks after the current output,
    #: "INTERRUPT" cuts in at once, "SILENT" only adds the result to the context.
    scheduling = {"book_table": "WHEN_IDLE"}

    async def on_tool_call(self, call: types.FunctionCall) -> Any:
        print(f"  [tool] {call.name}({_args(call.args)}) started")
        result = await super().on_tool_call(call)  # calls functions[call.name](**args)
        print(f"  [tool] {call.name} -> {result}")
        return result

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.ToolCallCancelled):
            print(f"  [tool] cancelled by the model: {event.ids}")


def _args(args: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in (args or {}).items())


# -- a stand-in for the model, for the fake server -----------------------------------------------


def fake_model(ctx: TurnContext) -> Any:
    """What a real model would do here, scripted: call the functions, then use the results."""
    if ctx.tool_results:
        result = ctx.tool_results[0]
        output = result["response"].get("output", {})
        if result["name"] == "get_weather":
            return f"It is {output['temperature_c']} °C and {output['sky']} in {output['city']}."
        return (
            f"Good news: your table for {output['guests']} at {output['time']} is booked, "
            f"confirmation {output['confirmation']}."
        )
    text = ctx.user_text.lower()
    if "weather" in text:
        return CallTool("get_weather", {"city": "Paris"})
    if "book" in text:
        return [CallTool("book_table", {"time": "20:00", "guests": 2}), Say("Booking it now.")]
    return "Happy to help."


# -- the conversation ---------------------------------------------------------------------------


async def converse(backend: liveactors.GeminiBackend) -> None:
    config = types.LiveConnectConfig(
        response_modalities=["TEXT"],
        system_instruction="You are a concierge in Paris. Use the tools; be brief.",
        tools=[types.Tool(function_declarations=DECLARATIONS)],
    )
    async with liveactors.open_orchestrator(backend) as orch:
        conv = await orch.spawn(config, name="concierge", actor=Concierge)

        question = "What's the weather like in Paris right now?"
        print(f"you> {question}")
        with trio.fail_after(TURN_TIMEOUT):
            reply = await conv.ask(question)  # the blocking call is answered inside the turn
        print(f"model> {reply.text}")

        # Subscribe before asking, so nothing of the later turn can be missed. (The buffer
        # holds 256 events; a subscriber that stops reading would hold the conversation up.)
        async with conv.subscribe(events.TextDelta, events.TurnComplete) as stream:
            question = "Please book a table for two at eight tonight."
            print(f"you> {question}")
            with trio.fail_after(TURN_TIMEOUT):
                reply = await conv.ask(question)
            print(f"model> {reply.text}")
            calls = ", ".join(c.name or "?" for c in reply.tool_calls) or "none"
            print(f"       (tool calls in that turn: {calls})")

            # The NON_BLOCKING result arrives after that turn; the model speaks again.
            later = []
            with trio.fail_after(TURN_TIMEOUT):
                async for event in stream:
                    if event.turn <= reply.turn:
                        continue  # the turn ``ask`` already returned
                    if isinstance(event, events.TextDelta):
                        later.append(event.text)
                    elif isinstance(event, events.TurnComplete):
                        break
            print(f"model (later)> {''.join(later)}")

        stats = conv.statistics()
        print(f"done: {stats.turns} turns over {stats.connections} connection(s)")
        await conv.stop()


async def main() -> None:
    if os.environ.get("GEMINI_API_KEY"):
        print(f"using the real Live API with {MODEL}")
        await converse(liveactors.GeminiBackend(model=MODEL))
    else:
        print("GEMINI_API_KEY is not set: using the embedded fake server")
        async with open_fake_server(listen=False, responder=fake_model) as server:
            await converse(server.backend(model=MODEL))


if __name__ == "__main__":
    trio.run(main)
