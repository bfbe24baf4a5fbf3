"""Talking conversations per core: microphone audio up, the model's speech down, over TLS.

A real voice conversation streams microphone audio up all the time while the model's speech
comes down in bursts. Each conversation here sends 16 kHz PCM in 20 ms chunks, paced in real
time (speech for ``SPEAK_S`` seconds of every ``CYCLE_S``, silence between: the microphone
never stops), to the fake server (``liveactors.testing``, the 3.8 profile: ``gemini-3.8-live``)
running in ``--servers`` processes of its own over ``wss://`` with a throwaway trustme CA. The
server's VAD turns each stretch of speech into a turn once the silence gap has passed, and the
model answers it with speech and its transcript, one message of three 100 ms audio parts every
``0.3 / 3.3`` s (about 3x real time, as the 3.8 generation streams), so it speaks about half of
the time; every fourth answer is long enough that the user's next speech barges into it.

Measured per conversation count ``N``, in a window of ``--window`` seconds after the new
conversations settled:

* **upstream latency**: from the moment a chunk is due (when a real-time microphone loop calls
  ``send_audio``; the time is stamped into the chunk's first samples, below the VAD's loudness
  threshold) to the fake server's receipt of it (its VAD handler): a client too busy to call on
  time pays for it here;
* **downstream latency**: from the server sending a message of speech (its transcript is the
  server's ``time.monotonic()`` then) to the client's consumer having it. ``time.monotonic()``
  is ``CLOCK_MONOTONIC``, one clock for all processes of the machine;
* **client CPU** (``getrusage``) per conversation-minute.

The ramp: every client starts at ``--start`` conversations; from the CPU that first step costs
it predicts how many one core carries, jumps to a fraction of that, and grows by
``--factor`` while both p99 latencies stay within ``GOAL_MS`` (50 ms) and then bisects once
between the last good and the first bad count. The largest good ``N`` is the client's
**talking conversations per core** (one process: one core at most).

Clients, each in a fresh process of its own, run interleaved in rotating order, ``--rounds``
times; figures are medians, ratios are medians of within-round ratios:

* ``liveactors`` — ``open_orchestrator`` + ``spawn``; per conversation a microphone task
  calling ``send_audio`` and a subscriber reading every event;
* ``sdk`` — google-genai's asyncio client: per session, ``send_realtime_input`` from a
  microphone task and ``session.receive()`` in another (N sessions in one process);
* ``bare`` — trio-websocket on trio's TLS (the same stack liveactors uses, no library):
  ``json.dumps`` + base64 + ``send_message`` from the microphone task, and a reader parsing
  each message's JSON and decoding its audio;
* ``liveactors-gc`` — liveactors again with the collector tuned as ``docs/scaling.md``
  advises (``gc.freeze()`` once the conversations are up, generation-0 threshold 50,000),
  reported beside the others: every other client runs with Python's GC defaults.

Nothing here asserts a time: it prints numbers.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import _bench_common as common

VARIANTS = ("liveactors", "sdk", "bare")
TUNED = "liveactors-gc"
MODEL = "gemini-3.8-live"
#: Both p99 latencies must stay within this for a conversation count to count as carried.
GOAL_MS = 50.0
RATE = 16_000
CHUNK_S = 0.02
SAMPLES = int(RATE * CHUNK_S)
#: The user speaks SPEAK_S seconds of every CYCLE_S; the model answers in the rest.
CYCLE_S = 4.0
SPEAK_S = 1.5
MIME = f"audio/pcm;rate={RATE}"
TUNED_GC_THRESHOLD = 50_000
#: The golden ratio's fraction: spreads the conversations' phases over the cycle.
_SPREAD = 0.6180339887

# -- the microphone ----------------------------------------------------------------------

_SPEECH = struct.pack(
    f"<{SAMPLES}h", *(round(2000 * math.sin(2 * math.pi * 300 * i / RATE)) for i in range(SAMPLES))
)
_SILENCE = bytes(2 * SAMPLES)
_STAMP = struct.Struct("<8h").pack_into


class Mic:
    """One conversation's microphone: chunk ``k`` is due ``k * CHUNK_S`` after the start, and
    is speech while the conversation's phase of the cycle says so. Each chunk carries its due
    time (microseconds of ``time.monotonic()``, six bits in each of its first eight samples:
    at most 63, far below the VAD's loudness threshold)."""

    __slots__ = ("k", "phase", "start")

    def __init__(self, index: int, start: float) -> None:
        self.start = start
        self.phase = CYCLE_S * ((index * _SPREAD) % 1.0)
        self.k = 0

    def next(self) -> tuple[float, bytes]:
        """The next chunk's due time (``time.monotonic()``) and its PCM."""
        k = self.k
        self.k = k + 1
        due = self.start + k * CHUNK_S
        speaking = (k * CHUNK_S + self.phase) % CYCLE_S < SPEAK_S
        pcm = bytearray(_SPEECH if speaking else _SILENCE)
        value = int(due * 1e6)
        _STAMP(pcm, 0, *[(value >> (6 * n)) & 63 for n in range(8)])
        return due, bytes(pcm)


class Window:
    """What a client process counts in one measurement window."""

    def __init__(self) -> None:
        self.down_ms: list[float] = []
        self.lag_ms: list[float] = []
        self.chunks = 0
        self.messages = 0
        self.audio_bytes = 0
        self.gc = [0, 0, 0]
        self.gc_ms = 0.0
        self.gc_longest_ms = 0.0
        self.gc_collected = 0
        self._gc_started = 0.0

    def gc_callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc[info["generation"]] += 1
            took = 1000 * (time.perf_counter() - self._gc_started)
            self.gc_ms += took
            self.gc_longest_ms = max(self.gc_longest_ms, took)
            self.gc_collected += info["collected"]

    def stamps(self, text: str, now: float) -> None:
        for stamp in text.split(";"):
            if stamp:
                self.down_ms.append(1000 * (now - float(stamp)))


class Counting:
    """The current window (replaced at the start of each)."""

    window = Window()


def _window_result(
    n: int, started: float, ended: float, cpu: float, window: Window
) -> dict[str, Any]:
    seconds = ended - started
    return {
        "n": n,
        "start": started,
        "end": ended,
        "cpu_s": cpu,
        "seconds": seconds,
        "down_ms": [round(x, 2) for x in window.down_ms],
        "lag_ms": [round(x, 2) for x in window.lag_ms],
        "chunks": window.chunks,
        "expected_chunks": round(n * seconds / CHUNK_S),
        "messages": window.messages,
        "audio_bytes": window.audio_bytes,
        "gc_passes": window.gc,
        "gc_ms": round(window.gc_ms, 1),
        "gc_longest_ms": round(window.gc_longest_ms, 1),
        "gc_collected": window.gc_collected,
        "rss_kib": common.rss_kib(),
    }


# -- liveactors --------------------------------------------------------------------------


async def _liveactors(args: argparse.Namespace, tuned: bool) -> None:
    import contextlib

    import trio
    from google.genai import types

    import liveactors
    from liveactors import events

    context = common.client_ssl_context(args.ca)
    backends = [
        liveactors.GeminiBackend(
            api_key=common.API_KEY, model=MODEL, base_url=url, ssl_context=context, setup_timeout=60
        )
        for url in args.url
    ]
    config = types.LiveConnectConfig(response_modalities=[types.Modality.AUDIO])
    monotonic = time.monotonic
    audio_chunk, output_transcript = events.AudioChunk, events.OutputTranscript

    async def mic(conv: liveactors.ConversationRef, index: int) -> None:
        now = trio.current_time()
        source = Mic(index, monotonic())
        offset = now - source.start  # trio's clock minus time.monotonic()
        while True:
            due, pcm = source.next()
            await trio.sleep_until(due + offset)
            Counting.window.lag_ms.append(1000 * (monotonic() - due))
            await conv.send_audio(pcm)
            Counting.window.chunks += 1

    async def listen(conv: liveactors.ConversationRef, task_status: Any) -> None:
        async with conv.subscribe() as sub:
            task_status.started()
            async for event in sub:
                window = Counting.window
                window.messages += 1
                kind = type(event)
                if kind is audio_chunk:
                    window.audio_bytes += len(event.data)  # type: ignore[attr-defined]
                elif kind is output_transcript:
                    window.stamps(event.text, monotonic())  # type: ignore[attr-defined]

    async with contextlib.AsyncExitStack() as stack:
        orchs = [await stack.enter_async_context(liveactors.open_orchestrator(b)) for b in backends]
        talking: list[tuple[liveactors.ConversationRef, trio.CancelScope]] = []
        async with trio.open_nursery() as nursery:

            async def talk(index: int, task_status: Any) -> None:
                conv = await orchs[index % len(orchs)].spawn(config, name=f"c{index}")
                with trio.CancelScope() as scope:
                    talking.append((conv, scope))
                    task_status.started()
                    async with trio.open_nursery() as inner:
                        await inner.start(listen, conv)
                        inner.start_soon(mic, conv, index)
                await conv.stop(grace=0)

            async def resize(n: int) -> None:
                while len(talking) > n:
                    _, scope = talking.pop()
                    scope.cancel()
                async with trio.open_nursery() as spawning:
                    for index in range(len(talking), n):
                        spawning.start_soon(nursery.start, talk, index)
                if tuned:
                    gc.collect()
                    gc.freeze()
                    gc.set_threshold(TUNED_GC_THRESHOLD, *gc.get_threshold()[1:])

            await _control(args, resize, trio.sleep, lambda: trio.to_thread.run_sync(_line))
            for _, scope in talking:
                scope.cancel()
            nursery.cancel_scope.cancel()


# -- google-genai (asyncio) --------------------------------------------------------------


async def _sdk(args: argparse.Namespace) -> None:
    import asyncio
    import contextlib

    from google import genai
    from google.genai import types

    context = common.client_ssl_context(args.ca)
    clients = [
        genai.Client(
            api_key=common.API_KEY,
            http_options=types.HttpOptions(
                base_url=url.replace("wss://", "https://"),
                api_version="v1beta",
                async_client_args={"ssl": context},
            ),
        )
        for url in args.url
    ]
    config = types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        output_audio_transcription=types.AudioTranscriptionConfig(),
        session_resumption=types.SessionResumptionConfig(),
        context_window_compression=types.ContextWindowCompressionConfig(
            sliding_window=types.SlidingWindow()
        ),
    )
    loop = asyncio.get_running_loop()
    monotonic = time.monotonic

    async def mic(session: Any, index: int) -> None:
        source = Mic(index, monotonic())
        offset = loop.time() - source.start
        while True:
            due, pcm = source.next()
            delay = due + offset - loop.time()
            await asyncio.sleep(delay if delay > 0 else 0)
            Counting.window.lag_ms.append(1000 * (monotonic() - due))
            await session.send_realtime_input(audio=types.Blob(data=pcm, mime_type=MIME))
            Counting.window.chunks += 1

    async def listen(session: Any) -> None:
        while True:
            async for message in session.receive():
                window = Counting.window
                window.messages += 1
                content = message.server_content
                if content is None:
                    continue
                if content.model_turn is not None:
                    for part in content.model_turn.parts or ():
                        if part.inline_data is not None:
                            window.audio_bytes += len(part.inline_data.data or b"")
                transcript = content.output_transcription
                if transcript is not None and transcript.text:
                    window.stamps(transcript.text, monotonic())

    talking: list[tuple[contextlib.AsyncExitStack, list[asyncio.Task[None]]]] = []

    async def talk(index: int) -> None:
        stack = contextlib.AsyncExitStack()
        live = clients[index % len(clients)].aio.live.connect(model=MODEL, config=config)
        session = await stack.enter_async_context(live)
        tasks = [
            asyncio.create_task(listen(session)),
            asyncio.create_task(mic(session, index)),
        ]
        talking.append((stack, tasks))

    async def resize(n: int) -> None:
        while len(talking) > n:
            stack, tasks = talking.pop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await stack.aclose()
        await asyncio.gather(*(talk(i) for i in range(len(talking), n)))

    await _control(args, resize, asyncio.sleep, lambda: loop.run_in_executor(None, _line))
    for _, tasks in talking:
        for task in tasks:
            task.cancel()


