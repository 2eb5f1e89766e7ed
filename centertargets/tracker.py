"""CenterTrack's greedy tracker, and MOT-style counts for checking one.

Each detection carries its centre ``ct``, its predicted ``tracking`` offset
(back to where it was in the previous frame), its box, class and score.
:meth:`Tracker.step` moves each detection back by its offset and gives it
the track id of the nearest previous track of the same class, greedily in
the detections' order (highest score first, as decoded), when the squared
distance is within both boxes' areas; unmatched detections above
``new_thresh`` start new tracks; unmatched tracks are kept, unmoved, for
``max_age`` frames (upstream's default -1: dropped at once).  Plain numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

import numpy as np

__all__ = ["Detection", "Track", "Tracker", "MotCounts", "mot_counts"]


@dataclass(frozen=True)
class Detection:
    """One detection of a frame: centre ``ct`` (x, y), ``tracking`` offset (dx, dy) to its
    previous position, ``bbox`` (x1, y1, x2, y2), ``cls`` and ``score`` (any pixels: the
    tracker only compares them with each other)."""

    ct: tuple[float, float]
    bbox: tuple[float, float, float, float]
    cls: int = 0
    score: float = 1.0
    tracking: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class Track:
    """A detection with its ``track_id``; ``age`` frames since it was last seen (1: seen
    now), ``active`` the number of consecutive frames matched (0: kept while lost)."""

    track_id: int
    detection: Detection
    age: int = 1
    active: int = 1

    @property
    def ct(self) -> tuple[float, float]:
        return self.detection.ct

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        return self.detection.bbox


@dataclass
class Tracker:
    """CenterTrack's greedy tracker (``utils/tracker.py``, private detections).

    ``new_thresh``: the score a detection needs to start a track (0.3);
    ``max_age``: how many frames an unmatched track is kept (upstream: -1, none).
    """

    new_thresh: float = 0.3
    max_age: int = -1
    tracks: list[Track] = field(default_factory=list)
    next_id: int = 0

    def reset(self) -> None:
        self.tracks, self.next_id = [], 0

    def step(self, detections: Sequence[Detection]) -> list[Track]:
        """Match one frame's ``detections`` (in decode order) to the tracks; returns the new
        tracks: matched and new ones (in detection order), then the lost ones kept."""
        dets = list(detections)
        N, M = len(dets), len(self.tracks)
        pos = np.array([[d.ct[0] + d.tracking[0], d.ct[1] + d.tracking[1]] for d in dets],
                       np.float32).reshape(N, 2)
        prev = np.array([t.ct for t in self.tracks], np.float32).reshape(M, 2)
        area = lambda b: (b[2] - b[0]) * (b[3] - b[1])    # noqa: E731
        t_size = np.array([area(t.bbox) for t in self.tracks], np.float32)
        d_size = np.array([area(d.bbox) for d in dets], np.float32)
        t_cls = np.array([t.detection.cls for t in self.tracks], np.int64)
        d_cls = np.array([d.cls for d in dets], np.int64)
        dist = ((prev.reshape(1, M, 2) - pos.reshape(N, 1, 2)) ** 2).sum(axis=2)
        invalid = (dist > t_size.reshape(1, M)) | (dist > d_size.reshape(N, 1)) | \
            (d_cls.reshape(N, 1) != t_cls.reshape(1, M))
        dist = dist.astype(np.float64) + invalid * 1e18
        matched_track: dict[int, int] = {}
        for i in range(N):                      # greedy, in the detections' order
            if M == 0:
                break
            j = int(dist[i].argmin())
            if dist[i, j] < 1e16:
                dist[:, j] = 1e18
                matched_track[i] = j
        out: list[Track] = []
        for i, d in enumerate(dets):
            if i in matched_track:
                old = self.tracks[matched_track[i]]
                out.append(Track(old.track_id, d, 1, old.active + 1))
            elif d.score > self.new_thresh:
                self.next_id += 1
                out.append(Track(self.next_id, d))
        used = set(matched_track.values())
        for j, t in enumerate(self.tracks):
            if j not in used and t.age < self.max_age:
                out.append(replace(t, age=t.age + 1, active=0))
        self.tracks = out
        return out


@dataclass(frozen=True)
class MotCounts:
    """CLEAR-MOT counts over a sequence: ground-truth objects, matches, misses, false
    positives, identity switches, and ``mota = 1 - (misses + fp + switches) / gt``."""

    gt: int
    matches: int
    misses: int
    false_positives: int
    id_switches: int

    @property
    def mota(self) -> float:
        return 1.0 - (self.misses + self.false_positives + self.id_switches) / max(self.gt, 1)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    aa = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    ab = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(aa[:, None] + ab[None, :] - inter, 1e-12)


def mot_counts(frames: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
               iou_thresh: float = 0.5) -> MotCounts:
    """CLEAR-MOT counts of a tracker's output: ``frames`` yields per frame ``(gt_boxes (G, 4),
    gt_ids (G,), boxes (T, 4), track_ids (T,))``.  Each frame matches ground truth and
    tracks greedily by IoU (highest first, at least ``iou_thresh``), keeping last frame's
    pairing when it still qualifies; an identity switch is a ground-truth object matched
    to another track id than when it was last matched."""
    gt_n = matches = misses = fps = switches = 0
    last: dict[int, int] = {}
    for gt_boxes, gt_ids, boxes, ids in frames:
        gb = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
        tb = np.asarray(boxes, np.float64).reshape(-1, 4)
        gi, ti = [int(v) for v in np.asarray(gt_ids).reshape(-1)], \
            [int(v) for v in np.asarray(ids).reshape(-1)]
        iou = _iou(gb, tb) if len(gb) and len(tb) else np.zeros((len(gb), len(tb)))
        pairs: dict[int, int] = {}
        for g, gid in enumerate(gi):             # keep last frame's pairing if it holds
            if gid in last and last[gid] in ti:
                t = ti.index(last[gid])
                if iou[g, t] >= iou_thresh and t not in pairs.values():
                    pairs[g] = t
        order = np.dstack(np.unravel_index(np.argsort(-iou, axis=None), iou.shape))[0] \
            if iou.size else []
        for g, t in order:
            if iou[g, t] < iou_thresh:
                break
            if g not in pairs and t not in pairs.values():
                pairs[int(g)] = int(t)
        for g, t in pairs.items():
            gid = gi[g]
            if gid in last and last[gid] != ti[t]:
                switches += 1
            last[gid] = ti[t]
        gt_n += len(gi)
        matches += len(pairs)
        misses += len(gi) - len(pairs)
        fps += len(ti) - len(pairs)
    return MotCounts(gt_n, matches, misses, fps, switches)
