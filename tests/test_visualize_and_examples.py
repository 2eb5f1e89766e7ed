"""Pictures, the notebook and the CLI's audit/render commands actually run."""

from __future__ import annotations


import cv2
import numpy as np
import pytest

from centertargets import CtdetConfig, CtdetEncoder, MultiPoseConfig, MultiPoseEncoder
from centertargets.cli import main
from centertargets.visualize import colorize, render_targets, save_png

from conftest import ROOT, random_boxes, random_keypoints


def test_render_shows_peaks_where_the_targets_have_them(rng, tmp_path):
    cfg = MultiPoseConfig(output_size=(40, 40), dense_hp=False)
    boxes = random_boxes(rng, 3, 40, 40, min_side=6)
    t = MultiPoseEncoder(cfg).encode(boxes, random_keypoints(rng, boxes))
    img = render_targets(t, cfg, scale=2)
    assert img.dtype == np.uint8 and img.shape == (80 + 22, 2 * 80, 3)
    rgb = colorize(t["hm"])
    y, x = divmod(int(t["ind"][0]), 40)
    assert rgb[y, x].max() == 255 and rgb[0, 0].max() <= rgb[y, x].max()
    save_png(str(tmp_path / "t.png"), img)
    back = cv2.imread(str(tmp_path / "t.png"))[..., ::-1]
    np.testing.assert_array_equal(back, img)
    dense = CtdetConfig(output_size=(40, 40), num_classes=2, dense_wh=True)
    td = CtdetEncoder(dense).encode(boxes, [0, 1, 1])
    assert render_targets(td, dense, scale=1).shape[1] == 3 * 40


def test_notebook_executes():
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    path = ROOT / "examples" / "explore_targets.ipynb"
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) >= 4
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors


def test_audit_counts_dropped_objects(capsys):
    assert main(["audit", "--max-objs", "4", "--output-size", "64"]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if "dropped beyond max_objs" in l)
    dropped = int(line.split()[-2])
    # 200 synthetic images with 3 + i % 40 persons each: everything above 4 is dropped
    assert dropped == sum(max(0, 3 + i % 40 - 4) for i in range(200))


def test_render_writes_a_png(tmp_path, capsys):
    out = tmp_path / "r.png"
    assert main(["render", "--out", str(out), "--output-size", "64"]) == 0
    img = cv2.imread(str(out))
    assert img is not None and img.shape[1] == 2 * 64 * 3


def test_training_example_runs_end_to_end():
    import importlib.util
    import math

    spec = importlib.util.spec_from_file_location("train_step", ROOT / "examples" / "train_step.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    stats = mod.main(["--steps", "3", "--workers", "0", "--images", "8"])
    assert set(stats) == {"loss", "hm_loss", "hp_loss", "hm_hp_loss", "hp_offset_loss",
                          "wh_loss", "off_loss"}
    assert all(math.isfinite(v) for v in stats.values()) and stats["hm_loss"] > 0


def test_readme_decode_snippet_runs_as_written():
    import re

    import numpy as np

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    snippet = next(b for b in blocks if "MultiPoseDecoder(cfg" in b)
    ns: dict = {}
    exec(compile(snippet, "README.md", "exec"), ns)
    scene = ns["scene"]
    want = scene.boxes_xywh.copy()
    want[:, 2:] += want[:, :2]
    got = ns["boxes_img"]
    assert got.shape == (3, 4)
    # every decoded box is an annotated box (up to the clip to the map's 640 x 640 square)
    clipped = want.copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, 639)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(-80, 559)
    for box in got:
        assert np.abs(clipped - box).max(axis=1).min() < 0.1


def test_distributed_example_runs_under_torchrun_with_two_processes(tmp_path):
    import json
    import os
    import re
    import subprocess
    import sys

    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_port", "29531"]
    res = subprocess.run([*torchrun, str(ROOT / "examples" / "train_ddp.py"), "--steps", "12",
                          "--images", "8", "--data", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert res.returncode == 0, res.stderr[-3000:]
    ranks = [json.loads(m) for m in re.findall(r"\{[^{}]*\}", res.stdout)]
    assert sorted(r["rank"] for r in ranks) == [0, 1]
    assert ranks[0]["checksum"] == ranks[1]["checksum"]        # DDP kept the ranks in step
    for r in ranks:
        assert r["steps"] == 12 and r["last"] < r["first"]     # the loss falls on every rank


@pytest.mark.parametrize("hide, statement, match", [
    ("torch", "import centertargets.losses",
     "centertargets.losses needs torch, which is not installed: pip install "
     "'centertargets\\[torch\\]'"),
    ("cv2", "import centertargets", "centertargets needs OpenCV, and 'import cv2' fails"),
])
def test_missing_dependencies_say_how_to_fix_them(hide, statement, match):
    import re
    import subprocess
    import sys

    code = f"import sys; sys.modules[{hide!r}] = None\n{statement}"
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode != 0 and re.search(match, res.stderr), res.stderr[-2000:]


def test_package_ships_type_information():
    assert (ROOT / "centertargets" / "py.typed").exists() and (ROOT / "losses" / "py.typed").exists()


def test_people_pictures_tell_occluded_from_visible_joints():
    from centertargets.visualize import draw_people

    canvas = np.zeros((60, 60, 3), np.uint8)
    kps = np.array([[[15, 30, 2], [45, 30, 1], [30, 10, 0]]], np.float32)
    draw_people(canvas, np.array([[5, 5, 55, 55]]), kps, colour=(255, 255, 255))
    assert canvas[30, 15].max() == 255           # visible: filled centre
    assert canvas[30, 45].max() == 0             # occluded: hollow ring, empty centre
    assert canvas[30, 48].max() > 0              # ...with its ring drawn
    assert canvas[10, 30].max() == 0             # unlabelled: not drawn