# -- the bare trio-websocket loop ----------------------------------------------------------


async def _bare(args: argparse.Namespace) -> None:
    import binascii

    import trio
    import trio_websocket

    context = common.client_ssl_context(args.ca)
    setup = json.dumps(
        {
            "setup": {
                "model": f"models/{MODEL}",
                "generationConfig": {"responseModalities": ["AUDIO"]},
                "sessionResumption": {},
                "contextWindowCompression": {"slidingWindow": {}},
                "outputAudioTranscription": {},
            }
        }
    )
    loads, dumps = json.loads, json.dumps
    a2b, b2a = binascii.a2b_base64, binascii.b2a_base64
    monotonic = time.monotonic

    async def mic(ws: trio_websocket.WebSocketConnection, index: int) -> None:
        now = trio.current_time()
        source = Mic(index, monotonic())
        offset = now - source.start
        while True:
            due, pcm = source.next()
            await trio.sleep_until(due + offset)
            Counting.window.lag_ms.append(1000 * (monotonic() - due))
            data = b2a(pcm, newline=False).decode("ascii")
            await ws.send_message(
                dumps({"realtimeInput": {"audio": {"mimeType": MIME, "data": data}}})
            )
            Counting.window.chunks += 1

    async def listen(ws: trio_websocket.WebSocketConnection) -> None:
        while True:
            message = loads(await ws.get_message())
            window = Counting.window
            window.messages += 1
            content = message.get("serverContent")
            if content is None:
                continue
            model_turn = content.get("modelTurn")
            if model_turn is not None:
                for part in model_turn.get("parts", ()):
                    blob = part.get("inlineData")
                    if blob is not None:
                        window.audio_bytes += len(a2b(blob["data"]))
            transcript = content.get("outputTranscription")
            if transcript is not None:
                window.stamps(transcript.get("text", ""), monotonic())

    talking: list[trio.CancelScope] = []
    async with trio.open_nursery() as nursery:

        async def talk(index: int, task_status: Any) -> None:
            with trio.CancelScope() as scope:
                async with trio.open_nursery() as inner:
                    ws = await trio_websocket.connect_websocket_url(
                        inner,
                        args.url[index % len(args.url)] + common.PATH,
                        ssl_context=context,
                        extra_headers=[(b"x-goog-api-key", common.API_KEY.encode())],
                        max_message_size=16 * 2**20,
                        receive_buffer_size=64 * 1024,
                    )
                    await ws.send_message(setup)
                    await ws.get_message()  # setupComplete
                    talking.append(scope)
                    task_status.started()
                    inner.start_soon(listen, ws)
                    inner.start_soon(mic, ws, index)

        async def resize(n: int) -> None:
            while len(talking) > n:
                talking.pop().cancel()
            async with trio.open_nursery() as spawning:
                for index in range(len(talking), n):
                    spawning.start_soon(nursery.start, talk, index)

        await _control(args, resize, trio.sleep, lambda: trio.to_thread.run_sync(_line))
        nursery.cancel_scope.cancel()


