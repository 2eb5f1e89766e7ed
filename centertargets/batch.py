"""``collate``: a DataLoader batch of dataset items in one shared-memory block (torch).

``torch.utils.data.default_collate`` gives every array of a batch its own tensor, and a
DataLoader worker its own shared-memory segment: a CenterNet item has about 25 arrays
(targets, ``input`` and ``meta``'s draws), so each batch costs 25 segments made in the
worker and 25 file descriptors passed to the main process and mapped there, which on a
small machine costs more than the sparse targets themselves.  :func:`collate` stacks
the same arrays into views of ONE block; a worker sends the block and a layout, and the
main process receives the ordinary dict of tensors.

    DataLoader(ds, batch_size=16, num_workers=4, collate_fn=centertargets.batch.collate)

A worker also reuses its blocks (Linux): a new shared-memory segment is zeroed and
faulted in page by page, which cost 12 ms per 12.6 MB batch on the project's 2-core
machine, more than copying the batch into it.  Each worker keeps up to
:func:`pool_size` blocks (``CENTERTARGETS_BATCH_POOL``, default 4, 0 for none); a block
goes back to its worker only when nothing in the main process views any tensor of its
batch any more, so a batch you keep stays as it was.  The main process sees the block as
ordinary memory: a batch tensor put on a ``torch.multiprocessing`` queue is copied into
shared memory of its own, as any tensor is.  When every block is in use, the batch comes
in a segment of its own, as without reuse.

Importing this module imports torch.
"""

from __future__ import annotations

import copy
import mmap
import os
import weakref
from multiprocessing.reduction import DupFd
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import default_collate, get_worker_info

from .kernels import sync

__all__ = ["collate", "pool_size"]

_ALIGN = 64
_HEADER = 64                     # a pooled block's flag byte, padded to the alignment
_PAGE = 4096


