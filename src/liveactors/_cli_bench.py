"""``liveactors bench``: run the benchmarks of a source checkout and print their figures.

The benchmarks live in the ``benchmarks/`` folder of the repository, next to ``src/``; they
are not part of the installed package (a wheel has no ``benchmarks/``), so this command works
from a checkout (or an editable install of one) and says so otherwise.

``--json`` prints exactly one JSON object on stdout (everything else goes to stderr)::

    {"throughput": {"ratio_vs_sdk": float, "ratio_vs_bare": float, "msgs_per_cpu_s": float},
     "duplex": {"conversations_per_core": float, "sdk_conversations_per_core": float,
                "ratio_vs_sdk": float, "ratio_vs_bare": float, "p99_up_ms": float,
                "p99_down_ms": float},
     "scale": {"conversations": int, "rss_per_conversation_kib": float, "p99_ms": float},
     "reconnect": {"goaways": int, "drops": int, "lost": int, "duplicated": int,
                   "gap_p99_ms": float},
     "fanout": {"subscribers": [1, 10, 100], "us_per_event_per_subscriber": [float, ...]},
     "cluster": {"cpu_ratio": float, "us_per_input_cluster": float, "us_per_input_local": float,
                 "us_per_event_cluster": float, "us_per_event_local": float,
                 "redis_ops_per_input": float, "failover_p50_s": float,
                 "failover_p99_s": float, "lease_s": float}}

(only the benchmarks that ran; ``fake_server`` figures are printed, never in the object).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "run"]

#: Benchmarks in the order they run; each is ``benchmarks/bench_<name>.py``.
NAMES = ("throughput", "duplex", "scale", "reconnect", "fanout", "cluster", "fake_server")

#: The fields of each benchmark's figures that ``--json`` prints (the issue's schema).
SCHEMA: dict[str, dict[str, type]] = {
    "throughput": {"ratio_vs_sdk": float, "ratio_vs_bare": float, "msgs_per_cpu_s": float},
    "duplex": {
        "conversations_per_core": float,
        "sdk_conversations_per_core": float,
        "ratio_vs_sdk": float,
        "ratio_vs_bare": float,
        "p99_up_ms": float,
        "p99_down_ms": float,
    },
    "scale": {"conversations": int, "rss_per_conversation_kib": float, "p99_ms": float},
    "reconnect": {
        "goaways": int,
        "drops": int,
        "lost": int,
        "duplicated": int,
        "gap_p99_ms": float,
    },
    "fanout": {"subscribers": list, "us_per_event_per_subscriber": list},
    "cluster": {
        "cpu_ratio": float,
        "us_per_input_cluster": float,
        "us_per_input_local": float,
        "us_per_event_cluster": float,
        "us_per_event_local": float,
        "redis_ops_per_input": float,
        "failover_p50_s": float,
        "failover_p99_s": float,
        "lease_s": float,
    },
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    parser.add_argument(
        "--quick", action="store_true", help="short versions of every benchmark (<= 60 s in all)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object of the figures on stdout"
    )
    parser.add_argument(
        "--only", nargs="+", choices=NAMES, metavar="NAME", help=f"run only these: {NAMES}"
    )
    parser.add_argument(
        "--no-save",
        action="store_true",
        help="write no results (full runs otherwise refresh docs/benchmarks.md)",
    )


def benchmarks_folder() -> Path | None:
    """``benchmarks/`` of the checkout this package runs from, or None (an installed wheel)."""
    folder = Path(__file__).resolve().parents[2] / "benchmarks"
    if (folder / "bench_throughput.py").is_file():
        return folder
    return None


def run(args: argparse.Namespace) -> int:
    """Run the chosen benchmarks; print a summary (or the JSON object)."""
    folder = benchmarks_folder()
    if folder is None:
        print(
            "liveactors bench needs a source checkout: the benchmarks/ folder (next to src/) is "
            "not part of the installed package. Clone the repository and run it from there "
            "(pip install -e '.[test,bench]').",
            file=sys.stderr,
        )
        return 2
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    names = [n for n in NAMES if args.only is None or n in args.only]
    # Benchmarks print their own reports; with --json those go to stderr.
    report_to = sys.stderr if args.json else sys.stdout
    figures: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    for name in names:
        argv = ["--quick"] if args.quick else []
        if args.no_save:
            argv.append("--no-save")
        module = importlib.import_module(f"bench_{name}")
        print(f"== {name}", file=report_to, flush=True)
        with contextlib.redirect_stdout(report_to):
            figures[name] = module.main(argv)
    elapsed = time.perf_counter() - started
    if args.json:
        print(json.dumps(_schema_object(figures)), flush=True)
    else:
        print(_summary(figures, elapsed))
    return 0


def _schema_object(figures: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, fields in SCHEMA.items():
        if name not in figures:
            continue
        values = figures[name]
        out[name] = {}
        for field, kind in fields.items():
            value = values[field]
            if kind is float:
                value = float(value)
            elif kind is int:
                value = int(value)
            elif kind is list:
                value = list(value)
            out[name][field] = value
    return out


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _summary(figures: dict[str, dict[str, Any]], elapsed: float) -> str:
    lines = ["", f"== summary ({elapsed:.0f} s)"]
    if "throughput" in figures:
        t = figures["throughput"]
        lines.append(
            f"throughput  liveactors {t['ratio_vs_sdk']:.2f}x google-genai "
            f"(goal >= 1.5: {_met(t['ratio_vs_sdk'] >= 1.5)}), "
            f"{t['ratio_vs_bare']:.2f}x the bare loop (goal >= 0.8: "
            f"{_met(t['ratio_vs_bare'] >= 0.8)}); {t['msgs_per_cpu_s']:,.0f} msgs per CPU-s"
        )
    if "duplex" in figures:
        d = figures["duplex"]
        worst = max(d["p99_up_ms"], d["p99_down_ms"])
        lines.append(
            f"duplex      {d['conversations_per_core']:g} talking conversations per core over "
            f"TLS, {d['ratio_vs_sdk']:.2f}x google-genai's {d['sdk_conversations_per_core']:g} "
            f"(goal >= 2: {_met(d['ratio_vs_sdk'] >= 2)}), {d['ratio_vs_bare']:.2f}x the bare "
            f"loop (goal >= 0.9: {_met(d['ratio_vs_bare'] >= 0.9)}); p99 up "
            f"{d['p99_up_ms']} ms, down {d['p99_down_ms']} ms (goal <= 50: {_met(worst <= 50)})"
        )
    if "scale" in figures:
        s = figures["scale"]
        lines.append(
            f"scale       {s['conversations']:,} conversations, "
            f"{s['rss_per_conversation_kib']} KiB each (goal <= 64: "
            f"{_met(s['rss_per_conversation_kib'] <= 64)}), p99 {s['p99_ms']} ms "
            f"(goal <= 50: {_met(s['p99_ms'] <= 50)})"
        )
    if "reconnect" in figures:
        r = figures["reconnect"]
        lines.append(
            f"reconnect   {r['goaways']:,} goAways + {r['drops']:,} drops: {r['lost']} lost, "
            f"{r['duplicated']} duplicated (goal 0 and 0: "
            f"{_met(r['lost'] == 0 and r['duplicated'] == 0)}); handoff gap p99 "
            f"{r['gap_p99_ms']} ms"
        )
    if "fanout" in figures:
        f = figures["fanout"]
        pairs = ", ".join(
            f"{n}: {us} us"
            for n, us in zip(f["subscribers"], f["us_per_event_per_subscriber"], strict=True)
        )
        lines.append(f"fanout      per event per subscriber: {pairs}")
    if "cluster" in figures:
        c = figures["cluster"]
        # The goal is from the lease's expiry; the kill is at most one lease before it.
        expiry_p99 = c.get("failover_after_expiry_p99_s", c["failover_p99_s"] - c["lease_s"])
        lines.append(
            f"cluster     CPU per input {c['cpu_ratio']:.2f}x in-process (goal <= 1.5: "
            f"{_met(c['cpu_ratio'] <= 1.5)}; {c['us_per_input_cluster']:,.0f} vs "
            f"{c['us_per_input_local']:,.0f} us per question); "
            f"{c['redis_ops_per_input']:.1f} Redis round trips per question; failover p50 "
            f"{c['failover_p50_s']:.2f} s, p99 {c['failover_p99_s']:.2f} s after the kill "
            f"(lease {c['lease_s']:g} s), p99 {expiry_p99:.2f} s after the lease ran out "
            f"(goal <= 2: {_met(expiry_p99 <= 2)})"
        )
    return "\n".join(lines)
