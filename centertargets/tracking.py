"""Videos in COCO files, and CenterTrack's two-frame training sample as a torch dataset.

A CenterTrack video file is a COCO file with a ``videos`` list; each image
carries ``video_id``, ``frame_id`` (and optionally ``sensor_id``, a camera),
each annotation a ``track_id``.  :class:`VideoIndex` reads and checks them; a
file without ``videos`` becomes one-frame videos exactly as upstream's
``fake_video_data`` makes them (video = image, frame 1, track ids = position
+ 1), so still images train a tracker too: the previous frame is the same
image under its own disturbed transform.

:class:`TrackingDataset` is :class:`~centertargets.CenterNetDataset` for two
frames: ``ds[i]`` draws the sample's :class:`~centertargets.tasks.tracking.TrackParams`
(the previous frame, both transforms, every disturbance) from
``default_rng((seed, epoch, i))``, and ``ds.item(i, params)`` replays any
draws exactly, upstream's recorded ones included.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

import numpy as np

from . import worker
from .augment import (AugmentParams, ColorParams, color_meta, network_input,
                      warp_image_chw)
from .coco import CocoDataset, ImageAnnotations
from .dataset import CenterNetDataset
from .encoders import EncodeReport
from .tasks.tracking import (TrackingConfig, TrackParams, sample_current, sample_disturb,
                             sample_pre_transform)

__all__ = ["VideoIndex", "TrackingDataset"]


def _int_or_none(v: Any, what: str, image_id: int) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not float(v).is_integer():
        raise ValueError(f"image id={image_id} {what}={v!r}: expected an integer")
    return int(v)


def _padded(values: np.ndarray, rows: int, fill: Any, dtype: Any) -> np.ndarray:
    """``values`` (n, ...) in the first n of ``rows`` rows, ``fill`` below (a fixed-size meta
    array that ``default_collate`` stacks)."""
    out = np.empty((rows,) + values.shape[1:], dtype)
    n = len(values)
    out[:n] = values
    out[n:] = fill
    return out


class VideoIndex:
    """Each image's video, frame and sensor, and each video's frames in file order.

    ``fake``: the file had no ``videos`` (upstream's ``fake_video_data``: video =
    image id, frame 1, track ids = annotation position + 1).  Errors name the image:
    an image without ``video_id`` or ``frame_id`` in a video file, two images with
    the same (video, frame, sensor), a track id twice in one frame.
    """

    def __init__(self, coco: CocoDataset) -> None:
        ids = coco.all_image_ids
        self.fake = coco.videos is None
        self.video: dict[int, int] = {}
        self.frame: dict[int, int] = {}
        self.sensor: dict[int, int | None] = {}
        if self.fake:
            for iid in ids:
                self.video[iid], self.frame[iid], self.sensor[iid] = iid, 1, None
        else:
            vids = coco.image_field_values("video_id")
            fids = coco.image_field_values("frame_id")
            sids = coco.image_field_values("sensor_id")
            seen: dict[tuple[int, int, int | None], int] = {}
            for iid, v, f, s in zip(ids, vids, fids, sids):
                if v is None or f is None:
                    raise ValueError(f"image id={iid} has video_id={v!r}, frame_id={f!r}: "
                                     "expected both in a file with 'videos' (a frame without "
                                     "a video)")
                key = (_int_or_none(v, "video_id", iid), _int_or_none(f, "frame_id", iid),
                       _int_or_none(s, "sensor_id", iid))
                if key in seen:
                    raise ValueError(f"image id={seen[key]} and image id={iid} are both frame "
                                     f"{key[1]} of video {key[0]}"
                                     + (f" (sensor {key[2]})" if key[2] is not None else "")
                                     + ": expected one image per (video, frame)")
                seen[key] = iid
                self.video[iid], self.frame[iid], self.sensor[iid] = key  # type: ignore
        self.frames: dict[int, list[int]] = defaultdict(list)
        for iid in ids:
            self.frames[self.video[iid]].append(iid)
        if not self.fake and coco.has_field("track_id"):
            tracks = coco.dense_field("track_id", (), "an integer track id", optional=True)
            for iid in ids:
                ann = coco.image(iid)
                t = ann.fields["track_id"]
                t = t[~np.isnan(t)]
                if len(np.unique(t)) != len(t):
                    vals, counts = np.unique(t, return_counts=True)
                    raise ValueError(f"image id={iid}: track_id={int(vals[counts > 1][0])} is "
                                     "used by two annotations of one frame: expected one "
                                     "object per track id and frame")
            del tracks

    def candidates(self, image_id: int, train: bool, max_frame_dist: int) -> list[int]:
        """Upstream's previous-frame candidates, in file order: training, the frames of the
        video (same sensor) with ``|frame distance| < max_frame_dist``, the current one
        included; otherwise the frame before, else the current frame."""
        f0, s0 = self.frame[image_id], self.sensor[image_id]
        s0 = 1 if s0 is None else s0

        def same_sensor(i: int) -> bool:
            return self.sensor[i] is None or self.sensor[i] == s0

        video = self.frames[self.video[image_id]]
        if train:
            return [i for i in video if abs(self.frame[i] - f0) < max_frame_dist
                    and same_sensor(i)]
        prev = [i for i in video if self.frame[i] - f0 == -1 and same_sensor(i)]
        return prev or [i for i in video if self.frame[i] == f0 and same_sensor(i)]


class TrackingDataset(CenterNetDataset):
    """CenterTrack's training samples (two frames) from a COCO video file.

    Parameters: those of :class:`~centertargets.CenterNetDataset` (``config`` a
    :class:`~centertargets.tasks.tracking.TrackingConfig`; ``down_ratio`` is the
    config's; no ``keep_res``).  ``augment``: ``AugmentConfig(train=True, ...)``
    for upstream's training draws (random crop, ``flip``, ``rot_prob``/``rotate``,
    colour); the previous frame's own shift/scale is ``config.pre_shift`` /
    ``config.pre_scale`` (CenterTrack's ``--shift``/``--scale``).

    Items hold the targets (:meth:`TrackingConfig.spec`), ``input`` and
    ``pre_img`` (float32 (3, ih, iw), or uint8 with ``input_dtype="uint8"``) when
    images are read, and ``meta``: ``index``, ``image_id``, ``pre_image_id``,
    ``frame_dist``, ``center``/``scale``/``rot``/``flipped``/``aug_s`` (current),
    ``pre_center``/``pre_scale``/``same_aug`` (previous), ``image_size``,
    ``input_size``, ``output_size``, ``color``/``pre_color``, and per previous
    annotation (padded to ``config.max_pre_objs``): ``pre_disturb`` (P, 6) draws,
    ``pre_status`` (-1 padding; ``PRE_USED``, ``PRE_LOST``, ...), ``pre_fp``; the
    previous centres ``pre_cts`` (output pixels, NaN padding) and their
    ``pre_track_ids``.  Validation (``augment.train=False``): the frame before
    (else the same frame) under the current transform; upstream raises there
    unless ``same_aug_pre`` applies.
    """

    two_frames = True

    def __init__(self, coco: CocoDataset, config: TrackingConfig, **kwargs: Any) -> None:
        if not isinstance(config, TrackingConfig):
            raise TypeError(f"config is {type(config).__name__}: expected a TrackingConfig")
        if kwargs.pop("keep_res", False):
            raise ValueError("keep_res=True: expected False (tracking samples have the "
                             "config's input size)")
        kwargs.pop("down_ratio", None)
        super().__init__(coco, config, down_ratio=config.down_ratio, **kwargs)
        self.videos = VideoIndex(coco)

    # -- frames ------------------------------------------------------------------------------
    def frame(self, image_id: int) -> ImageAnnotations:
        """The annotations of a frame (in a file without videos, track ids = position + 1)."""
        ann = self.coco.image(image_id)
        if self.videos.fake:        # upstream numbers them across the file; one image is
            ids = np.arange(1, len(ann.boxes_xywh) + 1, dtype=np.float64)    # its own video
            ann = dataclasses.replace(ann, fields={**ann.fields, "track_id": ids})
        return ann

    def annotations(self, index: int) -> ImageAnnotations:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index={index}: expected 0 <= index < {len(self)}")
        return self.frame(self.coco.image_ids[self.indices[index]])

    def params(self, index: int) -> TrackParams:  # type: ignore[override]
        """The draws of item ``index`` at the current epoch."""
        cur = self.annotations(index)
        (iw, ih), _, _ = self.sizes(index)
        rng = np.random.default_rng((self.seed, self.epoch, int(index) % len(self)))
        cfg: TrackingConfig = self.config
        current, aug_s = sample_current(self.augment, rng, iw, ih)
        cands = self.videos.candidates(cur.image_id, self.augment.train, cfg.max_frame_dist)
        pre_id = cands[int(rng.integers(len(cands)))]
        dist = abs(self.videos.frame[pre_id] - self.videos.frame[cur.image_id])
        pre = pre_color = None
        if cfg.same_aug_pre and dist != 0 or not self.augment.train:
            pre_color = self._pre_color(rng)
        else:
            pre = sample_pre_transform(self.augment, rng, current, cfg.pre_shift,
                                       cfg.pre_scale)
        n_pre = self.coco.num_annotations(pre_id)
        return TrackParams(current, pre_id, aug_s, pre, pre_color, sample_disturb(rng, n_pre))

    def _pre_color(self, rng: np.random.Generator) -> ColorParams | None:
        a = self.augment
        return ColorParams.draw(rng, a.color_var, a.lighting_std) if a.color_on else None

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.item(index, self.params(index))

    def item(self, index: int, params: TrackParams, image: np.ndarray | None = None,  # type: ignore[override]
             pre_image: np.ndarray | None = None) -> dict[str, Any]:
        """Item ``index`` for explicit draws ``params`` (replays any draws exactly).

        ``image`` / ``pre_image``: the BGR uint8 frames to use instead of reading them.
        """
        if not isinstance(params, TrackParams):
            raise TypeError(f"params is {type(params).__name__}: expected TrackParams")
        worker.setup_process()
        cfg: TrackingConfig = self.config
        cur = self.annotations(index)
        pre = self.frame(params.pre_image_id)
        if len(pre.boxes_xywh) > cfg.max_pre_objs:
            raise ValueError(f"image id={pre.image_id}: {len(pre.boxes_xywh)} annotations in "
                             f"the previous frame: expected at most config.max_pre_objs="
                             f"{cfg.max_pre_objs} (raise it)")
        if self.image_root is not None:
            if image is None:
                image = self.read_image(cur)
            if pre_image is None:
                pre_image = self.read_image(pre)
        (iw, ih), inp_size, out_size = self._sizes_of(cur, image)
        self.check_size(cur, inp_size, out_size)
        enc = self.encoder(out_size)
        a = self.unit.prepared(cur, params, out_size, cfg, previous=pre, width=iw)
        try:
            item, stats, status = enc.encode_prepared(a)
        except ValueError as exc:
            raise ValueError(f"image id={cur.image_id} ({cur.file_name!r}): {exc}") from None
        last = enc.last_pre
        if image is not None:
            pp = params.pre_params
            for key, img, p in (("input", image, params.current), ("pre_img", pre_image, pp)):
                if img is None:
                    continue
                if self.input_dtype == "uint8":
                    item[key] = warp_image_chw(img, p, inp_size)
                else:
                    item[key] = network_input(img, p, inp_size, self.mean, self.std,
                                              self.eig_val, self.eig_vec)
        cap = cfg.max_pre_objs
        disturb = _padded(a.extras["pre_disturb"], cap, np.nan, np.float64)
        pre_status = _padded(last["pre_status"], cap, -1, np.int8)
        pre_fp = _padded(last["pre_fp"], cap, False, np.bool_)
        pre_cts = _padded(last["pre_cts"], cap, np.nan, np.float32)
        pre_tids = _padded(last["pre_track_ids"], cap, np.nan, np.float64)
        cp, pp = params.current, params.pre_params

        def scale2(p: AugmentParams) -> np.ndarray:
            return np.array(p.scale if isinstance(p.scale, tuple) else (p.scale, p.scale))

        item["meta"] = {
            "index": np.int64(index), "image_id": np.int64(cur.image_id),
            "pre_image_id": np.int64(pre.image_id),
            "frame_dist": np.int64(abs(self.videos.frame[pre.image_id]
                                       - self.videos.frame[cur.image_id])),
            "center": np.array(cp.center, np.float32), "scale": scale2(cp),
            "rot": np.float64(cp.rot), "flipped": np.bool_(cp.flipped),
            "aug_s": np.float64(params.aug_s),
            "pre_center": np.array(pp.center, np.float32), "pre_scale": scale2(pp),
            "same_aug": np.bool_(params.pre is None),
            "image_size": np.array((iw, ih), np.int64),
            "input_size": np.array(inp_size, np.int64),
            "output_size": np.array(out_size, np.int64),
            "color": color_meta(cp.color), "pre_color": color_meta(pp.color),
            "pre_disturb": disturb, "pre_status": pre_status, "pre_fp": pre_fp,
            "pre_cts": pre_cts, "pre_track_ids": pre_tids,
        }
        if self.with_report:
            item["report"] = EncodeReport.from_kernel(stats, status).as_dict()
        return item

    def video_audit(self) -> dict[str, int | float]:
        """What a video file gives CenterTrack's sampling: ``videos``, ``frames``, the mean
        number of previous-frame candidates in training (``max_frame_dist``, the frame itself
        included), ``frames_without_previous`` (validation falls back to the frame itself),
        ``objects`` and ``objects_unmatched_in_previous`` (their track id is not in the frame
        before: their ``tracking_mask`` is 0 in validation)."""
        ds = self
        idx, coco = ds.videos, ds.coco
        cand = []
        no_prev = objects = unmatched = 0
        for iid in coco.image_ids:
            cand.append(len(idx.candidates(iid, True, ds.config.max_frame_dist)))
            prev = idx.candidates(iid, False, 1)[0]
            cur = ds.frame(iid).fields["track_id"]
            objects += len(cur)
            if prev == iid:
                no_prev += 1
                unmatched += len(cur)
                continue
            before = set(ds.frame(prev).fields["track_id"].tolist())
            unmatched += sum(1 for t in cur.tolist() if t not in before)
        return {"videos": len(idx.frames), "frames": len(coco.image_ids),
                "mean_previous_candidates": round(float(np.mean(cand)) if cand else 0.0, 2),
                "frames_without_previous": no_prev, "objects": objects,
                "objects_unmatched_in_previous": unmatched}

