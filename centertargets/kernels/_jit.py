"""The one place numba is configured for this package.

Every kernel is compiled with ``@njit(nogil=True)`` (no ``parallel=True``:
the per-sample path runs inside DataLoader workers, and GNU OpenMP does not
survive ``fork``).  Compiled code is cached on disk unless caching is off:

* ``CENTERTARGETS_NUMBA_CACHE=0`` switches the on-disk cache off;
* a read-only install (the package's ``__pycache__`` not writable) caches in
  numba's per-user folder instead (``$XDG_CACHE_HOME/numba`` or
  ``~/.cache/numba``), silently: that is numba's own fallback, and it works;
* when no folder is writable either (no ``$HOME``, a read-only home),
  caching is dropped instead of failing at import time, with one warning
  saying so.  Point ``NUMBA_CACHE_DIR`` at a writable folder to keep the
  cache in that situation;
* a cache file that cannot be read back (empty, truncated, garbled: numba
  raises ``EOFError``, ``UnpicklingError``, ``UnicodeDecodeError`` or an
  LLVM bitcode error, in every new process) is dropped with one warning
  naming the folder, and the kernel is compiled and cached anew.
"""

from __future__ import annotations

import os
import warnings
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


#: Cache folders found unreadable (and reset) in this process.
RESET_CACHES: list[str] = []


def jit(fn: F) -> F:
    """Compile ``fn`` with ``numba.njit(nogil=True)``, cached when possible."""
    if CACHE_ENABLED:
        try:
            dispatcher = numba.njit(nogil=True, cache=True)(fn)
        except RuntimeError:
            # "cannot cache function ...: no locator available": nowhere writable.
            if not UNCACHED:
                warnings.warn("centertargets: numba found no writable cache folder (neither the "
                              "package's __pycache__ nor the per-user cache folder), so kernels "
                              "are compiled again in every process, seconds each time; set "
                              "NUMBA_CACHE_DIR to a writable folder to keep them",
                              RuntimeWarning, stacklevel=2)
            UNCACHED.append(fn.__qualname__)
        else:
            _guard_cache_loads(dispatcher)
            return dispatcher
    return numba.njit(nogil=True, cache=False)(fn)


def _guard_cache_loads(dispatcher: Any) -> None:
    """Make a cache file that cannot be loaded a miss (recompile) instead of an error."""
    cache = getattr(dispatcher, "_cache", None)
    if cache is None or not hasattr(cache, "load_overload"):
        return
    load = cache.load_overload

    def load_overload(sig: Any, target_context: Any) -> Any:
        try:
            return load(sig, target_context)
        except Exception as exc:        # EOFError, UnpicklingError, LLVM bitcode errors, ...
            folder = str(getattr(cache, "cache_path", "?"))
            if folder not in RESET_CACHES:
                RESET_CACHES.append(folder)
                warnings.warn(f"centertargets: the numba cache in {folder} could not be read "
                              f"({type(exc).__name__}: {exc}); its entries for this package "
                              "are reset and the kernels compiled again", RuntimeWarning,
                              stacklevel=2)
            try:
                cache.flush()
            except OSError:
                pass
            return None

    cache.load_overload = load_overload
