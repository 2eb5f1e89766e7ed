"""What the training device finishes: uint8 input, sparse heatmaps, the one-call feed (torch).

With ``CenterNetDataset(..., input_dtype="uint8")`` the workers send the
warped image as CHW uint8, a quarter of the float32 input's bytes, and
:func:`normalize_batch` finishes the network input where the model runs,
with the same float32 arithmetic as the CPU path (the colour draws travel
in ``meta["color"]``).  With ``config.replace(heatmaps="sparse")`` the workers send
``draws`` instead of the heatmaps and :func:`render_heatmaps` draws them on the
device, bit for bit.  :class:`DeviceFeed` does both (and moves the batch) in one
call.  Importing this module imports torch.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import numpy as np
import torch

from . import sparse
from .augment import COCO_EIG_VAL, COCO_EIG_VEC, COCO_MEAN_BGR, COCO_STD_BGR
from .kernels.image import GRAY_B, GRAY_G, GRAY_R

__all__ = ["normalize_batch", "render_heatmaps", "HeatmapRenderer", "DeviceFeed"]

#: Image entries of an item, and the ``meta`` entry holding each one's colour draws.
IMAGE_KEYS = {"input": "color", "pre_img": "pre_color"}

_CONTRAST, _SATURATION = 1, 2


def normalize_batch(inputs: torch.Tensor, meta: Mapping[str, Any],
                    mean: np.ndarray = COCO_MEAN_BGR, std: np.ndarray = COCO_STD_BGR,
                    eig_val: np.ndarray = COCO_EIG_VAL, eig_vec: np.ndarray = COCO_EIG_VEC
                    ) -> torch.Tensor:
    """The float32 network input (B, 3, H, W) of a uint8 batch, on ``inputs``' device.

    ``inputs``: (B, 3, H, W) uint8 BGR, the ``input`` of a batch from
    ``CenterNetDataset(..., input_dtype="uint8")`` (move it to the device
    first: ``batch["input"].cuda(non_blocking=True)``); ``meta``: that batch's
    ``meta`` (its ``color`` entry).  Per sample: ``x / 255``, the colour steps
    in the sample's order, the PCA lighting (added in float64), ``(x - mean)
    / std``: the CPU path's arithmetic, equal to it within 1e-6.
    """
    if not isinstance(inputs, torch.Tensor) or inputs.dtype != torch.uint8 or inputs.dim() != 4 \
            or inputs.shape[1] != 3:
        got = (tuple(inputs.shape), inputs.dtype) if isinstance(inputs, torch.Tensor) else \
            type(inputs).__name__
        raise ValueError(f"inputs is {got}: expected a uint8 tensor (B, 3, H, W), the input of "
                         "a batch from CenterNetDataset(..., input_dtype='uint8')")
    B = inputs.shape[0]
    dev = inputs.device
    color = {k: torch.as_tensor(np.asarray(v)) for k, v in meta["color"].items()}
    if color["order"].shape != (B, 3):
        raise ValueError(f"meta['color']['order'] has shape {tuple(color['order'].shape)}: "
                         f"expected ({B}, 3), one row per sample of inputs")
    x = inputs.to(torch.float32) / torch.tensor(255.0, dtype=torch.float32, device=dev)
    on = color["on"].to(torch.bool).tolist()
    if any(on):
        b, g, r = x[:, 0], x[:, 1], x[:, 2]
        gray = (b * float(GRAY_B) + g * float(GRAY_G) + r * float(GRAY_R)).unsqueeze(1)
        sums = inputs.to(torch.int64).sum(dim=(2, 3)).to(torch.float64)          # (B, 3) exact
        gray_mean = ((sums[:, 0] * float(GRAY_B) + sums[:, 1] * float(GRAY_G)
                      + sums[:, 2] * float(GRAY_R)) / (255.0 * x.shape[2] * x.shape[3]))
        gray_mean = gray_mean.to(torch.float32).cpu()
        factors = color["factors"].to(torch.float64)
        one_minus = (1.0 - factors).to(torch.float32)
        a = torch.ones(B, 3, dtype=torch.float32)
        add = torch.zeros(B, 3, dtype=torch.float32)
        sat = torch.zeros(B, 3, dtype=torch.float32)
        for i in range(B):
            if not on[i]:
                continue
            for k, step in enumerate(color["order"][i].tolist()):
                a[i, k] = factors[i, step].to(torch.float32)
                if step == _CONTRAST:
                    add[i, k] = gray_mean[i] * one_minus[i, step]
                elif step == _SATURATION:
                    sat[i, k] = one_minus[i, step]
        a, add, sat = (t.to(dev).reshape(B, 3, 1, 1, 1) for t in (a, add, sat))
        y = x.clone()
        for k in range(3):
            y = y * a[:, k] + (add[:, k] + gray * sat[:, k])
        shift = torch.as_tensor(np.asarray(eig_val, np.float32), dtype=torch.float64) \
            * color["lighting"].to(torch.float64)                                    # (B, 3)
        shift = shift @ torch.as_tensor(np.asarray(eig_vec, np.float32), dtype=torch.float64).T
        shift = torch.where(color["on"].to(torch.bool)[:, None], shift, 0.0)
        lit = (y.to(torch.float64) + shift.to(dev)[:, :, None, None]).to(torch.float32)
        keep = torch.tensor(on, device=dev)[:, None, None, None]
        x = torch.where(keep, lit, x)
    m = torch.as_tensor(np.asarray(mean, np.float32), device=dev)[None, :, None, None]
    s = torch.as_tensor(np.asarray(std, np.float32), device=dev)[None, :, None, None]
    return (x - m) / s


# --- sparse heatmaps ------------------------------------------------------------------------

#: Pixels expanded at once while rendering (bounds the renderer's temporary memory: about
#: 40 bytes per pixel).
RENDER_CHUNK = 1 << 22


_BANK_ON: dict[str, tuple[int, torch.Tensor]] = {}


def _bank_values(dev: torch.device) -> torch.Tensor:
    """:data:`centertargets.sparse.BANK`'s patches on ``dev`` (copied again when it grew)."""
    got = _BANK_ON.get(str(dev))
    if got is None or got[0] != sparse.BANK.generation:
        got = _BANK_ON[str(dev)] = (sparse.BANK.generation,
                                    torch.from_numpy(sparse.BANK.values.copy()).to(dev))
    return got[1]


