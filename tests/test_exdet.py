"""The exdet task unit: shapes, the decode round trip, NaN-free MSRA, the loss against float64,
errors that name the annotation, and a COCO file with extreme points through the dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from centertargets import AugmentConfig, AugmentParams, CenterNetDataset, CocoDataset, tasks
from centertargets.tasks.exdet import EXTREME_POINTS, ExdetConfig, ExdetEncoder

import float64_losses as R


def _points(rng, n, W, H):
    """(n, 4, 2) top, left, bottom, right points of boxes well inside a W x H map, centres
    at least 6 pixels apart (so that the decoder can tell them apart)."""
    out, centres = [], []
    while len(out) < n:
        w, h = rng.uniform(6, 14, 2)
        cx, cy = rng.uniform(w / 2 + 1, W - w / 2 - 2), rng.uniform(h / 2 + 1, H - h / 2 - 2)
        if any(abs(cx - a) < 6 and abs(cy - b) < 6 for a, b in centres):
            continue
        centres.append((cx, cy))
        x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        out.append([[rng.uniform(x1 + 1, x2 - 1), y1], [x1, rng.uniform(y1 + 1, y2 - 1)],
                    [rng.uniform(x1 + 1, x2 - 1), y2], [x2, rng.uniform(y1 + 1, y2 - 1)]])
    return np.array(out, np.float32)


@pytest.mark.parametrize("agnostic", [False, True])
def test_spec_shapes_and_what_the_encoder_writes(agnostic):
    cfg = ExdetConfig(output_size=(40, 32), num_classes=5, max_objs=6, agnostic_ex=agnostic)
    spec = cfg.spec()
    E = 1 if agnostic else 5
    assert [spec[f"hm_{p}"].shape for p in EXTREME_POINTS] == [(E, 32, 40)] * 4
    assert spec["hm_c"].shape == (5, 32, 40) and spec["ind_t"].dtype == np.int64
    assert set(cfg.heads()) == {"hm_t", "hm_l", "hm_b", "hm_r", "hm_c", "reg_t", "reg_l",
                                "reg_b", "reg_r"}
    pts = _points(np.random.default_rng(0), 3, 40, 32)
    t = ExdetEncoder(cfg).encode(pts, [0, 3, 4])
    assert {k: v.shape for k, v in t.items()} == {k: s.shape for k, s in spec.items()}
    for j, p in enumerate(EXTREME_POINTS):
        xs, ys = pts[:, j, 0].astype(int), pts[:, j, 1].astype(int)
        np.testing.assert_array_equal(t[f"ind_{p}"][:3], ys * 40 + xs)
        np.testing.assert_allclose(t[f"reg_{p}"][:3], pts[:, j] - np.floor(pts[:, j]), atol=1e-6)
        ch = np.zeros(3, int) if agnostic else np.array([0, 3, 4])
        assert (t[f"hm_{p}"][ch, ys, xs] == 1.0).all()
    assert t["reg_mask"].tolist() == [1, 1, 1, 0, 0, 0]
    assert ExdetConfig(reg_offset=False).spec().keys() == {"hm_t", "hm_l", "hm_b", "hm_r", "hm_c"}


@pytest.mark.parametrize("agnostic", [False, True])
def test_decoding_the_targets_gives_back_the_points_and_classes(agnostic, rng):
    from centertargets.losses.exdet import ExdetDecoder

    W = H = 48
    cfg = ExdetConfig(output_size=(W, H), num_classes=3, max_objs=8, agnostic_ex=agnostic)
    pts = _points(rng, 4, W, H)
    classes = np.array([0, 2, 1, 2])
    t = ExdetEncoder(cfg).encode(pts, classes)
    out = {f"hm_{p}": torch.from_numpy(t[f"hm_{p}"])[None] for p in (*EXTREME_POINTS, "c")}
    for p in EXTREME_POINTS:                               # oracle offsets at each point
        reg = np.zeros((2, H * W), np.float32)
        keep = t["reg_mask"].astype(bool)
        reg[:, t[f"ind_{p}"][keep]] = t[f"reg_{p}"][keep].T
        out[f"reg_{p}"] = torch.from_numpy(reg.reshape(2, H, W))[None]
    dets = ExdetDecoder(cfg, K=8, apply_sigmoid=False)(out)[0].numpy()
    top = dets[dets[:, 4] > 0.99]
    assert len(top) == 4
    order = np.argsort(top[:, 5])                          # by the top point's x
    got = top[order]
    want = np.argsort(pts[:, 0, 0])
    np.testing.assert_allclose(got[:, 5:13].reshape(4, 4, 2), pts[want], atol=1e-5)
    np.testing.assert_array_equal(got[:, 13], classes[want])
    np.testing.assert_allclose(got[:, :4], np.stack([pts[want, 1, 0], pts[want, 0, 1],
                                                     pts[want, 3, 0], pts[want, 2, 1]], 1),
                               atol=1e-5)


def test_msra_never_writes_nan_by_default_and_reproduces_upstream_when_asked():
    pts = np.array([[[5.2, 4.0], [5.0, 4.3], [5.3, 4.6], [5.6, 4.2]]], np.float32)  # radius 0
    peak = ExdetEncoder(ExdetConfig(output_size=(16, 16), num_classes=2, heatmap="msra")
                        ).encode(pts, [1])
    assert all(np.isfinite(v).all() for v in peak.values())
    assert peak["hm_t"][1, 4, 5] == 1.0 and peak["hm_t"].sum() == 1.0
    nan = ExdetEncoder(ExdetConfig(output_size=(16, 16), num_classes=2, heatmap="msra",
                                   zero_sigma="nan")).encode(pts, [1])
    assert np.isnan(nan["hm_t"][1, 4, 5]) and np.isnan(nan["hm_t"]).sum() == 1
    big = np.array([[[8.0, 2.0], [2.0, 8.0], [8.0, 14.0], [14.0, 8.0]]], np.float32)
    g = ExdetEncoder(ExdetConfig(output_size=(16, 16), num_classes=2, heatmap="msra")
                     ).encode(big, [0])["hm_c"][0]
    sigma = 3                                              # the radius of the 12 x 12 box
    want = np.exp(-((np.arange(16) - 8.0) ** 2) / (2 * sigma ** 2))      # float64 Gaussian
    np.testing.assert_allclose(g[8, :], np.where(np.abs(np.arange(16) - 8) <= 3 * sigma, want,
                                                 0), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("msra", [False, True])
def test_loss_matches_a_float64_evaluation(msra, threads, rng):
    from centertargets.losses.exdet import ExdetLoss

    cfg = ExdetConfig(output_size=(32, 32), num_classes=4, max_objs=8,
                      heatmap="msra" if msra else "umich")
    enc = ExdetEncoder(cfg)
    batch = [enc.encode(_points(rng, 3, 32, 32), rng.integers(0, 4, 3)) for _ in range(2)]
    t = {k: np.stack([b[k] for b in batch]) for k in batch[0]}
    out = {n: rng.normal(-2, 1.5, h.shape(2)).astype(np.float32)
           for n, h in cfg.head_spec().items()}
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _, stats = ExdetLoss(cfg)({k: torch.from_numpy(v) for k, v in out.items()},
                                  {k: torch.from_numpy(v) for k, v in t.items()})
    finally:
        torch.set_num_threads(before)
    hm = 0.0
    for p in (*EXTREME_POINTS, "c"):
        x, g = out[f"hm_{p}"].astype(np.float64), t[f"hm_{p}"].astype(np.float64)
        if msra:
            s = np.clip(1 / (1 + np.exp(-x)), 1e-4, 1 - 1e-4)
            hm += R.mse(s, g)
        else:
            hm += R.focal(out[f"hm_{p}"], t[f"hm_{p}"])
    off = sum(R.l1(R.gather(out[f"reg_{p}"], t[f"ind_{p}"]), t[f"reg_{p}"], t["reg_mask"])
              for p in EXTREME_POINTS)
    np.testing.assert_allclose(float(stats["hm_loss"]), hm, rtol=1e-6)
    np.testing.assert_allclose(float(stats["off_loss"]), off, rtol=1e-6)
    np.testing.assert_allclose(float(stats["loss"]), hm + off, rtol=1e-6)


def _coco(points, category_id=3):
    anns = [{"id": 10 + k, "image_id": 1, "category_id": category_id, "iscrowd": 0,
             "bbox": [min(p[1][0], p[0][0]), p[0][1], 10.0, 10.0], "extreme_points": p}
            for k, p in enumerate(points)]
    return {"images": [{"id": 1, "file_name": "a.jpg", "width": 200, "height": 160}],
            "annotations": anns,
            "categories": [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)]}


_P = [[60.0, 20.0], [40.0, 50.0], [70.0, 90.0], [100.0, 60.0]]


def test_a_coco_file_with_extreme_points_is_an_exdet_file_and_flips_swap_left_and_right():
    coco = CocoDataset(json.loads(json.dumps(_coco([_P]))))
    assert tasks.for_coco(coco).name == "exdet"
    cfg = tasks.get("exdet").config_for_coco(coco, (64, 64))
    ds = CenterNetDataset(coco, cfg)
    plain = ds.item(0, AugmentParams.centered(200, 160))
    flipped = ds.item(0, AugmentParams((100.0, 80.0), 200.0, flipped=True))
    def x(item, p):
        return item[f"ind_{p}"][0] % 64 + item[f"reg_{p}"][0, 0]

    # the flipped left point is the mirror image (x -> 199 - x in the image, 0.32 x in the
    # 64-pixel map) of the plain right point, and vice versa; top and bottom stay
    mirror = 199 * 0.32
    assert abs(x(flipped, "l") + x(plain, "r") - mirror) < 1e-4
    assert abs(x(flipped, "r") + x(plain, "l") - mirror) < 1e-4
    assert abs(x(flipped, "t") + x(plain, "t") - mirror) < 1e-4
    assert flipped["ind_b"][0] // 64 == plain["ind_b"][0] // 64
    for i in range(3):                                     # training draws work end to end
        item = CenterNetDataset(coco, cfg, augment=AugmentConfig(train=True), seed=i)[0]
        assert item["hm_c"].max() <= 1.0


@pytest.mark.parametrize("mutate, match", [
    (lambda a: a.pop("extreme_points"), "annotation id=10 extreme_points=None: expected 4 "
                                        "points"),
    (lambda a: a.update(extreme_points=_P[:3]), "annotation id=10 extreme_points=.*: expected "
                                                "4 points"),
    (lambda a: a.update(extreme_points=[[1, 2], [3, "x"], [5, 6], [7, 8]]),
     "annotation id=10 extreme_points="),
    (lambda a: a.update(extreme_points=[[1, 2], [3, float("nan")], [5, 6], [7, 8]]),
     "annotation id=10"),
])
def test_bad_extreme_points_are_named_by_annotation(mutate, match):
    data = _coco([_P, _P])
    mutate(data["annotations"][0])
    coco = CocoDataset(data)
    with pytest.raises(ValueError, match=match):
        CenterNetDataset(coco, ExdetConfig(output_size=(32, 32), num_classes=3))


def test_encoder_inputs_are_checked():
    enc = ExdetEncoder(ExdetConfig(output_size=(16, 16), num_classes=2))
    with pytest.raises(ValueError, match=r"points has shape \(2, 3, 2\): expected \(N, 4, 2\)"):
        enc.encode(np.zeros((2, 3, 2)), [0, 0])
    with pytest.raises(ValueError, match=r"classes\[0\]=2: expected a class index"):
        enc.encode(np.ones((1, 4, 2)), [2])
    with pytest.raises(ValueError, match="expected finite x, y"):
        enc.encode(np.full((1, 4, 2), np.inf), [0])
    assert enc.encode(np.zeros((0, 4, 2)), [])["hm_c"].max() == 0


def test_audit_and_render_take_an_extreme_point_file_with_no_flags(tmp_path, capsys):
    import cv2

    from centertargets.cli import main

    path = tmp_path / "ex.json"
    path.write_text(json.dumps(_coco([_P, [[150, 40], [120, 80], [140, 150], [180, 100]]])))
    assert main(["audit", str(path)]) == 0
    out = capsys.readouterr().out
    assert "exdet audit of 1 images" in out and "encoded                              2" in out
    assert main(["render", str(path), "--out", str(tmp_path / "ex.png")]) == 0
    picture = cv2.imread(str(tmp_path / "ex.png"))
    assert picture is not None and picture.shape[1] > 4 * picture.shape[0] // 2  # 5 panels


def test_the_fast_focal_loss_is_refused_for_exdet():
    from centertargets.losses import LossOptions
    from centertargets.losses.exdet import ExdetLoss

    with pytest.raises(ValueError, match="focal='fast' with ExdetConfig"):
        ExdetLoss(ExdetConfig(num_classes=2), LossOptions(focal="fast"))
