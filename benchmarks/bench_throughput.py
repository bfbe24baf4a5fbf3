"""Client CPU per server message: liveactors against google-genai's asyncio client and a bare loop.

The fake server runs in its own process and serves ``wss://`` with a certificate from a
throwaway trustme CA, which every client trusts. ``--sessions`` sessions each ask ``--turns``
turns; each answer is ``--chunks`` model chunks — 100 ms of 24 kHz audio each (AUDIO), or about
20 characters of text each (TEXT) — then ``generationComplete``, ``turnComplete`` with usage,
and the session-resumption updates. Every client uses the same setup (session resumption and
sliding-window compression on, as liveactors always asks), so the server sends each variant the
very same messages.

Variants, each in a fresh process of its own (``getrusage(RUSAGE_SELF)`` is then its own CPU,
read once every session is set up and again when the last answer is in):

* ``liveactors`` — ``open_orchestrator`` + ``spawn``; per session, one subscriber reads every
  event until ``TurnComplete`` and sends the next turn;
* ``sdk`` — google-genai's ``client.aio.live.connect`` (asyncio, ``websockets``); per session,
  ``send_client_content`` then iterate ``session.receive()`` to the end of the turn;
* ``bare`` — trio-websocket and ``json.loads``, the floor of this stack: per frame, parse the
  JSON and take the text or decode the audio (base64), as any consumer must. It reads 64 KiB at
  a time, like liveactors.

Variants run interleaved in rotating order, ``--rounds`` times; the figures are medians, and the
ratios are medians of ratios within a round. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import binascii
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _bench_common as common

VARIANTS = ("liveactors", "sdk", "bare")
MODALITIES = ("AUDIO", "TEXT")
#: Characters per text chunk: about what the service sends per TEXT chunk.
TEXT_CHUNK_CHARS = 20

# -- the client processes ----------------------------------------------------------------


def _model(modality: str) -> str:
    return common.AUDIO_MODEL if modality == "AUDIO" else common.TEXT_MODEL


def _setup_message(modality: str) -> dict[str, Any]:
    return {
        "setup": {
            "model": f"models/{_model(modality)}",
            "generationConfig": {"responseModalities": [modality]},
            "sessionResumption": {},
            "contextWindowCompression": {"slidingWindow": {}},
        }
    }


def _turn_message() -> dict[str, Any]:
    return {
        "clientContent": {
            "turns": [{"role": "user", "parts": [{"text": "burst"}]}],
            "turnComplete": True,
        }
    }


async def _liveactors(
    url: str, ca: str, sessions: int, turns: int, modality: str
) -> dict[str, Any]:
    import trio
    from google.genai import types

    import liveactors
    from liveactors import events

    backend = liveactors.GeminiBackend(
        api_key=common.API_KEY,
        model=_model(modality),
        base_url=url,
        ssl_context=common.client_ssl_context(ca),
    )
    # The setup the other variants send: liveactors' default output transcription off.
    config = types.LiveConnectConfig(
        response_modalities=[types.Modality(modality)], output_audio_transcription=None
    )
    received = 0
    size = 0

    async def converse(conv: liveactors.ConversationRef, turns: int) -> None:
        nonlocal received, size
        async with conv.subscribe() as stream:
            for _ in range(turns):
                await conv.send_text("burst")
                async for event in stream:
                    received += 1
                    kind = type(event)
                    if kind is events.AudioChunk:
                        size += len(event.data)  # type: ignore[attr-defined]
                    elif kind is events.TextDelta:
                        size += len(event.text)  # type: ignore[attr-defined]
                    elif kind is events.TurnComplete:
                        break

    async with liveactors.open_orchestrator(backend) as orch:
        convs = [await orch.spawn(config) for _ in range(sessions)]
        async with trio.open_nursery() as nursery:
            for conv in convs:
                nursery.start_soon(converse, conv, 1)  # warm-up: first-use costs
        received = size = 0
        before = sum(c.statistics().messages_in for c in convs)
        cpu, started = common.cpu_seconds(), time.perf_counter()
        async with trio.open_nursery() as nursery:
            for conv in convs:
                nursery.start_soon(converse, conv, turns)
        cpu, wall = common.cpu_seconds() - cpu, time.perf_counter() - started
        messages = sum(c.statistics().messages_in for c in convs) - before
        await orch.aclose(grace=0)
    return {"messages": messages, "cpu_s": cpu, "wall_s": wall, "events": received, "bytes": size}


async def _sdk(url: str, ca: str, sessions: int, turns: int, modality: str) -> dict[str, Any]:
    import asyncio
    import contextlib

    from google import genai
    from google.genai import types

    client = genai.Client(
        api_key=common.API_KEY,
        http_options=types.HttpOptions(
            base_url=url.replace("wss://", "https://"),
            api_version="v1beta",
            async_client_args={"ssl": common.client_ssl_context(ca)},
        ),
    )
    config = types.LiveConnectConfig(
        response_modalities=[types.Modality(modality)],
        session_resumption=types.SessionResumptionConfig(),
        context_window_compression=types.ContextWindowCompressionConfig(
            sliding_window=types.SlidingWindow()
        ),
    )
    turn = types.Content(role="user", parts=[types.Part(text="burst")])
    received = 0
    size = 0

    async def converse(session: Any, turns: int) -> None:
        nonlocal received, size
        for _ in range(turns):
            await session.send_client_content(turns=turn, turn_complete=True)
            async for message in session.receive():
                received += 1
                content = message.server_content
                if content is not None and content.model_turn is not None:
                    for part in content.model_turn.parts or ():
                        if part.inline_data is not None:
                            size += len(part.inline_data.data or b"")
                        elif part.text is not None:
                            size += len(part.text)

    async with contextlib.AsyncExitStack() as stack:
        live = [
            await stack.enter_async_context(
                client.aio.live.connect(model=_model(modality), config=config)
            )
            for _ in range(sessions)
        ]
        await asyncio.gather(*(converse(session, 1) for session in live))  # warm-up
        received = size = 0
        cpu, started = common.cpu_seconds(), time.perf_counter()
        await asyncio.gather(*(converse(session, turns) for session in live))
        cpu, wall = common.cpu_seconds() - cpu, time.perf_counter() - started
    return {"messages": received, "cpu_s": cpu, "wall_s": wall, "events": received, "bytes": size}


async def _bare(url: str, ca: str, sessions: int, turns: int, modality: str) -> dict[str, Any]:
    import trio
    import trio_websocket

    context = common.client_ssl_context(ca)
    setup = json.dumps(_setup_message(modality))
    turn = json.dumps(_turn_message())
    received = 0
    size = 0
    a2b = binascii.a2b_base64
    loads = json.loads

    async def converse(ws: trio_websocket.WebSocketConnection, turns: int) -> None:
        nonlocal received, size
        for _ in range(turns):
            await ws.send_message(turn)
            while True:
                message = loads(await ws.get_message())
                received += 1
                content = message.get("serverContent")
                if content is None:
                    continue
                model_turn = content.get("modelTurn")
                if model_turn is not None:
                    for part in model_turn.get("parts", ()):
                        blob = part.get("inlineData")
                        if blob is not None:
                            size += len(a2b(blob["data"]))
                        elif "text" in part:
                            size += len(part["text"])
                elif content.get("turnComplete"):
                    break

    async with trio.open_nursery() as outer:
        sockets = []
        for _ in range(sessions):
            ws = await trio_websocket.connect_websocket_url(
                outer,
                url + common.PATH,
                ssl_context=context,
                extra_headers=[(b"x-goog-api-key", common.API_KEY.encode())],
                max_message_size=16 * 2**20,
                receive_buffer_size=64 * 1024,
            )
            await ws.send_message(setup)
            await ws.get_message()  # setupComplete
            sockets.append(ws)
        async with trio.open_nursery() as nursery:
            for ws in sockets:
                nursery.start_soon(converse, ws, 1)  # warm-up
        received = size = 0
        cpu, started = common.cpu_seconds(), time.perf_counter()
        async with trio.open_nursery() as nursery:
            for ws in sockets:
                nursery.start_soon(converse, ws, turns)
        cpu, wall = common.cpu_seconds() - cpu, time.perf_counter() - started
        for ws in sockets:
            await ws.aclose()
    return {"messages": received, "cpu_s": cpu, "wall_s": wall, "events": received, "bytes": size}


def _child(args: argparse.Namespace) -> dict[str, Any]:
    params = (args.url, args.ca, args.sessions, args.turns, args.modality)
    if args.child == "sdk":
        import asyncio

        return asyncio.run(_sdk(*params))
    import trio

    if args.child == "liveactors":
        return trio.run(_liveactors, *params)
    return trio.run(_bare, *params)


# -- the parent --------------------------------------------------------------------------


def _round(value: float, digits: int = 3) -> float:
    return round(value, digits)


def _summarise(runs: list[dict[str, Any]], modality: str) -> dict[str, Any]:
    """Medians per variant and medians of within-round ratios, for one modality."""
    by_variant: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    by_round: dict[int, dict[str, float]] = {}
    for run in runs:
        if run["modality"] != modality:
            continue
        rate = run["messages"] / run["cpu_s"] if run["cpu_s"] > 0 else 0.0
        by_variant[run["variant"]].append({**run, "rate": rate})
        by_round.setdefault(run["round"], {})[run["variant"]] = rate
    variants = {}
    for variant, items in by_variant.items():
        rate = common.median([i["rate"] for i in items])
        variants[variant] = {
            "msgs_per_cpu_s": round(rate),
            "cpu_s_per_10k_msgs": _round(10_000 / rate, 4) if rate else None,
            "us_per_msg": _round(1e6 / rate, 2) if rate else None,
            "messages": items[0]["messages"] if items else 0,
            "runs": len(items),
            "rates": [round(i["rate"]) for i in items],
        }

    def ratio(other: str) -> float:
        values = [r["liveactors"] / r[other] for r in by_round.values() if r.get(other)]
        return _round(common.median(values))

    return {"variants": variants, "ratio_vs_sdk": ratio("sdk"), "ratio_vs_bare": ratio("bare")}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (seconds)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--sessions", type=int, default=20, help="concurrent sessions")
    parser.add_argument("--turns", type=int, default=10, help="turns per session")
    parser.add_argument("--chunks", type=int, default=100, help="model chunks per answer")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved repetitions")
    parser.add_argument(
        "--modality", choices=(*MODALITIES, "both"), default="both", help="which answers"
    )
    parser.add_argument("--results-dir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-save", action="store_true", help="write no results file")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--ca", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its figures, and return them."""
    args = _parser().parse_args(argv)
    if args.child:
        if args.modality == "both":
            args.modality = "AUDIO"
        result = _child(args)
        print(json.dumps(result))
        return result
    if args.quick:
        args.sessions, args.turns, args.chunks, args.rounds = 10, 4, 50, 2
    modalities = MODALITIES if args.modality == "both" else (args.modality,)
    tls = common.TlsFiles()
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        with common.ServerProcess(
            "--tls-cert",
            str(tls.cert),
            "--tls-key",
            str(tls.key),
            "--chunks",
            str(args.chunks),
            "--burst-chars",
            str(args.chunks * TEXT_CHUNK_CHARS),
        ) as server:
            for number, order in enumerate(common.rotations(VARIANTS, args.rounds)):
                for modality in modalities:
                    for variant in order:
                        child_args = [
                            "--child",
                            variant,
                            "--url",
                            server.url,
                            "--ca",
                            str(tls.ca),
                            "--sessions",
                            str(args.sessions),
                            "--turns",
                            str(args.turns),
                            "--modality",
                            modality,
                        ]
                        result = common.run_child(Path(__file__), child_args)
                        result.update(variant=variant, modality=modality, round=number)
                        runs.append(result)
                        common.note(
                            f"  round {number + 1} {modality:5} {variant:10} "
                            f"{result['messages']:>7,} msgs {result['cpu_s']:.2f} CPU-s"
                        )
            server_errors = server.stats()["errors"]
    finally:
        tls.cleanup()
    per_modality = {m: _summarise(runs, m) for m in modalities}
    # The headline ratios are the worse of the two workloads: a goal is met only if it holds
    # for audio and for text.
    la_messages = sum(r["messages"] for r in runs if r["variant"] == "liveactors")
    la_cpu = sum(r["cpu_s"] for r in runs if r["variant"] == "liveactors")
    results: dict[str, Any] = {
        "ratio_vs_sdk": min(s["ratio_vs_sdk"] for s in per_modality.values()),
        "ratio_vs_bare": min(s["ratio_vs_bare"] for s in per_modality.values()),
        "msgs_per_cpu_s": round(la_messages / la_cpu, 1) if la_cpu else 0.0,
        "modalities": per_modality,
        "params": {
            "sessions": args.sessions,
            "turns": args.turns,
            "chunks": args.chunks,
            "rounds": args.rounds,
            "tls": True,
        },
        "server_errors": server_errors,
        "wall_s": common.timed(started),
        "runs": runs,
    }
    if not args.no_save:
        common.save("throughput", results, quick=args.quick, results_dir=args.results_dir)
    if args.json:
        print(
            json.dumps({k: results[k] for k in ("ratio_vs_sdk", "ratio_vs_bare", "msgs_per_cpu_s")})
        )
    else:
        print(report(results))
    return results


def report(results: dict[str, Any]) -> str:
    """The figures as lines of text."""
    lines = []
    for modality, summary in results["modalities"].items():
        for variant, figures in summary["variants"].items():
            lines.append(
                f"{modality:5} {variant:10} {figures['msgs_per_cpu_s']:>8,} msgs per CPU-s "
                f"({figures['cpu_s_per_10k_msgs']} CPU-s per 10k, {figures['us_per_msg']} us each)"
            )
        lines.append(
            f"{modality:5} liveactors / sdk = {summary['ratio_vs_sdk']:.2f}x (goal >= 1.5), "
            f"liveactors / bare = {summary['ratio_vs_bare']:.2f}x (goal >= 0.8)"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
