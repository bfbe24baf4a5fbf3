"""Every benchmark runs at a tiny size and returns (and writes) figures of the right shape.

The benchmarks run concurrently (each in its own processes), so the whole module takes a few
seconds. Nothing here asserts a time: only shapes, and sanity (positive rates, no input lost or
answered twice).
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from liveactors import _cli_bench

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

TINY = {
    "throughput": [
        "--sessions", "2", "--turns", "1", "--chunks", "5", "--rounds", "1", "--modality", "TEXT",
    ],
    # One step of two conversations: long enough for a spoken answer (the first comes about
    # two seconds in: 1.5 s of speech, then the VAD's silence gap).
    "duplex": [
        "--start", "2", "--max-steps", "0", "--window", "3", "--settle", "0.5", "--rounds", "1",
        "--servers", "1", "--no-gc-variant", "--retries", "0",
    ],
    "scale": ["--conversations", "20", "--streaming", "2", "--seconds", "0.5"],
    "reconnect": ["--conversations", "5", "--goaways", "4", "--drops", "4", "--seconds", "1"],
    "fanout": ["--turns", "2", "--rounds", "1", "--subscribers", "1", "3"],
    "fake_server": [
        "--clients", "2", "--turns", "2", "--chunks", "5", "--connections", "20", "--settle", "0.1",
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run every benchmark once, concurrently; their returned figures and written files."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    import importlib

    results_dir = tmp_path_factory.mktemp("results")

    def run(name: str) -> dict[str, Any]:
        module = importlib.import_module(f"bench_{name}")
        returned: dict[str, Any] = module.main([*TINY[name], "--results-dir", str(results_dir)])
        return returned

    with ThreadPoolExecutor(len(TINY)) as pool:
        futures = {name: pool.submit(run, name) for name in TINY}
        returned = {name: future.result() for name, future in futures.items()}
    written = {name: json.loads((results_dir / f"{name}.json").read_text()) for name in TINY}
    return {"returned": returned, "written": written}


def test_every_benchmark_writes_its_results(figures: dict[str, Any]) -> None:
    for name, document in figures["written"].items():
        assert document["benchmark"] == name
        assert document["quick"] is False
        machine = document["machine"]
        assert machine["cores"] >= 1 and machine["date"]
        assert document["results"] == json.loads(json.dumps(figures["returned"][name]))


def test_throughput(figures: dict[str, Any]) -> None:
    t = figures["returned"]["throughput"]
    assert t["ratio_vs_sdk"] > 0 and t["ratio_vs_bare"] > 0 and t["msgs_per_cpu_s"] > 0
    variants = t["modalities"]["TEXT"]["variants"]
    assert set(variants) == {"liveactors", "sdk", "bare"}
    for figures_ in variants.values():
        assert figures_["msgs_per_cpu_s"] > 0 and figures_["messages"] > 0
    assert t["server_errors"] == 0


def test_duplex(figures: dict[str, Any]) -> None:
    d = figures["returned"]["duplex"]
    assert set(d["variants"]) == {"liveactors", "sdk", "bare"}
    for run in d["runs"]:
        assert run["steps"], run["variant"]
        first = run["steps"][0]
        # Microphone chunks reached the server and spoken answers came back, for every client.
        assert first["up_samples"] > 0 and first["down_samples"] > 0, run["variant"]
        assert first["cpu_s_per_conversation_minute"] > 0
        assert 0 < first["up_p50_ms"] <= first["up_p99_ms"]
    assert d["conversations_per_core"] >= 0 and d["ratio_vs_sdk"] >= 0
    assert d["p99_up_ms"] > 0 and d["p99_down_ms"] > 0
    assert d["server_errors"] == 0


def test_scale(figures: dict[str, Any]) -> None:
    s = figures["returned"]["scale"]
    assert s["conversations"] == 20 and s["still_ready_after_streaming"] == 20
    assert s["spawn_rate_per_s"] > 0 and s["rss_per_conversation_kib"] > 0
    assert s["latency_samples"] > 0 and 0 < s["p50_ms"] <= s["p99_ms"] <= s["max_ms"]
    assert s["server"]["errors"] == 0
    # The same run again, side by side, with the collector tuned.
    tuned = s["gc_tuned"]
    assert tuned["gc_freeze"] is True and tuned["gc_threshold"] == 50_000
    assert 0 < tuned["p50_ms"] <= tuned["p99_ms"] <= tuned["max_ms"]
    assert len(tuned["latency_quantiles_ms"]) == 201 and tuned["rss_per_conversation_kib"] > 0


def test_reconnect_loses_and_repeats_nothing(figures: dict[str, Any]) -> None:
    r = figures["returned"]["reconnect"]
    assert (r["goaways"], r["drops"]) == (4, 4)
    assert r["lost"] == 0 and r["duplicated"] == 0
    assert r["mismatched_replies"] == 0 and r["failed_asks"] == 0
    assert r["inputs"] > 0 and r["answered"] == r["inputs"]
    assert r["handoffs_measured"] > 0 and r["gap_p99_ms"] > 0
    assert r["server"]["errors"] == 0


def test_fanout(figures: dict[str, Any]) -> None:
    f = figures["returned"]["fanout"]
    assert f["subscribers"] == [1, 3]
    assert len(f["us_per_event_per_subscriber"]) == 2
    assert all(us > 0 for us in f["us_per_event_total"])
    assert f["events_per_run"] > 0


def test_fake_server(figures: dict[str, Any]) -> None:
    result = figures["returned"]["fake_server"]
    assert all(run["messages_per_cpu_s"] > 0 for run in result["throughput"])
    assert result["idle"]["open_on_server"] == 20 and result["server_errors"] == 0


def test_cli_json_object_has_the_issue_schema(figures: dict[str, Any]) -> None:
    returned = figures["returned"]
    fanout = {**returned["fanout"], "subscribers": [1, 10, 100]}
    fanout["us_per_event_per_subscriber"] = [1.0, 2.0, 3.0]
    obj = _cli_bench._schema_object({**returned, "fanout": fanout})
    assert set(obj) == {"throughput", "duplex", "scale", "reconnect", "fanout"}  # no fake_server
    assert {k: type(v) for k, v in obj["throughput"].items()} == {
        "ratio_vs_sdk": float,
        "ratio_vs_bare": float,
        "msgs_per_cpu_s": float,
    }
    assert {k: type(v) for k, v in obj["duplex"].items()} == {
        "conversations_per_core": float,
        "sdk_conversations_per_core": float,
        "ratio_vs_sdk": float,
        "ratio_vs_bare": float,
        "p99_up_ms": float,
        "p99_down_ms": float,
    }
    assert {k: type(v) for k, v in obj["scale"].items()} == {
        "conversations": int,
        "rss_per_conversation_kib": float,
        "p99_ms": float,
    }
    assert {k: type(v) for k, v in obj["reconnect"].items()} == {
        "goaways": int,
        "drops": int,
        "lost": int,
        "duplicated": int,
        "gap_p99_ms": float,
    }
    assert obj["fanout"] == {
        "subscribers": [1, 10, 100],
        "us_per_event_per_subscriber": [1.0, 2.0, 3.0],
    }
    json.dumps(obj)


def test_cli_says_so_without_a_checkout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_cli_bench, "benchmarks_folder", lambda: None)
    args = argparse.Namespace(quick=True, json=True, only=None, no_save=True)
    assert _cli_bench.run(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "source checkout" in captured.err


def test_scale_over_tls_writes_its_own_results(tmp_path: Path) -> None:
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    import bench_scale

    tiny = ["--conversations", "10", "--streaming", "1", "--seconds", "0.3", "--no-compare-gc"]
    returned = bench_scale.main([*tiny, "--tls", "--results-dir", str(tmp_path)])
    assert returned["params"]["tls"] is True and returned["conversations"] == 10
    assert returned["latency_samples"] > 0 and returned["server"]["errors"] == 0
    # Beside the plain figures, not over them.
    assert json.loads((tmp_path / "scale-tls.json").read_text())["results"]["params"]["tls"]
    assert not (tmp_path / "scale.json").exists()
