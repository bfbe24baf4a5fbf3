"""Function calling on gemini-3.8-live: NON_BLOCKING by default, BLOCKING when declared, and
the scheduling of NON_BLOCKING results.

    python examples/tool_calling.py

On gemini-3.8-live (``liveactors.DEFAULT_MODEL``) a function declared without ``behavior`` runs
NON_BLOCKING: the model does not wait for it, keeps talking, and hears the result later. A
function whose result the answer needs is declared ``behavior=BLOCKING``. A NON_BLOCKING
result goes back with a ``scheduling`` that says what the model does with it: ``WHEN_IDLE``
(speak about it once the current output is done; liveactors' default), ``INTERRUPT`` (cut in
at once) or ``SILENT`` (only add it to the context).

A ``Conversation`` subclass answers the model's calls itself: ``functions`` maps names to
callables (sync ones run in a worker thread, async ones in the conversation's nursery) and
``scheduling`` maps NON_BLOCKING names to their scheduling.

* ``get_weather`` is declared BLOCKING: the model waits for the weather and answers with it
  in the same turn.
* ``note_preference`` is NON_BLOCKING (the default) with ``SILENT`` scheduling: the model says
  "Noted." at once; the result joins the context without a turn of its own.
* ``book_table`` is NON_BLOCKING with ``WHEN_IDLE``: the model says "Booking it now." and the
  turn completes; when the slow booking is done, the model tells the user in a new turn, and
  uses the preference noted earlier.

Against the fake server a small responder plays the model (see ``fake_model``); with
``GEMINI_API_KEY`` set the real model decides to call the functions itself. The model answers
in speech; what it says comes back as its transcript (``Reply.text``, ``OutputTranscript``).
"""

from __future__ import annotations

import os
from typing import Any

import trio
from google.genai import types

import liveactors
from liveactors import events
from liveactors.testing import CallTool, Say, TurnContext, open_fake_server

MODEL = os.environ.get("LIVEACTORS_MODEL", liveactors.DEFAULT_MODEL)
TURN_TIMEOUT = 60


# -- the functions ------------------------------------------------------------------------------


def get_weather(city: str) -> dict[str, Any]:
    """A sync function: runs in a worker thread, so it may block (an HTTP call, say)."""
    return {"city": city, "temperature_c": 18, "sky": "cloudy"}


def note_preference(preference: str) -> dict[str, Any]:
    """Quick bookkeeping the model need not talk about."""
    return {"noted": preference}


async def book_table(time: str, guests: int = 2) -> dict[str, Any]:
    """An async function: runs in the conversation's nursery; takes a while."""
    await trio.sleep(0.3)  # the restaurant's booking system is slow
    return {"confirmation": "T-42", "time": time, "guests": guests}


def _object(required: str, **properties: types.Schema) -> types.Schema:
    """The schema of a function's arguments; ``required`` names the one that must be given."""
    return types.Schema(type=types.Type.OBJECT, properties=properties, required=[required])


DECLARATIONS = [
    types.FunctionDeclaration(
        name="get_weather",
        description="Current weather in a city.",
        # The answer needs the result: make the model wait for it.
        behavior=types.Behavior.BLOCKING,
        parameters=_object("city", city=types.Schema(type=types.Type.STRING)),
    ),
    types.FunctionDeclaration(
        name="note_preference",
        description="Remember a preference of the user (diet, seating...).",
        # No behavior: NON_BLOCKING on gemini-3.8-live.
        parameters=_object("preference", preference=types.Schema(type=types.Type.STRING)),
    ),
    types.FunctionDeclaration(
        name="book_table",
        description="Book a restaurant table. Takes a while; the user may keep talking.",
        parameters=_object(
            "time",
            time=types.Schema(type=types.Type.STRING, description="24h, like 20:00"),
            guests=types.Schema(type=types.Type.INTEGER),
        ),
    ),
]


class Concierge(liveactors.Conversation):
    """A conversation that answers its own tool calls."""

    functions = {
        "get_weather": get_weather,
        "note_preference": note_preference,
        "book_table": book_table,
    }
    #: For NON_BLOCKING functions only: "WHEN_IDLE" (the default) speaks after the current
    #: output, "INTERRUPT" cuts in at once, "SILENT" only adds the result to the context.
    scheduling = {"note_preference": "SILENT", "book_table": "WHEN_IDLE"}

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
    if ctx.tool_results:  # a BLOCKING result, or a WHEN_IDLE one
        result = ctx.tool_results[0]
        output = result["response"].get("output", {})
        if result["name"] == "get_weather":
            return f"It is {output['temperature_c']} °C and {output['sky']} in {output['city']}."
        noted = [
            part["functionResponse"]["response"]["output"]["noted"]
            for entry in ctx.history
            for part in entry.get("parts", ())
            if part.get("functionResponse", {}).get("name") == "note_preference"
        ]
        return (
            f"Good news: your table for {output['guests']} at {output['time']} is booked, "
            f"confirmation {output['confirmation']}. I told them: {', '.join(noted) or 'nothing'}."
        )
    text = ctx.user_text.lower()
    if "weather" in text:
        return CallTool("get_weather", {"city": "Paris"})
    if "vegetarian" in text:
        return [CallTool("note_preference", {"preference": "vegetarian"}), Say("Noted.")]
    if "book" in text:
        return [CallTool("book_table", {"time": "20:00", "guests": 2}), Say("Booking it now.")]
    return "Happy to help."


# -- the conversation ---------------------------------------------------------------------------


async def converse(backend: liveactors.GeminiBackend) -> None:
    config = types.LiveConnectConfig(
        system_instruction="You are a concierge in Paris. Use the tools; be brief.",
        tools=[types.Tool(function_declarations=DECLARATIONS)],
    )
    async with liveactors.open_orchestrator(backend) as orch:
        conv = await orch.spawn(config, name="concierge", actor=Concierge)

        # 1. BLOCKING: the call is answered inside the turn that asked for it.
        question = "What's the weather like in Paris right now?"
        print(f"you> {question}")
        with trio.fail_after(TURN_TIMEOUT):
            reply = await conv.ask(question)
        print(f"model> {reply.text}")

        # 2. NON_BLOCKING + SILENT: the model answers at once; the result only joins the context.
        question = "I'm vegetarian, please keep that in mind."
        print(f"you> {question}")
        with trio.fail_after(TURN_TIMEOUT):
            reply = await conv.ask(question)
        print(f"model> {reply.text}")

        # 3. NON_BLOCKING + WHEN_IDLE: the result comes after the turn, and the model speaks
        # again. Subscribe before asking, so nothing of that later turn can be missed. (The
        # buffer holds 256 events; a subscriber that stops reading holds the conversation up.)
        async with conv.subscribe(events.OutputTranscript, events.TurnComplete) as stream:
            question = "Please book a table for two at eight tonight."
            print(f"you> {question}")
            with trio.fail_after(TURN_TIMEOUT):
                reply = await conv.ask(question)
            print(f"model> {reply.text}")
            calls = ", ".join(c.name or "?" for c in reply.tool_calls) or "none"
            print(f"       (tool calls in that turn: {calls})")

            later = []
            with trio.fail_after(TURN_TIMEOUT):
                async for event in stream:
                    if event.turn <= reply.turn:
                        continue  # the turn ``ask`` already returned
                    if isinstance(event, events.OutputTranscript):
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
        print(f"GEMINI_API_KEY is not set: using the embedded fake server ({MODEL})")
        async with open_fake_server(listen=False, responder=fake_model) as server:
            await converse(server.backend(model=MODEL))


if __name__ == "__main__":
    trio.run(main)
