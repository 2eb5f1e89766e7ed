"""Bit-exact replay of upstream CenterTrack's tracking samples (xingyizhou/CenterTrack).

The reference fixtures' ``__meta__`` (``../shared/reference/tasks/TRACKING.md``)
holds the video (frames and annotations in file order), upstream's options and
every random draw.  :func:`dataset_for_meta` builds the video file as a
:class:`~centertargets.tracking.TrackingDataset`, :func:`params_from_meta`
turns the recorded draws into :class:`~centertargets.tasks.tracking.TrackParams`,
and the dataset's own ``item`` does the rest: what is tested is the package's
pipeline, not a transcription.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..augment import AugmentConfig, AugmentParams, ColorParams
from ..coco import CocoDataset
from ..tasks import unit_of
from ..tasks.tracking import NO_DISTURB, NUSCENES_ATT_RANGE, TrackingConfig, TrackParams
from ..tracking import TrackingDataset

#: The contract's tolerance of ``image``/``pre_img`` (absolute); targets are exact.
INPUT_ATOL = 1e-5


def config_from_meta(meta: Mapping[str, Any]) -> TrackingConfig:
    """The :class:`TrackingConfig` of upstream's options (``opt``) and dataset constants."""
    opt, ds = meta["opt"], meta["dataset"]
    heads = opt["heads"]
    rng = {int(k): tuple(v) for k, v in ds.get("nuscenes_att_range", {}).items()}
    if "nuscenes_att" in heads and rng != NUSCENES_ATT_RANGE:
        raise ValueError(f"nuscenes_att_range {rng}: expected nuScenes' {NUSCENES_ATT_RANGE}")
    pose = "hps" in heads
    return TrackingConfig(
        output_size=(int(opt["output_w"]), int(opt["output_h"])),
        num_classes=int(opt["num_classes"]), max_objs=int(ds["max_objs"]),
        down_ratio=int(opt["down_ratio"]),
        cat_ids=tuple((int(a), int(b)) for a, b in ds["cat_ids"]),
        wh="wh" in heads, ltrb="ltrb" in heads, ltrb_amodal="ltrb_amodal" in heads,
        num_joints=int(ds["num_joints"]) if pose else 0,
        flip_idx=tuple(tuple(p) for p in ds["flip_idx"]) if pose else (),
        ddd="dep" in heads, velocity="velocity" in heads,
        nuscenes_att="nuscenes_att" in heads, pre_hm=bool(opt["pre_hm"]),
        hm_disturb=float(opt["hm_disturb"]), lost_disturb=float(opt["lost_disturb"]),
        fp_disturb=float(opt["fp_disturb"]), max_frame_dist=int(opt["max_frame_dist"]),
        same_aug_pre=bool(opt["same_aug_pre"]),
        max_pre_objs=max(256, max(len(f["annotations"]) for f in meta["video"]["frames"])))


def dataset_for_meta(meta: Mapping[str, Any], heatmaps: str = "dense") -> TrackingDataset:
    """The fixture's video as a one-video COCO file in a :class:`TrackingDataset` (with the
    config's ``heatmaps`` set to ``heatmaps``)."""
    config = config_from_meta(meta).replace(heatmaps=heatmaps)
    frames = meta["video"]["frames"]
    images = [{k: v for k, v in f.items() if k != "annotations"} for f in frames]
    anns = [dict(a) for f in frames for a in f["annotations"]]
    cats, ids = unit_of(config).fixture_classes(meta)
    coco = CocoDataset({"images": images, "annotations": anns, "categories": cats,
                        "videos": [{"id": meta["video"]["video_id"]}]}, category_ids=ids)
    ds = meta["dataset"]
    train = meta["split"] == "train"
    return TrackingDataset(coco, config, augment=AugmentConfig(train=train, color=False),
                           train_filter=False,
                           mean=np.array(ds["mean_bgr"], np.float32),
                           std=np.array(ds["std_bgr"], np.float32),
                           eig_val=np.array(ds["eig_val"], np.float32),
                           eig_vec=np.array(ds["eig_vec"], np.float32))


def _color(groups: list[Mapping[str, Any]], which: str) -> ColorParams | None:
    for g in groups:
        if g["image"] == which:
            f = g["factors"]
            return ColorParams(tuple(g["order"]), f["brightness"], f["contrast"],
                               f["saturation"], tuple(g["lighting"]))
    return None


def _params(t: Mapping[str, Any], flipped: bool, color: ColorParams | None,
            rot: float) -> AugmentParams:
    scale = t["scale"]
    return AugmentParams(tuple(t["center"]),
                         tuple(scale) if isinstance(scale, list) else float(scale),
                         float(rot), flipped, color)