# -- the client process's side of the ramp ----------------------------------------------------


def _line() -> str:
    return sys.stdin.readline()


async def _control(
    args: argparse.Namespace,
    resize: Callable[[int], Any],
    sleep: Callable[[float], Any],
    read_line: Callable[[], Any],
) -> None:
    """Take ``N`` commands from the parent: resize to ``N`` conversations, let them settle,
    measure one window, print it as a JSON line. An empty line or ``quit`` ends."""
    while True:
        words = (await read_line()).split()
        if not words or words[0] == "quit":
            return
        n = int(words[0])
        await resize(n)
        await sleep(args.settle)
        window = Counting.window = Window()
        gc.callbacks.append(window.gc_callback)
        cpu, started = common.cpu_seconds(), time.monotonic()
        await sleep(args.window)
        cpu, ended = common.cpu_seconds() - cpu, time.monotonic()
        gc.callbacks.remove(window.gc_callback)
        print(json.dumps(_window_result(n, started, ended, cpu, window)), flush=True)


def _child(args: argparse.Namespace) -> None:
    common.raise_fd_limit()
    if args.child == "sdk":
        import asyncio

        common.profiled(lambda: asyncio.run(_sdk(args)), args.child)
        return
    import trio

    if args.child == "bare":
        common.profiled(lambda: trio.run(_bare, args), args.child)
    else:
        common.profiled(lambda: trio.run(_liveactors, args, args.child == TUNED), args.child)


