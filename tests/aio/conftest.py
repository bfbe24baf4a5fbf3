"""liveactors.aio tests: ``aio_helpers`` is imported by name, whatever pytest's import mode.

The suite runs pytest-trio in trio mode; these tests are plain functions that run their own
asyncio loop (``aio_helpers.run``), with the trio orchestrator as its guest.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
