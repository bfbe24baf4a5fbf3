"""Shared test configuration."""

import os

from hypothesis import settings

# Property tests explore the same examples on every run: CI stays deterministic, and a failure
# seen once is seen again. Set HYPOTHESIS_PROFILE=explore to search new examples locally.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))
