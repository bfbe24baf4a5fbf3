"""benchmarks/bench_metrics.py runs at a tiny size and returns (and writes) figures of the right
shape. Nothing here asserts a time."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_bench_metrics_measures_every_variant_side_by_side(tmp_path: Path) -> None:
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    import bench_metrics

    tiny = ["--sessions", "2", "--turns", "2", "--rounds", "2", "--chunks", "3", "6"]
    returned = bench_metrics.main([*tiny, "--results-dir", str(tmp_path)])
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["benchmark"] == "metrics" and written["quick"] is False
    assert written["results"] == json.loads(json.dumps(returned))
    assert returned["chunks"] == [3, 6]
    for key in ("ratio_metrics", "ratio_on", "ratio_sampled"):
        assert returned[key] > 0
    for setting in returned["settings"]:
        assert set(setting["us_per_message"]) == {"off", "metrics", "on", "sampled"}
        assert all(us > 0 for us in setting["us_per_message"].values())
        assert setting["messages_per_run"] > 0
        # Fully traced: a span per conversation, per connection and per turn (2 x 2 turns).
        assert setting["spans_per_run"]["on"] == 2 + 2 + 4
    runs = returned["runs"]["3"]
    assert {r["variant"] for r in runs} == {"off", "metrics", "on", "sampled"}
    assert all(r["scrapes"] >= 1 for r in runs if r["variant"] != "off")
    assert all(r["spans"] == 0 for r in runs if r["variant"] in ("off", "metrics"))
    assert "ratio to off" in bench_metrics.report(returned)
