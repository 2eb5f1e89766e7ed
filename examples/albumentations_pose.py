"""CenterNet pose targets after your own augmentation (albumentations), in image pixels.

``CenterNetDataset`` reproduces upstream CenterNet's augmentation.  If your
pipeline augments with another library, encode what it returns: boxes and
keypoints in the pixels of the network input, mapped to the output map by
``Annotations.from_input_pixels``.  Two things to get right, both shown here:

* keep boxes and keypoints of one person together: albumentations may drop
  boxes that leave the crop, so each carries its person's index as a label;
* a horizontal flip mirrors coordinates but not names: the joint labelled
  "left" is now the person's right, so swap the pairs (``swap_left_right``).

Needs ``pip install albumentations`` (only this example does)::

    python examples/albumentations_pose.py
"""

from __future__ import annotations

import argparse

import albumentations as A
import numpy as np

from centertargets import Annotations, MultiPoseConfig, MultiPoseEncoder
from centertargets.coco import COCO_FLIP_IDX
from centertargets.geometry import swap_left_right
from centertargets.synthetic import person_scene


def augment_and_encode(image: np.ndarray, boxes_xywh: np.ndarray, keypoints: np.ndarray,
                       cfg: MultiPoseConfig, seed: int, input_size: int = 256
                       ) -> tuple[dict[str, np.ndarray], bool, Annotations]:
    """One sample: albumentations on image-pixel COCO annotations, then the encoder."""
    transform = A.Compose(
        [A.HorizontalFlip(p=0.5),
         A.Affine(scale=(0.7, 1.3), translate_percent=(-0.1, 0.1), p=1.0),
         A.LongestMaxSize(max_size=input_size),
         A.PadIfNeeded(input_size, input_size, border_mode=0)],
        bbox_params=A.BboxParams(format="coco", label_fields=["person"], clip=True),
        keypoint_params=A.KeypointParams(format="xy", label_fields=["joint"],
                                         remove_invisible=False),
        seed=seed, save_applied_params=True)
    n, J = keypoints.shape[:2]
    out = transform(image=image, bboxes=boxes_xywh, person=np.arange(n),
                    keypoints=keypoints[..., :2].reshape(-1, 2), joint=np.arange(n * J))
    flipped = any(name == "HorizontalFlip" for name, _ in out["applied_transforms"])
    kept = np.asarray(out["person"], np.int64)                  # persons whose box survived
    kps = np.asarray(out["keypoints"], np.float32).reshape(n, J, 2)[kept]
    kps = np.concatenate([kps, keypoints[kept, :, 2:3].astype(np.float32)], axis=2)
    if flipped:
        kps = swap_left_right(kps, cfg.flip_idx)
    ann = Annotations.from_input_pixels(np.asarray(out["bboxes"], np.float64).reshape(-1, 4), None,
                                        kps, down_ratio=input_size / cfg.output_size[0],
                                        box_format="xywh")
    targets, _ = MultiPoseEncoder(cfg).encode_annotations(ann)
    return targets, flipped, ann


def main(argv: list[str] | None = None) -> dict[str, np.ndarray]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    scene = person_scene(args.seed, num_people=4, image_size=(320, 240))
    image = np.random.default_rng(args.seed).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    cfg = MultiPoseConfig(output_size=(64, 64), flip_idx=COCO_FLIP_IDX)
    targets, flipped, ann = augment_and_encode(image, scene.boxes_xywh, scene.keypoints, cfg,
                                               args.seed)
    print(f"{len(ann.boxes)} persons, flipped={flipped}; targets:")
    for name, a in targets.items():
        print(f"  {name:10s} {str(a.shape):14s} {a.dtype}")
    return targets


if __name__ == "__main__":
    main()
