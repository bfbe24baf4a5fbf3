"""Fan-out: what each extra subscriber of a conversation costs per event.

The fake server runs in its own process (``ws://`` on loopback). One conversation asks
``--turns`` questions; each answer is ``--chunks`` text chunks, so about ``chunks + 4`` events
per turn. ``N`` subscribers (``conv.subscribe()``, the default ``block`` policy and buffer), each
in its own task, read every event. Every ``N`` in ``--subscribers`` — and ``N = 0``, the
baseline: the same conversation with nobody listening — is measured in one client process of
its own (``getrusage(RUSAGE_SELF)`` around the questions), interleaved in rotating order,
``--rounds`` times.

The figure is the marginal cost: ``(CPU with N subscribers - CPU with none) / (events * N)``,
in microseconds per event per subscriber — what one more subscriber adds for each event
(buffering it, waking its task, the task taking it). Medians over the rounds. Nothing here
asserts a time: it prints numbers.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _bench_common as common


async def _client(url: str, counts: list[int], turns: int, rounds: int) -> list[dict[str, Any]]:
    import trio
    from google.genai import types

    import liveactors
    from liveactors import events

    backend = liveactors.GeminiBackend(
        api_key=common.API_KEY, model=common.TEXT_MODEL, base_url=url
    )
    config = types.LiveConnectConfig(response_modalities=[types.Modality.TEXT])
    runs: list[dict[str, Any]] = []

    async with liveactors.open_orchestrator(backend) as orch:
        conv = await orch.spawn(config)
        await conv.ask("burst")  # warm-up: first-use costs

        async def measure(subscribers: int) -> dict[str, Any]:
            delivered = [0] * subscribers

            async def subscriber(n: int, task_status: trio.TaskStatus[None]) -> None:
                async with conv.subscribe() as sub:
                    task_status.started()
                    completed = 0
                    async for event in sub:
                        delivered[n] += 1
                        if type(event) is events.TurnComplete:
                            completed += 1
                            if completed == turns:
                                return

            async with trio.open_nursery() as nursery:
                for n in range(subscribers):
                    await nursery.start(subscriber, n)
                cpu, started = common.cpu_seconds(), time.perf_counter()
                for _ in range(turns):
                    await conv.ask("burst")
            cpu, wall = common.cpu_seconds() - cpu, time.perf_counter() - started
            return {
                "subscribers": subscribers,
                "cpu_s": cpu,
                "wall_s": wall,
                "events": delivered[0] if subscribers else None,
                "delivered": sum(delivered),
            }

        for number, order in enumerate(common.rotations(counts, rounds)):
            for subscribers in order:
                run = await measure(subscribers)
                run["round"] = number
                runs.append(run)
                common.note(
                    f"  round {number + 1} {subscribers:>3} subscribers: {run['cpu_s']:.3f} CPU-s"
                )
        await orch.aclose(grace=0)
    return runs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (seconds)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--turns", type=int, default=20, help="questions asked")
    parser.add_argument("--chunks", type=int, default=100, help="text chunks per answer")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved repetitions")
    parser.add_argument("--results-dir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-save", action="store_true", help="write no results file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its figures, and return them."""
    args = _parser().parse_args(argv)
    counts = [0, *args.subscribers]
    if args.child:
        import trio

        runs = trio.run(_client, args.url, counts, args.turns, args.rounds)
        print(json.dumps({"runs": runs}))
        return {"runs": runs}
    if args.quick:
        args.turns, args.rounds = 10, 3
    started = time.perf_counter()
    burst = str(args.chunks * 20)
    with common.ServerProcess("--chunks", str(args.chunks), "--burst-chars", burst) as server:
        child = ["--child", "--url", server.url, "--turns", str(args.turns)]
        child += ["--rounds", str(args.rounds), "--subscribers", *map(str, args.subscribers)]
        runs = common.run_child(Path(__file__), child)["runs"]
    events = common.median([r["events"] for r in runs if r["events"]])
    per_subscriber: list[float] = []
    per_event_total: list[float] = []
    rows = []
    for n in counts:
        mine = [r for r in runs if r["subscribers"] == n]
        cpu = common.median([r["cpu_s"] for r in mine])
        rows.append(
            {"subscribers": n, "cpu_s": round(cpu, 4), "us_per_event": round(1e6 * cpu / events, 2)}
        )
        if n:
            # Marginal cost within each round (neighbouring runs), then the median.
            marginal = []
            for r in mine:
                base = [b for b in runs if b["subscribers"] == 0 and b["round"] == r["round"]]
                if base:
                    marginal.append(1e6 * (r["cpu_s"] - base[0]["cpu_s"]) / (events * n))
            per_subscriber.append(round(common.median(marginal), 3))
            per_event_total.append(round(1e6 * cpu / events, 2))
    results: dict[str, Any] = {
        "subscribers": list(args.subscribers),
        "us_per_event_per_subscriber": per_subscriber,
        "us_per_event_total": per_event_total,
        "events_per_run": int(events),
        "table": rows,
        "params": {"turns": args.turns, "chunks": args.chunks, "rounds": args.rounds},
        "wall_s": common.timed(started),
        "runs": runs,
    }
    if not args.no_save:
        common.save("fanout", results, quick=args.quick, results_dir=args.results_dir)
    if args.json:
        keys = ("subscribers", "us_per_event_per_subscriber")
        print(json.dumps({k: results[k] for k in keys}))
    else:
        print(report(results))
    return results


def report(results: dict[str, Any]) -> str:
    """The figures as lines of text."""
    lines = [f"one conversation, {results['events_per_run']:,} events per run:"]
    for n, marginal, total in zip(
        results["subscribers"],
        results["us_per_event_per_subscriber"],
        results["us_per_event_total"],
        strict=True,
    ):
        lines.append(
            f"{n:>4} subscribers: {marginal} us per event per subscriber "
            f"({total} us per event in all)"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
