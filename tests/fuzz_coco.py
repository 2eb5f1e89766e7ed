"""Seeded fuzzing of the COCO loader and the dataset behind it.

Each case writes a random COCO file (a valid one, then zero to three hostile
mutations: missing or mistyped fields, NaN/inf/1e300 numbers, duplicate ids,
unknown references, wrong keypoint counts, bad visibilities, a byte-order
mark, broken JSON) and loads it.  The load either raises a ValueError whose
message names where the problem is (an id, an entry, the JSON), or it
succeeds; then a ``CenterNetDataset`` over it (train or val augmentation,
rotations sometimes) yields targets for every image, which must satisfy the
encoders' invariants (:func:`fuzz_encoders.check_targets`): the dataset sends
the loaded arrays to the compiled kernels without checking them again, so
the loader's checks are all that stands between a file and the kernels.

``test_robustness.py`` runs a CI-sized batch; the long run is

    NUMBA_BOUNDSCHECK=1 NUMBA_CACHE_DIR=$(mktemp -d) python tests/fuzz_coco.py --cases 10000
"""

from __future__ import annotations

import copy
import json
import math
import tempfile
import warnings
from pathlib import Path

import numpy as np

import fuzz_encoders
from centertargets import AugmentConfig, CenterNetDataset, CocoDataset, CtdetConfig, MultiPoseConfig

# what a refusal's message must contain: it says where the problem is
_WHERE = ("id=", "COCO json", "entry of", "not valid JSON", "keypoint", "categor")

_HOSTILE = ["text", None, [], {}, True, math.nan, math.inf, -math.inf, 1e300, -5, 2.5, 0]


def random_coco(rng: np.random.Generator) -> tuple[dict, int]:
    """A valid COCO dict (pose or detection) and its joint count (0: detection)."""
    J = int(rng.choice([0, 0, 3, 17]))
    n_cat = 1 if J else int(rng.integers(1, 4))
    cats = [{"id": int(c), "name": f"c{c}"} for c in rng.choice(np.arange(1, 91), n_cat,
                                                                   replace=False)]
    if J:
        cats[0]["keypoints"] = [f"{side}_{k}" for k in range(J // 2) for side in ("left",
                                                                                 "right")]
        cats[0]["keypoints"] += ["nose"] * (J - len(cats[0]["keypoints"]))
        cats[0]["skeleton"] = [[1, J], [2, 1]]
    images, anns = [], []
    for i in range(int(rng.integers(1, 4))):
        w, h = int(rng.integers(16, 700)), int(rng.integers(16, 700))
        images.append({"id": i + 1, "file_name": f"{i}.jpg", "width": w, "height": h})
        for _ in range(int(rng.integers(0, 7))):
            x, y = rng.uniform(-0.2, 1.1) * w, rng.uniform(-0.2, 1.1) * h
            bw, bh = rng.uniform(0, 0.6) * w, rng.uniform(0, 0.6) * h
            a = {"id": len(anns) + 1, "image_id": i + 1,
                 "category_id": cats[int(rng.integers(n_cat))]["id"],
                 "bbox": [float(x), float(y), float(bw), float(bh)],
                 "iscrowd": int(rng.random() < 0.1), "area": float(bw * bh)}
            if J:
                k = np.stack([rng.uniform(x - 10, x + bw + 10, J),
                              rng.uniform(y - 10, y + bh + 10, J),
                              rng.choice([0, 1, 2], J)], 1)
                a["keypoints"] = [float(v) if c < 2 else int(v)
                                  for row in k for c, v in enumerate(row)]
                a["num_keypoints"] = int((k[:, 2] > 0).sum())
            anns.append(a)
    return {"images": images, "annotations": anns, "categories": cats}, J


