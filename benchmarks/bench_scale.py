"""Many conversations in one process: memory per conversation, spawn rate, and event latency.

The fake server runs in its own process (``ws://`` on loopback, nothing logged, no connection
lifetime), or in ``--servers`` processes if one is the bottleneck (one orchestrator per server
then, conversations spread round-robin: a session lives on one server). One client process
raises its file-descriptor limit and spawns ``--conversations`` conversations (``--spawners``
spawns in flight at once; AUDIO with output transcription, as a voice agent would use).
Then:

* memory: the client's RSS after spawning minus its RSS before (both after a garbage
  collection), divided by the conversations — everything a conversation costs: its tasks, its
  protocol state, its socket and WebSocket buffers;
* spawn rate: conversations divided by the seconds from the first spawn to the last one set up;
* latency, while ``--streaming`` (5 %) of the conversations stream audio and every other one
  sits idle: each streaming conversation asks for a long answer, which the server plays in real
  time — a 100 ms audio chunk every 100 ms, each followed by its transcript; the streams start
  spread evenly over one 100 ms period, as independent calls would be — and a subscriber
  per streaming conversation reads every event. Each transcript carries the server's
  ``time.monotonic()`` at the moment the server played that piece; the subscriber subtracts it
  from its own ``time.monotonic()`` when the event reaches it. On Linux ``time.monotonic()`` is
  ``CLOCK_MONOTONIC``, one clock for every process of the machine, so the difference is the
  time from the server sending to the subscriber receiving, across processes, without clock
  skew. It includes the server writing the frame, loopback TCP, WebSocket and JSON decoding,
  the conversation's reader, the bus and the subscriber's wake-up.

Then the same run again with the garbage collector tuned as ``docs/scaling.md`` advises
(``gc.freeze()`` once the conversations are up, generation-0 threshold 50,000), side by side:
with thousands of tasks awake, each young collection walks all of their fresh coroutine frames
(3 to 5 ms of CPU each, five times a second here), and those pauses are most of the tail.
``--no-compare-gc`` skips it.

Nothing here asserts a time: it prints numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _bench_common as common

#: The tuned run's generation-0 threshold (Python's default is 700): with thousands of tasks
#: awake, every young collection walks all of their fresh coroutine frames.
TUNED_GC_THRESHOLD = 50_000

#: Pieces per streamed answer: 60 s of audio at 100 ms a piece (a new answer follows at once).
STREAM_PIECES = 600


async def _client(args: argparse.Namespace) -> dict[str, Any]:
    import trio
    from google.genai import types

    import liveactors
    from liveactors import events

    backends = [
        liveactors.GeminiBackend(
            api_key=common.API_KEY,
            model=common.AUDIO_MODEL,
            base_url=url,
            setup_timeout=60,
        )
        for url in args.url
    ]
    config = types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        output_audio_transcription=types.AudioTranscriptionConfig(),
    )
    latencies: list[float] = []
    streamed = {"audio": 0, "transcripts": 0}
    async with contextlib.AsyncExitStack() as stack:
        # One orchestrator per server process: each conversation lives on one server.
        orchs = [
            await stack.enter_async_context(
                liveactors.open_orchestrator(
                    backend, max_sessions=args.max_sessions, connect_rate=args.connect_rate
                )
            )
            for backend in backends
        ]
        # A first conversation pays for the imports, caches and pydantic schemas.
        for orch in orchs:
            warm = await orch.spawn(config, name="warm-up")
            await warm.stop(grace=0)
        gc.collect()
        rss_before = common.rss_kib()
        convs: list[liveactors.ConversationRef] = []
        next_name = iter(range(args.conversations))
        started = time.perf_counter()

        ramp: list[tuple[int, float, float]] = [(0, 0.0, rss_before / 1024)]
        step = max(1, args.conversations // 50)

        async def spawner() -> None:
            for n in next_name:
                convs.append(await orchs[n % len(orchs)].spawn(config, name=f"c{n}"))
                if len(convs) % step == 0:
                    elapsed = time.perf_counter() - started
                    ramp.append((len(convs), round(elapsed, 3), common.rss_kib() / 1024))

        async with trio.open_nursery() as nursery:
            for _ in range(min(args.spawners, args.conversations)):
                nursery.start_soon(spawner)
        spawn_s = time.perf_counter() - started
        gc.collect()
        rss_after = common.rss_kib()
        # What one full collection costs once they are all up (a pure walk: the one before
        # freed the spawning's garbage).
        full_gc = time.perf_counter()
        gc.collect()
        full_gc_ms = 1000 * (time.perf_counter() - full_gc)
        tracked = len(gc.get_objects())
        ready = sum(1 for c in convs if c.state is liveactors.ConversationState.READY)
        common.note(
            f"  {ready:,} conversations ready in {spawn_s:.1f} s; "
            f"RSS {rss_before / 1024:.0f} -> {rss_after / 1024:.0f} MiB"
        )

        async def stream(conv: liveactors.ConversationRef, until: float, phase: float) -> None:
            async with conv.subscribe() as sub:
                await trio.sleep(phase)
                await conv.send_text(f"stream {STREAM_PIECES}")
                async for event in sub:
                    kind = type(event)
                    if kind is events.AudioChunk:
                        streamed["audio"] += 1
                    elif kind is events.OutputTranscript:
                        now = time.monotonic()
                        streamed["transcripts"] += 1
                        for stamp in event.text.split(";"):  # type: ignore[attr-defined]
                            if stamp:
                                latencies.append(now - float(stamp))
                        if now >= until:
                            return
                    elif kind is events.TurnComplete:
                        await conv.send_text(f"stream {STREAM_PIECES}")

        streaming = convs[: args.streaming]
        if args.gc_freeze:
            # Everything alive now is long-lived: keep it out of the collector's full passes.
            gc.collect()
            gc.freeze()
        if args.gc_threshold is not None:
            gc.set_threshold(args.gc_threshold, *gc.get_threshold()[1:])
        pauses = _GcPauses()
        gc.callbacks.append(pauses)
        cpu = common.cpu_seconds()
        until = time.monotonic() + args.seconds
        async with trio.open_nursery() as nursery:
            for n, conv in enumerate(streaming):
                # Streams start spread over one 100 ms period, as independent calls would be;
                # started all at once they would send in lockstep bursts.
                nursery.start_soon(stream, conv, until, 0.1 * n / len(streaming))
        cpu = common.cpu_seconds() - cpu
        gc.callbacks.remove(pauses)
        still_ready = sum(1 for c in convs if c.state is liveactors.ConversationState.READY)
        stopping = time.perf_counter()
        with trio.move_on_after(30):
            async with trio.open_nursery() as nursery:
                for orch in orchs:
                    nursery.start_soon(orch.aclose, 0)
        shutdown_s = time.perf_counter() - stopping
    ms = [1000 * x for x in latencies]
    return {
        "conversations": ready,
        "still_ready_after_streaming": still_ready,
        "streaming": len(streaming),
        "spawn_s": round(spawn_s, 2),
        "spawn_rate_per_s": round(ready / spawn_s, 1) if spawn_s else 0.0,
        "rss_before_mib": round(rss_before / 1024, 1),
        "rss_after_mib": round(rss_after / 1024, 1),
        "rss_per_conversation_kib": round((rss_after - rss_before) / max(1, ready), 1),
        "latency_samples": len(ms),
        "p50_ms": round(common.percentile(ms, 50), 2),
        "p90_ms": round(common.percentile(ms, 90), 2),
        "p99_ms": round(common.percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2) if ms else 0.0,
        "latency_histogram_ms": _histogram(ms),
        # The distribution in 201 quantiles (0, 0.5, ..., 100 %), for the plot.
        "latency_quantiles_ms": [round(common.percentile(ms, q / 2), 3) for q in range(201)],
        "ramp": [{"conversations": n, "seconds": t, "rss_mib": round(m, 1)} for n, t, m in ramp],
        "audio_chunks": streamed["audio"],
        "transcripts": streamed["transcripts"],
        "client_cpu_percent_while_streaming": round(100 * cpu / args.seconds, 1),
        "gc_while_streaming": pauses.summary(),
        "gc_freeze": args.gc_freeze,
        "gc_threshold": args.gc_threshold,
        "full_gc_ms": round(full_gc_ms, 1),
        "tracked_objects": tracked,
        "shutdown_s": round(shutdown_s, 2),
    }


class _GcPauses:
    """Counts the garbage collector's passes per generation and how long they stopped the loop."""

    def __init__(self) -> None:
        self.started = 0.0
        self.cpu_started = 0.0
        self.passes = [0, 0, 0]
        self.longest_ms = [0.0, 0.0, 0.0]
        self.total_ms = [0.0, 0.0, 0.0]
        self.cpu_ms = [0.0, 0.0, 0.0]
        self.collected = [0, 0, 0]

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            self.cpu_started = time.thread_time()
            return
        generation = info["generation"]
        took = 1000 * (time.perf_counter() - self.started)
        self.passes[generation] += 1
        self.total_ms[generation] += took
        self.longest_ms[generation] = max(self.longest_ms[generation], took)
        self.cpu_ms[generation] += 1000 * (time.thread_time() - self.cpu_started)
        self.collected[generation] += info["collected"]

    def summary(self) -> dict[str, list[float]]:
        return {
            "passes": list(self.passes),
            "longest_ms": [round(x, 1) for x in self.longest_ms],
            "total_ms": [round(x, 1) for x in self.total_ms],
            "cpu_ms": [round(x, 1) for x in self.cpu_ms],
            "collected": list(self.collected),
        }