def render_heatmaps(targets: Mapping[str, Any], config: Any,
                    out: Mapping[str, torch.Tensor] | None = None,
                    method: str = "auto") -> dict[str, Any]:
    """A batch's targets with ``draws`` rendered to dense heatmaps, on ``draws``' device.

    ``targets``: a batch (``default_collate`` of items) from a ``heatmaps="sparse"`` config,
    ``draws`` (B, R, 8) int32 (a tensor, moved to the training device first, or numpy);
    ``config``: that config.  Returns a new dict without ``draws`` and with each map of
    ``config.sparse_layout().maps`` as float32 (B, C, H, W) (e.g. ``hm``, ``hm_hp``), bit for
    bit the maps the dense encoder writes, from the same float32 patches.  ``method``:
    ``"auto"`` replays the rows in order with the compiled kernel on a CPU tensor's memory
    and scatters elsewhere; ``"scatter"`` always scatters: every patch pixel at once with
    ``scatter_reduce(amax)``, and the set rows of CenterNet's quirks in their order.
    ``out``: optional preallocated maps (name -> tensor of that shape, dtype and device),
    zeroed and filled.  With ``heatmaps="dense"`` (or a config whose maps stay dense)
    ``targets`` comes back as a new dict, unchanged.  On a CPU, allocating and zeroing the
    dense maps costs more than drawing them (a batch of 32 ctdet maps is 168 MB):
    :class:`HeatmapRenderer` keeps its maps and clears only the pixels it drew.
    """
    _check_method(method)
    result, draws, wants = _unpack(targets, config)
    if draws is None:
        return result
    maps = []
    for name, want in zip(config.sparse_layout().maps, wants):
        t = None if out is None else out.get(name)
        if t is None:
            t = torch.zeros(want, dtype=torch.float32, device=draws.device)
        else:
            if tuple(t.shape) != want or t.dtype != torch.float32 \
                    or t.device != draws.device or not t.is_contiguous():
                raise ValueError(f"out[{name!r}] is {t.dtype} {tuple(t.shape)} on {t.device}"
                                 f": expected a contiguous float32 tensor {want} on "
                                 f"{draws.device}")
            t.zero_()
        maps.append(t)
    _render_into(draws, maps, method)
    result.update(zip(config.sparse_layout().maps, maps))
    return result


