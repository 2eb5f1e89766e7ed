"""The batch path: DataLoader samples/s, bytes per sample and rendering, against upstream.

Synthetic 640x480 JPEGs (ctdet: 3-30 objects of COCO's 80 classes; multi_pose: 5-15
persons), upstream's training transform (random crop, flip, colour), 512 input / 128
output, batch 16, ``default_collate``.  Measured in the same run, per task:

* DataLoader samples/s with 0 and 2 workers (and every core where there are more) for
  upstream's ``__getitem__`` (``bench_dataset.py``'s plain-numpy stand-in: image, colour,
  normalisation and the targets), ours float32, ours ``input_dtype="uint8"``, and ours uint8 +
  ``heatmaps="sparse"`` with the batch's heatmaps rendered in the main process on the CPU
  (a ``HeatmapRenderer``, counted in the rate; then ``render_heatmaps`` into fresh tensors);
  and the same with ``centertargets.batch.collate`` (the batch in one shared-memory block,
  which the worker reuses; and with ``CENTERTARGETS_BATCH_POOL=0``, a new block per batch);
  ``normalize_batch`` is left to the training device (on a CPU it costs more than the
  whole sample: it is meant for a GPU); and the floor: the image work alone (read, decode,
  flip, warp into uint8 planes, no targets; ``batch.collate``), the ceiling of any exact
  loader built on OpenCV;
* bytes per sample of each (everything but ``meta``);
* rendering a batch of 32 on the CPU, against loading that batch (2 workers), and the
  scatter a GPU runs, timed on the CPU;
* the targets of one sample, sparse, against the stand-in's target code.

Nothing is asserted.  Run: ``python benchmarks/bench_loader.py`` (``make bench``);
``--quick`` for a short run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_of  # noqa: E402
from bench_dataset import (per_sample_each, upstream_style_ctdet_targets,  # noqa: E402
                           upstream_style_input, upstream_style_pose_targets)
from bench_dataset import write_dataset as write_images  # noqa: E402

from centertargets import (AugmentConfig, CenterNetDataset, CocoDataset, CtdetConfig,
                           MultiPoseConfig, worker)
from centertargets.augment import warp_image_chw
from centertargets.batch import collate
from centertargets.coco import COCO_CATEGORY_IDS
from centertargets.device import HeatmapRenderer, render_heatmaps

BATCH = 16


class UpstreamStyle(torch.utils.data.Dataset):
    """Upstream's ``__getitem__`` as ``bench_dataset.py`` transcribes it, as a Dataset: the
    float32 input and the dense targets, drawn with the same augmentation as ours."""

    def __init__(self, ours: CenterNetDataset, path: Path, root: Path, task: str,
                 input_size: int = 512) -> None:
        self.ours = ours
        self.size = input_size
        anns = json.loads(path.read_text())["annotations"]
        ids = [ours.annotations(i).image_id for i in range(len(ours))]
        self.anns = [[a for a in anns if a["image_id"] == iid] for iid in ids]
        self.files = [str(root / ours.annotations(i).file_name) for i in range(len(ours))]
        self.targets = upstream_style_pose_targets if task == "multi_pose" else \
            upstream_style_ctdet_targets

    def __len__(self) -> int:
        return len(self.ours)

    def __getitem__(self, i: int) -> dict:
        p = self.ours.params(i)
        inp, width = upstream_style_input(self.files[i], p, self.size)
        out = self.targets(self.anns[i], width, p, out=self.size // 4)
        out["input"] = np.ascontiguousarray(inp, np.float32)
        return out


class ImageFloor(torch.utils.data.Dataset):
    """The image work alone, as ours does it with uint8 input: read and decode the file,
    flip, warp, planes first; no targets, no meta; in a worker set up as ours are (malloc
    kept, :mod:`centertargets.worker`) and batched by ``batch.collate``.  Its rate bounds any
    loader that makes the same bytes with OpenCV: the ceiling of the ratios above it."""

    def __init__(self, ours: CenterNetDataset) -> None:
        self.ours = ours

    def __len__(self) -> int:
        return len(self.ours)

    def __getitem__(self, i: int) -> dict:
        worker.setup_process()
        ann = self.ours.annotations(i)
        img = self.ours.read_image(ann)
        return {"input": warp_image_chw(img, self.ours.params(i), (512, 512))}


def write_dataset(folder: Path, task: str, n_images: int) -> Path:
    """The issue's scenes: ctdet 3-30 objects of 80 classes, multi_pose 5-15 persons."""
    return write_images(folder, task, n_images, (3, 30) if task == "ctdet" else (5, 15))


