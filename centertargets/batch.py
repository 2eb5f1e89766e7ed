"""``collate``: a DataLoader batch of dataset items in one shared-memory block (torch).

``torch.utils.data.default_collate`` gives every array of a batch its own tensor, and a
DataLoader worker its own shared-memory segment: a CenterNet item has about 25 arrays
(targets, ``input`` and ``meta``'s draws), so each batch costs 25 segments made in the
worker and 25 file descriptors passed to the main process and mapped there, which on a
small machine costs more than the sparse targets themselves.  :func:`collate` stacks
the same arrays into views of ONE block; a worker sends the block and a layout, and the
main process receives the ordinary dict of tensors.

    DataLoader(ds, batch_size=16, num_workers=4, collate_fn=centertargets.batch.collate)

Importing this module imports torch.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import default_collate, get_worker_info

__all__ = ["collate"]

_ALIGN = 64


def collate(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``default_collate(items)`` for dataset items, stacked into one block of memory.

    ``items``: dicts (nested dicts allowed) of numpy arrays and numbers with the same keys,
    shapes and dtypes in every item (a :class:`~centertargets.CenterNetDataset`'s items are).
    Returns the same keys, shapes, dtypes and values as ``default_collate`` (a leading
    batch axis; numbers become 1-D tensors); a leaf that differs between items (a shape,
    a dtype, a key) is an error naming it.  Leaves that are not numeric (strings, None) are
    collated by ``default_collate``.  In a DataLoader worker the block is shared memory,
    and the batch travels to the main process as that one block.
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
    block = _block(max(total, 1))
    flat = block.numpy()
    for (path, off, dtype, shape), (_, like) in zip(layout, leaves):
        if like is not None:
            out = flat[off:off + like.nbytes].view(np.dtype(dtype)).reshape(shape)
            np.stack([np.asarray(_get(item, path)) for item in items], out=out)
    return _Packed(block, tuple(layout), other)


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


def _block(nbytes: int) -> torch.Tensor:
    """``nbytes`` of uint8: shared memory in a DataLoader worker (made there directly, as
    ``default_collate`` makes its tensors), ordinary memory elsewhere."""
    if get_worker_info() is None:
        return torch.empty(nbytes, dtype=torch.uint8)
    storage = torch.UntypedStorage._new_shared(nbytes)
    return torch.empty(0, dtype=torch.uint8).set_(storage, 0, (nbytes,), (1,))


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
    """The collated dict; pickled (worker -> main process) as its one block and layout."""

    def __init__(self, block: torch.Tensor, layout: tuple, other: dict) -> None:
        super().__init__(_unpack(block, layout, other))
        self._state = (block, layout, other)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (_unpack, self._state)