def dense_targets(batch: Mapping[str, Any], config: Any) -> Mapping[str, Any]:
    """``batch`` as the losses read it: with ``draws`` (a ``heatmaps="sparse"`` batch of
    ``config``'s task, whichever ``heatmaps`` ``config`` itself has), its maps rendered by
    :func:`render_heatmaps`; any other batch as it is."""
    if not isinstance(batch, Mapping) or "draws" not in batch:
        return batch
    return render_heatmaps(batch, config if config.heatmaps == "sparse" else
                           config.replace(heatmaps="sparse"))


class HeatmapRenderer:
    """:func:`render_heatmaps` into maps it keeps: each call first clears what the call
    ``buffers`` calls before drew into the same maps, so its cost follows the drawn pixels,
    not the size of the maps (on a CPU, zeroing 168 MB of ctdet maps per batch of 32 costs
    more than drawing them).

    The maps of a call are overwritten ``buffers`` calls later (2 by default: a training
    step may hold one batch while the next is prepared); ``.clone()`` what you keep longer.
    A change of batch size or device allocates new maps.
    """

    def __init__(self, config: Any, buffers: int = 2, method: str = "auto") -> None:
        if isinstance(buffers, bool) or not (isinstance(buffers, int) and buffers >= 1):
            raise ValueError(f"buffers={buffers!r}: expected an int >= 1")
        _check_method(method)
        self.config = config
        self.method = method
        self._slots: list[tuple[list[torch.Tensor], Any] | None] = [None] * buffers
        self._next = 0

    def __call__(self, targets: Mapping[str, Any]) -> dict[str, Any]:
        result, draws, wants = _unpack(targets, self.config)
        if draws is None:
            return result
        k = self._next
        self._next = (k + 1) % len(self._slots)
        slot = self._slots[k]
        if slot is None or [tuple(m.shape) for m in slot[0]] != wants \
                or slot[0][0].device != draws.device:
            maps = [torch.zeros(w, dtype=torch.float32, device=draws.device) for w in wants]
        else:
            maps, undo = slot
            if isinstance(undo, tuple):                 # the last rows, replayed as zeros
                sparse.replay_prepared(undo, [m.numpy() for m in maps], clear=True)
            else:                                        # the pixels the scatter wrote
                for mp, pixels in zip(maps, undo):
                    for idx in pixels:
                        mp.view(-1).index_fill_(0, idx, 0.0)
        self._slots[k] = (maps, _render_into(draws, maps, self.method))
        result.update(zip(self.config.sparse_layout().maps, maps))
        return result


def _check_method(method: str) -> None:
    if method not in ("auto", "scatter"):
        raise ValueError(f"method={method!r}: expected 'auto' (the compiled replay on a CPU, "
                         "a scatter elsewhere) or 'scatter'")


def _unpack(targets: Mapping[str, Any], config: Any
            ) -> tuple[dict[str, Any], torch.Tensor | None, list[tuple[int, ...]]]:
    """A copy of ``targets`` without ``draws``, ``draws`` (B, R, 8) checked (None when the
    config keeps its maps dense), and the dense maps' batch shapes."""
    layout = config.sparse_layout()
    result = dict(targets)
    if config.heatmaps != "sparse" or not layout.maps:
        return result, None, []
    if "draws" not in result:
        raise KeyError(f"targets has no 'draws': expected a batch of {config.describe()} with "
                       "heatmaps='sparse' (keys: " + ", ".join(map(str, result)) + ")")
    draws = torch.as_tensor(result.pop("draws"))
    if draws.dim() == 2:
        draws = draws.unsqueeze(0)
    dense = config.dense_spec()
    shapes = [tuple(dense[m].shape) for m in layout.maps]
    sparse.check_draws(draws.cpu().numpy(), shapes)
    return result, draws, [(draws.shape[0],) + sh for sh in shapes]


