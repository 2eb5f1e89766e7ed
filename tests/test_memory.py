"""Per-process malloc tuning: whole samples stop page-faulting their arrays in afresh."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT

# Whole training samples from a small COCO file; prints the minor page faults per item once
# warm, and whether this process's malloc was tuned.
_ITEMS = r"""
import json, resource, sys, tempfile
from pathlib import Path
import cv2, numpy as np
from centertargets import AugmentConfig, CenterNetDataset, CocoDataset, MultiPoseConfig, memory
from centertargets.synthetic import person_scene, to_coco
with tempfile.TemporaryDirectory() as tmp:
    root = Path(tmp)
    data = to_coco([person_scene(i, num_people=5) for i in range(4)], task="multi_pose")
    for img in data["images"]:
        cv2.imwrite(str(root / img["file_name"]), np.full((480, 640, 3), 128, np.uint8))
    (root / "a.json").write_text(json.dumps(data))
    ds = CenterNetDataset(CocoDataset.load(root / "a.json"), MultiPoseConfig(output_size=(128, 128)),
                          augment=AugmentConfig(train=True), image_root=root)
    for i in range(20):
        ds[i % len(ds)]
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for i in range(40):
        ds[i % len(ds)]
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 40
    print(json.dumps({"faults": faults, "tuned": memory._TUNED_PID is not None}))
"""


def _items(**env: str) -> dict:
    import json
    e = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    e.update(env)
    res = subprocess.run([sys.executable, "-c", _ITEMS], env=e, cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def _glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):
        return False


@pytest.mark.skipif(not _glibc(), reason="malloc tuning applies to glibc only")
def test_tuned_process_reuses_its_sample_arrays():
    # a 512x512 sample's arrays span about 1,200 pages (3 MB input, 1.1 MB hm_hp, the image);
    # reused from the heap they fault in only once, not on every item
    out = _items()
    assert out["tuned"]
    assert out["faults"] < 50, out


@pytest.mark.skipif(not _glibc(), reason="malloc tuning applies to glibc only")
def test_malloc_is_left_alone_when_asked():
    assert not _items(CENTERTARGETS_TUNE_MALLOC="0")["tuned"]
    assert not _items(MALLOC_TRIM_THRESHOLD_="1000000")["tuned"]     # the user's choice wins


def test_tune_malloc_answers_once_per_process():
    from centertargets import memory
    first = memory.tune_malloc()
    assert memory.tune_malloc() == first
    assert first == _glibc() or any(k in os.environ for k in memory._USER_SETTINGS)
