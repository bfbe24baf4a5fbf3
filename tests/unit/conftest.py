"""Unit tests: no sockets, no real clock. ``ledger_model`` (the model service that drives the
ledger tests) is imported by name, whatever pytest's import mode."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
