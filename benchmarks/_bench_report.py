# ruff: noqa: RUF001  (the multiplication and minus signs are meant: this writes for people)
"""Turns ``benchmarks/results/*.json`` (full runs) into ``docs/benchmarks.md`` and its plots.

Every benchmark calls :func:`refresh` after a full run, so the page always shows the latest
figures of each benchmark, with the machine and date of that run. ``python
benchmarks/_bench_report.py`` refreshes it by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import _bench_common as common

DOC = common.DOCS / "benchmarks.md"
IMG = common.DOCS / "img"
NAMES = (
    "throughput",
    "duplex",
    "scale",
    "scale-tls",
    "reconnect",
    "fanout",
    "cluster",
    "fake_server",
)

COLOURS = {
    "liveactors": "#2b6cb0",
    "sdk": "#c05621",
    "bare": "#718096",
    "liveactors-gc": "#63b3ed",
}
LABELS = {
    "liveactors": "liveactors",
    "sdk": "google-genai (asyncio)",
    "bare": "bare trio-websocket loop",
    "liveactors-gc": "liveactors, GC tuned",
}


def _load(results_dir: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for name in NAMES:
        path = results_dir / f"{name}.json"
        if path.is_file():
            found[name] = json.loads(path.read_text())
    return found


def _met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


# -- plots -------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _plot_throughput(doc: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    modalities = doc["results"]["modalities"]
    fig, axes = plt.subplots(1, len(modalities), figsize=(10, 4), squeeze=False)
    for ax, (modality, summary) in zip(axes[0], modalities.items(), strict=True):
        variants = summary["variants"]
        names = list(variants)
        rates = [variants[n]["msgs_per_cpu_s"] / 1000 for n in names]
        bars = ax.bar(
            [LABELS[n].replace(" (", "\n(").replace(" loop", "\nloop") for n in names],
            rates,
            color=[COLOURS[n] for n in names],
        )
        for bar, name in zip(bars, names, strict=True):
            us = variants[name]["us_per_msg"]
            ax.annotate(
                f"{bar.get_height():.1f}k\n{us} µs/msg",
                (bar.get_x() + bar.get_width() / 2, bar.get_height() / 2),
                ha="center",
                va="center",
                color="white",
                fontsize=9,
                fontweight="bold",
            )
        sdk = variants["sdk"]["msgs_per_cpu_s"] / 1000
        bare = variants["bare"]["msgs_per_cpu_s"] / 1000
        # The goals are for liveactors: marked across its bar only.
        goals = sorted(
            [
                (1.5 * sdk, COLOURS["sdk"], "--", "goal 1.5× google-genai"),
                (0.8 * bare, COLOURS["bare"], ":", "goal 0.8× bare"),
            ],
            reverse=True,
        )
        for n, (level, colour, style, label) in enumerate(goals):
            ax.hlines(level, -0.5, 0.5, color=colour, ls=style, lw=1.5)
            ax.text(
                -0.48,
                level,
                label,
                fontsize=8,
                ha="left",
                va="bottom" if n == 0 else "top",
                color=colour,
            )
        ax.set_title(
            f"{modality}: liveactors = {summary['ratio_vs_sdk']:.2f}× google-genai, "
            f"{summary['ratio_vs_bare']:.2f}× bare",
            fontsize=10,
        )
        ax.set_ylabel("thousand server messages per client CPU-second")
        ax.set_ylim(0, max([*rates, 1.5 * sdk]) * 1.3)
    fig.suptitle("Client CPU per message (higher is better), over TLS", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_scale(doc: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    results = doc["results"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    ramp = results.get("ramp", [])
    if ramp:
        xs = [p["conversations"] for p in ramp]
        ys = [p["rss_mib"] for p in ramp]
        left.plot(xs, ys, color=COLOURS["liveactors"], marker=".", label="client RSS")
        base = ys[0]
        left.plot(
            [0, xs[-1]],
            [base, base + xs[-1] * 64 / 1024],
            color="#c53030",
            ls="--",
            lw=1,
            label="goal: 64 KiB per conversation",
        )
        left.legend(loc="upper left", fontsize=9)
    left.set_xlabel("conversations spawned")
    left.set_ylabel("client RSS (MiB)")
    left.set_title(
        f"{results['rss_per_conversation_kib']} KiB per conversation, "
        f"{results['spawn_rate_per_s']:.0f} spawns/s",
        fontsize=10,
    )
    quantiles = results.get("latency_quantiles_ms", [])
    if quantiles:
        fractions = [q / 200 for q in range(len(quantiles))]
        right.plot(quantiles, fractions, color=COLOURS["liveactors"], label=_gc_label(results))
        tuned = results.get("gc_tuned", {}).get("latency_quantiles_ms")
        if tuned:
            right.plot(tuned, fractions, color=COLOURS["liveactors"], ls="--", label="GC tuned")
        right.set_xscale("log")
        right.axvline(50, color="#c53030", ls="--", lw=1, label="goal: p99 ≤ 50 ms")
        for value, label in ((results["p50_ms"], "p50"), (results["p99_ms"], "p99")):
            right.axvline(value, color="#4a5568", ls=":", lw=1)
            right.text(value, 0.02, f" {label} {value:g} ms", fontsize=8, rotation=90)
        right.legend(loc="upper left", fontsize=9)
    right.set_xlabel("server send → subscriber receive (ms, log scale)")
    right.set_ylabel("fraction of audio transcripts")
    right.set_title(
        f"{results['streaming']} of {results['conversations']:,} conversations streaming audio",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _ramp_points(runs: list[dict[str, Any]], variant: str, key: str) -> list[tuple[int, float]]:
    """(conversations, median p99 over the rounds) for each count a client was measured at
    (the last attempt of each step)."""
    by_n: dict[int, list[float]] = {}
    for run in runs:
        if run["variant"] != variant:
            continue
        last: dict[int, float] = {}
        for step in run["steps"]:
            last[step["n"]] = step[key]
        for n, value in last.items():
            by_n.setdefault(n, []).append(value)
    return sorted((n, common.median(values)) for n, values in by_n.items())


def _plot_duplex(doc: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    results = doc["results"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, (key, title) in zip(
        axes,
        (
            ("up_p99_ms", "upstream: microphone chunk due → server receipt"),
            ("down_p99_ms", "downstream: server send → subscriber"),
        ),
        strict=True,
    ):
        for variant, figures in results["variants"].items():
            points = _ramp_points(results["runs"], variant, key)
            if not points:
                continue
            ax.plot(
                [n for n, _ in points],
                [max(0.5, v) for _, v in points],
                marker="o",
                ms=4,
                color=COLOURS.get(variant, "#000000"),
                ls="--" if variant.endswith("-gc") else "-",
                label=f"{LABELS.get(variant, variant)}: "
                f"{figures['conversations_per_core']:g} per core",
            )
        ax.axhline(50, color="#c53030", ls="--", lw=1, label="goal: p99 ≤ 50 ms")
        ax.set_yscale("log")
        ax.set_xlabel("talking conversations (one client process)")
        ax.set_title(title, fontsize=10)
        ax.legend(loc="upper left", fontsize=8)
    axes[0].set_ylabel("p99 latency (ms, log scale)")
    fig.suptitle(
        f"The ramp over TLS: liveactors = {results['ratio_vs_sdk']:.2f}× google-genai, "
        f"{results['ratio_vs_bare']:.2f}× the bare loop (medians of {results['params']['rounds']}"
        " rounds)",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cdf(ax: Any, values: list[float], label: str, colour: str) -> None:
    ordered = sorted(values)
    if not ordered:
        return
    n = len(ordered)
    ax.plot(ordered, [(i + 1) / n for i in range(n)], label=label, color=colour)


def _plot_reconnect(doc: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    results = doc["results"]
    fig, ax = plt.subplots(figsize=(8, 4))
    _cdf(
        ax,
        results.get("handoff_gaps_ms", []),
        f"goAway → first input on the new connection (p50 {results['gap_p50_ms']:g} ms, "
        f"p99 {results['gap_p99_ms']:g} ms)",
        COLOURS["liveactors"],
    )
    _cdf(
        ax,
        results.get("drop_gaps_ms", []),
        f"abrupt drop → first input (p50 {results['drop_gap_p50_ms']:g} ms, "
        f"p99 {results['drop_gap_p99_ms']:g} ms)",
        COLOURS["sdk"],
    )
    ax.set_xlabel("milliseconds")
    ax.set_ylabel("fraction of switches")
    ax.legend(loc="best", fontsize=9)
    ax.set_title(
        f"{results['goaways']:,} goAways + {results['drops']:,} drops, "
        f"{results['inputs']:,} questions: {results['lost']} lost, "
        f"{results['duplicated']} duplicated",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_fanout(doc: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    results = doc["results"]
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = [str(n) for n in results["subscribers"]]
    ys = results["us_per_event_per_subscriber"]
    bars = ax.bar(xs, ys, color=COLOURS["liveactors"], width=0.6)
    for bar, y in zip(bars, ys, strict=True):
        ax.annotate(
            f"{y:g} µs",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            textcoords="offset points",
            xytext=(0, 4),
            ha="center",
        )
    ax.set_ylim(0, max(ys) * 1.3 if ys else 1)
    ax.set_xlabel("subscribers of one conversation")
    ax.set_ylabel("µs per event per subscriber")
    ax.set_title("What one more subscriber costs per event (client CPU)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- the page ----------------------------------------------------------------------------


def _machine_line(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    load = m.get("load_average")
    busy = f"; 1-minute load average at the end {load} (shared machine)" if load else ""
    return (
        f"{m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB memory, Python {m['python']}, "
        f"{m['platform']}; run {m['date']}{busy}"
    )


def _glance(found: dict[str, dict[str, Any]]) -> list[str]:
    rows = ["| Benchmark | Figure | Goal | |", "| --- | --- | --- | --- |"]
    if "throughput" in found:
        t = found["throughput"]["results"]
        per = t["modalities"]
        detail = ", ".join(f"{m.lower()} {s['ratio_vs_sdk']:.2f}×" for m, s in per.items())
        rows.append(
            f"| throughput | liveactors vs google-genai, messages per CPU-s: "
            f"**{t['ratio_vs_sdk']:.2f}×** ({detail}) | ≥ 1.5× | {_met(t['ratio_vs_sdk'] >= 1.5)} |"
        )
        detail = ", ".join(f"{m.lower()} {s['ratio_vs_bare']:.2f}×" for m, s in per.items())
        rows.append(
            f"| throughput | liveactors vs the bare trio-websocket loop: "
            f"**{t['ratio_vs_bare']:.2f}×** ({detail}) | ≥ 0.8× | "
            f"{_met(t['ratio_vs_bare'] >= 0.8)} |"
        )
    if "duplex" in found:
        d = found["duplex"]["results"]
        rows.append(
            f"| duplex | talking conversations per core over TLS, liveactors vs google-genai: "
            f"**{d['ratio_vs_sdk']:.2f}×** ({d['conversations_per_core']:g} vs "
            f"{d['sdk_conversations_per_core']:g}) | ≥ 2× | {_met(d['ratio_vs_sdk'] >= 2)} |"
        )
        rows.append(
            f"| duplex | liveactors vs the bare trio-websocket loop: **{d['ratio_vs_bare']:.2f}×**"
            f" | ≥ 0.9× | {_met(d['ratio_vs_bare'] >= 0.9)} |"
        )
        rows.append(
            f"| duplex | p99 at that load, Python's GC defaults: up **{d['p99_up_ms']} ms**, "
            f"down **{d['p99_down_ms']} ms** | ≤ 50 ms | "
            f"{_met(max(d['p99_up_ms'], d['p99_down_ms']) <= 50)} |"
        )
    if "scale" in found:
        s = found["scale"]["results"]
        rows.append(
            f"| scale | concurrent conversations in one process: **{s['conversations']:,}** "
            f"| 10,000 | {_met(s['conversations'] >= 10_000)} |"
        )
        rows += _scale_glance("scale", s)
    if "scale-tls" in found:
        # Over TLS the goal is the talking-conversations issue's: p99 <= 100 ms, GC defaults.
        rows += _scale_glance("scale over TLS", found["scale-tls"]["results"], goal_ms=100)
    if "reconnect" in found:
        r = found["reconnect"]["results"]
        rows.append(
            f"| reconnect | {r['goaways']:,} goAways + {r['drops']:,} drops: **{r['lost']} lost, "
            f"{r['duplicated']} duplicated** | 0 and 0 | "
            f"{_met(r['lost'] == 0 and r['duplicated'] == 0)} |"
        )
        rows.append(
            f"| reconnect | handoff gap (goAway → first input on the new connection): p50 "
            f"{r['gap_p50_ms']} ms, p99 {r['gap_p99_ms']} ms | — | |"
        )
    if "fanout" in found:
        f = found["fanout"]["results"]
        pairs = ", ".join(
            f"{n}: {us} µs"
            for n, us in zip(f["subscribers"], f["us_per_event_per_subscriber"], strict=True)
        )
        rows.append(f"| fan-out | CPU per event per subscriber ({pairs}) | — | |")
    if "cluster" in found:
        c = found["cluster"]["results"]
        if "cpu_ratio" in c:
            rows.append(
                f"| cluster | CPU per input through Redis and a worker vs in process: "
                f"**{c['cpu_ratio']:.2f}×** (questions {c['cpu_ratio_questions']:.2f}×, audio "
                f"{c['cpu_ratio_audio']:.2f}×) | ≤ 1.5× | {_met(c['cpu_ratio'] <= 1.5)} |"
            )
        if "floor_ratio" in c:
            rows.append(
                f"| cluster | the floor: what any design with durable per-input acknowledgement "
                f"pays here, vs in process: **{c['floor_ratio']:.2f}×** (questions "
                f"{c['floor_ratio_questions']:.2f}×, audio {c['floor_ratio_audio']:.2f}×) | — | |"
            )
        if "failover_p99_s" in c:
            rows.append(
                f"| cluster | failover, worker killed → new owner's first event: p50 "
                f"{c['failover_p50_s']} s, p99 {c['failover_p99_s']} s (lease "
                f"{c['lease_s']:g} s); after the lease ran out: **p99 "
                f"{c['failover_after_expiry_p99_s']} s** | ≤ lease expiry + 2 s | "
                f"{_met(c['failover_after_expiry_p99_s'] <= 2)} |"
            )
    return rows


def _scale_glance(label: str, s: dict[str, Any], goal_ms: float = 50) -> list[str]:
    """Memory, and latency for each collector setting the run compared."""
    rows = [
        f"| {label} | client RSS per conversation: **{s['rss_per_conversation_kib']} KiB** "
        f"| ≤ 64 KiB | {_met(s['rss_per_conversation_kib'] <= 64)} |"
    ]
    for run in (s, s.get("gc_tuned")):
        if run:
            rows.append(
                f"| {label} | server send → subscriber, {s['streaming']} streaming "
                f"({_gc_label(run)}): p50 {run['p50_ms']} ms, **p99 {run['p99_ms']} ms** "
                f"| p99 ≤ {goal_ms:g} ms | {_met(run['p99_ms'] <= goal_ms)} |"
            )
    return rows


def _throughput_section(doc: dict[str, Any]) -> list[str]:
    r = doc["results"]
    p = r["params"]
    out = [
        "## Throughput: client CPU per message",
        "",
        "![throughput](img/bench-throughput.png)",
        "",
        f"{p['sessions']} sessions × {p['turns']} turns × {p['chunks']} chunks per answer, from "
        "the fake server in its own process over TLS (a throwaway trustme CA the clients "
        "trust); every variant in a fresh process of its own, `getrusage(RUSAGE_SELF)` around "
        f"the turns (after one warm-up turn per session); {p['rounds']} interleaved rounds in "
        "rotating order, medians, ratios within a round. Audio chunks are 100 ms of 24 kHz "
        "PCM (6.4 KB of base64 JSON); text chunks about 20 characters. Every client sends the "
        "same setup (session resumption and sliding-window compression on, as liveactors always "
        "asks), so all receive the same messages. The bare loop parses each frame's JSON and "
        "decodes its audio (base64) — the minimum any consumer does — and reads 64 KiB at a "
        "time like liveactors; liveactors has one subscriber per session reading every event.",
        "",
        f"_{_machine_line(doc)}._",
        "",
        "| Answers | Client | Messages per CPU-s | CPU-s per 10k messages | µs per message |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for modality, summary in r["modalities"].items():
        for variant, figures in summary["variants"].items():
            out.append(
                f"| {modality} | {LABELS[variant]} | {figures['msgs_per_cpu_s']:,} | "
                f"{figures['cpu_s_per_10k_msgs']} | {figures['us_per_msg']} |"
            )
    out.append("")
    for modality, summary in r["modalities"].items():
        out.append(
            f"* {modality}: liveactors = **{summary['ratio_vs_sdk']:.2f}×** google-genai "
            f"(goal ≥ 1.5) and **{summary['ratio_vs_bare']:.2f}×** the bare loop (goal ≥ 0.8)."
        )
    out.append(
        "* The headline ratios of `liveactors bench --json` are the lower of the two workloads "
        "(a goal counts as met only when it holds for audio and for text); its "
        "`msgs_per_cpu_s` is liveactors' messages per CPU-second over both, "
        f"{r['msgs_per_cpu_s']:,.0f}."
    )
    return out


def _duplex_section(doc: dict[str, Any]) -> list[str]:
    r = doc["results"]
    p = r["params"]
    out = [
        "## Duplex: talking conversations per core",
        "",
        "![duplex](img/bench-duplex.png)",
        "",
        f"_{_machine_line(doc)}._",
        "",
        "Each conversation streams its microphone up all the time — 16 kHz PCM in "
        f"{p['chunk_ms']:g} ms chunks, paced in real time, speech for {p['speak_s']:g} s of every"
        f" {p['cycle_s']:g} s and silence between — to the fake server (the 3.8 profile, "
        f"`{p['model']}`, {p['servers']} processes of its own, over TLS with a throwaway CA). "
        "The server's VAD turns each stretch of speech into a turn after its silence gap, and "
        "the model answers with speech and its transcript, three 100 ms audio parts per message"
        " at 3.3× real time, so it speaks about half of the time; every fourth answer runs into"
        " the user's next speech, which barges in. Upstream latency runs from the moment a chunk"
        " is due (stamped into its first samples, below the VAD's threshold) to the server's VAD"
        " handler receiving it, so a client too busy to send on time pays for it; downstream "
        "latency from the server sending a message to the client's consumer having it (the "
        "transcript carries the server's `time.monotonic()`). The ramp grows each client from "
        f"{p['start']} conversations (then to about a third of a core's worth, then by "
        f"×{p['factor']:g}, and bisects once) while both p99s stay within "
        f"{p['goal_ms']:g} ms, in windows of {p['window_s']:g} s after {p['settle_s']:g} s to "
        "settle; a window in which the machine itself stalled (a probe thread of the idle "
        "parent woke late) is measured again. Every client runs in a fresh process of its own "
        f"with Python's GC defaults; {p['rounds']} interleaved round"
        f"{'s' if p['rounds'] != 1 else ''} in rotating order, "
        "medians, ratios within a round.",
        "",
        "| Client | Talking conversations per core | p99 up / down at that load | CPU-s per "
        "conversation-minute (at the first step; at capacity) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for variant, f in r["variants"].items():
        out.append(
            f"| {LABELS.get(variant, variant)} | **{f['conversations_per_core']:g}** "
            f"({', '.join(f'{n:g}' for n in f['runs'])}) | {f['up_p99_ms']} / "
            f"{f['down_p99_ms']} ms | {f['reference_cpu_s_per_conversation_minute']}; "
            f"{f['cpu_s_per_conversation_minute']} |"
        )
    out += [
        "",
        f"* liveactors = **{r['ratio_vs_sdk']:.2f}×** google-genai (goal ≥ 2) and "
        f"**{r['ratio_vs_bare']:.2f}×** the bare loop (goal ≥ 0.9), talking conversations per "
        "core.",
    ]
    if "cpu_ratio_vs_sdk" in r:
        out.append(
            f"* Client CPU per conversation-minute at the same load (the first step): "
            f"google-genai / liveactors = **{r['cpu_ratio_vs_sdk']:.2f}×**, bare / liveactors "
            f"= **{r['cpu_ratio_vs_bare']:.2f}×**."
        )
    if "server_cpu_at_capacity" in r:
        out.append(
            "* The fake servers' CPU at liveactors' capacity: "
            f"{r['server_cpu_at_capacity']:g} % of a core in all (they are not free: on a "
            "2-core machine the servers and the client share the cores)."
        )
    return out


def _scale_section(doc: dict[str, Any]) -> list[str]:
    r = doc["results"]
    hist = r.get("latency_histogram_ms", {})
    return [
        "## Scale: 10,000 conversations in one process",
        "",
        "![scale](img/bench-scale.png)",
        "",
        f"_{_machine_line(doc)}._",
        "",
        "| Measure | Figure |",
        "| --- | --- |",
        f"| conversations set up and READY | {r['conversations']:,} "
        f"({r['still_ready_after_streaming']:,} still READY after streaming) |",
        f"| spawn rate | {r['spawn_rate_per_s']:,} per second ({r['spawn_s']} s for all) |",
        f"| client RSS | {r['rss_before_mib']} → {r['rss_after_mib']} MiB: "
        f"**{r['rss_per_conversation_kib']} KiB per conversation** |",
        f"| streaming conversations (AUDIO, real time) | {r['streaming']} "
        f"({r['audio_chunks']:,} audio chunks, {r['transcripts']:,} stamped transcripts) |",
        f"| server send → subscriber | p50 {r['p50_ms']} ms, p90 {r['p90_ms']} ms, "
        f"**p99 {r['p99_ms']} ms**, max {r['max_ms']} ms |",
        f"| client CPU while streaming | {r['client_cpu_percent_while_streaming']} % of a core |",
        *_gc_row(r),
        *_full_gc_row(r),
        *_tuned_rows(r),
        f"| fake server (own process) | {r['server']['cpu_s']} CPU-s in all, "
        f"RSS {r['server']['rss_mib']} MiB |",
        f"| shutdown of all conversations (close 1000 each) | {r['shutdown_s']} s |",
        "",
        "Latency histogram (ms): " + ", ".join(f"{k}: {v:,}" for k, v in hist.items() if v),
        "",
        *_gc_note(r),
        "How latency is measured: the fake server's responder (in `_bench_server.py`) plays "
        "each streamed piece as an audio chunk followed by its transcript, and the transcript's "
        "text is the server's `time.monotonic()` read at the moment the piece is played. The "
        "subscriber subtracts it from its own `time.monotonic()` when the `OutputTranscript` "
        "event reaches it. On Linux `time.monotonic()` is `CLOCK_MONOTONIC`, one clock for all "
        "processes of the machine, so the difference is a true cross-process interval with no "
        "clock skew; it covers the server's write, loopback TCP, WebSocket and JSON decoding, "
        "the conversation's reader, the bus and the subscriber's wake-up. The streams start "
        "spread over one 100 ms period (as independent calls would be); started in lockstep, "
        "every 100 ms all of them would arrive in one burst and the last of the burst would "
        "wait for all the others. "
        + (
            "Over TLS (`wss://`, the default TLS context liveactors shares between connections)."
            if r["params"].get("tls")
            else "Plain `ws://` on loopback (TLS adds OpenSSL's state and buffers per "
            "connection: see the TLS run below)."
        ),
    ]


def _gc_note(r: dict[str, Any]) -> list[str]:
    gc = r.get("gc_while_streaming")
    if not gc or max(gc["longest_ms"]) < 100:
        return []
    return [
        f"The slowest events waited for the garbage collector: a full pass over "
        f"{r['conversations']:,} conversations' objects stopped the loop for "
        f"{max(gc['longest_ms']) / 1000:.1f} s. `gc.freeze()` after spawning removes those "
        "pauses (see the findings below).",
        "",
    ]


def _gc_label(r: dict[str, Any]) -> str:
    """How the run's collector was set, in a few words."""
    parts = []
    if r.get("gc_freeze"):
        parts.append("gc.freeze()")
    if r.get("gc_threshold") is not None:
        parts.append(f"threshold {r['gc_threshold']:,}")
    return ", ".join(parts) if parts else "Python's GC defaults"


