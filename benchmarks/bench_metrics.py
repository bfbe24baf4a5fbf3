"""Observability cost: client CPU per message with metrics and tracing off, and on.

The fake server runs in its own process (``ws://`` on loopback). In one client process of its
own, each measurement spawns ``--sessions`` conversations, asks ``--turns`` questions on each
(concurrently), and stops them; each answer is ``--chunks`` text chunks, then
``generationComplete``, ``turnComplete`` with usage and the resumption update. Its CPU
(``getrusage(RUSAGE_SELF)``: every thread of the process) is read around all of it, spawns and
stops included, and divided by the WebSocket messages it took (in and out).

Variants, interleaved in rotating order, ``--rounds`` times, in the same process:

* ``off`` — neither ``liveactors.metrics`` nor ``liveactors.otel``: what every program pays
  (the counters liveactors always keeps are in every variant);
* ``metrics`` — ``liveactors.metrics.register()`` into a registry scraped (``generate_latest``,
  in the trio thread) every ``--scrape-every`` seconds, far more often than Prometheus' usual
  15 s, and once more at the end of each measurement;
* ``on`` — metrics, and ``liveactors.otel.instrument()`` with the OpenTelemetry SDK recording
  every span (a conversation, its connection, a turn per question) into a
  ``BatchSpanProcessor`` whose exporter discards them, flushed before the CPU is read;
* ``sampled`` — the same with the sampler production setups use,
  ``ParentBased(TraceIdRatioBased(--sample))``: a conversation is traced whole, or not at all.

Each answer length in ``--chunks`` is measured with a server of its own. The figures are CPU
per message of each variant, and its ratio to ``off`` (the median of the ratios within each
round). Spans come per turn, not per message: the fewer messages a turn has, the more tracing
costs per message, so short text answers are the worst case (spoken answers carry more, and
costlier, messages). Nothing here asserts a time: it prints numbers.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _bench_common as common

VARIANTS = ("off", "metrics", "on", "sampled")


async def _client(
    url: str, sessions: int, turns: int, rounds: int, scrape_every: float, sample: float
) -> list[dict[str, Any]]:
    import trio
    from google.genai import types
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    from prometheus_client import CollectorRegistry, generate_latest

    import liveactors
    import liveactors.metrics
    import liveactors.otel

    class Discard(SpanExporter):
        """An exporter that drops what it is given (the export path, without a network)."""

        spans = 0

        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            Discard.spans += len(spans)
            return SpanExportResult.SUCCESS

    providers = {
        "on": TracerProvider(),
        "sampled": TracerProvider(sampler=ParentBased(TraceIdRatioBased(sample))),
    }
    for provider in providers.values():
        provider.add_span_processor(BatchSpanProcessor(Discard()))
    registry = CollectorRegistry()
    backend = liveactors.GeminiBackend(
        api_key=common.API_KEY, model=common.TEXT_MODEL, base_url=url
    )
    config = types.LiveConnectConfig(response_modalities=[types.Modality.TEXT])
    runs: list[dict[str, Any]] = []

    async with liveactors.open_orchestrator(backend) as orch:

        async def talk(conv: liveactors.ConversationRef, count: int) -> None:
            for _ in range(count):
                await conv.ask("burst")

        async def scraper(scrapes: list[int]) -> None:
            while True:
                await trio.sleep(scrape_every)
                generate_latest(registry)
                scrapes[0] += 1

        async def measure(variant: str) -> dict[str, Any]:
            metrics_on = variant != "off"
            provider = providers.get(variant)
            if metrics_on:
                liveactors.metrics.register(registry)
            else:
                liveactors.metrics.unregister(registry)
            if provider is not None:
                liveactors.otel.instrument(provider)
            else:
                liveactors.otel.uninstrument()
            spans_before, scrapes = Discard.spans, [0]
            cpu, started = common.cpu_seconds(), time.perf_counter()
            async with trio.open_nursery() as nursery:
                if metrics_on:
                    nursery.start_soon(scraper, scrapes)
                convs = [await orch.spawn(config) for _ in range(sessions)]
                async with trio.open_nursery() as talkers:
                    for conv in convs:
                        talkers.start_soon(talk, conv, turns)
                stats = [conv.statistics() for conv in convs]
                for conv in convs:
                    await conv.stop(grace=0)
                if metrics_on:
                    generate_latest(registry)  # at least one scrape per measurement
                    scrapes[0] += 1
                if provider is not None:
                    provider.force_flush()
                nursery.cancel_scope.cancel()
            cpu, wall = common.cpu_seconds() - cpu, time.perf_counter() - started
            return {
                "variant": variant,
                "cpu_s": cpu,
                "wall_s": wall,
                "messages": sum(s.messages_in + s.messages_out for s in stats),
                "turns": sum(s.turns for s in stats),
                "spans": Discard.spans - spans_before,
                "scrapes": scrapes[0],
            }

        for variant in VARIANTS:  # warm-up: first-use costs of every path
            await measure(variant)
        for number, order in enumerate(common.rotations(VARIANTS, rounds)):
            for variant in order:
                run = await measure(variant)
                run["round"] = number
                runs.append(run)
                common.note(
                    f"  round {number + 1} {variant:>7}: {run['cpu_s']:.3f} CPU-s, "
                    f"{run['messages']} messages, {run['spans']} spans"
                )
        await orch.aclose(grace=0)
    liveactors.otel.uninstrument()
    for provider in providers.values():
        provider.shutdown()
    return runs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (seconds)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--sessions", type=int, default=16, help="conversations per measurement (16)"
    )
    parser.add_argument("--turns", type=int, default=15, help="questions per conversation (15)")
    parser.add_argument(
        "--chunks",
        type=int,
        nargs="+",
        default=[5, 40],
        help="text chunks per answer: each is measured with a server of its own (5 40)",
    )
    parser.add_argument("--rounds", type=int, default=7, help="interleaved repetitions (7)")
    parser.add_argument(
        "--scrape-every", type=float, default=1.0, help="seconds between scrapes (1)"
    )
    parser.add_argument(
        "--sample", type=float, default=0.25, help="share of conversations sampled (0.25)"
    )
    parser.add_argument("--results-dir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-save", action="store_true", help="write no results file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    return parser


def _figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One answer length's figures: CPU per message of each variant (medians), and the ratios
    to ``off`` (medians of the ratios within each round)."""

    def us(run: dict[str, Any]) -> float:
        return 1e6 * run["cpu_s"] / run["messages"]

    per_message = {
        variant: common.median([us(r) for r in runs if r["variant"] == variant])
        for variant in VARIANTS
    }
    ratios: dict[str, list[float]] = {variant: [] for variant in VARIANTS[1:]}
    for number in sorted({r["round"] for r in runs}):
        mine = {r["variant"]: us(r) for r in runs if r["round"] == number}
        for variant, found in ratios.items():
            if "off" in mine and variant in mine:
                found.append(mine[variant] / mine["off"])
    ratio = {variant: common.median(found) for variant, found in ratios.items()}
    per_turn = common.median([r["messages"] / max(1, r["turns"]) for r in runs])
    return {
        "us_per_message": {variant: round(value, 2) for variant, value in per_message.items()},
        "ratio": {variant: round(value, 4) for variant, value in ratio.items()},
        "overhead_percent": {
            variant: round(100 * (value - 1), 2) for variant, value in ratio.items()
        },
        # What metrics and full tracing add per model turn (spans come per turn).
        "us_added_per_turn_on": round((per_message["on"] - per_message["off"]) * per_turn, 1),
        "messages_per_turn": round(per_turn, 1),
        "messages_per_run": int(common.median([r["messages"] for r in runs])),
        "spans_per_run": {
            variant: int(common.median([r["spans"] for r in runs if r["variant"] == variant]))
            for variant in ("on", "sampled")
        },
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its figures, and return them."""
    args = _parser().parse_args(argv)
    if args.child:
        import trio

        runs = trio.run(
            _client,
            args.url,
            args.sessions,
            args.turns,
            args.rounds,
            args.scrape_every,
            args.sample,
        )
        print(json.dumps({"runs": runs}))
        return {"runs": runs}
    if args.quick:
        args.sessions, args.turns, args.rounds = 8, 8, 3
    started = time.perf_counter()
    settings = []
    every_run: dict[str, list[dict[str, Any]]] = {}
    for chunks in args.chunks:
        burst = str(chunks * 20)
        with common.ServerProcess("--chunks", str(chunks), "--burst-chars", burst) as server:
            child = ["--child", "--url", server.url, "--sessions", str(args.sessions)]
            child += ["--turns", str(args.turns), "--rounds", str(args.rounds)]
            child += ["--scrape-every", str(args.scrape_every), "--sample", str(args.sample)]
            runs = common.run_child(Path(__file__), child)["runs"]
        every_run[str(chunks)] = runs
        settings.append({"chunks": chunks, **_figures(runs)})
    results: dict[str, Any] = {
        "chunks": list(args.chunks),
        # The worst case over the answer lengths (the shortest answers).
        "ratio_metrics": max(s["ratio"]["metrics"] for s in settings),
        "ratio_on": max(s["ratio"]["on"] for s in settings),
        "ratio_sampled": max(s["ratio"]["sampled"] for s in settings),
        "settings": settings,
        "params": {
            "sessions": args.sessions,
            "turns": args.turns,
            "rounds": args.rounds,
            "scrape_every_s": args.scrape_every,
            "sample": args.sample,
        },
        "wall_s": common.timed(started),
        "runs": every_run,
    }
    if not args.no_save:
        common.save("metrics", results, quick=args.quick, results_dir=args.results_dir)
    if args.json:
        keys = ("chunks", "ratio_metrics", "ratio_on", "ratio_sampled")
        print(json.dumps({k: results[k] for k in keys}))
    else:
        print(report(results))
    return results


def report(results: dict[str, Any]) -> str:
    """The figures as lines of text."""
    sample = results["params"]["sample"]
    lines = [
        f"CPU per message, and its ratio to off: metrics / metrics + tracing / "
        f"metrics + tracing sampled at {sample:g}"
    ]
    for s in results["settings"]:
        us, ratio, percent = s["us_per_message"], s["ratio"], s["overhead_percent"]
        lines.append(
            f"{s['messages_per_turn']:>5} messages per turn: off {us['off']} us; "
            + " / ".join(
                f"{us[v]} us ({ratio[v]}, {percent[v]:+}%)" for v in ("metrics", "on", "sampled")
            )
            + f"; tracing adds {s['us_added_per_turn_on']} us per turn"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
