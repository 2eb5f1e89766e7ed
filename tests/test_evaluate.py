"""COCO results and AP through pycocotools, and CenterNet's flip test against upstream's
arithmetic (its ``flip_tensor`` / ``flip_lr`` / ``flip_lr_off``, transcribed here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from centertargets import CocoDataset, CtdetConfig, MultiPoseConfig
from centertargets.decode import flip_test
from centertargets.evaluate import coco_results, evaluate
from centertargets.synthetic import person_scene, to_coco


def _flip_tensor(x):
    return torch.flip(x, [3])


def _flip_lr(x, flip_idx):
    tmp = x.numpy()[..., ::-1].copy()
    for a, b in flip_idx:
        tmp[:, a], tmp[:, b] = tmp[:, b].copy(), tmp[:, a].copy()
    return torch.from_numpy(tmp)


def _flip_lr_off(x, flip_idx):
    tmp = x.numpy()[..., ::-1].copy()
    shape = tmp.shape
    tmp = tmp.reshape(tmp.shape[0], 17, 2, tmp.shape[2], tmp.shape[3])
    tmp[:, :, 0] *= -1
    for a, b in flip_idx:
        tmp[:, a], tmp[:, b] = tmp[:, b].copy(), tmp[:, a].copy()
    return torch.from_numpy(tmp.reshape(shape))


def test_flip_test_is_upstreams_multi_pose_arithmetic():
    coco = CocoDataset(to_coco([person_scene(0, 2)]))
    cfg = MultiPoseConfig.from_coco(coco, output_size=(12, 10))
    g = torch.Generator().manual_seed(3)
    out = {n: torch.randn(h.shape(4), generator=g) for n, h in cfg.head_spec().items()}
    got = flip_test(out, cfg)
    hm, hm_hp, f = out["hm"].sigmoid(), out["hm_hp"].sigmoid(), cfg.flip_idx
    want = {"hm": (hm[:2] + _flip_tensor(hm[2:])) / 2,
            "wh": (out["wh"][:2] + _flip_tensor(out["wh"][2:])) / 2,
            "hps": (out["hps"][:2] + _flip_lr_off(out["hps"][2:], f)) / 2,
            "hm_hp": (hm_hp[:2] + _flip_lr(hm_hp[2:], f)) / 2,
            "reg": out["reg"][:2], "hp_offset": out["hp_offset"][:2]}
    assert set(got) == set(want)
    for k in want:
        assert torch.equal(got[k], want[k]), k


def test_flip_test_of_ctdet_and_its_refusals():
    cfg = CtdetConfig(output_size=(8, 8), num_classes=3)
    out = {n: torch.randn(h.shape(2)) for n, h in cfg.head_spec().items()}
    got = flip_test(out, cfg)
    torch.testing.assert_close(got["hm"], (out["hm"][:1].sigmoid()
                                           + _flip_tensor(out["hm"][1:].sigmoid())) / 2)
    with pytest.raises(ValueError, match="flip_idx=None"):
        pose = MultiPoseConfig(output_size=(8, 8))
        flip_test({n: torch.zeros(h.shape(2)) for n, h in pose.head_spec().items()}, pose)
    with pytest.raises(ValueError, match="expected 2B"):
        flip_test({n: torch.zeros(h.shape(3)) for n, h in cfg.head_spec().items()}, cfg)


def test_results_of_the_annotations_themselves_score_ap_1():
    data = to_coco([person_scene(s, 3, inside=True) for s in range(3)])
    dets = {}
    for a in data["annotations"]:
        x, y, w, h = a["bbox"]
        kp = np.array(a["keypoints"]).reshape(17, 3)[:, :2].reshape(-1)
        dets.setdefault(a["image_id"], []).append([x, y, x + w, y + h, 0.9, *kp, 0])
    res = [r for i, d in dets.items() for r in coco_results(np.array(d), i, [1])]
    assert res[0]["bbox"] == pytest.approx(data["annotations"][0]["bbox"])
    assert len(res[0]["keypoints"]) == 51 and res[0]["keypoints"][2::3] == [1.0] * 17
    ap = evaluate(data, res)
    assert ap["bbox"]["AP"] == pytest.approx(1.0) and ap["keypoints"]["AP"] == pytest.approx(1.0)
    # a box moved by half its width is no longer a match at IoU 0.5
    moved = [dict(r, bbox=[r["bbox"][0] + r["bbox"][2] / 2, *r["bbox"][1:]]) for r in res]
    assert evaluate(data, moved, iou_types=("bbox",))["bbox"]["AP50"] < 0.5
    with pytest.raises(ValueError, match="class 3"):
        coco_results(np.array([[0, 0, 1, 1, 0.5, 3]]), 1, [1])
