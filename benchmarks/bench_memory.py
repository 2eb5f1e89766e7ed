"""What malloc tuning buys in a DataLoader worker, and what it would cost a threaded main process.

Rows (each measured in fresh processes, tuned and untuned side by side in one run):

* samples: 640x480 -> 512x512 pose samples with upstream's training augmentation,
  in a DataLoader worker (1 worker, fork) and in the main process
  (``num_workers=0``): milliseconds per item (median, inside the process that
  makes it), minor page faults per item, and the bytes malloc holds free between
  items (``mallinfo2().fordblks``, the memory kept for reuse); workers with their
  default tuning and with ``CENTERTARGETS_TUNE_MALLOC=0``, the main process as
  the dataset leaves it and after an explicit ``memory.tune_malloc()``;
* main process: 8 threads each allocating and freeing 1-8 MB blocks (a
  pin-memory thread, a threaded pipeline), then idle: the resident memory it keeps
  (RSS growth), as the dataset leaves a main process (untouched) and as it would
  be had the main process been tuned (what the dataset did before it tuned
  workers only).

Nothing is asserted.  Run: ``python benchmarks/bench_memory.py`` (``make bench``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

_WORKER = r"""
import json, os, resource, sys, tempfile, time
from pathlib import Path
import cv2, numpy as np, torch
from centertargets import AugmentConfig, CenterNetDataset, CocoDataset, MultiPoseConfig, memory
from centertargets.synthetic import person_scene, to_coco

class Timed(CenterNetDataset):
    def __getitem__(self, i):
        free = memory.free_bytes()
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        super().__getitem__(i)
        return {"ms": (time.perf_counter() - t0) * 1e3, "free": free,
                "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0,
                "tuned": memory._TUNED_PID == os.getpid()}

n, workers, explicit = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "tune"
if explicit:
    memory.tune_malloc()
with tempfile.TemporaryDirectory() as tmp:
    root = Path(tmp)
    data = to_coco([person_scene(i, num_people=15) for i in range(16)], categories="person")
    rng = np.random.default_rng(0)
    for img in data["images"]:                         # as bench_dataset.py: blurred noise
        pixels = cv2.GaussianBlur(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), (9, 9), 3)
        cv2.imwrite(str(root / img["file_name"]), pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])
    ds = Timed(CocoDataset(data), MultiPoseConfig(output_size=(128, 128)),
               augment=AugmentConfig(train=True), image_root=root)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers,
                                         sampler=[i % 16 for i in range(n)])
    got = list(loader)[n // 4:]                        # the first quarter warms up
    print(json.dumps({"ms": float(np.median([g["ms"] for g in got])),
                      "faults": float(np.mean([g["faults"] for g in got])),
                      "free_mb": max(int(g["free"]) for g in got) / 2 ** 20,
                      "tuned": all(g["tuned"] for g in got)}))
"""

_THREADS = r"""
import json, sys, threading
import numpy as np
from centertargets import memory

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2 ** 20

if sys.argv[1] == "tuned":
    memory.tune_malloc()
before = rss_mb()

def work(seed):
    rng = np.random.default_rng(seed)
    for _ in range(200):
        blocks = [np.ones(int(rng.integers(2 ** 20, 8 * 2 ** 20)), np.uint8) for _ in range(4)]
        del blocks

threads = [threading.Thread(target=work, args=(s,)) for s in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"kept_mb": rss_mb() - before}))
"""


def _run(code: str, *args: str, **env: str) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")
         and k not in ("GLIBC_TUNABLES", "CENTERTARGETS_TUNE_MALLOC")}
    e.update(env)
    res = subprocess.run([sys.executable, "-c", code, *args], env=e, capture_output=True,
                         text=True, timeout=900)
    if res.returncode:
        raise RuntimeError(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=160, help="items per worker run")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each row")
    args = ap.parse_args()

    print(f"640x480 -> 512x512 pose samples, 15 persons, {args.items} items (median of the "
          f"last 3/4), {args.repeat} runs each:")
    print(f"  {'':<46} {'ms/item':>11} {'faults/item':>12} {'free kept MB':>13}")
    rows = (("DataLoader worker, tuned (default)", "1", "", {}),
            ("DataLoader worker, CENTERTARGETS_TUNE_MALLOC=0", "1", "",
             {"CENTERTARGETS_TUNE_MALLOC": "0"}),
            ("main process, num_workers=0 (left alone)", "0", "", {}),
            ("main process, memory.tune_malloc() called", "0", "tune", {}))
    for label, workers, explicit, env in rows:
        runs = [_run(_WORKER, str(args.items), workers, explicit or "no", **env)
                for _ in range(args.repeat)]
        ms = sorted(r["ms"] for r in runs)
        faults = sorted(r["faults"] for r in runs)
        free = sorted(r["free_mb"] for r in runs)
        print(f"  {label:<46} {ms[0]:>5.2f}-{ms[-1]:<5.2f} {faults[0]:>5.0f}-{faults[-1]:<6.0f} "
              f"{free[0]:>6.1f}-{free[-1]:<6.1f}")
    print("Main process, 8 threads allocating and freeing 1-8 MB blocks, resident memory kept "
          "at idle:")
    for label, mode in (("as the dataset leaves it", "default"),
                        ("had it been tuned", "tuned")):
        kept = sorted(_run(_THREADS, mode)["kept_mb"] for _ in range(args.repeat))
        print(f"  {label:<46} +{kept[0]:.0f} to +{kept[-1]:.0f} MB")


if __name__ == "__main__":
    main()
