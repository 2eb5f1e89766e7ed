"""The `centertargets` command: demo, compare output format and exit status."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2

import numpy as np
import pytest

from centertargets import COCO_FLIP_IDX, CocoDataset
from centertargets.cli import main

from conftest import need_reference, reference_files


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "compare" in out and "demo" in out


def test_scene_prints_every_target(capsys):
    assert main(["scene", "--people", "3", "--objects", "5"]) == 0
    out = capsys.readouterr().out
    for name in ("hm_hp", "hps_mask", "hp_offset", "reg_mask", "report:"):
        assert name in out


def test_compare_reports_unreadable_and_unknown_fixtures(tmp_path, capsys):
    (tmp_path / "garbage.npz").write_bytes(b"not a zip")
    np.savez(tmp_path / "unknown.npz", __meta__=json.dumps({"kind": "mystery"}), x=np.zeros(2))
    np.savez(tmp_path / "nometa.npz", x=np.zeros(2))
    assert main(["compare", str(tmp_path), str(tmp_path / "missing.npz")]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "0 passed, 4 failed"
    text = "\n".join(lines)
    assert "garbage.npz: cannot read" in text and "unknown fixture kind 'mystery'" in text
    assert "nometa.npz" in text and "missing.npz" in text


@pytest.mark.parametrize("path", reference_files(("multi_pose_val_default_001",)))
def test_compare_passes_a_reference_scene_and_catches_a_tampered_one(path, tmp_path, capsys):
    path = need_reference(path)
    assert main(["compare", str(path)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "1 passed, 0 failed"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["hm_hp"] = arrays["hm_hp"].copy()
    arrays["hm_hp"][3, 10, 10] += 0.25
    np.savez(tmp_path / "tampered.npz", **arrays)
    assert main(["compare", str(tmp_path / "tampered.npz")]) == 1
    out = capsys.readouterr().out
    assert "tampered.npz: first differing key 'hm_hp', largest difference 0.25" in out
    assert out.strip().splitlines()[-1] == "0 passed, 1 failed"


def test_module_entry_point_runs():
    r = subprocess.run([sys.executable, "-m", "centertargets", "compare", "--help"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "N passed, M failed" in r.stdout


def test_demo_runs_the_whole_pipeline_at_a_reduced_size(tmp_path, capsys):
    from centertargets.demo import run_demo

    lines: list[str] = []
    res = run_demo(tmp_path / "demo", images=8, workers=0, train_steps=12, log=lines.append)
    text = "\n".join(lines)
    for step in ("1. wrote 8 synthetic images", "2. audit", "3. DataLoader", "4. training",
                 "5. decoded detections", "6. pictures", "Files written"):
        assert step in text
    assert res["audit"]["num_objects"] > 0 and res["samples_per_s"] > 0
    assert res["steps"] == 12 and res["loss_last"] < res["loss_first"]
    again = run_demo(tmp_path / "again", images=8, workers=0, train_steps=12,
                     log=lambda s: None)
    assert again["losses"] == res["losses"]                        # steps, seeded: the same
    np.testing.assert_equal(again["model"], res["model"])         # (NaN for NaN)
    # the oracle decode, mapped back to the image, finds every annotated person: COCO AP 1
    assert res["oracle"]["recall@0.5"] == 1.0 and res["oracle"]["mean_iou"] > 0.999
    assert res["oracle_ap"] == {"bbox": 1.0, "keypoints": 1.0}
    assert 0 <= res["model_ap"]["bbox"] < 1 and 0 <= res["model+flip_ap"]["keypoints"] < 1
    for f in res["files"]:
        assert Path(f).exists(), f
    pngs = [f for f in res["files"] if f.endswith(".png")]
    assert len(pngs) == 4 and all(cv2.imread(f) is not None for f in pngs)
    coco = CocoDataset.load(tmp_path / "demo" / "person_keypoints_demo.json")
    assert len(coco) == 8 and coco.num_joints == 17 and coco.flip_idx == COCO_FLIP_IDX


@pytest.mark.parametrize("argv, match", [
    (["audit", "missing.json"], "missing.json: no such file"),
    (["audit", "{bad}"], "is not valid JSON"),
    (["audit", "{notcoco}"], "COCO json has no list 'images'"),
    (["render", "--index", "5"], r"--index 5: expected 0 <= index < 1"),
    (["compare", "{bad}"], None),
    (["audit", "--output-size", "0"], "expected an integer >= 1"),
    (["audit", "--task", "nope"], "invalid choice: 'nope'"),
])
def test_cli_mistakes_get_one_line_and_exit_status_2(argv, match, tmp_path, capsys):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "notcoco.json").write_text(json.dumps({"hello": 1}))
    argv = [a.format(bad=tmp_path / "bad.json", notcoco=tmp_path / "notcoco.json") for a in argv]
    if argv[0] == "compare":      # a non-fixture file: a failure line, exit status 1
        assert main(argv) == 1
        assert "FAIL" in capsys.readouterr().out
        return
    try:
        code = main(argv)
    except SystemExit as e:       # argparse's own errors: usage + one line, status 2
        code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert "Traceback" not in "\n".join(err) and re.search(match, err[-1]), err


def test_every_subcommand_help_states_defaults(capsys):
    for cmd in ("demo", "scene", "audit", "render"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        out = capsys.readouterr().out
        assert "default" in out, cmd


def test_version_and_a_bare_command(tmp_path, capsys, monkeypatch):
    from centertargets import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and __version__ in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0                          # help, and nothing written
    assert "centertargets demo" in capsys.readouterr().out and not list(tmp_path.iterdir())


def test_render_takes_a_task(tmp_path):
    out = tmp_path / "ctdet.png"
    assert main(["render", "--task", "ctdet", "--output-size", "32", "--out", str(out)]) == 0
    assert cv2.imread(str(out)) is not None
