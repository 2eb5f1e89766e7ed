"""The `centertargets` command: demo, compare output format and exit status."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from centertargets.cli import main

from conftest import need_reference, reference_files


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "compare" in out and "demo" in out


def test_demo_prints_every_target(capsys):
    assert main(["demo", "--people", "3", "--objects", "5"]) == 0
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