def params_from_meta(meta: Mapping[str, Any]) -> TrackParams:
    """Upstream's recorded draws as :class:`TrackParams`."""
    d = meta["draws"]
    flipped = bool(d["flipped"])
    colors = d.get("color") or []
    tr = {t["role"]: t for t in d["transforms"]}
    cur = _params(tr["input"], flipped, _color(colors, "current"), tr["input"]["rot"])
    pre = None
    if not d["pre_aug"]["same_aug_pre_used"]:
        pre = _params(tr["pre_input"], flipped, _color(colors, "pre"), tr["input"]["rot"])
    objs = d["pre_objects"]
    disturb = np.empty((len(objs), 6))
    disturb[:] = NO_DISTURB
    for k, o in enumerate(objs):
        if o["status"] == "used":
            fp = o.get("fp_randn") or [0.0, 0.0]
            disturb[k] = (*o["hm_disturb_randn"], o["lost_draw"], o["fp_draw"], *fp)
    return TrackParams(cur, int(d["pre_frame"]["image_id"]), float(d["current"]["aug_s"]),
                       pre, _color(colors, "pre") if pre is None else None, disturb)


def replay(meta: Mapping[str, Any], image: np.ndarray | None = None,
           pre_image: np.ndarray | None = None, heatmaps: str = "dense") -> dict[str, Any]:
    """Upstream's sample for a fixture's draws, through ``TrackingDataset.item``."""
    ds = dataset_for_meta(meta, heatmaps)
    index = ds.coco.image_ids.index(int(meta["image_id"]))
    return ds.item(index, params_from_meta(meta), image=image, pre_image=pre_image)


def fixture_steps(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> list[tuple]:
    """The comparisons of a ``track_scene``, ``track_sample`` or ``track_loss`` fixture (the
    unit's ``fixture_check``): targets, ``pre_hm`` and the previous centres exactly,
    ``image``/``pre_img`` within 1e-5, loss stats within 1e-5 relative."""
    kind = meta.get("kind")
    if kind == "track_loss":
        return [("loss", meta["loss_stats"], loss_stats(meta, arrays))]
    if kind not in ("track_scene", "track_sample"):
        raise ValueError(f"unknown tracking fixture kind {kind!r}")
    expected = dict(arrays)
    images = {k: expected.pop(k) for k in ("src_image", "src_pre_image") if k in expected}
    item = replay(meta, images.get("src_image"), images.get("src_pre_image"))
    inputs = {k: expected.pop(k) for k in ("image", "pre_img") if k in expected}
    got = {k: v for k, v in item.items() if k not in ("meta", "input", "pre_img")}
    want_cts = np.array(meta["draws"]["pre_cts"], np.float32).reshape(-1, 2)
    steps: list[tuple] = [
        ("arrays", expected, got, 0.0, 0.0),
        ("arrays", {"pre_cts": want_cts}, {"pre_cts": item["meta"]["pre_cts"][:len(want_cts)]},
         0.0, 0.0)]
    if inputs:
        steps.append(("arrays", inputs, {"image": item.get("input"),
                                         "pre_img": item.get("pre_img")}, INPUT_ATOL, 0.0))
    return steps


def loss_stats(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> dict[str, float]:
    """:class:`losses.tracking.GenericLoss` on a loss fixture's batch and head outputs."""
    import torch

    from centertargets.losses.tracking import GenericLoss

    targets = {k[len("target_"):]: torch.from_numpy(v) for k, v in arrays.items()
               if k.startswith("target_")}
    outputs = {k[len("output_"):]: torch.from_numpy(v) for k, v in arrays.items()
               if k.startswith("output_")}
    opt = meta["opt"]
    heads = meta["heads"]
    B, C, H, W = arrays["target_hm"].shape
    J = arrays["target_hm_hp"].shape[1] if "target_hm_hp" in arrays else 0
    config = TrackingConfig(
        output_size=(W, H), num_classes=C, max_objs=arrays["target_ind"].shape[1],
        down_ratio=int(opt["down_ratio"]), wh="wh" in heads, ltrb="ltrb" in heads,
        ltrb_amodal="ltrb_amodal" in heads, num_joints=J, ddd="dep" in heads,
        velocity="velocity" in heads, nuscenes_att="nuscenes_att" in heads)
    with torch.no_grad():
        _, stats = GenericLoss(config, weights=meta["weights"])(outputs, targets)
    return {k: float(v) for k, v in stats.items()}
