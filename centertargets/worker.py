"""What a process does once, before its first sample: decided by what the process is.

A process that makes samples can be the user's main process, a torch
DataLoader worker (forked, spawned or forkserver-started), a rank started by
``torch.multiprocessing.spawn``, or a process of the user's own pool.  Only a
DataLoader worker is ours to tune, and how the dataset object reached the
process (pickled, deep-copied, inherited) says nothing about which of these it
is, so nothing here looks at the dataset:

* **malloc** (:func:`centertargets.memory.tune_malloc`): in DataLoader workers
  only.  The user's main process, ranks and other processes keep glibc's
  defaults (a threaded process would keep up to the trim threshold per malloc
  arena).  ``CENTERTARGETS_TUNE_MALLOC=0`` switches it off; call
  ``tune_malloc()`` yourself to have it in a process of your own.
* **OpenCV threads**: one per worker, so that workers do not fight OpenCV's
  own pool for the cores, but only in a worker that imported this package
  itself (spawn; forkserver when the server had not imported it).  A worker
  that inherited the package through ``fork`` never calls
  ``cv2.setNumThreads``: when the parent had started OpenCV's pool, the call
  hangs in the child (the pool does not survive ``fork``), and such a child
  already runs OpenCV in its one thread.
"""

from __future__ import annotations

import os
import sys

from . import memory

__all__ = ["is_dataloader_worker", "inherited_by_fork", "setup_process"]

#: The process that imported this package: a forked child inherits the value unchanged.
_IMPORTED_IN = os.getpid()
_SET_UP_IN: int | None = None


def is_dataloader_worker() -> bool:
    """Whether this process is a torch DataLoader worker (torch says so; never imports torch)."""
    data = sys.modules.get("torch.utils.data")
    get_worker_info = getattr(data, "get_worker_info", None)
    try:
        return get_worker_info is not None and get_worker_info() is not None
    except Exception:                   # a torch too old or too broken to answer: not ours
        return False


def inherited_by_fork() -> bool:
    """Whether this process got the package already imported, from a parent through ``fork``."""
    return _IMPORTED_IN != os.getpid()


def setup_process() -> None:
    """Once per process, before its first sample: malloc and OpenCV threads (see the module)."""
    global _SET_UP_IN
    pid = os.getpid()
    if _SET_UP_IN == pid:
        return
    _SET_UP_IN = pid
    if not is_dataloader_worker():
        return
    if memory.enabled():
        memory.tune_malloc()
    if not inherited_by_fork():
        import cv2

        cv2.setNumThreads(1)
