"""docs/grafana-dashboard.json is a valid dashboard whose every query names metrics a scrape
has; it and docs/observability.md cover every metric."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

import liveactors
import liveactors.metrics
from liveactors.testing import open_fake_server

from .conftest import families

DOCS = Path(__file__).resolve().parents[2] / "docs"
_METRIC = re.compile(r"\bliveactors_[a-z_]+\b")


def _panels() -> list[dict[str, Any]]:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    assert dashboard["title"] and dashboard["uid"] and dashboard["schemaVersion"] >= 30
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def _queried() -> set[str]:
    return {m for p in _panels() for t in p["targets"] for m in _METRIC.findall(t["expr"])}


def test_the_dashboard_is_well_formed() -> None:
    panels = _panels()
    assert len(panels) >= 10
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        assert panel["title"] and panel["targets"], panel
        assert panel["datasource"]["type"] == "prometheus"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(set(refs)) == len(refs)
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")")


async def test_every_metric_the_dashboard_queries_is_in_a_scrape() -> None:
    registry = CollectorRegistry()
    async with (
        open_fake_server(listen=False) as server,
        liveactors.open_orchestrator(server.backend()) as orch,
    ):
        liveactors.metrics.register(registry, orchestrator=orch)
        conv = await orch.spawn(None)
        await conv.ask("hello")
        text = generate_latest(registry).decode()
    scraped = families(text)
    queried = _queried()
    assert queried, "the dashboard queries nothing"
    missing = sorted(queried - scraped)
    assert not missing, f"the dashboard queries metrics no scrape has: {missing}"


def test_the_dashboard_and_the_docs_cover_every_metric() -> None:
    queried = _queried()
    docs = (DOCS / "observability.md").read_text()
    for spec in liveactors.metrics.METRICS:
        base = spec.name
        names = {base} if spec.kind != "histogram" else {base + "_bucket", base + "_count"}
        assert names & queried, f"{spec.name} is on no panel"
        assert f"`{spec.name}`" in docs, f"docs/observability.md does not list {spec.name}"
        for label in spec.labels:
            assert f"`{label}`" in docs
