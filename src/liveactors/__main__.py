"""``python -m liveactors`` is the ``liveactors`` command."""

import sys

from ._cli import main

sys.exit(main())