def _histogram(ms: list[float]) -> dict[str, int]:
    edges = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
    counts = dict.fromkeys([f"<{e}" for e in edges] + [">=1000"], 0)
    for value in ms:
        for edge in edges:
            if value < edge:
                counts[f"<{edge}"] += 1
                break
        else:
            counts[">=1000"] += 1
    return counts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (seconds)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument(
        "--streaming", type=int, default=None, help="conversations that stream (default 5 %%)"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="streaming phase")
    parser.add_argument("--spawners", type=int, default=200, help="spawns in flight at once")
    parser.add_argument("--max-sessions", type=int, default=None)
    parser.add_argument("--connect-rate", type=float, default=None, help="connects per second")
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() once every conversation is up (keeps them out of full collections)",
    )
    parser.add_argument(
        "--gc-threshold",
        type=int,
        default=None,
        help="the garbage collector's generation-0 threshold while streaming (Python's is 700)",
    )
    parser.add_argument(
        "--no-compare-gc",
        dest="compare_gc",
        action="store_false",
        help="skip the second run with a tuned garbage collector",
    )
    parser.add_argument("--results-dir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-save", action="store_true", help="write no results file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    # Two: at 500 streams one fake-server process is itself the latency bottleneck (a bare
    # trio-websocket client measured p50 21 ms / p99 163 ms against one, as liveactors did).
    parser.add_argument(
        "--servers", type=int, default=2, help="fake server processes (conversations spread)"
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="wss:// with a throwaway CA, as with the real service (adds OpenSSL's buffers)",
    )
    parser.add_argument("--ca", help=argparse.SUPPRESS)
    parser.add_argument("--url", nargs="+", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its figures, and return them."""
    args = _parser().parse_args(argv)
    if args.quick and not args.child:
        args.conversations, args.seconds = min(args.conversations, 1000), 4.0
    if args.streaming is None:
        args.streaming = max(1, args.conversations // 20)
    if args.child:
        import trio

        if args.ca:
            # The default context, as users get it, trusting the benchmark's CA.
            os.environ["SSL_CERT_FILE"] = args.ca

        limit = common.raise_fd_limit()
        if args.conversations + 200 > limit:
            raise SystemExit(f"RLIMIT_NOFILE is {limit}: too low for {args.conversations}")
        result = trio.run(_client, args)
        print(json.dumps(result), flush=True)
        os._exit(0)  # the interpreter's own teardown of 10,000 objects is not measured
    started = time.perf_counter()
    results = _run(args, gc_freeze=args.gc_freeze, gc_threshold=args.gc_threshold)
    if args.compare_gc and not args.gc_freeze and args.gc_threshold is None:
        # The same run again, side by side, with the collector tuned as docs/scaling.md
        # advises for a service holding thousands of conversations.
        tuned = _run(args, gc_freeze=True, gc_threshold=TUNED_GC_THRESHOLD)
        results["gc_tuned"] = {
            "gc_freeze": True,
            "gc_threshold": TUNED_GC_THRESHOLD,
            **{k: tuned[k] for k in _COMPARED},
        }
    results["params"] = {
        "conversations": args.conversations,
        "streaming": args.streaming,
        "seconds": args.seconds,
        "spawners": args.spawners,
        "gc_freeze": args.gc_freeze,
        "gc_threshold": args.gc_threshold,
        "tls": args.tls,
    }
    results["wall_s"] = common.timed(started)
    if not args.no_save:
        # Over TLS the figures go beside the plain ones, not over them.
        name = "scale-tls" if args.tls else "scale"
        common.save(name, results, quick=args.quick, results_dir=args.results_dir)
    if args.json:
        keys = ("conversations", "rss_per_conversation_kib", "p99_ms")
        print(json.dumps({k: results[k] for k in keys}))
    else:
        print(report(results))
    return results


#: What the tuned run reports beside the default one.
_COMPARED = (
    "rss_per_conversation_kib",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "latency_quantiles_ms",
    "client_cpu_percent_while_streaming",
    "gc_while_streaming",
)


def _run(args: argparse.Namespace, *, gc_freeze: bool, gc_threshold: int | None) -> dict[str, Any]:
    """One client process against fresh fake-server processes."""
    with contextlib.ExitStack() as stack:
        server_args = ["--chunks", "1"]
        tls_args: list[str] = []
        if args.tls:
            tls = common.TlsFiles()
            stack.callback(tls.cleanup)
            server_args += ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
            tls_args = ["--ca", str(tls.ca)]
        servers = [
            stack.enter_context(common.ServerProcess(*server_args)) for _ in range(args.servers)
        ]
        child = [
            *tls_args,
            "--child",
            "--url",
            *(server.url for server in servers),
            "--conversations",
            str(args.conversations),
            "--streaming",
            str(args.streaming),
            "--seconds",
            str(args.seconds),
            "--spawners",
            str(args.spawners),
        ]
        if args.max_sessions:
            child += ["--max-sessions", str(args.max_sessions)]
        if args.connect_rate:
            child += ["--connect-rate", str(args.connect_rate)]
        if gc_freeze:
            child.append("--gc-freeze")
        if gc_threshold is not None:
            child += ["--gc-threshold", str(gc_threshold)]
        before = [server.stats() for server in servers]
        results = common.run_child(Path(__file__), child)
        after = [server.stats() for server in servers]
    results["server"] = {
        "processes": len(servers),
        "cpu_s": round(sum(a["cpu"] - b["cpu"] for a, b in zip(after, before, strict=True)), 2),
        "rss_mib": round(sum(a["rss_kib"] for a in after) / 1024, 1),
        "errors": sum(a["errors"] for a in after),
    }
    return results


def report(results: dict[str, Any]) -> str:
    """The figures as lines of text."""
    return (
        f"{results['conversations']:,} conversations (goal 10,000), "
        f"{results['rss_per_conversation_kib']} KiB RSS each (goal <= 64), "
        f"spawned at {results['spawn_rate_per_s']:,} per second\n"
        f"{results['streaming']} streaming audio: server send -> subscriber "
        f"p50 {results['p50_ms']} ms, p99 {results['p99_ms']} ms (goal <= 50), "
        f"max {results['max_ms']} ms over {results['latency_samples']:,} transcripts"
        + _tuned_line(results)
    )


def _tuned_line(results: dict[str, Any]) -> str:
    tuned = results.get("gc_tuned")
    if not tuned:
        return ""
    return (
        f"\nsame run, gc.freeze() + generation-0 threshold {tuned['gc_threshold']:,}: "
        f"p50 {tuned['p50_ms']} ms, p99 {tuned['p99_ms']} ms, max {tuned['max_ms']} ms"
    )


if __name__ == "__main__":
    main()