def mutate(rng: np.random.Generator, d: dict) -> None:
    """One hostile change to a COCO dict, in place."""
    pick = lambda seq: seq[int(rng.integers(len(seq)))]     # noqa: E731
    hostile = copy.deepcopy(pick(_HOSTILE))             # never one list in two places
    kind = int(rng.integers(10))

    def entries(key):       # the dicts of a top-level list (earlier mutations may have broken it)
        v = d.get(key)
        return [e for e in v if isinstance(e, dict)] if isinstance(v, list) else []
    anns, images, cats = entries("annotations"), entries("images"), entries("categories")
    if not images:
        return
    if kind == 0 and anns:                                   # a field of an annotation
        a = pick(anns)
        key = pick(["id", "image_id", "category_id", "bbox", "keypoints", "iscrowd"])
        if rng.random() < 0.3:
            a.pop(key, None)
        else:
            a[key] = hostile
    elif kind == 1:                                          # a field of an image
        img = pick(images)
        key = pick(["id", "width", "height", "file_name"])
        if rng.random() < 0.3:
            img.pop(key, None)
        else:
            img[key] = hostile
    elif kind == 2 and anns:                                 # one bbox value
        a = pick(anns)
        if isinstance(a.get("bbox"), list) and len(a["bbox"]) == 4:
            a["bbox"][int(rng.integers(4))] = hostile
    elif kind == 3 and anns:                                 # one keypoint value
        a = pick(anns)
        if isinstance(a.get("keypoints"), list) and a["keypoints"]:
            a["keypoints"][int(rng.integers(len(a["keypoints"])))] = copy.deepcopy(pick(
                _HOSTILE + [3, -1, 1e8]))
    elif kind == 4 and anns:                                 # a wrong joint count
        a = pick(anns)
        if isinstance(a.get("keypoints"), list):
            a["keypoints"] = a["keypoints"][:-3] if rng.random() < 0.5 else \
                a["keypoints"] + [1.0, 2.0]
    elif kind == 5:                                          # duplicate or dangling ids
        if rng.random() < 0.5:
            images.append(dict(pick(images)))
        elif anns:
            pick(anns)["image_id" if rng.random() < 0.5 else "category_id"] = 10_000
    elif kind == 6:                                          # a top-level list replaced
        d[pick(["images", "annotations", "categories"])] = hostile
    elif kind == 7:                                          # an entry that is not an object
        lists = [v for v in (d.get("images"), d.get("annotations"), d.get("categories"))
                 if isinstance(v, list)]
        pick(lists).append(hostile)
    elif kind == 8 and cats:                                 # a category id
        pick(cats)["id"] = hostile
    elif kind == 9 and cats:                                 # joint names or skeleton
        c = pick(cats)
        if rng.random() < 0.5:
            c["skeleton"] = [[1, 2], hostile] if rng.random() < 0.5 else hostile
        else:
            c["keypoints"] = [hostile, "nose"] if rng.random() < 0.5 else hostile


def check_dataset(rng: np.random.Generator, coco: CocoDataset, J: int) -> int:
    """Targets of every image under random augmentation; returns how many were checked."""
    W, H = (int(v) for v in rng.integers(4, 40, 2))
    if J and coco.num_joints == J:
        cfg = MultiPoseConfig(output_size=(W, H), num_joints=J, max_objs=int(rng.integers(1, 8)),
                              num_classes=max(1, coco.num_classes),
                              rotation=str(rng.choice(["centernet", "corners"])))
    else:
        cfg = CtdetConfig(output_size=(W, H), num_classes=max(1, coco.num_classes),
                          max_objs=int(rng.integers(1, 8)), with_cat=True)
    train = bool(rng.random() < 0.7)
    aug = AugmentConfig(train=train, rot_prob=0.3 if train else 0.0, rotate=20.0,
                        rand_crop=bool(rng.random() < 0.7))
    ds = CenterNetDataset(coco, cfg, augment=aug, seed=int(rng.integers(1000)))
    checked = 0
    for i in range(len(ds)):
        params = ds.params(i)
        item = ds.item(i, params)
        if cfg.task == "multi_pose" and params.rot != 0 and cfg.rotation == "centernet":
            continue                    # upstream's rotation quirk blanks hm and the masks
        fuzz_encoders.check_targets(cfg, item, ds.annotations(i).classes)
        checked += 1
    return checked


def run(cases: int, seed: int = 0) -> dict[str, int]:
    """Run ``cases`` random files; counts of files loaded, refused, and items checked."""
    rng = np.random.default_rng(seed)
    counts = {"loaded": 0, "refused": 0, "items": 0}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "coco.json"
        for case in range(cases):
            d, J = random_coco(rng)
            for _ in range(int(rng.choice([0, 0, 1, 1, 2, 3]))):
                mutate(rng, d)
            text = json.dumps(d)
            if rng.random() < 0.05:
                text = text[:int(rng.integers(len(text)))]          # truncated file
            path.write_text(("\ufeff" if rng.random() < 0.2 else "") + text, encoding="utf-8")
            try:
                with warnings.catch_warnings():     # names that do not match the joint count
                    warnings.filterwarnings("ignore", "the keypoint category lists")
                    coco = CocoDataset.load(path)
            except ValueError as exc:
                assert any(w in str(exc) for w in _WHERE), (case, str(exc))
                counts["refused"] += 1
                continue
            counts["loaded"] += 1
            try:
                counts["items"] += check_dataset(rng, coco, J)
            except ValueError as exc:        # e.g. an image without width/height and no images
                assert "id=" in str(exc), (case, str(exc))
            except AssertionError as exc:
                raise AssertionError(f"case {case} (seed {seed}): {exc}") from None
    return counts


if __name__ == "__main__":
    fuzz_encoders.main(run, __doc__)
