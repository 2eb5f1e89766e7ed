"""Bit-exact reproduction of upstream CenterNet's samples (xingyizhou/CenterNet).

:func:`encode_sample` takes the ``__meta__`` dict of a scene fixture (COCO
annotations, image size, augmentation ``c``/``s``/``rot``/``flipped``,
input/output sizes, CenterNet options) and returns exactly the targets
CenterNet's ``CTDetDataset`` / ``MultiPoseDataset.__getitem__`` returned.

It is the package's own pipeline and encoders with CenterNet's defaults;
what is specific here is reading the fixture format and turning CenterNet's
options into a config.  :func:`replay_sample` goes through
:class:`~centertargets.CenterNetDataset` itself: a whole training sample,
image in, network input and targets out, for upstream's recorded draws.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import numpy as np

from ..coco import COCO_FLIP_IDX
from ..config import CtdetConfig, MultiPoseConfig
from ..encoders import CtdetEncoder, EncodeReport, MultiPoseEncoder
from ..augment import AugmentParams, annotations_to_output
from ..coco import CocoDataset
from ..dataset import CenterNetDataset


def config_from_meta(meta: Mapping[str, Any]) -> CtdetConfig | MultiPoseConfig:
    """The config that reproduces a fixture's CenterNet options (defaults = CenterNet's)."""
    opts = meta.get("options", {})
    common = dict(
        output_size=(int(meta["output_w"]), int(meta["output_h"])),
        num_classes=int(meta["num_classes"]),
        max_objs=int(meta["max_objs"]),
        reg_offset=bool(opts.get("reg_offset", True)),
        heatmap="msra" if opts.get("mse_loss", False) else "umich",
        msra_sigma=float(opts.get("hm_gauss", 2)),
    )
    task = meta["task"]
    if task == "ctdet":
        return CtdetConfig(cat_spec_wh=bool(opts.get("cat_spec_wh", False)),
                           dense_wh=bool(opts.get("dense_wh", False)), **common)
    if task == "multi_pose":
        return MultiPoseConfig(
            num_joints=int(meta["num_joints"]),
            hm_hp=bool(opts.get("hm_hp", True)),
            reg_hp_offset=bool(opts.get("reg_hp_offset", True)),
            dense_hp=bool(opts.get("dense_hp", False)),
            flip_idx=tuple(tuple(p) for p in meta.get("flip_idx", ())),
            **common)
    raise ValueError(f"meta['task']={task!r}: expected 'ctdet' or 'multi_pose'")


def config_from_loss_fixture(task: str, options: Mapping[str, Any],
                             targets: Mapping[str, np.ndarray]) -> CtdetConfig | MultiPoseConfig:
    """The config of a loss fixture's batch: sizes from the targets' shapes, heads from options."""
    B, C, H, W = targets["hm"].shape
    meta: dict[str, Any] = {"task": task, "options": dict(options), "output_w": W,
                            "output_h": H, "num_classes": C, "max_objs": targets["ind"].shape[1]}
    if task == "multi_pose":
        if "hps" in targets:
            meta["num_joints"] = targets["hps"].shape[2] // 2
        else:
            meta["num_joints"] = targets["dense_hps"].shape[1] // 2
        meta["flip_idx"] = [] if meta["num_joints"] != 17 else [list(p) for p in COCO_FLIP_IDX]
    return config_from_meta(meta)


def sample_inputs(meta: Mapping[str, Any],
                  config: CtdetConfig | MultiPoseConfig | None = None) -> dict[str, Any]:
    """The encoder inputs for a fixture, in output-map pixels, as CenterNet computes them.

    Returns a dict with ``boxes`` (N, 4) f32, ``classes`` (N,) i64 and, for
    multi_pose, ``keypoints`` (N, J, 3) f32 and ``rotated`` (bool).  ``config``:
    the meta's config when already built.
    """
    config = config or config_from_meta(meta)
    anns = list(meta["annotations"])
    scale = meta["scale"]
    params = AugmentParams(center=tuple(meta["center"]),
                           scale=tuple(scale) if isinstance(scale, (list, tuple)) else float(scale),
                           rot=float(meta.get("rot", 0.0)), flipped=bool(meta.get("flipped", False)))
    out_size = (int(meta["output_w"]), int(meta["output_h"]))
    bboxes = np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4)
    if config.task == "ctdet":
        boxes, _ = annotations_to_output(bboxes, int(meta["image_width"]), params, out_size)
        cat_ids = [int(c) for c in meta["category_ids"]]
        classes = np.array([cat_ids.index(int(a["category_id"])) for a in anns], dtype=np.int64)
        return {"boxes": boxes, "classes": classes}
    kps = np.array([a["keypoints"] for a in anns], dtype=np.float32).reshape(
        len(anns), config.num_joints, 3)
    boxes, kps = annotations_to_output(bboxes, int(meta["image_width"]), params, out_size,
                                       keypoints=kps, flip_idx=config.flip_idx)
    classes = np.array([int(a["category_id"]) - 1 for a in anns], dtype=np.int64)
    return {"boxes": boxes, "classes": classes, "keypoints": kps, "rotated": params.rot != 0}


def encode_sample_with_report(meta: Mapping[str, Any]
                              ) -> tuple[dict[str, np.ndarray], EncodeReport]:
    """:func:`encode_sample` plus the encoder's :class:`EncodeReport`."""
    config = config_from_meta(meta)
    inputs = sample_inputs(meta, config)
    encoder = _encoder(config)
    if isinstance(config, CtdetConfig):
        return encoder.encode_with_report(inputs["boxes"], inputs["classes"])
    return encoder.encode_with_report(inputs["boxes"], inputs["keypoints"], inputs["classes"],
                                      rotated=inputs["rotated"])


