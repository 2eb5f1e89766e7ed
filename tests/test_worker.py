"""Per-process set-up decided by what the process is, never by how the dataset arrived.

Each case runs in a subprocess with a timeout: without the fix a forked worker hangs in
``cv2.setNumThreads`` (the parent's OpenCV pool does not survive ``fork``), so the test must
be able to fail by timing out rather than hang the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, glibc as _glibc

# Common set-up: 4 images on disk, a training dataset, OpenCV's pool started in this process by
# looking at items (warpAffine of 640x480 images runs on the pool), and every later call of
# cv2.setNumThreads recorded with the pid that made it (forked children inherit the wrapper).
_PRELUDE = r"""
import copy, json, os, pickle, sys, tempfile
from pathlib import Path
import cv2, numpy as np
import torch
from centertargets import AugmentConfig, CenterNetDataset, CocoDataset, MultiPoseConfig, memory
from centertargets.synthetic import person_scene, to_coco

# one file for the whole process tree: spawned children run this prelude again
os.environ.setdefault("PROBE_CALLS", str(Path(tempfile.mkdtemp()) / "set_num_threads"))
calls = Path(os.environ["PROBE_CALLS"])
_real = cv2.setNumThreads
def _recording(n):
    with open(calls, "a") as f:
        f.write(f"{os.getpid()}\n")
    _real(n)
cv2.setNumThreads = _recording

class Probe(CenterNetDataset):
    # each item says which process made it and what that process looks like afterwards
    def __getitem__(self, i):
        item = super().__getitem__(i)
        return {"pid": os.getpid(), "cv2_threads": cv2.getNumThreads(),
                "tuned": memory._TUNED_PID == os.getpid(), "hm_sum": float(item["hm"].sum())}

def dataset(tmp):
    root = Path(tmp)
    data = to_coco([person_scene(i, num_people=4) for i in range(4)], categories="person")
    for img in data["images"]:
        cv2.imwrite(str(root / img["file_name"]), np.full((480, 640, 3), 90, np.uint8))
    return Probe(CocoDataset(data), MultiPoseConfig(output_size=(64, 64)),
                 augment=AugmentConfig(train=True), image_root=root)

def called_in(pids):
    seen = set(calls.read_text().split()) if calls.exists() else set()
    return sorted(int(p) for p in seen if int(p) in pids)
"""

_LOADER = _PRELUDE + r"""
def main(copy_how, method):
    with tempfile.TemporaryDirectory() as tmp:
        ds = dataset(tmp)
        for i in range(4):                       # OpenCV's pool is running in this process now
            ds[i]
        if copy_how == "deepcopy":
            ds = copy.deepcopy(ds)
        elif copy_how == "pickle":
            ds = pickle.loads(pickle.dumps(ds))
        loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2, timeout=120,
                                             multiprocessing_context=method)
        items = list(loader)
        pids = {int(it["pid"]) for it in items}
        print(json.dumps({"workers": len(pids - {os.getpid()}),
                          "cv2_threads": sorted({int(it["cv2_threads"]) for it in items}),
                          "tuned": all(bool(it["tuned"]) for it in items),
                          "set_num_threads_in_workers": len(called_in(pids)),
                          "main_tuned": memory._TUNED_PID is not None}))

if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
"""


def _run(code: str, *args: str, timeout: int = 240, tmp_path=None) -> dict:
    script = tmp_path / "script.py"          # a file: spawned children import their __main__
    script.write_text(code)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")
           and k not in ("GLIBC_TUNABLES", "CENTERTARGETS_TUNE_MALLOC")}
    try:
        res = subprocess.run([sys.executable, str(script), *args], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{args}: the process hung for {timeout} s (a worker stuck in "
                    f"cv2.setNumThreads?)\n{exc.stderr}")
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])




@pytest.mark.parametrize("copy_how", ["deepcopy", "pickle", "same"])
def test_forked_workers_never_touch_opencv_threads_however_the_dataset_arrived(copy_how,
                                                                              tmp_path):
    out = _run(_LOADER, copy_how, "fork", tmp_path=tmp_path)
    assert out["workers"] == 2
    assert out["set_num_threads_in_workers"] == 0
    assert out["tuned"] == _glibc()             # the worker's malloc win is kept
    assert not out["main_tuned"]                # the user's main process is left as it was


def test_spawned_workers_run_opencv_in_one_thread(tmp_path):
    out = _run(_LOADER, "pickle", "spawn", tmp_path=tmp_path)
    assert out["workers"] == 2
    assert out["cv2_threads"] == [1] and out["set_num_threads_in_workers"] == 2
    assert out["tuned"] == _glibc()


# A rank of torch.multiprocessing.spawn (not a DataLoader worker) and the main process: neither
# gets its OpenCV threads or its malloc changed by making items.
_RANK = _PRELUDE + r"""
import torch.multiprocessing as tmp_mp

def rank(r, tmp):
    ds = pickle.loads(pickle.dumps(dataset(tmp)))
    cv2.setNumThreads(3)
    ds[0]; ds[1]
    with open(os.path.join(tmp, f"rank{r}.json"), "w") as f:
        json.dump({"cv2_threads": cv2.getNumThreads(), "tuned": memory._TUNED_PID is not None}, f)

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        tmp_mp.spawn(rank, args=(tmp,), nprocs=1)
        got = json.load(open(os.path.join(tmp, "rank0.json")))
        ds = dataset(tmp)
        cv2.setNumThreads(3)
        ds[0]
        got.update(main_cv2_threads=cv2.getNumThreads(), main_tuned=memory._TUNED_PID is not None)
        print(json.dumps(got))
"""


def test_ranks_and_the_main_process_keep_their_opencv_threads_and_malloc(tmp_path):
    out = _run(_RANK, tmp_path=tmp_path)
    assert out == {"cv2_threads": 3, "tuned": False, "main_cv2_threads": 3, "main_tuned": False}


def test_malloc_tuning_respects_glibc_tunables(monkeypatch):
    from centertargets import memory

    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1000")
    assert memory.user_configured()
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.pthread.rseq=0")
    assert not memory.user_configured()
