"""End to end on synthetic data: COCO json -> Dataset -> DataLoader -> model -> loss -> decode.

A deliberately tiny network (a few convolutions) trains for a few steps on
built-in synthetic pose images, to show where each piece plugs in:

    python examples/train_step.py --steps 20

Nothing here needs a GPU or a dataset download.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from centertargets import MultiPoseConfig
from centertargets.coco import CocoDataset
from centertargets.decode import MultiPoseDecoder
from centertargets import AugmentConfig, CenterNetDataset
from centertargets.synthetic import person_scene, to_coco
from centertargets.losses import MultiPoseLoss, build_heads


class TinyPoseNet(nn.Module):
    """The config's heads on a small conv trunk; input is the target heatmaps' size (no images)."""

    def __init__(self, cfg: MultiPoseConfig, width: int = 32) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
                                   nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        # CenterNet's heads from the config's head spec: channels, and the heatmap prior
        # (logits start at -2.19, p = 0.1)
        self.heads = build_heads(cfg, width, head_conv=0)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.heads(self.trunk(x))


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "person_keypoints_synthetic.json"
        path.write_text(json.dumps(to_coco([person_scene(i, num_people=1 + i % 5)
                                            for i in range(args.images)])))
        coco = CocoDataset.load(path)

    cfg = MultiPoseConfig(output_size=(64, 64))
    ds = CenterNetDataset(coco, cfg, augment=AugmentConfig(train=True))
    loader = DataLoader(ds, batch_size=4, shuffle=True, num_workers=args.workers,
                        drop_last=True)
    model = TinyPoseNet(cfg)
    criterion = MultiPoseLoss(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    step, stats = 0, {}
    while step < args.steps:
        ds.set_epoch(step)
        for batch in loader:
            # no images in this demo: feed the centre heatmap as a stand-in input
            outputs = model(batch["hm"])
            loss, stats = criterion(outputs, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            print(f"step {step:3d}  " + "  ".join(f"{k} {v.item():.3f}" for k, v in stats.items()))
            if step >= args.steps:
                break
    with torch.no_grad():
        dets = MultiPoseDecoder(cfg, K=5)(model(batch["hm"]))
    print("decoded (B, K, 4 + 1 + 34 + 1):", tuple(dets.shape))
    return {k: v.item() for k, v in stats.items()}


if __name__ == "__main__":
    main()