@functools.lru_cache(maxsize=64)
def _encoder(config: CtdetConfig | MultiPoseConfig) -> CtdetEncoder | MultiPoseEncoder:
    """One encoder per config (configs are frozen and hashable), not one per call."""
    return CtdetEncoder(config) if isinstance(config, CtdetConfig) else MultiPoseEncoder(config)


def encode_sample(meta: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Exactly upstream CenterNet's targets for the sample a fixture's ``__meta__`` describes."""
    return encode_sample_with_report(meta)[0]


def dataset_for_meta(meta: Mapping[str, Any]) -> CenterNetDataset:
    """A one-image :class:`CenterNetDataset` holding a fixture's scene, configured as upstream was.

    The image is item 0 (``width``/``height`` from the meta); ctdet classes map
    through the meta's ``category_ids``; ``keep_res`` (a ``[w, h]`` scale) uses
    upstream's ``pad`` of 31.
    """
    config = config_from_meta(meta)
    anns = [dict(a, id=k + 1, image_id=1) for k, a in enumerate(meta["annotations"])]
    image = {"id": 1, "file_name": "", "width": int(meta["image_width"]),
             "height": int(meta["image_height"])}
    if config.task == "ctdet":
        ids = [int(c) for c in meta["category_ids"]]
        cats = [{"id": c, "name": str(c)} for c in ids]
        coco = CocoDataset({"images": [image], "annotations": anns, "categories": cats},
                           category_ids=ids)
    else:
        cats = [{"id": 1, "name": "person",
                 "keypoints": [f"joint_{j}" for j in range(config.num_joints)]}]
        coco = CocoDataset({"images": [image], "annotations": anns, "categories": cats})
    keep_res = isinstance(meta["scale"], (list, tuple))
    ds = CenterNetDataset(coco, config, down_ratio=int(meta["input_w"]) // int(meta["output_w"]),
                          keep_res=keep_res, pad=31, train_filter=False)
    _, inp, out = ds.sizes(0)
    want = ((int(meta["input_w"]), int(meta["input_h"])),
            (int(meta["output_w"]), int(meta["output_h"])))
    if (inp, out) != want:
        raise ValueError(f"fixture sizes input {want[0]}, output {want[1]}: the dataset gives "
                         f"{inp}, {out}")
    return ds


def replay_sample(meta: Mapping[str, Any], image: np.ndarray | None = None) -> dict[str, Any]:
    """Upstream's training sample for a fixture's recorded draws, through ``CenterNetDataset.item``.

    ``meta``: a scene or whole-sample fixture's ``__meta__`` (``center``,
    ``scale``, ``rot``, ``flipped`` and, for whole samples, ``color``);
    ``image``: the BGR uint8 image upstream read (before any flip).  Returns
    the item: targets, ``input`` when ``image`` is given, and ``meta``.
    """
    return dataset_for_meta(meta).item(0, AugmentParams.from_dict(meta), image=image)