def _gc_row(r: dict[str, Any], prefix: str = "") -> list[str]:
    gc = r.get("gc_while_streaming")
    if not gc:
        return []
    frozen = " (after `gc.freeze()`)" if r.get("gc_freeze") else ""
    cpu = f", {sum(gc['cpu_ms']):,.0f} ms of CPU in all" if "cpu_ms" in gc else ""
    if "collected" in gc:
        cpu += f", {sum(gc['collected']):,} objects freed"
    return [
        f"| {prefix}garbage collector while streaming{frozen}: passes of generation 0/1/2, "
        f"longest pause | {'/'.join(str(p) for p in gc['passes'])}; "
        f"{'/'.join(f'{ms:g}' for ms in gc['longest_ms'])} ms{cpu} |"
    ]


def _full_gc_row(r: dict[str, Any]) -> list[str]:
    if "full_gc_ms" not in r:
        return []
    return [
        f"| one full garbage collection with every conversation up | {r['full_gc_ms']:,} ms "
        f"(the loop stopped), {r['tracked_objects']:,} objects tracked |"
    ]


def _tuned_rows(r: dict[str, Any]) -> list[str]:
    """The side-by-side run with the collector tuned as docs/scaling.md advises."""
    tuned = r.get("gc_tuned")
    if not tuned:
        return []
    return [
        f"| **GC tuned** (`gc.freeze()` after spawning, generation-0 threshold "
        f"{tuned['gc_threshold']:,}), same run: server send → subscriber | p50 "
        f"{tuned['p50_ms']} ms, p90 {tuned['p90_ms']} ms, **p99 {tuned['p99_ms']} ms**, max "
        f"{tuned['max_ms']} ms |",
        f"| … client CPU while streaming; RSS per conversation | "
        f"{tuned['client_cpu_percent_while_streaming']} % of a core; "
        f"{tuned['rss_per_conversation_kib']} KiB |",
        *_gc_row(tuned, "… "),
    ]