def collate(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``default_collate(items)`` for dataset items, stacked into one block of memory.

    ``items``: dicts (nested dicts allowed) of numpy arrays and numbers with the same keys,
    shapes and dtypes in every item (a :class:`~centertargets.CenterNetDataset`'s items are).
    Returns the same keys, shapes, dtypes and values as ``default_collate`` (a leading
    batch axis; numbers become 1-D tensors); a leaf that differs between items (a shape,
    a dtype, a key) is an error naming it.  Leaves that are not numeric (strings, None) are
    collated by ``default_collate``.  In a DataLoader worker the block is shared memory,
    and the batch travels to the main process as that one block; the worker fills the
    block again once the main process has dropped the batch (see the module), so a
    ``collate_fn`` wrapping this one must not keep the batch it returns.
    """
    if not isinstance(items, Sequence) or not items or not isinstance(items[0], Mapping):
        raise TypeError(f"items is {type(items).__name__}: expected a non-empty list of "
                        "dataset items (dicts)")
    leaves: list[tuple[tuple[str, ...], np.ndarray | None]] = []
    other: dict[tuple[str, ...], Any] = {}
    _gather(items, (), leaves, other)
    layout = []                  # (path, byte offset, dtype, shape); offset None: in ``other``
    total = 0
    for path, like in leaves:
        if like is None:
            layout.append((path, None, "", ()))
            continue
        total = -(-total // _ALIGN) * _ALIGN
        layout.append((path, total, like.dtype.str, like.shape))
        total += like.nbytes
    block, pooled = _block(max(total, 1))
    flat = block.numpy()
    for (path, off, dtype, shape), (_, like) in zip(layout, leaves):
        if like is not None:
            out = flat[off:off + like.nbytes].view(np.dtype(dtype)).reshape(shape)
            np.stack([np.asarray(_get(item, path)) for item in items], out=out)
    return _Packed(block, tuple(layout), other, pooled)


def _gather(items: Sequence[Mapping[str, Any]], path: tuple[str, ...],
            leaves: list[tuple[tuple[str, ...], np.ndarray | None]],
            other: dict[tuple[str, ...], Any]) -> None:
    """Every leaf of the items under ``path``, in order: numeric ones with an empty array of
    their stacked shape and dtype, others (None in ``leaves``) collated into ``other``."""
    first = _get(items[0], path)
    if isinstance(first, Mapping):
        keys = list(first)
        for i, item in enumerate(items):
            got = _get(item, path)
            if not isinstance(got, Mapping) or list(got) != keys:
                raise ValueError(f"item {i}{_name(path)} has keys "
                                 f"{sorted(got) if isinstance(got, Mapping) else got!r}: "
                                 f"expected {sorted(keys)}, as item 0")
        for k in keys:
            _gather(items, path + (k,), leaves, other)
        return
    a = np.asarray(first)
    if a.dtype.kind not in "biuf":
        other[path] = default_collate([_get(item, path) for item in items])
        leaves.append((path, None))
        return
    for i, item in enumerate(items):
        b = np.asarray(_get(item, path))
        if b.shape != a.shape or b.dtype != a.dtype:
            raise ValueError(f"item {i}{_name(path)} is {b.dtype} {b.shape}: expected "
                             f"{a.dtype} {a.shape}, as item 0 (items of one batch must match)")
    leaves.append((path, np.empty((len(items),) + a.shape, a.dtype)))


def _get(item: Any, path: tuple[str, ...]) -> Any:
    for k in path:
        item = item[k]
    return item


def _name(path: tuple[str, ...]) -> str:
    return "".join(f"[{k!r}]" for k in path)


def _block(nbytes: int) -> tuple[torch.Tensor, _PoolBlock | None]:
    """``nbytes`` of uint8 to collate into, and the pooled block it lies in (or None):
    in a DataLoader worker a free block of its pool (see :class:`_PoolBlock`), or shared
    memory made for this batch alone when pooling is off or every block is in use;
    ordinary memory elsewhere."""
    if get_worker_info() is None:
        return torch.empty(nbytes, dtype=torch.uint8), None
    pooled = _PoolBlock.take(nbytes)
    if pooled is not None:
        return pooled.data[:nbytes], pooled
    storage = torch.UntypedStorage._new_shared(nbytes)
    return torch.empty(0, dtype=torch.uint8).set_(storage, 0, (nbytes,), (1,)), None


def pool_size() -> int:
    """Blocks each DataLoader worker keeps for reuse (``CENTERTARGETS_BATCH_POOL``, default
    4; 0 switches reuse off).  Reuse needs Linux's ``memfd_create``; elsewhere it is off."""
    raw = os.environ.get("CENTERTARGETS_BATCH_POOL", "4").strip()
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(f"CENTERTARGETS_BATCH_POOL={raw!r}: expected a whole number of "
                         "blocks (0 switches reuse off)") from None
    if n < 0:
        raise ValueError(f"CENTERTARGETS_BATCH_POOL={n}: expected 0 or more blocks")
    return n if hasattr(os, "memfd_create") else 0


class _PoolBlock:
    """A worker's reusable shared-memory block: an anonymous memory file (``memfd``) whose
    first byte says who holds it, then the batch.

    The worker claims a free block (flag 0 -> 1), collates into it and sends its file
    descriptor.  The main process maps the file and hands out tensors viewing it, as
    ordinary (not shared) memory, so that a batch tensor sent on to another process is
    copied there rather than shared; when the last reference to any of them is gone, a
    finalizer on their storage sets the flag back to 0 and the worker may fill the block
    again.  Making and faulting in a new shared-memory segment for every batch costs more
    than filling it (12 ms for a 12.6 MB batch on the project's machine, against 1.6 ms to
    copy the same bytes into memory already mapped).
    """

    _pool: list[_PoolBlock] = []
    _pid = 0

    def __init__(self, nbytes: int) -> None:
        self.capacity = -(-nbytes // _PAGE) * _PAGE
        self.fd = os.memfd_create("centertargets-batch", os.MFD_CLOEXEC)
        try:
            os.ftruncate(self.fd, _HEADER + self.capacity)
            self.map = mmap.mmap(self.fd, _HEADER + self.capacity)
        except BaseException:
            os.close(self.fd)
            raise
        whole = torch.frombuffer(self.map, dtype=torch.uint8)
        self.flag = whole[:1].numpy()
        self.data = whole[_HEADER:]
        #: The batch collated into the block until it is sent (then None): a block whose
        #: batch was dropped unsent is never given back, and leaves the pool.
        self.owner: weakref.ref | None = None

    @classmethod
    def take(cls, nbytes: int) -> _PoolBlock | None:
        """A claimed block of at least ``nbytes`` from this process's pool (the smallest
        free one that fits), a new one while the pool has room (a free block too small for
        this batch makes room), or None: every block is in use, or pooling is off."""
        if cls._pid != os.getpid():             # a new process: nothing inherited is ours
            cls._pool, cls._pid = [], os.getpid()
        lost = [b for b in cls._pool if b.owner is not None and b.owner() is None]
        for b in lost:                          # its batch never left (and may live on)
            cls._pool.remove(b)
            b.close()
        limit = pool_size()
        fits = sorted((b for b in cls._pool if b.capacity >= nbytes), key=lambda b: b.capacity)
        for b in fits:
            if sync.claim(b.flag):
                return b
        if len(cls._pool) >= limit:
            small = next((b for b in cls._pool if b.capacity < nbytes and sync.claim(b.flag)),
                         None)
            if small is None:
                return None
            cls._pool.remove(small)
            small.close()
        block = cls(nbytes)
        sync.claim(block.flag)
        cls._pool.append(block)
        return block

    def close(self) -> None:
        os.close(self.fd)


def _unpack(block: torch.Tensor, layout: tuple, other: dict[tuple[str, ...], Any]
            ) -> dict[str, Any]:
    """The batch as a dict of tensors viewing ``block``, and the non-numeric leaves, in the
    items' key order."""
    out: dict[str, Any] = {}
    for path, off, dtype, shape in layout:
        if off is None:
            value = other[path]
        else:
            dt = np.dtype(dtype)
            nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
            value = block[off:off + nbytes].view(_TORCH[dt.str]).view(shape)
        node = out
        for k in path[:-1]:
            node = node.setdefault(k, {})
        node[path[-1]] = value
    return out


_TORCH = {np.dtype(t).str: getattr(torch, n) for t, n in (
    (np.float32, "float32"), (np.float64, "float64"), (np.float16, "float16"),
    (np.int8, "int8"), (np.int16, "int16"), (np.int32, "int32"), (np.int64, "int64"),
    (np.uint8, "uint8"), (np.uint16, "uint16"), (np.uint32, "uint32"), (np.uint64, "uint64"),
    (np.bool_, "bool"))}


class _Packed(dict):
    """The collated dict; pickled (worker -> main process) as its one block and layout.

    A batch changed after collating (a key added, a value replaced, by a ``collate_fn``
    wrapping :func:`collate`) is pickled as the plain dict it has become, tensor by tensor,
    so that nothing of the change is lost."""

    def __init__(self, block: torch.Tensor, layout: tuple, other: dict,
                 pooled: _PoolBlock | None = None) -> None:
        super().__init__(_unpack(block, layout, other))
        self._state = (block, layout, other)
        self._leaves = _flat(self)
        self._pooled = pooled
        if pooled is not None:
            pooled.owner = weakref.ref(self)

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict) -> dict[str, Any]:
        return copy.deepcopy(dict(self), memo)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        now = _flat(self)
        if len(now) != len(self._leaves) or any(
                p != q or a is not b for (p, a), (q, b) in zip(now, self._leaves)):
            return (dict, (dict(self),))
        if self._pooled is None:
            return (_unpack, self._state)
        if self._pooled.owner is None:
            raise RuntimeError(
                "this batch was already sent from its DataLoader worker in a reused block, "
                "which the worker fills again once the receiver drops it: pickle it only once "
                "(collate again for another copy), or set CENTERTARGETS_BATCH_POOL=0")
        self._pooled.owner = None               # sent: the receiver gives the block back
        _, layout, other = self._state
        return (_adopt, (DupFd(self._pooled.fd), _HEADER + self._pooled.capacity, layout,
                         other))


def _flat(tree: Mapping[str, Any], path: tuple[str, ...] = ()) -> list[tuple[tuple, Any]]:
    """Every (path, leaf) of a nested dict, in order."""
    out: list[tuple[tuple, Any]] = []
    for k, v in tree.items():
        if isinstance(v, dict):
            out += _flat(v, path + (k,))
        else:
            out.append((path + (k,), v))
    return out


def _adopt(fd: Any, nbytes: int, layout: tuple, other: dict[tuple[str, ...], Any]
           ) -> dict[str, Any]:
    """In the main process: the batch in a worker's pooled block (``fd``, a ``DupFd``),
    mapped and viewed in place; the block goes back to the worker when nothing views it."""
    own = fd.detach()
    try:
        whole = mmap.mmap(own, nbytes)
    finally:
        os.close(own)
    block = torch.frombuffer(whole, dtype=torch.uint8)
    done = weakref.finalize(block.untyped_storage(), _give_back, whole)
    done.atexit = False
    return _unpack(block[_HEADER:], layout, other)


def _give_back(whole: mmap.mmap) -> None:
    sync.release(np.frombuffer(whole, np.uint8, 1))


# Compile (or load) the flag's two kernels in the process that imports this module, the
# DataLoader's parent: forked workers inherit them instead of compiling them again.
sync.claim(np.zeros(1, np.uint8))
sync.release(np.zeros(1, np.uint8))
