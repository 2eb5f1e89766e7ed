"""malloc tuning: samples stop page-faulting their arrays in afresh; what it keeps is bounded."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT, glibc as _glibc

# Whole training samples from a small COCO file in this (main) process, with malloc tuned
# explicitly (``tune`` argument) or left as the dataset leaves a main process; prints the minor
# page faults per item once warm, and whether this process's malloc was tuned.
_ITEMS = r"""
import json, resource, sys, tempfile
from pathlib import Path
import cv2, numpy as np
from centertargets import AugmentConfig, CenterNetDataset, CocoDataset, MultiPoseConfig, memory
from centertargets.synthetic import person_scene, to_coco
with tempfile.TemporaryDirectory() as tmp:
    root = Path(tmp)
    data = to_coco([person_scene(i, num_people=5) for i in range(4)], categories="person")
    for img in data["images"]:
        cv2.imwrite(str(root / img["file_name"]), np.full((480, 640, 3), 128, np.uint8))
    (root / "a.json").write_text(json.dumps(data))
    ds = CenterNetDataset(CocoDataset.load(root / "a.json"), MultiPoseConfig(output_size=(128, 128)),
                          augment=AugmentConfig(train=True), image_root=root)
    if sys.argv[1] == "tune":
        memory.tune_malloc()
    for i in range(20):
        ds[i % len(ds)]
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for i in range(40):
        ds[i % len(ds)]
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 40
    print(json.dumps({"faults": faults, "tuned": memory._TUNED_PID is not None}))
"""


def _items(mode: str = "tune", **env: str) -> dict:
    import json
    e = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")
         and k != "GLIBC_TUNABLES"}
    e.update(env)
    res = subprocess.run([sys.executable, "-c", _ITEMS, mode], env=e, cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])




@pytest.mark.skipif(not _glibc(), reason="malloc tuning applies to glibc only")
def test_tuned_process_reuses_its_sample_arrays():
    # a 512x512 sample's arrays span about 1,200 pages (3 MB input, 1.1 MB hm_hp, the image);
    # reused from the heap they fault in only once, not on every item
    out = _items()
    assert out["tuned"]
    assert out["faults"] < 50, out


@pytest.mark.skipif(not _glibc(), reason="malloc tuning applies to glibc only")
def test_malloc_is_left_alone_in_the_main_process_and_when_the_user_set_it():
    assert not _items("default")["tuned"]                            # not a DataLoader worker
    assert not _items(MALLOC_TRIM_THRESHOLD_="1000000")["tuned"]     # the user's choice wins
    assert not _items(GLIBC_TUNABLES="glibc.malloc.mmap_threshold=65536")["tuned"]


# DataLoader workers tune themselves; each item reports the bytes malloc holds free (mallinfo2's
# fordblks) when the item starts, i.e. what the worker kept of the samples before it.
_WORKER_KEEPS = r"""
import json, os, sys, tempfile
from pathlib import Path
import cv2, numpy as np, torch
from centertargets import AugmentConfig, CenterNetDataset, CocoDataset, MultiPoseConfig, memory
from centertargets.synthetic import person_scene, to_coco

class Probe(CenterNetDataset):
    def __getitem__(self, i):
        free = memory.free_bytes()
        item = super().__getitem__(i)
        return {"free": free, "tuned": memory._TUNED_PID == os.getpid()}

with tempfile.TemporaryDirectory() as tmp:
    root = Path(tmp)
    data = to_coco([person_scene(i, num_people=5) for i in range(6)], categories="person")
    for img in data["images"]:
        cv2.imwrite(str(root / img["file_name"]), np.full((480, 640, 3), 128, np.uint8))
    ds = Probe(CocoDataset(data), MultiPoseConfig(output_size=(128, 128)),
               augment=AugmentConfig(train=True), image_root=root)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=1, timeout=120,
                                         sampler=list(range(6)) * 10)
    got = list(loader)
    print(json.dumps({"tuned": all(g["tuned"] for g in got),
                      "max_free": max(int(g["free"]) for g in got[5:])}))
"""


def _mallinfo2() -> bool:
    from centertargets import memory
    return memory.free_bytes() is not None


@pytest.mark.skipif(not _mallinfo2(), reason="needs glibc 2.33+ (mallinfo2)")
def test_a_worker_keeps_at_most_the_trim_threshold_of_freed_memory():
    import json

    from centertargets import memory

    e = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")
         and k not in ("GLIBC_TUNABLES", "CENTERTARGETS_TUNE_MALLOC")}
    res = subprocess.run([sys.executable, "-c", _WORKER_KEEPS], env=e, cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["tuned"]
    # the top of the heap is trimmed past TRIM_THRESHOLD; below it, free space between live
    # blocks is at most about one sample's arrays (a few MB at 512x512)
    assert out["max_free"] <= memory.TRIM_THRESHOLD + 8 * 2 ** 20, out


def test_tune_malloc_answers_once_per_process():
    from centertargets import memory
    first = memory.tune_malloc()
    assert memory.tune_malloc() == first
    assert first == (_glibc() and not memory.user_configured())