def _scale_tls_section(doc: dict[str, Any]) -> list[str]:
    r = doc["results"]
    p = r["params"]
    runs = [(_gc_label(r), r)]
    if r.get("gc_tuned"):
        runs.append((_gc_label(r["gc_tuned"]), r["gc_tuned"]))
    rows = []
    for label, run in runs:
        gc = run.get("gc_while_streaming", {})
        rows.append(
            f"| {label} | {run['p50_ms']} | **{run['p99_ms']}** | {run['max_ms']} | "
            f"{run['client_cpu_percent_while_streaming']} % | "
            f"{'/'.join(str(n) for n in gc.get('passes', []))}; "
            f"{max(gc.get('longest_ms', [0])):g} ms |"
        )
    return [
        "## Scale over TLS",
        "",
        f"_{_machine_line(doc)}._",
        "",
        f"`bench_scale.py --tls`: the same run over `wss://`, with the default TLS context "
        f"(trusting the benchmark's CA through `SSL_CERT_FILE`), as users get it. "
        f"{r['conversations']:,} conversations, **{r['rss_per_conversation_kib']} KiB RSS "
        f"each**, spawned at {r['spawn_rate_per_s']:,} per second; one full garbage collection "
        f"with all of them up took {r.get('full_gc_ms', 0):,} ms "
        f"({r.get('tracked_objects', 0):,} objects). {p['streaming']} streaming, "
        f"{p['seconds']} s, side by side:",
        "",
        "| Collector | p50 ms | p99 ms | max ms | client CPU | GC passes 0/1/2; longest |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
        *rows,
    ]