def _render_into(draws: torch.Tensor, maps: list[torch.Tensor], method: str
                 ) -> list[list[torch.Tensor]] | tuple[np.ndarray, ...]:
    """Replay ``draws`` into zeroed ``maps``.  Returns what undoes it: after the compiled
    replay (CPU) its prepared rows (:func:`centertargets.sparse.prepare`), else the flat
    indices the scatter wrote, per map."""
    if method == "auto" and draws.device.type == "cpu":
        return sparse.replay_batch(draws.numpy(), [m.numpy() for m in maps], checked=True)
    dev = draws.device
    touched: list[list[torch.Tensor]] = [[] for _ in maps]
    B, R, _ = draws.shape
    d = draws.to(torch.int64)
    is_set = d[..., 0] == sparse.OP_SET
    rounds = (torch.cumsum(is_set, dim=1) - is_set.to(torch.int64)).reshape(-1)
    flat = d.reshape(-1, 8)
    live = torch.nonzero(flat[:, 0] != 0).squeeze(1)
    if live.numel() == 0:
        return touched
    rows, rounds = flat[live], rounds[live]
    sample = live // R
    # rows over every channel of their map become one row per channel
    chans = torch.tensor([mp.shape[1] for mp in maps], dtype=torch.int64, device=dev)
    every = rows[:, 2] == -1
    if bool(every.any()):
        reps = torch.where(every, chans[rows[:, 1]], 1)
        rows, rounds, sample = (rows.repeat_interleave(reps, 0), rounds.repeat_interleave(reps),
                                sample.repeat_interleave(reps))
        first = torch.cumsum(reps, 0) - reps
        local = torch.arange(rows.shape[0], device=dev) - first.repeat_interleave(reps)
        rows[:, 2] = torch.where(rows[:, 2] == -1, local, rows[:, 2])
    poff = torch.from_numpy(sparse.BANK.offsets(rows.cpu().numpy())).to(dev)
    bank = _bank_values(dev)
    for r in range(int(rounds.max()) + 1):
        this = rounds == r
        for how, pick in (("amax", this & (rows[:, 0] != sparse.OP_SET)),
                          ("set", this & (rows[:, 0] == sparse.OP_SET))):
            if bool(pick.any()):
                _scatter(rows[pick], sample[pick], poff[pick], bank, maps, how, touched)
    return touched


