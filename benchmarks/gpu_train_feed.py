"""Loaders feeding a real training step on a GPU: samples/s and the share of the GPU-alone rate.

A ResNet-18 CenterNet (CenterNet's ``resnet_18``: ResNet-18 trunk, three 4x4 deconvolutions
to stride 4, heads of 64 hidden channels), 512x512 input, bfloat16 autocast, Adam, batch 32,
on the synthetic 640x480 JPEGs of ``bench_loader.py`` (ctdet: 80 classes, 3-30 objects;
multi_pose: 5-15 persons).  Per task, in one run:

* **GPU alone**: one batch kept on the device, ``--steps`` training steps: the rate the
  model allows;
* each loader feeding the same step for ``--steps`` steps (after a warm-up of a few):
  upstream's stand-in (``bench_loader.UpstreamStyle``: float32 input, dense targets),
  ours float32 dense, and ours ``input_dtype="uint8"`` + ``heatmaps="sparse"`` through
  :class:`centertargets.device.DeviceFeed` (normalisation and rendering on the GPU), with
  ``default_collate`` and with ``centertargets.batch.collate``;
  ``pin_memory=True``, ``--workers`` workers (default: every core).

Prints samples/s and the share of the GPU-alone rate.  Steps, not seconds: every row runs a
fixed number of steps.  Needs a CUDA device for the figures it is meant for;
``--device cpu --input 128 --steps 2`` runs it anywhere (how the test suite runs it).
Run: ``python benchmarks/gpu_train_feed.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_loader import UpstreamStyle, write_dataset  # noqa: E402

from centertargets import (AugmentConfig, CenterNetDataset, CocoDataset, CtdetConfig,
                           MultiPoseConfig)
from centertargets.batch import collate
from centertargets.coco import COCO_CATEGORY_IDS
from centertargets.device import DeviceFeed
from centertargets.losses import build_heads, make_loss


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.down is None else self.down(x)))


class ResNet18CenterNet(nn.Module):
    """CenterNet's ``resnet_18`` (``msra_resnet.py``): stride-32 ResNet-18, three deconvolution
    stages of 256 channels back to stride 4, and the config's heads (``head_conv=64``)."""

    def __init__(self, config) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                                   nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [_Block(cin, cout, stride), _Block(cout, cout, 1)]
            cin = cout
        for _ in range(3):
            layers += [nn.ConvTranspose2d(cin, 256, 4, 2, 1, bias=False), nn.BatchNorm2d(256),
                       nn.ReLU(inplace=True)]
            cin = 256
        self.trunk = nn.Sequential(*layers)
        self.heads = build_heads(config, 256, head_conv=64)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.heads(self.trunk(x))


def train_rate(batches, config, device: torch.device, steps: int, warmup: int) -> float:
    """Samples/s of ``steps`` training steps fed by the iterable ``batches`` of
    ``(input, targets)`` (after ``warmup`` steps)."""
    model = ResNet18CenterNet(config).to(device).to(memory_format=torch.channels_last)
    loss_fn = make_loss(config)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16)
    n, t0 = 0, None
    for step, (inp, targets) in enumerate(batches):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0, n = time.perf_counter(), 0
        with autocast:
            out = model(inp.contiguous(memory_format=torch.channels_last))
        loss, _ = loss_fn({k: v.float() for k, v in out.items()}, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += inp.shape[0]
        if step + 1 == warmup + steps:
            break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return n / (time.perf_counter() - t0)


def forever(loader):
    while True:
        yield from loader


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--input", type=int, default=512, help="input side (output: a quarter)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--images", type=int, default=96)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--tasks", default="ctdet,multi_pose")
    args = ap.parse_args()
    device = torch.device(args.device)
    out = args.input // 4
    print(f"{device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}"
          f"), {args.input}x{args.input} input, batch {args.batch}, bf16, {args.steps} steps, "
          f"{args.workers} workers, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for task in args.tasks.split(","):
            path = write_dataset(root, task, args.images)
            coco = CocoDataset.load(path, category_ids=COCO_CATEGORY_IDS if task == "ctdet"
                                    else None)
            cfg = CtdetConfig(output_size=(out, out)) if task == "ctdet" else \
                MultiPoseConfig(output_size=(out, out))
            aug = AugmentConfig(train=True)
            dense = CenterNetDataset(coco, cfg, augment=aug, image_root=root)
            fast = CenterNetDataset(coco, cfg.replace(heatmaps="sparse"), augment=aug,
                                    image_root=root, input_dtype="uint8")

            def fed(ds, feed, collate_fn=None):
                loader = DataLoader(ds, batch_size=args.batch, num_workers=args.workers,
                                    shuffle=True, drop_last=True, pin_memory=device.type ==
                                    "cuda", persistent_workers=args.workers > 0,
                                    collate_fn=collate_fn)
                return (feed(b) for b in forever(loader))

            plain = DeviceFeed(dense, device)          # float32 and dense: moved only
            one = DeviceFeed(fast, device)(next(iter(DataLoader(fast, batch_size=args.batch))))
            alone = train_rate(iter(lambda: one, None), cfg, device, args.steps, args.warmup)
            print(f"\n{task}: GPU alone {alone:.0f} samples/s", flush=True)
            rows = [("upstream stand-in", UpstreamStyle(dense, path, root, task, args.input), plain,
                     None),
                    ("ours float32 dense", dense, plain, None),
                    ("ours uint8 + sparse (DeviceFeed)", fast, DeviceFeed(fast, device), None),
                    ("  + batch.collate", fast, DeviceFeed(fast, device), collate)]
            for name, ds, feed, coll in rows:
                rate = train_rate(fed(ds, feed, coll), cfg, device, args.steps, args.warmup)
                print(f"  {name:<34} {rate:7.0f} samples/s  {100 * rate / alone:5.1f}% of "
                      "the GPU-alone rate", flush=True)


if __name__ == "__main__":
    main()