def _reconnect_section(doc: dict[str, Any]) -> list[str]:
    r = doc["results"]
    phases = r.get("handoff_phases_p50_ms", {})
    drop_phases = r.get("drop_phases_p50_ms", {})
    p = r["params"]
    return [
        "## Reconnect: goAways and drops without loss",
        "",
        "![reconnect](img/bench-reconnect.png)",
        "",
        f"_{_machine_line(doc)}._",
        "",
        f"{p['conversations']} conversations ask one unique question after another (one every "
        f"{p['interval']} s, or at once if the answer took longer) while the fake server — its "
        "own process, driven over a control channel on its stdin — sends "
        f"{r['goaways']:,} goAways (`timeLeft` {p['time_left']} s) and drops "
        f"{r['drops']:,} connections abruptly, each on a random open connection, spread over "
        f"{p['seconds']} s. The verdict comes from the server's log (`answer_counts()`, "
        "`model_turns()`, message times).",
        "",
        "| Measure | Figure |",
        "| --- | --- |",
        f"| questions asked / answered | {r['inputs']:,} / {r['answered']:,} |",
        f"| **lost** / **duplicated** inputs | **{r['lost']}** / **{r['duplicated']}** |",
        f"| replies that did not answer their own question; asks that failed | "
        f"{r['mismatched_replies']}; {r['failed_asks']} |",
        f"| handoff gap, goAway → first input on the new connection | p50 {r['gap_p50_ms']} ms,"
        f" p99 {r['gap_p99_ms']} ms, max {r['gap_max_ms']} ms |",
        f"| … of which goAway → new connection set up (ready for held input) | p50 "
        f"{r['ready_p50_ms']} ms, p99 {r['ready_p99_ms']} ms |",
        f"| median steps after a goAway: old socket closed / new one open / set up / first "
        f"input | {phases.get('closed')} / {phases.get('opened')} / {phases.get('set_up')} / "
        f"{phases.get('input')} ms |",
        f"| after an abrupt drop: first input p50 / p99 (includes the 0.1 s backoff) | "
        f"{r['drop_gap_p50_ms']} / {r['drop_gap_p99_ms']} ms (open after "
        f"{drop_phases.get('opened')} ms) |",
        f"| client: reconnects / handoffs | {r['client_reconnects']:,} / "
        f"{r['client_handoffs']:,} |",
        f"| server: connections, turn outcomes | {r['server']['connections']:,}; "
        + ", ".join(f"{k} {v:,}" for k, v in r["server"]["turn_outcomes"].items())
        + " |",
        "",
        "The gap includes waiting for the turn in flight to finish (the supervisor lets it "
        "reach a resumable point before switching, so nothing is lost or repeated) and, for "
        "the first-input step, waiting for the conversation's next question.",
        "",
        "How answers are counted: a turn is answered when the server's log shows its "
        "`turnComplete` frame written out (`log.sent`); the turn records agree (a drop lets a "
        "frame being written finish first, so a frame counts as sent once its write returned). "
        f"By the records alone: {r.get('lost_as_logged', '?')} lost, "
        f"{r.get('duplicated_as_logged', '?')} duplicated. The client confirms that each of "
        "its questions got exactly one reply, and that the reply answers that question.",
    ]


