"""Robustness: no hang, no stale-cache crash, no out-of-bounds config, no needless recompiles."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from centertargets import (AugmentConfig, CenterNetDataset, CocoDataset, CtdetConfig,
                           MultiPoseConfig, MultiPoseEncoder, RadiusConfig)
from centertargets.kernels import encode as K
from centertargets.synthetic import person_scene, to_coco

from conftest import ROOT

_ENCODE = r"""
import warnings, numpy as np
from centertargets import CtdetConfig, CtdetEncoder
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    t = CtdetEncoder(CtdetConfig(output_size=(16, 16), num_classes=2)).encode(
        np.array([[2, 2, 9, 9]], np.float32), [1])
print(float(t["hm"][1].max()), "|", " ".join(str(x.message) for x in w))
"""


def _encode_in_fresh_process(cache_dir) -> tuple[float, str]:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    env.pop("CENTERTARGETS_NUMBA_CACHE", None)
    res = subprocess.run([sys.executable, "-c", _ENCODE], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    peak, _, warned = res.stdout.strip().splitlines()[-1].partition("|")
    return float(peak), warned.strip()


def test_a_corrupt_numba_cache_is_reset_with_one_warning(tmp_path):
    assert _encode_in_fresh_process(tmp_path) == (1.0, "")            # fills the cache
    files = sorted(p for p in tmp_path.rglob("*") if p.suffix in (".nbi", ".nbc"))
    assert files
    for p in files:                                                     # garble every file
        p.write_bytes(p.read_bytes()[:7] + b"\x00garbage")
    peak, warned = _encode_in_fresh_process(tmp_path)
    assert peak == 1.0
    assert "could not be read" in warned and str(tmp_path) in warned
    assert _encode_in_fresh_process(tmp_path) == (1.0, "")            # rebuilt: clean again


def test_images_without_a_size_do_not_hang_training_augmentation():
    data = to_coco([person_scene(0, 2)])
    data["images"][0]["width"] = 0
    ds = CenterNetDataset(CocoDataset(data), MultiPoseConfig(output_size=(16, 16)),
                          augment=AugmentConfig(train=True))
    with pytest.raises(ValueError, match="has no width/height in the json"):
        ds[0]
    with pytest.raises(ValueError, match="image size 0x480: expected width and height >= 1"):
        AugmentConfig(train=True).sample(np.random.default_rng(0), 0, 480)


@pytest.mark.parametrize("kwargs, match", [
    (dict(output_size=(2 ** 24 + 1, 4)), r"ints in \[1, 16777216\] \(float32 coordinates"),
    (dict(radius=RadiusConfig(min_radius=200)), "min_radius <= 128, the map's larger side"),
    (dict(msra_sigma=1e6), r"a number in \(0, 128\]"),
    (dict(elliptic_alpha=50.0), r"a number in \(0, 10\]"),
    (dict(num_classes=2.0), "expected an int"),
])
def test_configs_refuse_what_the_map_or_float32_cannot_hold(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CtdetConfig(**kwargs)
    with pytest.raises(ValueError, match="RadiusConfig.min_radius=4611686018427387904"):
        RadiusConfig(min_radius=2 ** 62)


def test_configs_take_numpy_scalars():
    cfg = MultiPoseConfig(output_size=(np.int64(64), np.int32(48)), max_objs=np.int64(8),
                          num_joints=np.int16(17), msra_sigma=np.float32(2.0))
    assert cfg.output_size == (64, 48) and type(cfg.max_objs) is int
    assert type(cfg.msra_sigma) is float
    assert hash(cfg) == hash(pickle.loads(pickle.dumps(cfg)))


def test_unpickled_encoders_and_read_only_inputs_reuse_the_compiled_kernel(rng):
    enc = MultiPoseEncoder(MultiPoseConfig(output_size=(24, 24)))
    boxes = np.array([[2, 2, 12, 14]], np.float32)
    kps = np.ones((1, 17, 3), np.float32)
    want = enc.encode(boxes, kps)
    n_sigs = len(K.encode_multi_pose.signatures)
    back = pickle.loads(pickle.dumps(enc))
    assert not back._heat["table"].flags.writeable           # the process's read-only tables
    boxes.flags.writeable = False
    kps.flags.writeable = False
    got = back.encode(boxes, kps)
    assert len(K.encode_multi_pose.signatures) == n_sigs      # nothing compiled anew
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
