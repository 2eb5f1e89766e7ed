"""Training on several processes: DistributedDataParallel, DistributedSampler + set_epoch,
and the losses' global positive count.  Runs on CPUs with the gloo backend:

    torchrun --nproc_per_node 2 examples/train_ddp.py --steps 20

Each rank loads its share of a built-in synthetic dataset (images drawn with
known people) through ``CenterNetDataset`` with training augmentation, and
normalises the focal losses by the number of positives summed over ranks
(``LossOptions(distributed=True)``), so the gradients DDP averages are those
of the whole batch.  At the end every rank prints its first and last loss
and a checksum of its parameters (they must agree: DDP keeps ranks in step).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from centertargets import AugmentConfig, CenterNetDataset, CocoDataset, MultiPoseConfig
from centertargets.demo import _tiny_model, write_dataset
from centertargets.losses import LossOptions, MultiPoseLoss


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--data", help="folder for the synthetic datasets (default: a temp folder)")
    args = ap.parse_args(argv)

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.data or tmp) / f"rank{rank}"
        write_dataset(root, args.images, seed=0)        # the same seeded files on every rank
        cfg = MultiPoseConfig(output_size=(64, 64), max_objs=8)
        ds = CenterNetDataset(CocoDataset.load(root / "person_keypoints_demo.json"), cfg,
                              augment=AugmentConfig(train=True), image_root=root)
        sampler = DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=True, seed=0)
        loader = DataLoader(ds, batch_size=4, sampler=sampler, drop_last=True)
        torch.manual_seed(0)                            # the same initial weights everywhere
        model = DistributedDataParallel(_tiny_model(cfg))
        criterion = MultiPoseLoss(cfg, LossOptions(distributed=True))
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        losses: list[float] = []
        epoch = 0
        while len(losses) < args.steps:
            sampler.set_epoch(epoch)                    # a new shuffle per epoch...
            ds.set_epoch(epoch)                         # ...and new augmentation draws
            epoch += 1
            for batch in loader:
                loss, _ = criterion(model(batch["input"]), batch)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
                if len(losses) >= args.steps:
                    break
        checksum = float(sum(p.detach().double().sum() for p in model.parameters()))
    k = max(1, min(3, len(losses) // 4))
    result = {"rank": rank, "first": sum(losses[:k]) / k, "last": sum(losses[-k:]) / k,
              "checksum": checksum, "steps": len(losses)}
    # one write of one line: both ranks share stdout, and print() writes the text and the
    # newline separately, so two ranks' lines could run together
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    dist.destroy_process_group()
    return result


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