def _fanout_section(doc: dict[str, Any]) -> list[str]:
    r = doc["results"]
    rows = [
        "## Fan-out: one conversation, many subscribers",
        "",
        "![fanout](img/bench-fanout.png)",
        "",
        f"_{_machine_line(doc)}._",
        "",
        f"One conversation, {r['params']['turns']} questions per measurement, "
        f"{r['events_per_run']:,} events; each subscriber is a task reading every event "
        "(`block` policy, default buffer). Marginal cost = (CPU with N subscribers − CPU with "
        "none) / (events × N), within a round, median of "
        f"{r['params']['rounds']} rounds.",
        "",
        "| Subscribers | µs per event per subscriber | µs per event in all |",
        "| ---: | ---: | ---: |",
    ]
    for n, us, total in zip(
        r["subscribers"], r["us_per_event_per_subscriber"], r["us_per_event_total"], strict=True
    ):
        rows.append(f"| {n} | {us} | {total} |")
    if min(r["us_per_event_per_subscriber"]) < 0.1:
        rows += [
            "",
            "A figure at or below zero is within the noise: a single subscriber costs next to "
            "nothing per event, because the conversation's reader publishes a burst of events "
            "and the subscriber takes the whole burst in one wake-up.",
        ]
    return rows


def _cluster_section(doc: dict[str, Any]) -> list[str]:
    r = doc["results"]
    p = r["params"]
    labels = {
        "local": "in process (`open_orchestrator`)",
        "cluster": "cluster: client + `liveactors worker` process",
        "cluster_inproc": "cluster: client and `open_worker` in one process",
    }
    out = [
        "## Cluster: CPU through Redis, and failover",
        "",
        f"_{_machine_line(doc)}; {r.get('redis_server', 'Redis')}._",
        "",
    ]
    if "workloads" in r:
        out += [
            f"{p['conversations']} conversations on the default model (audio answers with their "
            f"transcript), each variant in a fresh process, {p['rounds']} interleaved rounds, "
            "medians; ratios within a round. *Questions*: each conversation asks "
            f"{p['questions']} questions in turn (`ask`). *Audio*: each streams "
            f"{p['audio_chunks']} chunks of 20 ms 16 kHz PCM at real-time pace, then asks one "
            "question. Cluster CPU = client + worker; Redis's own CPU and the fake server's are "
            "not in it (Redis's is shown apart). Round trips: the commands clients and workers "
            "send Redis; commands inside scripts are counted apart.",
            "",
            "| Workload | Variant | µs CPU per input | µs per event | Redis: round trips / "
            "in scripts / µs CPU per input |",
            "| --- | --- | ---: | ---: | --- |",
        ]
        for workload, summary in r["workloads"].items():
            for variant, f in summary["variants"].items():
                redis = (
                    f"{f['redis_round_trips_per_input']} (EVALSHA {f['redis_evalsha_per_input']}) "
                    f"/ {f['redis_inside_scripts_per_input']} / {f['redis_us_per_input']}"
                    if "redis_round_trips_per_input" in f
                    else "—"
                )
                per_event = f["us_per_event"] if workload == "questions" else "—"
                out.append(
                    f"| {workload} | {labels.get(variant, variant)} | {f['us_per_input']:,} | "
                    f"{per_event} | {redis} |"
                )
        out.append("")
        for workload, summary in r["workloads"].items():
            out.append(
                f"* {workload}: cluster = **{summary['ratio']:.2f}×** in-process CPU per input "
                f"(goal ≤ 1.5); with the worker in the client's process "
                f"{summary['ratio_inproc']:.2f}×."
            )
        out.append("")
    if "floor" in r:
        out += _floor_table(r)
    if "failover_p50_s" in r:
        out += [
            f"**Failover.** {p['workers']} `liveactors worker` processes (lease {p['lease']:g} s, "
            f"renewed every {p['renew']:g} s), {p['failover_conversations']} conversations "
            f"asking one question after another; the worker owning the most is killed "
            f"(SIGKILL), {p['kills']} time(s), a fresh worker joining after each. Per moved "
            "conversation, from the kill to its new owner's first event reaching a subscriber:",
            "",
            "| Measure | Figure |",
            "| --- | --- |",
            f"| conversations moved | {r['failover_moved']} ({r['failover_not_resumed']} not "
            "resumed) |",
            f"| kill → new owner's first event | p50 {r['failover_p50_s']} s, **p99 "
            f"{r['failover_p99_s']} s**, max {r['failover_max_s']} s |",
            f"| … after the lease ran out ({r['failover_expiry_after_kill_p50_s']} s after the "
            f"kill, median) | p50 {r['failover_after_expiry_p50_s']} s, **p99 "
            f"{r['failover_after_expiry_p99_s']} s** (goal ≤ 2 s) |",
            f"| kill → first completed answer | p50 {r['failover_answer_p50_s']} s, p99 "
            f"{r['failover_answer_p99_s']} s |",
            f"| questions answered / failed / wrong replies | "
            f"{r['failover_questions_answered']:,} / {r['failover_questions_failed']} / "
            f"{r['failover_wrong_replies']} |",
        ]
    return out


