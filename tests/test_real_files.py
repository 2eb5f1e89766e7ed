"""Real files carry junk in fields that only draw or label: warned about, never fatal; files of
many keypoint categories get their config from the file."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from centertargets import CocoDataset, CtdetConfig, MultiPoseConfig
from centertargets.cli import main
from centertargets.coco import COCO_SKELETON
from centertargets.synthetic import person_scene, to_coco


def _pose(joints: int = 17, skeleton=None, names=None, people: int = 3) -> dict:
    d = to_coco([person_scene(4, people)])
    if joints != 17:
        for a in d["annotations"]:
            a["keypoints"] = a["keypoints"][:3 * joints]
        d["categories"][0]["keypoints"] = d["categories"][0]["keypoints"][:joints]
    if skeleton is not None:
        d["categories"][0]["skeleton"] = skeleton
    if names is not None:
        d["categories"][0]["keypoints"] = names
    return d


def _load(d: dict) -> tuple[CocoDataset, list[str]]:
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        coco = CocoDataset(d)
    return coco, [str(x.message) for x in w]


def test_crowdpose_like_skeleton_beyond_the_joints_is_dropped_with_a_warning():
    # CrowdPose's test file: COCO's 17-joint skeleton on its 14 joints
    coco, msgs = _load(_pose(14, skeleton=[[a + 1, b + 1] for a, b in COCO_SKELETON]))
    assert coco.num_joints == 14
    assert all(a < 14 and b < 14 for a, b in coco.skeleton) and coco.skeleton
    kept = sum(1 for a, b in COCO_SKELETON if a < 14 and b < 14)
    assert len(coco.skeleton) == kept
    assert any("category id=1" in m and "outside [1, 14]" in m for m in msgs), msgs


def test_zero_based_skeleton_is_read_as_zero_based():
    coco, msgs = _load(_pose(skeleton=[[a, b] for a, b in COCO_SKELETON]))
    assert coco.skeleton == list(COCO_SKELETON)
    assert any("numbers joints from 0" in m for m in msgs), msgs


@pytest.mark.parametrize("skeleton", ["text", [[1, 2, 3]], [["a", "b"]], 7])
def test_skeleton_junk_is_a_warning(skeleton):
    coco, msgs = _load(_pose(skeleton=skeleton))
    assert coco.skeleton == [] and any("category id=1" in m for m in msgs), msgs
    assert len(coco) == 1 and coco.num_joints == 17


def test_joint_names_that_are_not_names_are_a_warning():
    coco, msgs = _load(_pose(names=[1, 2, 3]))
    assert coco.keypoint_names == [] and coco.flip_idx == ()
    assert any("expected a list of joint names" in m for m in msgs)


def _many_categories(n: int = 6) -> dict:
    """AP-10K-like: several species, one 17-joint set each."""
    d = _pose(people=n)
    base = d["categories"][0]
    d["categories"] = [dict(base, id=c + 1, name=f"species_{c}") for c in range(n)]
    for k, a in enumerate(d["annotations"]):
        a["category_id"] = k % n + 1
    return d


def test_from_coco_takes_classes_joints_and_flip_pairs_from_the_file():
    coco = CocoDataset(_many_categories())
    cfg = MultiPoseConfig.from_coco(coco, output_size=64, max_objs=12)
    assert (cfg.num_classes, cfg.num_joints, cfg.max_objs) == (6, 17, 12)
    assert cfg.flip_idx and cfg.output_size == (64, 64)
    one = CocoDataset(_many_categories(), category_map="one_class")
    assert one.num_classes == 1 and set(one[0].classes.tolist()) == {0}
    assert MultiPoseConfig.from_coco(one).num_classes == 1
    mapped = CocoDataset(_many_categories(), category_map={1: 0, 2: 0, 3: 1, 4: 1, 5: 2, 6: 2})
    assert mapped.num_classes == 3
    assert CtdetConfig.from_coco(mapped).num_classes == 3
    with pytest.raises(ValueError, match="category_map='two'"):
        CocoDataset(_many_categories(), category_map="two")


def test_audit_and_render_take_a_many_category_keypoint_file_with_no_flags(tmp_path, capsys):
    path = tmp_path / "ap10k_like.json"
    path.write_text(json.dumps(_many_categories()))
    assert main(["audit", str(path)]) == 0
    assert "multi_pose audit of 1 images" in capsys.readouterr().out
    assert main(["render", str(path), "--out", str(tmp_path / "r.png")]) == 0


def test_audit_and_render_take_crowdpose_and_exlpose_like_files(tmp_path, capsys):
    for name, d in (("crowdpose", _pose(14, skeleton=[[a + 1, b + 1] for a, b in COCO_SKELETON])),
                    ("exlpose", _pose(skeleton=[[a, b] for a, b in COCO_SKELETON]))):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(d))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert main(["audit", str(path)]) == 0
            assert main(["render", str(path), "--out", str(tmp_path / f"{name}.png")]) == 0
    assert np.fromfile(tmp_path / "crowdpose.png", np.uint8).size > 1000


def test_audit_flags_corners_stored_as_xywh(tmp_path, capsys):
    d = to_coco([person_scene(s, 4) for s in range(3)])
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(d))
    assert main(["audit", str(path)]) == 0
    assert "looks like [x1, y1, x2, y2]" not in capsys.readouterr().out
    for a in d["annotations"]:                     # the classic mistake
        x, y, w, h = a["bbox"]
        a["bbox"] = [x, y, x + w, y + h]
    path.write_text(json.dumps(d))
    assert main(["audit", str(path)]) == 0
    assert "looks like [x1, y1, x2, y2]" in capsys.readouterr().out


def test_the_loss_recognises_the_stuck_state_once():
    import torch

    from centertargets.losses import CtdetLoss
    from centertargets.losses.tracking import GenericLoss
    from centertargets import CtdetEncoder
    from centertargets.tasks.tracking import TrackingConfig

    cfg = CtdetConfig(output_size=(16, 16), num_classes=2, max_objs=4)
    t = CtdetEncoder(cfg).encode(np.array([[2, 2, 9, 9]], np.float32), [1])
    batch = {k: torch.from_numpy(v[None]) for k, v in t.items()}
    out = {n: torch.zeros(h.shape(1)) for n, h in cfg.head_spec().items()}
    loss = CtdetLoss(cfg)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        loss(out, batch)                                      # p = 0.5: fine
        assert not [x for x in w if "stuck" in str(x.message)]
        out["hm"] = torch.full_like(out["hm"], -12.0)         # every centre at the floor
        _, stats = loss(out, batch)
        loss(out, batch)
    stuck = [x for x in w if "stuck" in str(x.message)]
    assert len(stuck) == 1 and "[x1, y1, x2, y2]" in str(stuck[0].message)
    assert abs(float(stats["hm_loss"]) - 9.2085) < 0.01      # the value users report
    tcfg = TrackingConfig(output_size=(16, 16), num_classes=1, max_objs=2)
    tb = {k: torch.from_numpy(s.zeros()[None]) for k, s in tcfg.spec().items()}
    tb["mask"][0, 0] = 1
    with pytest.warns(RuntimeWarning, match="stuck"):
        GenericLoss(tcfg)({n: torch.full(h.shape(1), -20.0)
                           for n, h in tcfg.head_spec().items()}, tb)


def test_the_losses_import_is_not_shadowed_by_a_users_losses_py(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    (tmp_path / "losses.py").write_text("raise SystemExit('the user losses.py was imported')\n")
    code = ("from centertargets.losses import MultiPoseLoss, build_heads\n"
            "import losses\n"                              # the user's own module, untouched
            )
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode != 0 and "the user losses.py was imported" in res.stderr
    res = subprocess.run([sys.executable, "-c", code.splitlines()[0]], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    # from the repository root, plain `import losses` is an alias: the same classes
    alias = ("import losses, losses.tracking, centertargets.losses as L\n"
             "assert losses is L and losses.tracking is L.tracking\n"
             "assert losses.MultiPoseLoss is L.MultiPoseLoss\n")
    res = subprocess.run([sys.executable, "-c", alias], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]


def test_legends_are_capped_and_long_values_are_cut_in_errors():
    from centertargets.visualize import LEGEND_MAX_ROWS, _legend

    strip = _legend([f"joint_{j}" for j in range(294)], 440)     # DeepFashion2's 294 joints
    assert strip.shape[0] <= LEGEND_MAX_ROWS * 16 + 4 < 294 // 4 * 16
    d = _pose()
    d["annotations"][0]["keypoints"] = [1.0, 2.0, 3.0] * 17      # every visibility 3
    with pytest.raises(ValueError) as e:
        CocoDataset(d)
    msg = str(e.value)
    assert "joint 0 has visibility 3.0 (17 of 17 joints like it)" in msg and len(msg) < 200


def test_loss_stats_are_detached_for_logging():
    import torch

    from centertargets import CtdetEncoder
    from centertargets.losses import CtdetLoss

    cfg = CtdetConfig(output_size=(8, 8), num_classes=1)
    t = CtdetEncoder(cfg).encode(np.array([[1, 1, 5, 5]], np.float32), [0])
    out = {n: torch.full(h.shape(1), -1.0, requires_grad=True) for n, h in cfg.head_spec().items()}
    loss, stats = CtdetLoss(cfg)(out, {k: torch.from_numpy(v[None]) for k, v in t.items()})
    assert loss.requires_grad and not any(v.requires_grad for v in stats.values())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        float(stats["loss"])


def test_decoration_warnings_point_at_the_users_line():
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        CocoDataset(_pose(skeleton="text"))
    assert w and all(x.filename == __file__ for x in w), [x.filename for x in w]


def test_ctdet_renders_colour_each_box_by_its_class():
    from centertargets import CtdetEncoder
    from centertargets.visualize import draw_objects, palette

    cfg = CtdetConfig(output_size=(32, 32), num_classes=3)
    t = CtdetEncoder(cfg).encode(np.array([[2, 2, 12, 12], [16, 16, 28, 28]], np.float32),
                                 [0, 2])
    canvas = draw_objects(np.zeros((32, 32, 3), np.uint8), t, 32, 1)
    colours = {tuple(int(v) for v in c) for c in canvas.reshape(-1, 3) if c.any()}
    p = palette(3)
    assert tuple(int(v) for v in p[0]) in colours and tuple(int(v) for v in p[2]) in colours
    assert tuple(int(v) for v in p[1]) not in colours


def test_render_marks_labelled_joints_the_targets_do_not_supervise():
    from centertargets import MultiPoseEncoder
    from centertargets.visualize import render_targets

    cfg = MultiPoseConfig(output_size=(32, 32), num_joints=17, flip_idx=())
    boxes = np.array([[4, 4, 20, 28]], np.float32)
    kps = np.zeros((1, 17, 3), np.float32)
    kps[0, :, :2] = (10, 10)
    kps[0, :, 2] = 2
    kps[0, 3] = (40, 10, 2)                       # labelled, but right of the 32-pixel map
    t = MultiPoseEncoder(cfg).encode(boxes, kps)
    assert t["hps_mask"][0, 6] == 0 and t["hps_mask"][0, 0] == 1

    def red(pic):
        return int(((pic[..., 0] > 200) & (pic[..., 1] < 80) & (pic[..., 2] < 80)).sum())
    plain = render_targets(t, cfg, scale=4)
    inside = kps.copy()
    inside[0, :, 0] = np.minimum(inside[0, :, 0], 30)     # the cross lands inside the picture
    marked = render_targets(t, cfg, scale=4, keypoints=inside)
    assert red(marked) > red(plain) + 10
