"""benchmarks/bench_aio.py runs at a tiny size and returns (and writes) figures of the right
shape. Nothing here asserts a time."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_bench_aio_at_a_tiny_size(tmp_path: Path) -> None:
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    import bench_aio

    tiny = [
        "--calls",
        "20",
        "--asks",
        "6",
        "--sends",
        "10",
        "--conversations",
        "3",
        "--stream-turns",
        "1",
    ]
    tiny += ["--stream-chunks", "5", "--rounds", "1", "--results-dir", str(tmp_path)]
    returned = bench_aio.main(tiny)
    assert set(returned["workloads"]) == {"call", "ask", "ask_concurrent", "send", "stream"}
    for row in returned["workloads"].values():
        assert row["trio_us_per_op"] > 0 and row["aio_us_per_op"] > 0 and row["ratio"] > 0
        assert row["ops"] > 0
    assert returned["workloads"]["ask_concurrent"]["ops"] == 6
    assert returned["workloads"]["send"]["ops"] == 11
    assert returned["server_errors"] == 0
    written = json.loads((tmp_path / "aio.json").read_text())
    assert written["benchmark"] == "aio" and written["quick"] is False
    assert written["machine"]["cores"] >= 1
    assert written["results"] == json.loads(json.dumps(returned))