def _floor_table(r: dict[str, Any]) -> list[str]:
    """What any durable-input design pays, from ``bench_cluster.py``'s ``floor`` variant."""
    floor = r["floor"]
    c = floor["components"]
    q, a = floor["questions"], floor["audio"]

    def row(workload: str, f: dict[str, Any], extra: str) -> str:
        cluster = (
            f"{f['cluster_us']:,} | {f['cluster_above_floor_us']:,}"
            if "cluster_above_floor_us" in f
            else "— | —"
        )
        return (
            f"| {workload} | {f['local_us']:,} | {extra} | {f['floor_us']:,} | "
            f"**{f['ratio']:.2f}×** | {cluster} |"
        )

    return [
        "**What any durable-input design pays here (the floor).** A command's await returns "
        "once it is on the conversation's durable input stream in Redis, and the owner learns "
        "of each input from Redis: whatever the design, per input the client makes one round "
        "trip and the owner receives one message, and an answer is written once, read once by "
        "the client, encoded and decoded. Measured in a process of its own in each round, on "
        "the same conversations and pacing, with liveactors' Redis client and, in another "
        "process, its channel subscriber: *ack* = the audio pacing loop doing one `EVALSHA` "
        f"that `PUBLISH`es the {floor['audio_command_bytes']}-byte audio command, minus the "
        f"same loop doing nothing ({c['ack_us']} − {c['pacing_us']} µs); *notice* = the "
        f"subscriber's CPU per message, doing nothing else; *bare Redis path* = per question, "
        f"that publishing `EVALSHA` (client), on receipt one `EVALSHA` that `XADD`s the "
        f"answer's {floor['events_per_answer']} encoded events ({floor['answer_bytes']:,} bytes, "
        f"subscriber), one `XREAD BLOCK` of it (client): {c['question_client_us']} + "
        f"{c['question_notice_us']} µs; *codec* = encoding and decoding those events "
        f"({c['codec_encode_us']} + {c['codec_decode_us']} µs). Floor = in process + those; "
        "ratios within a round, medians. It is a lower bound: nothing a real conversation "
        "does but these round trips.",
        "",
        "| Workload | In process, µs per input | + floor's Redis path, µs | Floor, µs | "
        "Floor / in process | Cluster, µs | Cluster above the floor, µs |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
        row(
            "questions",
            q,
            f"bare Redis path {c['bare_redis_path_us']} + codec {c['codec_us']} = {q['extra_us']}",
        ),
        row(
            "audio",
            a,
            f"ack {c['ack_above_pacing_us']} + notice {c['notice_us']} = {a['extra_us']}",
        ),
        "",
    ]


