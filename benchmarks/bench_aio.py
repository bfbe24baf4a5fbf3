"""liveactors.aio: what running the orchestrator as a trio guest on asyncio costs, per message.

The same workloads run through the trio API (``trio.run``, ``liveactors.open_orchestrator``)
and through the asyncio one (``asyncio.run``, ``liveactors.aio.open_orchestrator``: the
orchestrator as a trio guest run on the asyncio loop), side by side: each round starts one
client process per variant, in rotating order, ``--rounds`` times; each process runs every
workload (a warm-up first) and reads ``getrusage(RUSAGE_SELF)`` around each — every thread
counted, trio's I/O thread of the guest run included. The fake server runs in processes of its
own (``ws://`` on loopback; its CPU is not counted), on the text model, so a message is a small
text chunk.

Workloads (``ops`` is what a figure is per):

* ``call``: ``--calls`` calls of a trio function that only checkpoints: awaited directly in
  trio, through ``Orchestrator.run_trio`` from asyncio — the bridge alone, one call at a time;
* ``ask``: ``--asks`` sequential ``ask()`` on one conversation (a two-chunk answer each);
* ``ask_concurrent``: the same number of asks spread over ``--conversations`` conversations
  asking at once;
* ``send``: ``--sends`` ``send_text(..., turn_complete=False)`` (then one ask, so they were all
  written);
* ``stream``: ``--stream-turns`` answers of ``--stream-chunks`` text chunks each, every event
  read by one subscriber (``conv.subscribe()``): per event.

The figures: CPU microseconds per op for each variant (medians over the rounds), the overhead
``aio - trio`` per op (median of the per-round differences) and the ratio. Nothing here asserts
a time: it prints numbers.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import _bench_common as common

WORKLOADS = ("call", "ask", "ask_concurrent", "send", "stream")
VARIANTS = ("trio", "aio")


# -- the client processes ----------------------------------------------------------------------


def _setup(url: str) -> tuple[Any, Any]:
    from google.genai import types

    import liveactors

    backend = liveactors.GeminiBackend(
        api_key=common.API_KEY, model=common.TEXT_MODEL, base_url=url
    )
    return backend, types.LiveConnectConfig(response_modalities=[types.Modality.TEXT])


async def _checkpoint() -> None:
    """The trio function of the ``call`` workload: one checkpoint, nothing else."""
    import trio

    await trio.lowlevel.checkpoint()


def _measure(measured: dict[str, Any], workload: str, cpu: float, started: float, ops: int) -> None:
    measured[workload] = {
        "cpu_s": common.cpu_seconds() - cpu,
        "wall_s": time.perf_counter() - started,
        "ops": ops,
    }


async def _run_workloads(
    orch: Any,
    config: Any,
    workloads: list[str],
    params: dict[str, int],
    *,
    call: Callable[[], Awaitable[None]],
    together: Callable[[list[Callable[[], Awaitable[None]]]], Awaitable[None]],
) -> dict[str, Any]:
    """Measure each workload on an open orchestrator of either API, then close it.

    The trio and asyncio handles have the same conversation methods, so only what the APIs do
    differently is passed in: ``call``, the no-op of the ``call`` workload (awaited directly in
    trio, through the bridge from asyncio), and ``together``, which runs jobs concurrently (a
    nursery, ``asyncio.gather``).
    """
    from liveactors import events

    convs = [await orch.spawn(config) for _ in range(params["conversations"])]
    conv = convs[0]
    for warm in convs:
        await warm.ask("warm-up")

    async def asks(conv: Any, count: int) -> None:
        for _ in range(count):
            await conv.ask("q")

    async def run(workload: str) -> int:
        if workload == "call":
            for _ in range(params["calls"]):
                await call()
            return params["calls"]
        if workload == "ask":
            await asks(conv, params["asks"])
            return params["asks"]
        if workload == "ask_concurrent":
            each = params["asks"] // len(convs)
            await together([functools.partial(asks, c, each) for c in convs])
            return each * len(convs)
        if workload == "send":
            for _ in range(params["sends"]):
                await conv.send_text("s", turn_complete=False)
            await conv.ask("q")
            return params["sends"] + 1
        read = 0
        async with conv.subscribe() as stream:
            for _ in range(params["stream_turns"]):
                await conv.send_text("burst")
                async for event in stream:
                    read += 1
                    if isinstance(event, events.TurnComplete):
                        break
        return read

    measured: dict[str, Any] = {}
    for workload in workloads:
        cpu, started = common.cpu_seconds(), time.perf_counter()
        ops = await run(workload)
        _measure(measured, workload, cpu, started, ops)
    await orch.aclose(grace=0)
    return measured


async def _trio_client(url: str, workloads: list[str], params: dict[str, int]) -> dict[str, Any]:
    import trio

    import liveactors

    async def together(jobs: list[Callable[[], Awaitable[None]]]) -> None:
        async with trio.open_nursery() as nursery:
            for job in jobs:
                nursery.start_soon(job)

    backend, config = _setup(url)
    async with liveactors.open_orchestrator(backend) as orch:
        # The trio function is awaited directly: no bridge.
        return await _run_workloads(
            orch, config, workloads, params, call=_checkpoint, together=together
        )


async def _aio_client(url: str, workloads: list[str], params: dict[str, int]) -> dict[str, Any]:
    import asyncio

    from liveactors import aio

    async def together(jobs: list[Callable[[], Awaitable[None]]]) -> None:
        await asyncio.gather(*(job() for job in jobs))

    backend, config = _setup(url)
    async with aio.open_orchestrator(backend) as orch:
        # The same trio function through the bridge into the guest run; partial (not a
        # coroutine wrapper) so the per-call cost it adds stays negligible.
        return await _run_workloads(
            orch,
            config,
            workloads,
            params,
            call=functools.partial(orch.run_trio, _checkpoint),
            together=together,
        )


def _child(args: argparse.Namespace) -> dict[str, Any]:
    """One client process: one variant, every workload (the stream on its own server)."""
    params = {
        "calls": args.calls,
        "asks": args.asks,
        "sends": args.sends,
        "conversations": args.conversations,
        "stream_turns": args.stream_turns,
    }
    groups = [(args.url, ["call", "ask", "ask_concurrent", "send"]), (args.stream_url, ["stream"])]
    measured: dict[str, Any] = {}
    for url, workloads in groups:
        if args.variant == "trio":
            import trio

            measured.update(trio.run(_trio_client, url, workloads, params))
        else:
            import asyncio

            measured.update(asyncio.run(_aio_client(url, workloads, params)))
    return measured


# -- the parent ----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (seconds)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--calls", type=int, default=5000, help="no-op calls")
    parser.add_argument("--asks", type=int, default=1000, help="asks per ask workload")
    parser.add_argument("--sends", type=int, default=3000, help="send_text calls")
    parser.add_argument("--conversations", type=int, default=10, help="for ask_concurrent")
    parser.add_argument("--stream-turns", type=int, default=30, help="answers streamed")
    parser.add_argument("--stream-chunks", type=int, default=100, help="text chunks per answer")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved repetitions")
    parser.add_argument("--results-dir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-save", action="store_true", help="write no results file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--stream-url", help=argparse.SUPPRESS)
    return parser


def _save(results: dict[str, Any], *, quick: bool, results_dir: Path | None) -> Path:
    """``<results_dir>/aio[.quick].json`` in the shape of ``common.save``; it does not refresh
    docs/benchmarks.md (these figures are written up in docs/asyncio.md)."""
    folder = results_dir or common.RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"aio{'.quick' if quick else ''}.json"
    document = {"benchmark": "aio", "quick": quick, "machine": common.machine(), "results": results}
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its figures, and return them."""
    args = _parser().parse_args(argv)
    if args.child:
        measured = _child(args)
        print(json.dumps(measured))
        return measured
    if args.quick:
        args.calls, args.asks, args.sends, args.stream_turns, args.rounds = 1000, 200, 600, 6, 3
    args.asks = max(args.asks, args.conversations)
    started = time.perf_counter()
    runs: list[dict[str, Any]] = []
    with (
        common.ServerProcess("--chunks", "2") as small,
        common.ServerProcess("--chunks", str(args.stream_chunks)) as large,
    ):
        child = ["--child", "--url", small.url, "--stream-url", large.url]
        child += ["--calls", str(args.calls), "--asks", str(args.asks), "--sends", str(args.sends)]
        child += ["--conversations", str(args.conversations)]
        child += ["--stream-turns", str(args.stream_turns)]
        for number, order in enumerate(common.rotations(VARIANTS, args.rounds)):
            for variant in order:
                measured = common.run_child(Path(__file__), [*child, "--variant", variant])
                for workload, figures in measured.items():
                    runs.append(
                        {"round": number, "variant": variant, "workload": workload, **figures}
                    )
                common.note(
                    f"  round {number + 1} {variant:>4}: "
                    + ", ".join(f"{w} {m['cpu_s']:.3f} CPU-s" for w, m in measured.items())
                )
        server_errors = small.stats()["errors"] + large.stats()["errors"]
    table = {}
    for workload in WORKLOADS:
        row: dict[str, Any] = {}
        for variant in VARIANTS:
            mine = [r for r in runs if r["workload"] == workload and r["variant"] == variant]
            row[f"{variant}_us_per_op"] = round(
                common.median([1e6 * r["cpu_s"] / r["ops"] for r in mine]), 2
            )
            row[f"{variant}_wall_us_per_op"] = round(
                common.median([1e6 * r["wall_s"] / r["ops"] for r in mine]), 2
            )
            row["ops"] = mine[0]["ops"]
        overhead = []
        for number in range(args.rounds):
            pair = {
                r["variant"]: 1e6 * r["cpu_s"] / r["ops"]
                for r in runs
                if r["workload"] == workload and r["round"] == number
            }
            overhead.append(pair["aio"] - pair["trio"])
        row["overhead_us_per_op"] = round(common.median(overhead), 2)
        row["ratio"] = round(row["aio_us_per_op"] / row["trio_us_per_op"], 3)
        table[workload] = row
    results: dict[str, Any] = {
        "workloads": table,
        "params": {
            "calls": args.calls,
            "asks": args.asks,
            "sends": args.sends,
            "conversations": args.conversations,
            "stream_turns": args.stream_turns,
            "stream_chunks": args.stream_chunks,
            "rounds": args.rounds,
        },
        "server_errors": server_errors,
        "wall_s": common.timed(started),
        "runs": runs,
    }
    if not args.no_save:
        _save(results, quick=args.quick, results_dir=args.results_dir)
    if args.json:
        print(json.dumps({"workloads": table}))
    else:
        print(report(results))
    return results


def report(results: dict[str, Any]) -> str:
    """The figures as lines of text."""
    lines = [
        "CPU microseconds per op (wall in brackets); overhead = aio - trio, CPU",
        f"{'workload':<15} {'ops':>6} {'trio':>18} {'aio':>18} {'overhead':>9} {'ratio':>6}",
    ]
    for workload, row in results["workloads"].items():
        trio_ = f"{row['trio_us_per_op']} ({row['trio_wall_us_per_op']})"
        aio_ = f"{row['aio_us_per_op']} ({row['aio_wall_us_per_op']})"
        lines.append(
            f"{workload:<15} {row['ops']:>6} {trio_:>18} {aio_:>18} "
            f"{row['overhead_us_per_op']:>9} {row['ratio']:>6}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
