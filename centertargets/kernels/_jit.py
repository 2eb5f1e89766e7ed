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
* every index and data file is written with a SHA-256 of its payload, checked
  before the file is unpickled or its code handed to LLVM (garbled bitcode
  aborts the process inside LLVM's parser, where nothing can catch it); a
  file that fails the check or cannot be read back (empty, truncated,
  garbled, an index changed under a running process) is dropped with one
  warning naming the folder, and the kernel is compiled and cached anew;
* a cache that cannot be written (full disk, quota, a read-only folder)
  gives one warning, and the kernels run compiled in memory, uncached.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import warnings
from typing import Any, Callable, TypeVar

import numba
from numba.core import caching

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


#: Cache folders found unreadable (and reset) or unwritable in this process.
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
            _guard_cache(dispatcher)
            return dispatcher
    return numba.njit(nogil=True, cache=False)(fn)


#: Our index files carry this after numba's version: numba's own, unsealed files read as "another
#: version" (an empty index, silently), and ours are never read by a numba that expects its own.
_FORMAT = "+centertargets.sealed1"
_SEAL = b"CTSEAL1\n"


class CorruptCacheFile(Exception):
    """A cache file whose SHA-256 does not match its bytes (garbled, truncated, empty)."""


def _seal(payload: bytes) -> bytes:
    return _SEAL + hashlib.sha256(payload).digest() + payload


def _unseal(raw: bytes, path: str) -> bytes:
    head = len(_SEAL) + 32
    payload = raw[head:]
    if raw[:len(_SEAL)] != _SEAL or hashlib.sha256(payload).digest() != raw[len(_SEAL):head]:
        raise CorruptCacheFile(f"{path}: {len(raw)} bytes whose checksum does not match")
    return payload


class _SealedCacheFile(caching.IndexDataCacheFile):
    """numba's index and data files, each payload written with its SHA-256 and verified before
    anything is unpickled or handed to LLVM (garbled bitcode aborts the process inside LLVM's
    parser, where no exception can catch it)."""

    def _load_index(self) -> dict:
        try:
            with open(self._index_path, "rb") as f:
                version = pickle.load(f)
                raw = f.read()
        except FileNotFoundError:
            return {}
        if version != self._version:
            return {}
        stamp, overloads = pickle.loads(_unseal(raw, self._index_path))
        return overloads if stamp == self._source_stamp else {}

    def _save_index(self, overloads: dict) -> None:
        data = self._dump((self._source_stamp, overloads))
        with self._open_for_write(self._index_path) as f:
            pickle.dump(self._version, f, protocol=-1)
            f.write(_seal(data))

    def _load_data(self, name: str) -> Any:
        path = self._data_path(name)
        with open(path, "rb") as f:
            raw = f.read()
        return pickle.loads(_unseal(raw, path))

    def _save_data(self, name: str, data: Any) -> None:
        with self._open_for_write(self._data_path(name)) as f:
            f.write(_seal(self._dump(data)))


def _warn_once(folder: str, what: str) -> None:
    """One warning per process (the first folder found damaged); every folder is recorded."""
    if folder not in RESET_CACHES:
        RESET_CACHES.append(folder)
        if len(RESET_CACHES) == 1:
            warnings.warn(f"centertargets: the numba cache in {folder} {what}", RuntimeWarning,
                          stacklevel=3)


def _guard_cache(dispatcher: Any) -> None:
    """Seal the dispatcher's cache files, and make any cache failure a warning, never an error.

    * A file that cannot be loaded (checksum, unpickling, a missing data file) is a miss: the
      index is reset and the kernel compiled and cached anew.
    * A save that fails because the index was damaged meanwhile (another process, a sync tool)
      resets the index and saves once more; a save that still fails (full disk, quota,
      read-only folder) leaves the kernel compiled in memory, uncached.
    """
    cache = getattr(dispatcher, "_cache", None)
    if cache is None or not isinstance(getattr(cache, "_cache_file", None),
                                       caching.IndexDataCacheFile):
        return
    cache._cache_file.__class__ = _SealedCacheFile
    cache._cache_file._version = numba.__version__ + _FORMAT
    folder = str(getattr(cache, "cache_path", "?"))
    load, save = cache.load_overload, cache.save_overload

    def load_overload(sig: Any, target_context: Any) -> Any:
        try:
            return load(sig, target_context)
        except Exception as exc:        # CorruptCacheFile, UnpicklingError, EOFError, ...
            _warn_once(folder, f"could not be read ({type(exc).__name__}: {exc}); its entries "
                               "for this package are reset and the kernels compiled again")
            try:
                cache.flush()
            except Exception:
                pass
            return None

    def save_overload(sig: Any, data: Any) -> None:
        try:
            save(sig, data)
            return
        except OSError as exc:          # full disk, quota, read-only: retrying will not help
            error: BaseException = exc
        except Exception as exc:        # a damaged index: reset it and save once more
            try:
                cache.flush()
                save(sig, data)
            except Exception as again:
                error = again
            else:
                _warn_once(folder, f"could not be read back while saving ({type(exc).__name__}"
                                   f": {exc}); its index was reset")
                return
        _warn_once(folder, f"could not be written ({type(error).__name__}: {error}); the "
                           "kernels run compiled in memory, uncached, in this process")

    cache.load_overload = load_overload
    cache.save_overload = save_overload
