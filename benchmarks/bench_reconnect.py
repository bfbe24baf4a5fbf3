"""Reconnects without loss: forced goAways and abrupt drops under a steady stream of input.

The fake server runs in its own process (``ws://`` on loopback, every message logged) and takes
commands on a control channel (its stdin, see ``_bench_server.py``): this benchmark tells it to
inject ``--goaways`` goAways and ``--drops`` abrupt drops (``server.faults.go_away_now`` /
``drop_now``, each on a random open connection not hit before) spread over ``--seconds``, and
afterwards asks it for its log's verdict. Running the server out of process keeps the client's
timing honest (the server's work does not share the client's event loop) while the log and the
fault injection stay exactly those of ``liveactors.testing``.

Meanwhile ``--conversations`` conversations each ask one question after another — a unique
text each time, one every ``--interval`` seconds — for as long as the faults go on, then wait
for every answer. From the server's log:

* lost inputs — asked, but never answered by a completed turn (goal 0);
* duplicated inputs — answered by more than one completed turn (goal 0);
* handoff gap — from the ``goAway`` the server sent to the first input the session's next
  connection accepted (p50/p99), and its steps: the old connection closed (the turn in flight
  finished and its handle arrived), the new one opened, set up ("ready": from then on held
  input flows), first input (which may wait for the conversation's next question, up to
  ``--interval``); the same from an abrupt drop, which also waits out the restart policy's
  backoff (0.1 s, with jitter).

A turn counts as answered when the server's log shows its ``turnComplete`` frame written out
(``log.sent``). The turn records' own outcome (``answer_counts()``) races with a drop injected
from another task: a frame being written at the drop is counted as sent even when the write was
blocked on a full socket buffer and never went out (then the client, which saw no answer, asks
again: a "duplicate" in the records only), and before that fix the opposite happened. Both
counts are reported (``lost_as_logged``, ``duplicated_as_logged``).

The client also checks that every reply it got answers its own question. Nothing here asserts
a time: it prints numbers.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _bench_common as common


async def _client(args: argparse.Namespace, server: common.ServerProcess) -> dict[str, Any]:
    import trio
    from google.genai import types

    import liveactors

    backend = liveactors.GeminiBackend(
        api_key=common.API_KEY, model=common.TEXT_MODEL, base_url=server.url
    )
    config = types.LiveConnectConfig(response_modalities=[types.Modality.TEXT])
    asked: list[str] = []
    mismatched: list[str] = []
    failed: list[str] = []
    stop = trio.Event()

    async def converse(conv: liveactors.ConversationRef, offset: float) -> None:
        await trio.sleep(offset)
        n = 0
        next_at = trio.current_time()
        while not stop.is_set():
            n += 1
            text = f"{conv.name}-q{n}"
            asked.append(text)
            try:
                with trio.fail_after(args.answer_timeout):
                    reply = await conv.ask(text)
            except (liveactors.LiveError, trio.TooSlowError) as exc:
                failed.append(f"{text}: {type(exc).__name__}")
                continue
            if not reply.text.endswith(f": {text}"):
                mismatched.append(text)
            next_at += args.interval
            await trio.sleep_until(next_at)

    async with liveactors.open_orchestrator(backend) as orch:
        convs = [await orch.spawn(config, name=f"r{n}") for n in range(args.conversations)]
        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for n, conv in enumerate(convs):
                nursery.start_soon(converse, conv, args.interval * n / len(convs))
            await trio.sleep(0.5)  # every conversation is under way
            await trio.to_thread.run_sync(
                server.command,
                "chaos",
                args.goaways,
                args.drops,
                args.seconds,
                args.time_left,
                args.seed,
            )
            injected = await trio.to_thread.run_sync(server.command, "chaos_wait")
            await trio.sleep(0.5)
            stop.set()
        elapsed = time.perf_counter() - started
        stats = orch.statistics()
        states = [c.state.value for c in convs]
        await orch.aclose(grace=5)
    return {
        "asked": asked,
        "mismatched": mismatched,
        "failed": failed,
        "injected": injected,
        "elapsed_s": elapsed,
        "client_reconnects": stats.reconnects,
        "client_handoffs": stats.handoffs,
        "states_at_end": {s: states.count(s) for s in set(states)},
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (seconds)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--goaways", type=int, default=1000)
    parser.add_argument("--drops", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=40.0, help="spread the faults over")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between questions")
    parser.add_argument("--time-left", type=float, default=2.0, help="goAway timeLeft")
    parser.add_argument("--answer-timeout", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--results-dir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-save", action="store_true", help="write no results file")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its figures, and return them."""
    import trio

    args = _parser().parse_args(argv)
    if args.quick:
        args.goaways, args.drops, args.seconds = 100, 100, 5.0
    started = time.perf_counter()
    with common.ServerProcess("--record", "--chunks", "2") as server:
        client = trio.run(_client, args, server)
        verdict = server.command("report")
        counts: dict[str, int] = verdict["answer_counts"]
        asked = client["asked"]
        lost = [text for text in asked if counts.get(text, 0) == 0]
        logged: dict[str, int] = verdict["answer_counts_as_logged"]
        lost_as_logged = [text for text in asked if logged.get(text, 0) == 0]
        duplicated_as_logged = sum(n - 1 for n in logged.values() if n > 1)
        duplicated = {text: n for text, n in counts.items() if n > 1}
        # What the server saw of each lost or duplicated input (the first few).
        details = {text: server.command("turns", text) for text in [*lost, *duplicated][:5]}
    unknown = [text for text in counts if text not in set(asked)]
    handoff_ms = [1000 * g["input"] for g in verdict["handoffs"]]
    ready_ms = [1000 * g["set_up"] for g in verdict["handoffs"]]
    drop_ms = [1000 * g["input"] for g in verdict["drops"]]
    results: dict[str, Any] = {
        "goaways": client["injected"]["goaways"],
        "drops": client["injected"]["drops"],
        "lost": len(lost),
        "duplicated": sum(n - 1 for n in duplicated.values()),
        "lost_as_logged": len(lost_as_logged),
        "duplicated_as_logged": duplicated_as_logged,
        "gap_p50_ms": round(common.percentile(handoff_ms, 50), 2),
        "gap_p99_ms": round(common.percentile(handoff_ms, 99), 2),
        "gap_max_ms": round(max(handoff_ms), 2) if handoff_ms else 0.0,
        "ready_p50_ms": round(common.percentile(ready_ms, 50), 2),
        "ready_p99_ms": round(common.percentile(ready_ms, 99), 2),
        "drop_gap_p50_ms": round(common.percentile(drop_ms, 50), 2),
        "drop_gap_p99_ms": round(common.percentile(drop_ms, 99), 2),
        "handoff_phases_p50_ms": _phases(verdict["handoffs"]),
        "drop_phases_p50_ms": _phases(verdict["drops"]),
        "handoffs_measured": len(handoff_ms),
        "drops_measured": len(drop_ms),
        "inputs": len(asked),
        "answered": sum(1 for text in asked if counts.get(text, 0) >= 1),
        "mismatched_replies": len(client["mismatched"]),
        "failed_asks": len(client["failed"]),
        "unknown_answers": len(unknown),
        "lost_examples": lost[:10],
        "duplicated_examples": dict(list(duplicated.items())[:10]),
        "failed_examples": client["failed"][:10],
        "lost_or_duplicated_details": details,
        "client_reconnects": client["client_reconnects"],
        "client_handoffs": client["client_handoffs"],
        "states_at_end": client["states_at_end"],
        "server": {
            "connections": verdict["connections"],
            "sessions": verdict["sessions"],
            "resumed_connections": verdict["resumed_connections"],
            "turn_outcomes": verdict["turn_outcomes"],
            "close_causes": verdict["close_causes"],
            "errors": verdict["errors"],
        },
        "handoff_gaps_ms": [round(g, 2) for g in handoff_ms],
        "drop_gaps_ms": [round(g, 2) for g in drop_ms],
        "params": {
            "conversations": args.conversations,
            "seconds": args.seconds,
            "interval": args.interval,
            "time_left": args.time_left,
        },
        "wall_s": common.timed(started),
    }
    if not args.no_save:
        common.save("reconnect", results, quick=args.quick, results_dir=args.results_dir)
    if args.json:
        keys = ("goaways", "drops", "lost", "duplicated", "gap_p99_ms")
        print(json.dumps({k: results[k] for k in keys}))
    else:
        print(report(results))
    return results


def _phases(gaps: list[dict[str, float]]) -> dict[str, float]:
    """Median milliseconds from the goAway (or drop) to each step of the switch."""
    steps = ("closed", "opened", "set_up", "input")
    return {s: round(1000 * common.percentile([g[s] for g in gaps], 50), 2) for s in steps}


def report(results: dict[str, Any]) -> str:
    """The figures as lines of text."""
    return (
        f"{results['goaways']:,} goAways and {results['drops']:,} drops under "
        f"{results['inputs']:,} questions: {results['lost']} lost, "
        f"{results['duplicated']} duplicated (goal 0 and 0), "
        f"{results['mismatched_replies']} wrong replies, {results['failed_asks']} failed asks\n"
        f"handoff gap (goAway -> first input on the new connection) p50 "
        f"{results['gap_p50_ms']} ms, p99 {results['gap_p99_ms']} ms; after a drop p50 "
        f"{results['drop_gap_p50_ms']} ms, p99 {results['drop_gap_p99_ms']} ms"
    )


if __name__ == "__main__":
    main()