def _fake_server_section(doc: dict[str, Any]) -> list[str]:
    r = doc["results"]
    idle = r["idle"]
    rows = [
        "## The fake server itself",
        "",
        f"_{_machine_line(doc)}._ From `benchmarks/bench_fake_server.py` (server CPU, its own "
        "process).",
        "",
        "| Measure | Figure |",
        "| --- | --- |",
    ]
    for run in r["throughput"]:
        rows.append(
            f"| {run['modality']} turns | {run['messages_per_cpu_s']:,} server messages per "
            f"server CPU-s ({run['cpu_us_per_message']} µs each) |"
        )
    rows.append(
        f"| {idle['connections']:,} idle connections | RSS {idle['server_rss_mb_before']} → "
        f"{idle['server_rss_mb_with_idle']} MB ({idle['rss_kb_per_connection']} KB each), "
        f"idle CPU {idle['idle_server_cpu_percent']} % |"
    )
    return rows


FINDINGS = Path(__file__).with_name("FINDINGS.md")
SOAK = Path(__file__).with_name("SOAK.md")


def refresh(results_dir: Path | None = None) -> Path:
    """Rewrite ``docs/benchmarks.md`` and ``docs/img/bench-*.png`` from the results."""
    found = _load(results_dir or common.RESULTS_DIR)
    IMG.mkdir(parents=True, exist_ok=True)
    plots = {
        "throughput": _plot_throughput,
        "duplex": _plot_duplex,
        "scale": _plot_scale,
        "reconnect": _plot_reconnect,
        "fanout": _plot_fanout,
    }
    for name, plot in plots.items():
        if name in found:
            plot(found[name], IMG / f"bench-{name}.png")
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by benchmarks/_bench_report.py from benchmarks/results/*.json: do not "
        "edit by hand. Run `liveactors bench` (or any benchmarks/bench_*.py) to refresh. -->",
        "",
        "How fast and how safely liveactors runs many Live API conversations, measured against "
        "the fake server (`liveactors.testing`) in a process of its own. These machines are "
        "noisy (the development machine is shared), so CPU is measured per process with "
        "`getrusage`, variants run side by side in one invocation, interleaved and repeated, "
        "and the figures are medians and ratios. Nothing in the test suite asserts a time.",
        "",
        "**Models.** The text benchmarks (throughput's TEXT variant, fan-out, reconnect, the fake "
        "server's TEXT turns) run on `fake-half-cascade-live`, a model only the fake server "
        "serves: no current Live model answers in TEXT, and these figures measure the cost per "
        "message of small text chunks. The audio ones run on "
        "`gemini-2.5-flash-native-audio-preview-12-2025`, one audio part per message; the "
        "default model, `gemini-3.8-live`, packs several audio parts and their transcript into "
        "one message (see [models](models.md)).",
        "",
    ]
    if found:
        first = next(iter(found.values()))
        m = first["machine"]
        dates = sorted({doc["machine"]["date"] for doc in found.values()})
        lines += [
            f"**Machine:** {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB memory, "
            f"Python {m['python']}, {m['platform']}. **Runs:** {dates[0]}"
            + (f" to {dates[-1]}" if len(dates) > 1 else "")
            + ".",
            "",
            "## At a glance",
            "",
            *_glance(found),
            "",
        ]
    sections = {
        "throughput": _throughput_section,
        "duplex": _duplex_section,
        "scale": _scale_section,
        "scale-tls": _scale_tls_section,
        "reconnect": _reconnect_section,
        "fanout": _fanout_section,
        "cluster": _cluster_section,
        "fake_server": _fake_server_section,
    }
    for name, section in sections.items():
        if name in found:
            lines += [*section(found[name]), ""]
    if SOAK.is_file():
        # The soak is judged, not plotted: its page section is kept by hand beside it.
        lines += [SOAK.read_text().rstrip(), ""]
    if FINDINGS.is_file():
        lines += [FINDINGS.read_text().rstrip(), ""]
    lines += [
        "## Running them",
        "",
        "```",
        "liveactors bench                  # every benchmark, full size; refreshes this page",
        "liveactors bench --quick          # <= 60 s in all; writes *.quick.json, not this page",
        "liveactors bench --quick --json   # one JSON object on stdout, to compare runs",
        "liveactors bench --only duplex scale",
        "python benchmarks/bench_throughput.py [--quick] [--json]   # each one alone",
        "```",
        "",
        "`liveactors bench` needs a source checkout (the `benchmarks/` folder is not in the "
        "wheel): `pip install -e '.[test,bench]'`. Results go to `benchmarks/results/`; "
        "`benchmarks/FINDINGS.md` holds the profile and the hot-path work shown above.",
        "",
    ]
    DOC.write_text("\n".join(lines))
    return DOC


if __name__ == "__main__":
    print(refresh())