# -- the parent ----------------------------------------------------------------------------


class _Client:
    """A client process the parent drives, one window at a time."""

    def __init__(self, variant: str, servers: list[common.ServerProcess], args: Any) -> None:
        command = [
            sys.executable,
            str(Path(__file__)),
            "--child",
            variant,
            "--ca",
            str(args.ca_file),
            "--settle",
            str(args.settle),
            "--window",
            str(args.window),
            "--url",
            *(server.url for server in servers),
        ]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )

    def measure(self, n: int) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{n}\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the client process ended (exit {self.process.wait()})")
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.flush()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


class Probe:
    """The machine's own stalls: a thread of the (idle) parent sleeps 5 ms at a time and notes
    every wake-up more than 20 ms late. A stall it sees hit every process of the machine: a
    window in which one spoiled a p99 is measured again (this machine is shared)."""

    def __init__(self) -> None:
        import threading

        self.stalls: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            before = time.monotonic()
            time.sleep(0.005)
            late = time.monotonic() - before - 0.005
            if late > 0.02:
                self.stalls.append((before, 1000 * late))

    def worst(self, start: float, end: float) -> float:
        """The longest stall (ms) that began between ``start`` and ``end``."""
        return max((ms for at, ms in self.stalls if start <= at <= end), default=0.0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _step(
    window: dict[str, Any], servers: list[common.ServerProcess], probe: Probe | None = None
) -> dict[str, Any]:
    """One window's figures, with the servers' side of it."""
    start, end = window["start"], window["end"]
    up: list[float] = []
    server_cpu: list[float] = []
    for server in servers:
        up += server.command("up", start, end)["ms"]
        cpu = server.command("cpu", start, end)
        server_cpu.append(100 * cpu["cpu_s"] / cpu["wall_s"] if cpu["wall_s"] else 0.0)
    down = window["down_ms"]
    n, seconds = window["n"], window["seconds"]
    step = {
        "n": n,
        "up_p50_ms": round(common.percentile(up, 50), 2),
        "up_p99_ms": round(common.percentile(up, 99), 2),
        "down_p50_ms": round(common.percentile(down, 50), 2),
        "down_p99_ms": round(common.percentile(down, 99), 2),
        "up_samples": len(up),
        "down_samples": len(down),
        "client_cpu_percent": round(100 * window["cpu_s"] / seconds, 1),
        "cpu_s_per_conversation_minute": round(window["cpu_s"] / (n * seconds / 60), 4),
        "chunks_sent_fraction": round(window["chunks"] / max(1, window["expected_chunks"]), 3),
        "server_cpu_percent": [round(x, 1) for x in server_cpu],
        "gc_per_s": [round(x / seconds, 2) for x in window["gc_passes"]],
        "gc_ms_per_s": round(window["gc_ms"] / seconds, 2),
        "gc_longest_ms": window["gc_longest_ms"],
        "gc_collected_per_s": round(window["gc_collected"] / seconds, 1),
        "messages_per_s": round(window["messages"] / seconds, 1),
        "rss_mib": round(window["rss_kib"] / 1024, 1),
        "lag_p99_ms": round(common.percentile(window["lag_ms"], 99), 2),
        "machine_stall_ms": round(probe.worst(start - 1.0, end), 1) if probe else 0.0,
    }
    step["ok"] = bool(
        step["up_p99_ms"] <= GOAL_MS
        and step["down_p99_ms"] <= GOAL_MS
        and step["up_samples"] > 0
        and step["down_samples"] > 0
    )
    return step


def _ramp(
    variant: str, servers: list[common.ServerProcess], args: Any, probe: Probe
) -> dict[str, Any]:
    """Grow one client until a p99 passes the goal; the largest count within it."""
    for server in servers:
        server.command("clear")
    client = _Client(variant, servers, args)
    steps: list[dict[str, Any]] = []
    try:

        def measure(n: int) -> dict[str, Any]:
            for attempt in range(1 + args.retries):
                step = _step(client.measure(n), servers, probe)
                step["attempt"] = attempt
                steps.append(step)
                common.note(
                    f"    {variant:13} N={n:4}: up p99 {step['up_p99_ms']:7.1f} ms, down p99 "
                    f"{step['down_p99_ms']:7.1f} ms, client CPU "
                    f"{step['client_cpu_percent']:5.1f} %, servers {step['server_cpu_percent']}"
                    f" %, machine stall {step['machine_stall_ms']:.0f} ms "
                    f"{'ok' if step['ok'] else 'OVER'}"
                )
                if step["ok"] or step["machine_stall_ms"] < args.stall_ms:
                    break
            return step

        first = measure(args.start)
        good = args.start if first["ok"] else 0
        bad: int | None = None if first["ok"] else args.start
        if bad is None:
            # One core carries about 1 / (CPU per conversation) of them: start below that.
            per = first["client_cpu_percent"] / 100 / args.start
            n = max(args.start + 1, int(args.jump / per)) if per > 0 else args.start * 2
            for _ in range(args.max_steps):
                step = measure(n)
                if not step["ok"]:
                    bad = n
                    break
                good = n
                n = max(n + 1, int(n * args.factor))
        if bad is not None and good and bad / good > 1.06:
            middle = round(math.sqrt(good * bad))
            if good < middle < bad and measure(middle)["ok"]:
                good = middle
    finally:
        client.close()
    carried = [s for s in steps if s["n"] == good and s["ok"]]
    at = carried[-1] if carried else steps[0]
    return {
        "variant": variant,
        "conversations_per_core": good,
        "first_over": bad,
        "up_p99_ms": at["up_p99_ms"],
        "down_p99_ms": at["down_p99_ms"],
        "cpu_s_per_conversation_minute": at["cpu_s_per_conversation_minute"],
        "reference_cpu_s_per_conversation_minute": steps[0]["cpu_s_per_conversation_minute"],
        "client_cpu_percent": at["client_cpu_percent"],
        "server_cpu_percent": round(sum(at["server_cpu_percent"]), 1),
        "gc_per_s": at["gc_per_s"],
        "steps": steps,
    }


def _summarise(runs: list[dict[str, Any]], variants: Sequence[str]) -> dict[str, Any]:
    by_variant: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    by_round: dict[int, dict[str, float]] = {}
    cpu_by_round: dict[int, dict[str, float]] = {}
    for run in runs:
        by_variant[run["variant"]].append(run)
        by_round.setdefault(run["round"], {})[run["variant"]] = run["conversations_per_core"]
        cpu_by_round.setdefault(run["round"], {})[run["variant"]] = run[
            "reference_cpu_s_per_conversation_minute"
        ]
    figures = {}
    for variant, items in by_variant.items():
        figures[variant] = {
            "conversations_per_core": common.median([i["conversations_per_core"] for i in items]),
            "up_p99_ms": common.median([i["up_p99_ms"] for i in items]),
            "down_p99_ms": common.median([i["down_p99_ms"] for i in items]),
            "cpu_s_per_conversation_minute": common.median(
                [i["cpu_s_per_conversation_minute"] for i in items]
            ),
            "reference_cpu_s_per_conversation_minute": common.median(
                [i["reference_cpu_s_per_conversation_minute"] for i in items]
            ),
            "client_cpu_percent": common.median([i["client_cpu_percent"] for i in items]),
            "server_cpu_percent": common.median([i["server_cpu_percent"] for i in items]),
            "gc_per_s": [
                round(common.median([i["gc_per_s"][g] for i in items]), 2) for g in range(3)
            ],
            "runs": [i["conversations_per_core"] for i in items],
        }

    def ratio(other: str) -> float:
        values = [
            r["liveactors"] / r[other]
            for r in by_round.values()
            if r.get(other) and "liveactors" in r
        ]
        return round(common.median(values), 3)

    def cpu_ratio(other: str) -> float:
        # CPU per conversation-minute at the same load: theirs over ours (higher is better).
        values = [
            r[other] / r["liveactors"]
            for r in cpu_by_round.values()
            if r.get(other) and r.get("liveactors")
        ]
        return round(common.median(values), 3)

    return {
        "variants": figures,
        "ratio_vs_sdk": ratio("sdk"),
        "ratio_vs_bare": ratio("bare"),
        "cpu_ratio_vs_sdk": cpu_ratio("sdk"),
        "cpu_ratio_vs_bare": cpu_ratio("bare"),
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (about a minute)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--servers", type=int, default=3, help="fake server processes")
    parser.add_argument("--start", type=int, default=20, help="conversations in the first step")
    parser.add_argument("--factor", type=float, default=1.2, help="growth per step")
    parser.add_argument(
        "--jump", type=float, default=0.35, help="the second step, as a fraction of a core"
    )
    parser.add_argument("--max-steps", type=int, default=12, help="steps after the first")
    parser.add_argument(
        "--retries", type=int, default=2, help="measure again after a machine stall (times)"
    )
    parser.add_argument(
        "--stall-ms", type=float, default=40.0, help="a machine stall this long spoils a window"
    )
    parser.add_argument("--window", type=float, default=8.0, help="seconds measured per step")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument(
        "--no-gc-variant", dest="gc_variant", action="store_false", help="skip liveactors-gc"
    )
    parser.add_argument("--variants", nargs="+", choices=(*VARIANTS, TUNED), default=None)
    parser.add_argument("--results-dir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-save", action="store_true", help="write no results file")
    parser.add_argument("--child", choices=(*VARIANTS, TUNED), help=argparse.SUPPRESS)
    parser.add_argument("--url", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--ca", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its figures, and return them."""
    args = _parser().parse_args(argv)
    if args.child:
        _child(args)
        os._exit(0)
    if args.quick:
        args.rounds, args.window, args.settle, args.factor = 1, 2.5, 1.5, 1.3
        args.max_steps, args.retries = 2, 0
        args.gc_variant = False
    variants = list(args.variants or VARIANTS)
    if args.gc_variant and args.variants is None:
        variants.append(TUNED)
    tls = common.TlsFiles()
    args.ca_file = tls.ca
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()
    probe = Probe()
    try:
        servers = [
            common.ServerProcess(
                "--tls-cert",
                str(tls.cert),
                "--tls-key",
                str(tls.key),
                "--duplex",
                "--model-profile",
                "3.8",
                "--chunks",
                "1",
            )
            for _ in range(args.servers)
        ]
        try:
            for number, order in enumerate(common.rotations(variants, args.rounds)):
                for variant in order:
                    common.note(f"  round {number + 1} {variant}")
                    run = _ramp(variant, servers, args, probe)
                    run["round"] = number
                    runs.append(run)
            server_errors = sum(server.stats()["errors"] for server in servers)
        finally:
            for server in servers:
                server.close()
    finally:
        tls.cleanup()
        probe.close()
    summary = _summarise(runs, variants)
    figures = summary["variants"]
    la, sdk = figures["liveactors"], figures.get("sdk")
    results: dict[str, Any] = {
        "conversations_per_core": float(la["conversations_per_core"]),
        "sdk_conversations_per_core": float(sdk["conversations_per_core"]) if sdk else 0.0,
        "ratio_vs_sdk": summary["ratio_vs_sdk"],
        "ratio_vs_bare": summary["ratio_vs_bare"],
        "p99_up_ms": float(la["up_p99_ms"]),
        "p99_down_ms": float(la["down_p99_ms"]),
        "cpu_ratio_vs_sdk": summary["cpu_ratio_vs_sdk"],
        "cpu_ratio_vs_bare": summary["cpu_ratio_vs_bare"],
        "server_cpu_at_capacity": la["server_cpu_percent"],
        "variants": figures,
        "params": {
            "rounds": args.rounds,
            "servers": args.servers,
            "window_s": args.window,
            "settle_s": args.settle,
            "start": args.start,
            "factor": args.factor,
            "goal_ms": GOAL_MS,
            "chunk_ms": 1000 * CHUNK_S,
            "cycle_s": CYCLE_S,
            "speak_s": SPEAK_S,
            "model": MODEL,
            "tls": True,
        },
        "server_errors": server_errors,
        "wall_s": common.timed(started),
        "runs": runs,
    }
    if not args.no_save:
        common.save("duplex", results, quick=args.quick, results_dir=args.results_dir)
    if args.json:
        keys = (
            "conversations_per_core",
            "sdk_conversations_per_core",
            "ratio_vs_sdk",
            "ratio_vs_bare",
            "p99_up_ms",
            "p99_down_ms",
        )
        print(json.dumps({k: results[k] for k in keys}))
    else:
        print(report(results))
    return results


def report(results: dict[str, Any]) -> str:
    """The figures as lines of text."""
    lines = []
    for variant, f in results["variants"].items():
        lines.append(
            f"{variant:13} {f['conversations_per_core']:>6g} talking conversations per core "
            f"(up p99 {f['up_p99_ms']} ms, down p99 {f['down_p99_ms']} ms; "
            f"{f['cpu_s_per_conversation_minute']} CPU-s per conversation-minute)"
        )
    lines.append(
        f"liveactors / sdk = {results['ratio_vs_sdk']:.2f}x (goal >= 2), "
        f"liveactors / bare = {results['ratio_vs_bare']:.2f}x (goal >= 0.9); CPU per "
        f"conversation-minute at the same load: sdk / liveactors = "
        f"{results['cpu_ratio_vs_sdk']:.2f}x, bare / liveactors = "
        f"{results['cpu_ratio_vs_bare']:.2f}x"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
