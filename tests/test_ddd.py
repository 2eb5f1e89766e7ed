"""The ddd task unit: targets and ignore regions, the loss against float64, decoding perfect
outputs back to 3D boxes, the dataset's own draws, and errors that name the annotation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from centertargets import AugmentConfig, AugmentParams, CenterNetDataset, CocoDataset, tasks
from centertargets.synthetic import ddd_coco
from centertargets.tasks.ddd import DddConfig, DddEncoder, alpha_to_8

import float64_losses as R

_BOXES = np.array([[10, 10, 40, 30], [60, 10, 90, 40], [100, 5, 130, 40]], np.float32)
_3D = dict(alpha=np.array([0.2, -2.9, 1.6]), depth=np.array([12.0, 30.0, 7.5]),
           dim=np.array([[1.5, 1.6, 3.9], [1.7, 1.8, 4.2], [1.4, 0.6, 0.8]]))


def test_targets_bins_and_masks():
    cfg = DddConfig(output_size=(160, 48), category_map=None)
    t = DddEncoder(cfg).encode(_BOXES, [1, 0, 2], **_3D)
    assert set(t) == set(cfg.spec())
    assert t["rot_mask"][:3].tolist() == [1, 1, 1] and t["reg_mask"][:3].tolist() == [1, 1, 1]
    np.testing.assert_allclose(t["dep"][:3, 0], _3D["depth"], rtol=1e-7)
    np.testing.assert_allclose(t["dim"][:3], _3D["dim"], rtol=1e-7)
    # alpha 0.2 lies in bin 1 only (alpha < pi/6 ... and > -pi/6: both); -2.9 in both; 1.6 in 2
    for k, a in enumerate(_3D["alpha"]):
        eight = alpha_to_8(a)
        assert t["rotbin"][k].tolist() == [eight[1], eight[5]]
        for b, centre in ((0, -0.5 * np.pi), (1, 0.5 * np.pi)):
            if t["rotbin"][k, b]:
                np.testing.assert_allclose(t["rotres"][k, b], a - centre, rtol=1e-6)
    cx = ((_BOXES[:, 0] + _BOXES[:, 2]) / 2).astype(int)
    cy = ((_BOXES[:, 1] + _BOXES[:, 3]) / 2).astype(int)
    np.testing.assert_array_equal(t["ind"][:3], cy * 160 + cx)
    aug = DddEncoder(cfg).encode(_BOXES, [1, 0, 2], augmented=True, **_3D)
    assert aug["reg_mask"].sum() == 0 and aug["rot_mask"].sum() == 3   # upstream's aug_ddd


@pytest.mark.parametrize("rect", [False, True])
def test_ignore_regions_are_never_positives(rect):
    cfg = DddConfig(output_size=(160, 48), category_map=None, rect_mask=rect)
    t = DddEncoder(cfg).encode(_BOXES, [-1, -3, -99], **_3D)   # all classes, class 1, skipped
    assert t["hm"].max() == np.float32(0.9999) and not t["rot_mask"].any()
    x, y = 25, 20                                              # box 0's centre, every class
    assert (t["hm"][:, y, x] == np.float32(0.9999)).all()
    assert t["hm"][1, 25, 75] == np.float32(0.9999) and t["hm"][0, 25, 75] == 0
    assert not t["hm"][:, 5:40, 100:131].any()                 # -99: nothing drawn
    if rect:
        assert (t["hm"][:, 10:31, 10:41] == np.float32(0.9999)).all()


def test_msra_radius_zero_is_nan_free_by_default():
    tiny = np.array([[10, 10, 10.5, 10.5]], np.float32)
    one = dict(alpha=np.array([0.0]), depth=np.array([5.0]), dim=np.ones((1, 3)))
    t = DddEncoder(DddConfig(heatmap="msra", category_map=None)).encode(tiny, [0], **one)
    assert np.isfinite(t["hm"]).all() and t["hm"].max() == 1.0
    u = DddEncoder(DddConfig(heatmap="msra", category_map=None, zero_sigma="nan")
                   ).encode(tiny, [0], **one)
    assert np.isnan(u["hm"]).sum() == 1


def _batch(cfg, rng):
    enc = DddEncoder(cfg)
    ts = []
    for sample in range(2):
        n = 4
        x1 = rng.uniform(0, 120, n)
        y1 = rng.uniform(0, 30, n)
        boxes = np.stack([x1, y1, x1 + rng.uniform(4, 30, n), y1 + rng.uniform(3, 15, n)], 1)
        ts.append(enc.encode(boxes.astype(np.float32), rng.integers(0, 3, n),
                             alpha=rng.uniform(-np.pi, np.pi, n), depth=rng.uniform(5, 60, n),
                             dim=rng.uniform(0.5, 4, (n, 3)), augmented=sample == 1))   # 2nd: aug_ddd
    return {k: np.stack([t[k] for t in ts]) for k in ts[0]}


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("l1_mean", ["elements", "masked"])
def test_loss_matches_a_float64_evaluation(l1_mean, threads, rng):
    from centertargets.losses import LossOptions
    from centertargets.losses.ddd import DddLoss

    cfg = DddConfig(output_size=(160, 48), category_map=None)
    t = _batch(cfg, rng)
    out = {n: rng.normal(-1, 1.5, h.shape(2)).astype(np.float32)
           for n, h in cfg.head_spec().items()}
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _, stats = DddLoss(cfg, LossOptions(l1_mean=l1_mean))(
            {k: torch.from_numpy(v) for k, v in out.items()},
            {k: torch.from_numpy(v) for k, v in t.items()})
    finally:
        torch.set_num_threads(before)

    def l1(pred, target, mask):
        m = np.broadcast_to(mask[..., None], pred.shape).astype(np.float64)
        d = np.abs(pred * m - target * m).sum()
        return d / (max(m.sum(), 1) if l1_mean == "masked" else m.size)

    dep = 1 / (1 / (1 + np.exp(-out["dep"].astype(np.float64))) + 1e-6) - 1
    want = {"hm_loss": R.focal(out["hm"], t["hm"]),
            "dep_loss": l1(R.gather(dep, t["ind"]), t["dep"], t["reg_mask"]),
            "dim_loss": l1(R.gather(out["dim"], t["ind"]), t["dim"], t["reg_mask"]),
            "wh_loss": l1(R.gather(out["wh"], t["ind"]), t["wh"], t["rot_mask"]),
            "off_loss": l1(R.gather(out["reg"], t["ind"]), t["reg"], t["rot_mask"])}
    rot = R.gather(out["rot"], t["ind"]).reshape(-1, 8).astype(np.float64)
    bins, res = t["rotbin"].reshape(-1, 2), t["rotres"].reshape(-1, 2).astype(np.float64)
    m = t["rot_mask"].reshape(-1, 1).astype(np.float64)
    total = 0.0
    for b, cols, sc in ((0, slice(0, 2), (2, 3)), (1, slice(4, 6), (6, 7))):
        z = rot[:, cols] * m
        lse = np.log(np.exp(z).sum(1))
        total += (lse - z[np.arange(len(z)), bins[:, b]]).mean()
        rows = bins[:, b] == 1
        for col, f in zip(sc, (np.sin, np.cos)):
            d = np.abs(rot[rows, col] - f(res[rows, b]))
            total += np.where(d < 1, 0.5 * d * d, d - 0.5).mean() if rows.any() else 0.0
    want["rot_loss"] = total
    for k, v in want.items():
        np.testing.assert_allclose(float(stats[k]), v, rtol=1e-6, err_msg=k)
    weights = {"hm_loss": 1, "dep_loss": 1, "dim_loss": 1, "rot_loss": 1, "wh_loss": 0.1,
               "off_loss": 1}
    np.testing.assert_allclose(float(stats["loss"]), sum(weights[k] * v for k, v in want.items()),
                               rtol=1e-6)


def test_decoding_perfect_outputs_gives_back_the_3d_boxes():
    from centertargets.losses.ddd import DddDecoder, ddd_post_process

    data = ddd_coco(num_images=1, num_objects=5, seed=3)
    coco = CocoDataset(data)
    cfg = DddConfig(output_size=(320, 96))
    ds = CenterNetDataset(coco, cfg)
    item = ds[0]
    t, meta = item, item["meta"]
    on = t["rot_mask"].astype(bool)
    HW = 96 * 320

    def at_ind(values):
        out = np.zeros((values.shape[1], HW), np.float32)
        out[:, t["ind"][on]] = values[on].T
        return out.reshape(-1, 96, 320)

    rot = np.zeros((len(on), 8), np.float32)                 # bins and sin/cos of rotres
    for b, base in ((0, 0), (1, 4)):
        rot[:, base + 1] = np.where(t["rotbin"][:, b] == 1, 10, -10)
        rot[:, base + 2] = np.sin(t["rotres"][:, b])
        rot[:, base + 3] = np.cos(t["rotres"][:, b])
    outputs = {"hm": t["hm"], "dep": at_ind(t["dep"]), "rot": at_ind(rot), "dim": at_ind(t["dim"]),
               "wh": at_ind(t["wh"]), "reg": at_ind(t["reg"])}
    dets = DddDecoder(cfg, K=20, apply_sigmoid=False)(
        {k: torch.from_numpy(np.ascontiguousarray(v))[None] for k, v in outputs.items()})[0]
    boxes = ddd_post_process(dets, meta["center"].astype(np.float64), meta["scale"],
                             cfg.output_size, meta["calib"])
    boxes = boxes[boxes[:, 12] == 1.0]
    on_ind = t["ind"][on]
    unique = [k for k in np.flatnonzero(on) if (on_ind == t["ind"][k]).sum() == 1]
    assert len(boxes) == len(set(on_ind)) and len(unique) >= 3
    anns = data["annotations"]                               # slot k holds annotation k
    for k in unique:
        a = anns[k]
        x, y, w, h = a["bbox"]
        row = boxes[np.argmin(np.abs(boxes[:, 1:5] - [x, y, x + w, y + h]).sum(1))]
        np.testing.assert_allclose(row[1:5], [x, y, x + w, y + h], atol=0.05)
        # Z: the depth less the camera's offset P[2, 3] (upstream's unproject_2d_to_3d)
        np.testing.assert_allclose(row[10], a["depth"] - meta["calib"][2, 3], rtol=1e-5)
        np.testing.assert_allclose(row[5:8], a["dim"], rtol=1e-5)
        d_yaw = (row[11] - a["rotation_y"] + np.pi) % (2 * np.pi) - np.pi
        assert abs(d_yaw) < 1e-3, (row[11], a["rotation_y"])
        # the location is the bottom centre of the box whose middle projects onto the 2D
        # box's centre at that depth: project it back through the camera
        X, Y, Z = (float(v) for v in row[8:11])
        uvw = meta["calib"].astype(np.float64) @ [X, Y - row[5] / 2, Z, 1.0]
        np.testing.assert_allclose(uvw[:2] / uvw[2], [x + w / 2, y + h / 2], atol=0.05)


def test_a_kitti_file_trains_with_its_own_draws_and_is_audited(tmp_path, capsys):
    from centertargets.cli import main

    data = ddd_coco(num_images=4, num_objects=6, seed=1)
    path = tmp_path / "kitti.json"
    path.write_text(json.dumps(data))
    coco = CocoDataset.load(path)
    assert tasks.for_coco(coco).name == "ddd"
    ds = CenterNetDataset(coco, DddConfig(aug_ddd=1.0), augment=AugmentConfig(train=True))
    item = ds[0]
    assert item["meta"]["augmented"] and item["reg_mask"].sum() == 0 and item["rot_mask"].any()
    assert not item["meta"]["flipped"] and item["meta"]["scale"][0] != 1242
    replay = ds.item(0, ds.params(0))
    for k in ("hm", "ind", "rot_mask"):
        np.testing.assert_array_equal(replay[k], item[k])
    with pytest.raises(ValueError, match="expected no flip and no rotation"):
        ds.item(0, AugmentParams((600.0, 180.0), (1242.0, 375.0), flipped=True))
    assert main(["audit", str(path)]) == 0
    assert "ddd audit of 4 images" in capsys.readouterr().out


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d["annotations"][0].pop("depth"), "annotation id=1 depth=None: expected the "
                                                 "depth in metres"),
    (lambda d: d["annotations"][0].update(dim=[1, 2]), r"annotation id=1 dim=\[1, 2\]: expected "
                                                       "3 numbers"),
    (lambda d: d["annotations"][0].pop("alpha"), "annotation id=1 alpha=None"),
    (lambda d: d["images"][0].update(calib=[[1, 2, 3]]), r"image id=1 calib=\[\[1, 2, 3\]\]: "
                                                         "expected the camera's 3x4"),
    (lambda d: d["categories"].append({"id": 12, "name": "x"}), r"categories \[12\] are not in "
                                                                "config.category_map"),
])
def test_bad_3d_annotations_are_named(mutate, match):
    data = ddd_coco(num_images=1, num_objects=2, seed=0)
    mutate(data)
    with pytest.raises(ValueError, match=match):
        CenterNetDataset(CocoDataset(data), DddConfig())


def test_configs_and_inputs_are_checked():
    with pytest.raises(ValueError, match="category 4 maps to -7"):
        DddConfig(category_map=((1, 0), (4, -7)))
    with pytest.raises(ValueError, match="DddConfig.heatmap='elliptic'"):
        DddConfig(heatmap="elliptic")
    enc = DddEncoder(DddConfig(category_map=None))
    with pytest.raises(ValueError, match=r"dim has shape \(3, 2\): expected \(3, 3\)"):
        enc.encode(_BOXES, [0, 1, 2], alpha=_3D["alpha"], depth=_3D["depth"],
                   dim=np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"classes\[0\]=5: expected a class index"):
        enc.encode(_BOXES, [5, 1, 2], **_3D)


def test_3d_boxes_are_drawn_where_the_camera_sees_their_corners():
    from centertargets.geometry import box_3d_corners
    from centertargets.tasks.ddd import KITTI_CALIB
    from centertargets.visualize import draw_boxes_3d

    P = np.array(KITTI_CALIB)
    row = np.zeros(14)
    row[5:8] = (1.5, 1.6, 4.0)                                # h, w, l
    row[8:11] = (2.0, 1.65, 20.0)                             # bottom centre, 20 m ahead
    row[11] = 0.4
    behind = row.copy()
    behind[10] = -5.0
    img = np.full((375, 1242, 3), 40, np.uint8)
    out = draw_boxes_3d(img, np.stack([row, behind]), P)
    corners = box_3d_corners(row[5:8], row[8:11], row[11])
    uvw = P @ np.hstack([corners, np.ones((8, 1))]).T
    for u, v in np.round((uvw[:2] / uvw[2]).T).astype(int):
        assert (out[v, u] != 40).any()                        # every corner is on a line
    changed = (out != 40).any(2)
    assert changed.sum() > 500 and not (img != 40).any()      # the input is left as it was


def test_the_two_ddd_quirks_have_corrected_switches():
    one = dict(alpha=np.array([0.0]), depth=np.array([5.0]), dim=np.ones((1, 3)))
    box = np.array([[10, 10, 21, 21]], np.float32)            # centre 15.5: round 16, floor 15
    up = DddEncoder(DddConfig(heatmap="msra", category_map=None)).encode(box, [0], **one)
    at = DddEncoder(DddConfig(heatmap="msra", category_map=None, msra_center="ind")
                    ).encode(box, [0], **one)
    y, x = divmod(int(up["ind"][0]), up["hm"].shape[2])
    assert (y, x) == (15, 15) and up["hm"][0, y, x] < 1.0 and up["hm"][0, 16, 16] == 1.0
    assert at["hm"][0, y, x] == 1.0
    boxes = np.array([[10, 10, 30, 30], [12, 12, 28, 28]], np.float32)   # same centre 20, 20
    two = dict(alpha=np.zeros(2), depth=np.ones(2), dim=np.ones((2, 3)))
    lowered = DddEncoder(DddConfig(category_map=None)).encode(boxes, [0, -1], **two)
    kept = DddEncoder(DddConfig(category_map=None, ignore_regions="keep_positives")
                      ).encode(boxes, [0, -1], **two)
    assert lowered["hm"][0, 20, 20] == np.float32(0.9999) and lowered["rot_mask"][0] == 1
    assert kept["hm"][0, 20, 20] == 1.0