def loader_rate(ds, workers: int, finish=None, rounds: int = 2, collate_fn=None) -> float:
    """Samples/s of a DataLoader (batch 16) over ``ds`` after every worker has produced;
    ``finish(batch)`` runs on each batch in the main process and is counted."""
    loader = DataLoader(ds, batch_size=BATCH, num_workers=workers, shuffle=False,
                        persistent_workers=bool(workers), collate_fn=collate_fn)
    for b in loader:                # start and warm every worker
        if finish:
            finish(b)
    t0 = time.perf_counter()
    n = 0
    for _ in range(rounds):
        for b in loader:
            if finish:
                finish(b)
            n += len(b["input"])
    rate = n / (time.perf_counter() - t0)
    del loader
    return rate


def collate_without_reuse(items):
    """``batch.collate`` with ``CENTERTARGETS_BATCH_POOL=0``: a new shared-memory block for
    every batch, as before workers reused theirs (the row that measures the reuse)."""
    before = os.environ.get("CENTERTARGETS_BATCH_POOL")
    os.environ["CENTERTARGETS_BATCH_POOL"] = "0"
    try:
        return collate(items)
    finally:
        if before is None:
            del os.environ["CENTERTARGETS_BATCH_POOL"]
        else:
            os.environ["CENTERTARGETS_BATCH_POOL"] = before


