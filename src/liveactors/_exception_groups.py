"""Exception groups: trio wraps what a nursery body raises; hand users the exception itself."""

from __future__ import annotations

__all__ = ["sole_exception"]


def sole_exception(exc: BaseException) -> BaseException:
    """The one exception inside nested single-member exception groups, else ``exc``."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
