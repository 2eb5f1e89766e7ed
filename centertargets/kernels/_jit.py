"""The one place numba is configured for this package.

Every kernel is compiled with ``@njit(nogil=True)`` (no ``parallel=True``:
the per-sample path runs inside DataLoader workers, and GNU OpenMP does not
survive ``fork``).  Compiled code is cached on disk unless caching is off:

* ``CENTERTARGETS_NUMBA_CACHE=0`` switches the on-disk cache off;
* when numba cannot find a writable cache folder (read-only install, no
  ``$HOME``), caching is dropped silently for that function instead of
  failing at import time.  Point ``NUMBA_CACHE_DIR`` at a writable folder to
  keep the cache in that situation.
"""

from __future__ import annotations

import os
from typing import Any, Callable, TypeVar

import numba

F = TypeVar("F", bound=Callable[..., Any])

#: Whether kernels ask numba for an on-disk cache (``CENTERTARGETS_NUMBA_CACHE``).
CACHE_ENABLED: bool = os.environ.get("CENTERTARGETS_NUMBA_CACHE", "1").strip().lower() not in (
    "0",
    "false",
    "no",
    "off",
)

#: Names of kernels whose cache could not be enabled (no writable folder).
UNCACHED: list[str] = []


def jit(fn: F) -> F:
    """Compile ``fn`` with ``numba.njit(nogil=True)``, cached when possible."""
    if CACHE_ENABLED:
        try:
            return numba.njit(nogil=True, cache=True)(fn)
        except RuntimeError:
            # "cannot cache function ...: no locator available": nowhere writable.
            UNCACHED.append(fn.__qualname__)
    return numba.njit(nogil=True, cache=False)(fn)
