"""Keep freed sample-sized blocks in the heap so that each sample does not page-fault afresh.

A training sample allocates a few megabytes of fresh arrays (the decoded
image, the warped image, the 3 MB float32 input, ``hm_hp``, ...) and frees
them when the DataLoader has collated it.  glibc's malloc returns such
blocks to the system (``munmap``, or trimming the top of the heap) and maps
new pages for the next sample: every page of every array is then faulted in
and zeroed by the kernel again, which on a 2-core machine made a 640x480
sample take 4.6 ms instead of 2.3 ms (``python benchmarks/bench_dataset.py``).

:func:`tune_malloc` sets glibc's ``M_MMAP_THRESHOLD`` to 32 MiB and
``M_TRIM_THRESHOLD`` to 64 MiB: the values glibc's own adaptive thresholds
reach after it has seen a 32 MiB block freed, so the process keeps at most
that much freed memory for reuse, per malloc arena (one per thread that
allocates concurrently).  :class:`~centertargets.CenterNetDataset` applies it
in DataLoader workers only, once each on its first item (see
:mod:`centertargets.worker`): a worker allocates its samples from one thread,
so it keeps at most 64 MiB, while the user's main process, which may run
many threads, keeps glibc's defaults.  Set ``CENTERTARGETS_TUNE_MALLOC=0`` to
leave malloc alone in workers too; call :func:`tune_malloc` yourself to have
it in a process of your own (``num_workers=0``).  It does nothing when the
process does not use glibc, or when the user configured malloc through glibc's
own ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` /
``MALLOC_TOP_PAD_`` variables or a ``glibc.malloc.*`` entry of
``GLIBC_TUNABLES`` (their choice wins).
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["tune_malloc", "user_configured", "free_bytes", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

#: Blocks below this size come from the heap (and are reused) instead of fresh ``mmap``s.
MMAP_THRESHOLD = 32 * 1024 * 1024
#: Free memory at the top of the heap kept instead of being returned to the system.
TRIM_THRESHOLD = 64 * 1024 * 1024

_M_TRIM_THRESHOLD = -1        # glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
_TUNED_PID: int | None = None


def enabled() -> bool:
    """Whether DataLoader workers tune malloc (``CENTERTARGETS_TUNE_MALLOC``, on unless 0)."""
    return os.environ.get("CENTERTARGETS_TUNE_MALLOC", "1").strip().lower() not in (
        "0", "false", "no", "off")


def user_configured() -> bool:
    """Whether the environment sets glibc's malloc: ``MALLOC_*_`` or ``GLIBC_TUNABLES=glibc.malloc.*``."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return any(name in os.environ for name in _USER_SETTINGS) or "glibc.malloc." in tunables


def tune_malloc(mmap_threshold: int = MMAP_THRESHOLD,
                trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Ask glibc to keep freed blocks up to ``mmap_threshold`` bytes for reuse; once per process.

    Returns True when the thresholds are set in this process (now or by an
    earlier call), False when nothing was changed: not glibc, or the user
    configured malloc (:func:`user_configured`).
    """
    global _TUNED_PID
    if _TUNED_PID == os.getpid():
        return True
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        libc = ""
    if not libc.startswith("glibc") or user_configured():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)) == 1 and \
        mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)) == 1
    if ok:
        _TUNED_PID = os.getpid()
    return ok


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def free_bytes() -> int | None:
    """Bytes malloc holds free for reuse in this process (glibc's ``mallinfo2().fordblks``),
    or None where that is not available (not glibc, or glibc older than 2.33)."""
    try:
        fn = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    return int(fn().fordblks)
