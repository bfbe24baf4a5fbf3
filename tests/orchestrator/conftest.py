"""Orchestrator tests: ``orch_helpers`` is imported by name, whatever pytest's import mode."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


def pytest_configure(config: object) -> None:
    # Still run by plain ``pytest``: the marker only names the long test (select with -m).
    config.addinivalue_line(  # type: ignore[attr-defined]
        "markers", "slow: takes tens of seconds (still part of the default run)"
    )