def _scatter(rows: torch.Tensor, sample: torch.Tensor, poff: torch.Tensor, bank: torch.Tensor,
             maps: list[torch.Tensor], how: str, touched: list[list[torch.Tensor]]) -> None:
    """Scatter ``rows`` (one channel each) into ``maps``: ``max`` (patch and max rows) or
    assignment (set rows, which never overlap within one call: one per sample)."""
    dev = rows.device
    for m, mp in enumerate(maps):
        on = rows[:, 1] == m
        if not bool(on.any()):
            continue
        rw, smp, off = rows[on], sample[on], poff[on]
        _, C, H, W = mp.shape
        is_patch = rw[:, 0] == sparse.OP_PATCH
        fam, a, b = rw[:, 5], rw[:, 6], rw[:, 7]
        radius = torch.where((fam == sparse.FAM_MSRA) | (fam == sparse.FAM_MSRA_SIGMA), 3 * a, a)
        pw = torch.where(is_patch, 2 * radius + 1, 1)
        ph = torch.where(is_patch, torch.where(fam == sparse.FAM_ELLIPTIC, 2 * b + 1, pw), 1)
        # the window in map pixels, and where it starts in its patch
        ox = torch.where(is_patch, rw[:, 3] - pw // 2, rw[:, 3])
        oy = torch.where(is_patch, rw[:, 4] - ph // 2, rw[:, 4])
        x0 = ox.clamp(0, W)
        y0 = oy.clamp(0, H)
        w = (torch.where(is_patch, ox + pw, rw[:, 5]).clamp(0, W) - x0).clamp(min=0)
        h = (torch.where(is_patch, oy + ph, rw[:, 6]).clamp(0, H) - y0).clamp(min=0)
        n = w * h
        const = rw[:, 7].to(torch.int32).view(torch.float32)
        # per row: the first pixel's flat index, and its patch value's index in ``bank``
        dst0 = ((smp * C + rw[:, 2]) * H + y0) * W + x0
        src0 = off + (y0 - oy) * pw + (x0 - ox)
        target = mp.view(-1)
        ends = torch.cumsum(n, 0)
        start_row = 0
        while start_row < rw.shape[0]:        # chunks of at most RENDER_CHUNK pixels
            done = int(ends[start_row - 1]) if start_row else 0
            stop = max(int(torch.searchsorted(ends, done + RENDER_CHUNK, right=True)),
                       start_row + 1)
            sl = slice(start_row, stop)
            start_row = stop
            cnt = n[sl]
            npx = int(cnt.sum())
            if npx == 0:
                continue
            rid = torch.repeat_interleave(torch.arange(cnt.shape[0], device=dev), cnt)
            local = torch.arange(npx, device=dev) - (torch.cumsum(cnt, 0) - cnt)[rid]
            ww = w[sl][rid]
            ly = torch.div(local, ww, rounding_mode="floor")
            lx = local - ly * ww
            idx = dst0[sl][rid] + ly * W + lx
            src = src0[sl][rid] + ly * pw[sl][rid] + lx
            vals = torch.where(is_patch[sl][rid], bank[torch.where(is_patch[sl][rid], src, 0)],
                               const[sl][rid])
            touched[m].append(idx)
            if how == "set":
                target[idx] = vals
            else:
                target.scatter_reduce_(0, idx, vals, reduce="amax", include_self=True)


class DeviceFeed:
    """A DataLoader batch of a :class:`~centertargets.CenterNetDataset` -> ``(input, targets)``
    on the training device, in one call.

    >>> ds = CenterNetDataset(coco, config.replace(heatmaps="sparse"), input_dtype="uint8", ...)
    >>> feed = DeviceFeed(ds, "cuda")
    >>> for batch in DataLoader(ds, batch_size=16, num_workers=4, pin_memory=True):
    ...     inp, targets = feed(batch)        # float32 (B, 3, H, W); dense hm, ... on the GPU

    Every tensor moves to ``device`` (``non_blocking``: with ``pin_memory=True`` the copies
    overlap); a uint8 image (``input``, and a tracking sample's ``pre_img``) is coloured and
    normalised there with the dataset's constants (:func:`normalize_batch`); ``draws`` is
    rendered there (:func:`render_heatmaps`).  ``targets`` holds every target under its
    dense name (what the task's loss takes), ``pre_img`` when the sample has one, and the
    batch's ``meta`` (left on the CPU).  Equal to the float32, dense path's batch: the
    targets bit for bit, the input within 1e-6.  Float32 or dense datasets pass through
    (moved only).

    ``reuse_buffers``: 0 (default) renders into fresh tensors; ``n >= 1`` renders through a
    :class:`HeatmapRenderer` with ``n`` sets of maps, each overwritten ``n`` batches later
    (much cheaper on a CPU device, where zeroing the maps costs more than drawing them).
    """

    def __init__(self, dataset: Any, device: str | torch.device = "cpu",
                 reuse_buffers: int = 0) -> None:
        self.config = dataset.config
        self.device = torch.device(device)
        self.render = HeatmapRenderer(self.config, reuse_buffers) if reuse_buffers else \
            functools.partial(render_heatmaps, config=self.config)
        self.constants = tuple(np.asarray(getattr(dataset, k), np.float32)
                               for k in ("mean", "std", "eig_val", "eig_vec"))

    def __call__(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        if not isinstance(batch, Mapping) or "input" not in batch:
            got = sorted(batch) if isinstance(batch, Mapping) else type(batch).__name__
            raise ValueError(f"batch is {got}: expected a collated batch of dataset items "
                             "with an 'input' (give the dataset an image_root)")
        meta = batch.get("meta")
        moved: dict[str, Any] = {}
        for k, v in batch.items():
            if k == "meta":
                continue
            moved[k] = v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) \
                else v
        for key, colour in IMAGE_KEYS.items():
            img = moved.get(key)
            if isinstance(img, torch.Tensor) and img.dtype == torch.uint8:
                if meta is None or colour not in meta:
                    raise ValueError(f"batch[{key!r}] is uint8 but batch['meta'] has no "
                                     f"{colour!r}: expected the dataset's own items")
                moved[key] = normalize_batch(img, {"color": meta[colour]}, *self.constants)
        targets = self.render(moved)
        if meta is not None:
            targets["meta"] = meta
        return targets.pop("input"), targets