def item_bytes(item: dict) -> int:
    return sum(v.nbytes for k, v in item.items() if k != "meta")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3, help="passes over the images per rate")
    ap.add_argument("--repeat", type=int, default=2, help="rates per cell (the best is shown)")
    ap.add_argument("--quick", action="store_true", help="32 images, one pass, 0 and 2 workers")
    args = ap.parse_args()
    if args.quick:
        args.images, args.rounds, args.repeat = 32, 1, 1
    torch.set_num_threads(1)          # the main process leaves the cores to the workers
    workers = sorted({0, 2, os.cpu_count() or 2}) if not args.quick else [0, 2]
    lines = [f"batch path: 640x480 JPEGs, 512 input / 128 output, batch {BATCH}, "
             f"{args.images} images, {os.cpu_count()} CPUs; samples/s (ratio to upstream's "
             "stand-in in the same run)"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for task in ("ctdet", "multi_pose"):
            path = write_dataset(root, task, args.images)
            coco = CocoDataset.load(path, category_ids=COCO_CATEGORY_IDS if task == "ctdet"
                                    else None)
            cfg = CtdetConfig(output_size=(128, 128)) if task == "ctdet" else \
                MultiPoseConfig(output_size=(128, 128))
            sp = cfg.replace(heatmaps="sparse")
            aug = AugmentConfig(train=True)
            f32 = CenterNetDataset(coco, cfg, augment=aug, image_root=root)
            u8 = CenterNetDataset(coco, cfg, augment=aug, image_root=root, input_dtype="uint8")
            fast = CenterNetDataset(coco, sp, augment=aug, image_root=root, input_dtype="uint8")
            up = UpstreamStyle(f32, path, root, task)
            kept = HeatmapRenderer(sp)

            def fresh(b, _sp=sp):
                render_heatmaps(b, _sp)

            variants = [("upstream stand-in", up, None, None), ("ours float32", f32, None, None),
                        ("ours uint8", u8, None, None),
                        ("ours uint8 + sparse + render", fast, kept, None),
                        ("  render into fresh tensors", fast, fresh, None),
                        ("  + batch.collate (one block)", fast, kept, collate),
                        ("    its blocks not reused", fast, kept, collate_without_reuse),
                        ("floor: read + warp alone (no targets)", ImageFloor(u8), None, collate)]
            sizes = {name: item_bytes(ds[0]) for name, ds, *_ in variants[:4]}
            lines.append(f"\n{task} ({'3-30 objects, 80 classes' if task == 'ctdet' else '5-15 persons'})")
            header = "  " + f"{'':<36}" + "".join(f"{f'{w} workers':>18}" for w in workers) + \
                f"{'bytes/sample':>15}"
            lines.append(header)
            # best of `repeat` rates per cell, the variants taking turns (this machine's speed
            # drifts by 2x within minutes; a drift then hits every variant alike)
            rates = {(name, w): 0.0 for name, *_ in variants for w in workers}
            for _ in range(args.repeat):
                for name, ds, finish, coll in variants:
                    for w in workers:
                        rates[name, w] = max(rates[name, w],
                                             loader_rate(ds, w, finish, args.rounds, coll))
            base = {w: rates["upstream stand-in", w] for w in workers}
            for name, *_ in variants:
                cells = []
                for w in workers:
                    r = rates[name, w]
                    cells.append(f"{r:.0f}" if name.startswith("upstream") else
                                 f"{r:.0f} ({r / base[w]:.1f}x)")
                size = f"{sizes[name] / 1e6:.2f} MB" if name in sizes else ""
                lines.append(f"  {name:<36}" + "".join(f"{c:>18}" for c in cells) + f"{size:>15}")
                print(lines[-1], flush=True)
            if task == "ctdet":
                batch32 = next(iter(DataLoader(fast, batch_size=32)))
                renderer = HeatmapRenderer(sp)
                t_kept = best_of(lambda: renderer(batch32), 5, 4)
                t_fresh = best_of(lambda: render_heatmaps(batch32, sp), 5, 2)
                t_scatter = best_of(lambda: render_heatmaps(batch32, sp, method="scatter"), 3, 2)
                load32 = 32 / loader_rate(fast, 2, kept, args.rounds)
                lines.append(f"  render a batch of 32 on the CPU: {t_kept * 1e3:.1f} ms "
                             f"(HeatmapRenderer) = {100 * t_kept / load32:.1f}% of loading it "
                             f"with 2 workers ({load32 * 1e3:.0f} ms); into fresh tensors "
                             f"{t_fresh * 1e3:.0f} ms; the scatter (what a GPU runs) "
                             f"{t_scatter * 1e3:.0f} ms")
                ds_t = CenterNetDataset(coco, sp, augment=aug)
                params = [ds_t.params(i) for i in range(len(ds_t))]
                anns = json.loads(path.read_text())["annotations"]
                by_image = [[a for a in anns if a["image_id"] == ds_t.annotations(i).image_id]
                            for i in range(len(ds_t))]
                n = len(ds_t)
                t = per_sample_each({
                    "item": lambda i: ds_t.item(i, params[i]),
                    "enc": lambda i: ds_t._targets(ds_t.annotations(i), params[i], (128, 128)),
                    "up": lambda i: upstream_style_ctdet_targets(by_image[i], 640, params[i])},
                    n, 7)
                t_sparse, t_enc, t_up = t["item"], t["enc"], t["up"]
                lines.append(f"  targets of one sample, sparse: item {t_sparse * 1e6:.0f} us "
                             f"({t_up / t_sparse:.0f}x), encode alone {t_enc * 1e6:.0f} us "
                             f"({t_up / t_enc:.0f}x); upstream stand-in {t_up * 1e3:.2f} ms")
            print(lines[-1], flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
