"""Robustness: no hang, no stale-cache crash, no out-of-bounds config, no needless recompiles."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from centertargets import (AugmentConfig, CenterNetDataset, CocoDataset, CtdetConfig,
                           DddConfig, ExdetConfig, ExdetEncoder, MultiPoseConfig,
                           MultiPoseEncoder, RadiusConfig)
from centertargets.tasks.multi_pose import encode_multi_pose
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


@pytest.mark.parametrize("damage", ["garble", "empty", "truncate", "flip", "object_code"])
def test_a_corrupt_numba_cache_is_reset_with_one_warning(damage, tmp_path):
    assert _encode_in_fresh_process(tmp_path) == (1.0, "")            # fills the cache
    files = sorted(p for p in tmp_path.rglob("*") if p.suffix in (".nbi", ".nbc"))
    assert files
    rng = np.random.default_rng(5)
    for p in files:
        data = p.read_bytes()
        if damage == "garble":
            p.write_bytes(data[:7] + b"\x00garbage")
        elif damage == "empty":
            p.write_bytes(b"")
        elif damage == "truncate":
            p.write_bytes(data[:len(data) // 2])
        elif damage == "flip":                                        # one flipped byte
            i = len(data) // 3
            p.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:])
        elif p.suffix == ".nbc":      # bytes garbled inside the compiled object code, the
            b = bytearray(data)       # pickle around it intact: LLVM aborted (SIGABRT, rc -6)
            elf, bitcode = data.find(b"\x7fELF"), data.find(b"BC\xc0\xde")
            assert 0 < elf < bitcode - 200, "no object code before the bitcode in the file"
            for i in rng.integers(elf + 64, bitcode - 100, 32):
                b[i] = int(rng.integers(0, 256))
            p.write_bytes(bytes(b))
    peak, warned = _encode_in_fresh_process(tmp_path)
    assert peak == 1.0                                                # never a crash
    assert "could not be read" in warned and str(tmp_path) in warned
    assert warned.count("centertargets: the numba cache") == 1        # one warning
    assert _encode_in_fresh_process(tmp_path) == (1.0, "")            # rebuilt: clean again


# A process whose cache index is cut short by someone else while it runs, then compiles a new
# specialisation (numba reads the index back before saving): that used to raise from the save.
_INDEX_CHANGED = r"""
import sys, warnings
from pathlib import Path
import numpy as np
from centertargets.kernels import validate
cache = validate.check_classes._cache
load = cache.load_overload

def load_then_damage(*args):
    # another process cuts the index short while this one compiles
    got = load(*args)
    for p in Path(sys.argv[1]).rglob("*check_classes*.nbi"):
        p.write_bytes(p.read_bytes()[:40])
    return got

cache.load_overload = load_then_damage
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    a = validate.check_classes(np.array([0, 5, 1], np.int64), 3)
    b = validate.check_classes(np.array([0, 1, 7], np.int32), 3)
print(a, b, "|", " ".join(str(x.message) for x in w))
"""

# Cache writes that fail as on a full disk: the file-size limit makes every write past 1 byte
# fail with EFBIG (SIGXFSZ ignored, as a full disk's ENOSPC is an error, not a signal).
_FULL_DISK = r"""
import resource, signal, warnings
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1, 1))
import numpy as np
from centertargets import CtdetConfig, CtdetEncoder
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    t = CtdetEncoder(CtdetConfig(output_size=(16, 16), num_classes=2)).encode(
        np.array([[2, 2, 9, 9]], np.float32), [1])
print(float(t["hm"][1].max()), "|", " ".join(str(x.message) for x in w))
"""


def _fresh(code: str, cache_dir, *args: str) -> tuple[str, str]:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    env.pop("CENTERTARGETS_NUMBA_CACHE", None)
    res = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, (res.returncode, res.stderr[-2000:])
    got, _, warned = res.stdout.strip().splitlines()[-1].partition("|")
    return got.strip(), warned.strip()


def test_an_index_damaged_under_a_running_process_is_rewritten(tmp_path):
    got, warned = _fresh(_INDEX_CHANGED, tmp_path, str(tmp_path))
    assert got == "1 2"
    assert "could not be" in warned and warned.count("centertargets: the numba cache") == 1
    got, warned = _fresh(_INDEX_CHANGED, tmp_path, str(tmp_path))    # and the cache still works
    assert got == "1 2"


def test_a_cache_that_cannot_be_written_warns_once_and_runs_uncached(tmp_path):
    got, warned = _fresh(_FULL_DISK, tmp_path)
    assert got == "1.0"
    assert "could not be written" in warned and "uncached" in warned
    assert warned.count("centertargets: the numba cache") == 1


class _Remapped(CocoDataset):
    """A subclass that remaps categories after loading (as users do), here past the config."""

    shift = 1

    def image(self, image_id):
        import dataclasses

        ann = super().image(image_id)
        return dataclasses.replace(ann, classes=ann.classes + self.shift)


@pytest.mark.parametrize("shift, task", [(1, "ctdet"), (4999, "ctdet"), (-1, "ctdet"),
                                         (1, "multi_pose"), (5000, "multi_pose")])
def test_a_class_changed_after_loading_never_reaches_the_map(shift, task):
    data = to_coco([person_scene(0, 3), person_scene(1, 2)])       # one category: person
    coco = _Remapped(data)
    coco.shift = shift
    cfg = CtdetConfig(output_size=(32, 32), num_classes=1) if task == "ctdet" else \
        MultiPoseConfig(output_size=(32, 32))
    ds = CenterNetDataset(coco, cfg)
    ann = coco[1]
    with pytest.raises(ValueError) as info:
        ds[1]
    msg = str(info.value)
    assert f"image id={ann.image_id}" in msg and f"annotation id={int(ann.ann_ids[0])}" in msg
    assert f"class {shift}: expected a class index in [0, 1)" in msg


_FAR_CLASS = r"""
import sys
sys.path.insert(0, "tests")
from test_robustness import _Remapped, _remapped_item
try:
    _remapped_item(5000)
except ValueError as exc:
    print("refused:", exc)
"""


def _remapped_item(shift):
    coco = _Remapped(to_coco([person_scene(0, 3)]))
    coco.shift = shift
    return CenterNetDataset(coco, MultiPoseConfig(output_size=(32, 32)))[0]


def test_a_class_far_past_the_map_is_refused_not_a_crash():
    # before the kernels checked classes, this process died of SIGSEGV (rc -11)
    res = subprocess.run([sys.executable, "-c", _FAR_CLASS], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, (res.returncode, res.stderr[-2000:])
    assert "refused:" in res.stdout and "class 5000: expected a class index" in res.stdout


def test_the_kernels_refuse_a_bad_class_in_any_slot_and_write_nothing():
    from centertargets import Annotations, ClassIndexError, CtdetEncoder

    enc = CtdetEncoder(CtdetConfig(output_size=(16, 16), num_classes=2, max_objs=2))
    boxes = np.array([[1, 1, 6, 6], [2, 2, 9, 9], [3, 3, 8, 8]], np.float32)
    for classes, bad in (([0, 2, 1], 1), ([0, 1, -7], 2), ([9, 0, 0], 0)):   # slot 2: dropped
        out = {k: s.zeros() + 3 for k, s in enc.spec.items()}
        with pytest.raises(ClassIndexError) as info:
            enc.encode_prepared(Annotations(boxes, np.array(classes, np.int64)), out=out)
        assert info.value.index == bad and info.value.value == classes[bad]
        assert out["hm"].max() == 0 and out["reg_mask"].max() == 0    # zeroed, nothing drawn


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
    n_sigs = len(encode_multi_pose.signatures)
    back = pickle.loads(pickle.dumps(enc))
    assert not back._heat["table"].flags.writeable           # the process's read-only tables
    boxes.flags.writeable = False
    kps.flags.writeable = False
    got = back.encode(boxes, kps)
    assert len(encode_multi_pose.signatures) == n_sigs      # nothing compiled anew
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])


@pytest.mark.parametrize("boxes, classes, match", [
    (np.zeros((3, 0)), None, r"boxes has shape \(3, 0\): expected \(N, 4\)"),
    (np.array([[1, 1, 5, 5j]]), [0], "boxes has dtype complex128: expected real numbers"),
    ("1, 2, 3, 4", [0], "boxes is str: expected an array of numbers"),
    ({"x": 1}, [0], "boxes is dict: expected an array of numbers"),
    ([[1, 2, 3, 4], [1, 2]], [0, 0], "boxes cannot be made an array"),
    ([[1, 1, 5, 5]], [np.inf], r"classes\[0\]=inf: expected a class index, an integer in \[0, 3\)"),
    ([[1, 1, 5, 5]], [1e20], r"classes\[0\]=1e\+20: expected a class index"),
    ([[1, 1, 5, 5]], np.array([2 ** 63 - 1]), r"classes\[0\]=9223372036854775807"),
    ([[1, 1, 5, 5]], [1.5], r"classes\[0\]=1.5"),
])
def test_encoder_inputs_are_named_in_errors(boxes, classes, match):
    from centertargets import CtdetEncoder

    enc = CtdetEncoder(CtdetConfig(output_size=(16, 16), num_classes=3))
    with pytest.raises((ValueError, TypeError), match=match):
        enc.encode(boxes, classes)


def test_torch_tensors_are_taken_and_empty_keypoints_must_fit():
    import torch

    enc = MultiPoseEncoder(MultiPoseConfig(output_size=(16, 16), num_joints=3, flip_idx=()))
    boxes = torch.tensor([[1.0, 1.0, 9.0, 9.0]], requires_grad=True)
    kps = torch.ones(1, 3, 3, dtype=torch.bfloat16)
    t = enc.encode(boxes, kps)
    assert t["hm"].max() == 1.0 and t["hps_mask"].sum() == 6
    with pytest.raises(ValueError, match=r"keypoints has shape \(0, 4, 3\): expected \(0, 3, 3\)"):
        enc.encode(np.zeros((0, 4)), np.zeros((0, 4, 3)))


def test_out_buffers_are_checked_before_any_is_touched():
    from centertargets import CtdetEncoder

    enc = CtdetEncoder(CtdetConfig(output_size=(8, 8), num_classes=1, max_objs=4))
    out = {k: s.zeros() + 7 for k, s in enc.spec.items()}
    out["reg"] = out["wh"]                                  # aliased
    with pytest.raises(ValueError, match=r"out\['wh'\] and out\['reg'\] share memory"):
        enc.encode([[1, 1, 5, 5]], [0], out=out)
    assert (out["hm"] == 7).all()                           # nothing zeroed
    out["reg"] = np.zeros((4, 3), np.float32)               # wrong shape
    with pytest.raises(ValueError, match=r"out\['reg'\] is \(\(4, 3\)"):
        enc.encode([[1, 1, 5, 5]], [0], out=out)
    assert (out["hm"] == 7).all()


def test_losses_name_empty_and_mismatched_batches(rng):
    import torch

    from centertargets.losses import MultiPoseLoss

    cfg = MultiPoseConfig(output_size=(16, 16), max_objs=4)
    t = MultiPoseEncoder(cfg).encode(np.array([[2, 2, 10, 12]], np.float32), np.ones((1, 17, 3)))
    batch = {k: torch.from_numpy(np.stack([v, v])) for k, v in t.items()}
    out = {n: torch.zeros(h.shape(2)) for n, h in cfg.head_spec().items()}
    with pytest.raises(ValueError, match="batch holds 0 samples"):
        MultiPoseLoss(cfg)({n: v[:0] for n, v in out.items()}, {k: v[:0] for k, v in batch.items()})
    bad = dict(batch, ind=batch["ind"][:1])
    with pytest.raises(ValueError, match=r"batch sizes differ: .*'hm': 2.*'ind': 1"):
        MultiPoseLoss(cfg)(out, bad)


def test_msra_sigma_must_be_a_whole_number():
    with pytest.raises(ValueError, match="an integer >= 1 with heatmap='msra': upstream's "
                                         "draw_msra_gaussian truncates"):
        CtdetConfig(heatmap="msra", msra_sigma=2.5)
    with pytest.raises(ValueError, match="msra_sigma=0.5"):
        MultiPoseConfig(heatmap="msra", msra_sigma=0.5)
    assert CtdetConfig(msra_sigma=2.5).msra_sigma == 2.5     # unused by the umich heatmap


def test_seeded_fuzz_of_the_encoders_keeps_every_invariant():
    import fuzz_encoders

    counts = fuzz_encoders.run(400, seed=0)
    assert counts["encoded"] > 250 and counts["refused"] > 10


def _catalogue():
    """Every bad input of the robustness issue: (label, call, exception, message fragment)."""
    import json as _json

    import torch

    from centertargets import CtdetEncoder
    from centertargets.decode import CtdetDecoder, topk
    from centertargets.losses import CtdetLoss, LossOptions, MultiPoseLoss
    from centertargets.losses import functional as LF

    cfg = CtdetConfig(output_size=(16, 16), num_classes=3, max_objs=4)
    enc = CtdetEncoder(cfg)
    t = enc.encode([[2, 2, 9, 9]], [1])
    batch = {k: torch.from_numpy(np.stack([v, v])) for k, v in t.items()}
    out = {n: torch.full(h.shape(2), -1.0) for n, h in cfg.head_spec().items()}   # logits
    pose = MultiPoseConfig(output_size=(16, 16), num_joints=3, flip_idx=())
    coco = to_coco([person_scene(0, 2)])

    files = Path(tempfile.mkdtemp())
    (files / "junk.jpg").write_bytes(b"\x00" * 64)

    def item_of(file_name, **kwargs):
        d = to_coco([person_scene(0, 2)])
        d["images"][0]["file_name"] = file_name
        return lambda: CenterNetDataset(CocoDataset(d), pose.replace(num_joints=17),
                                        image_root=files, **kwargs)[0]

    def coco_with(mutate):
        d = _json.loads(_json.dumps(coco))
        mutate(d)
        return lambda: CocoDataset(d)

    return [
        ("image without size, training", lambda: AugmentConfig(train=True).sample(
            np.random.default_rng(0), 0, 10), ValueError, "image size 0x10"),
        ("output width 2^24 + 1", lambda: CtdetConfig(output_size=(2 ** 24 + 1, 1)), ValueError,
         "float32 coordinates are exact up to 2^24"),
        ("min_radius 2^62", lambda: RadiusConfig(min_radius=2 ** 62), ValueError,
         "min_radius=4611686018427387904"),
        ("fractional MSRA sigma", lambda: CtdetConfig(heatmap="msra", msra_sigma=2.5), ValueError,
         "an integer >= 1 with heatmap='msra'"),
        ("class id inf", lambda: enc.encode([[1, 1, 5, 5]], [np.inf]), ValueError,
         "classes[0]=inf"),
        ("class id 1e20", lambda: enc.encode([[1, 1, 5, 5]], [1e20]), ValueError,
         "classes[0]=1e+20"),
        ("class id 2^63 - 1", lambda: enc.encode([[1, 1, 5, 5]], np.array([2 ** 63 - 1])),
         ValueError, "classes[0]=9223372036854775807"),
        ("boxes (N, 0)", lambda: enc.encode(np.zeros((2, 0)), [0, 0]), ValueError,
         "boxes has shape (2, 0)"),
        ("boxes a dict", lambda: enc.encode({"a": 1}, [0]), TypeError, "boxes is dict"),
        ("boxes a string", lambda: enc.encode("box", [0]), TypeError, "boxes is str"),
        ("boxes ragged", lambda: enc.encode([[1, 2, 3, 4], [1]], [0, 0]), ValueError,
         "boxes cannot be made an array"),
        ("boxes complex", lambda: enc.encode(np.ones((1, 4), complex), [0]), TypeError,
         "boxes has dtype complex128"),
        ("keypoints (0, J+1, 3)", lambda: MultiPoseEncoder(pose).encode(
            np.zeros((0, 4)), np.zeros((0, 4, 3))), ValueError, "keypoints has shape (0, 4, 3)"),
        ("aliased out buffers", lambda: enc.encode([[1, 1, 5, 5]], [0], out=_aliased(enc)),
         ValueError, "share memory"),
        ("norm_wh with dense_wh", lambda: CtdetLoss(CtdetConfig(dense_wh=True),
                                                    LossOptions(norm_wh=True)), ValueError,
         "norm_wh=True with CtdetConfig(dense_wh=True)"),
        ("numpy outputs to a loss", lambda: CtdetLoss(cfg)(dict(out, hm=np.zeros((2, 3, 16, 16))),
                                                          batch), TypeError,
         "outputs['hm'] is ndarray"),
        ("corrupt ind", lambda: CtdetLoss(cfg)(out, dict(batch, ind=batch["ind"] + 10 ** 6)),
         ValueError, "ind holds"),
        ("batch of 0", lambda: CtdetLoss(cfg)({k: v[:0] for k, v in out.items()},
                                              {k: v[:0] for k, v in batch.items()}),
         ValueError, "batch holds 0 samples"),
        ("mismatched batch sizes", lambda: CtdetLoss(cfg)(out, dict(batch, ind=batch["ind"][:1])),
         ValueError, "batch sizes differ"),
        ("wh map smaller than hm", lambda: CtdetLoss(cfg)(dict(out, wh=torch.zeros(2, 2, 8, 8)),
                                                          batch), ValueError,
         "outputs['wh'] has shape (2, 2, 8, 8)"),
        ("missing head", lambda: CtdetLoss(cfg)({k: v for k, v in out.items() if k != "wh"},
                                                batch), ValueError, "outputs has no head 'wh'"),
        ("K = 0", lambda: CtdetDecoder(cfg, K=0), ValueError, "K=0"),
        ("K = -1 in topk", lambda: topk(torch.zeros(1, 1, 4, 4), -1), ValueError, "K=-1"),
        ("decode without reg", lambda: CtdetDecoder(cfg)({k: v for k, v in out.items()
                                                          if k != "reg"}), ValueError,
         "outputs has no head 'reg'"),
        ("COCO annotation without category_id", coco_with(
            lambda d: d["annotations"][0].pop("category_id")), ValueError,
         "annotations id=1: category_id=None"),
        ("COCO image without id", coco_with(lambda d: d["images"][0].pop("id")), ValueError,
         "images: id=None: expected an integer"),
        ("COCO duplicate image ids", coco_with(
            lambda d: d["images"].append(dict(d["images"][0]))), ValueError,
         "two entries with id=1"),
        ("COCO bbox 1e300", coco_with(lambda d: d["annotations"][0].update(
            bbox=[0, 0, 1e300, 4])), ValueError, "annotation id=1 bbox=[0, 0, 1e+300, 4]"),
        ("COCO annotation id inf (found by fuzz_coco)", coco_with(
            lambda d: d["annotations"][0].update(id=float("inf"))), ValueError,
         "annotations: id=inf: expected an integer"),
        ("COCO labelled joint at NaN", coco_with(lambda d: d["annotations"][0]["keypoints"]
                                                 .__setitem__(0, float("nan"))), ValueError,
         "expected finite x, y of at most 1e7 for labelled"),
        ("COCO iscrowd text", coco_with(lambda d: d["annotations"][0].update(iscrowd="yes")),
         ValueError, "annotation id=1 has iscrowd='yes': expected 0 or 1"),
        ("COCO file_name a number", coco_with(lambda d: d["images"][0].update(file_name=7)),
         ValueError, "image id=1 has file_name=7: expected a path"),
        ("COCO width 1e300", coco_with(lambda d: d["images"][0].update(width=1e300)),
         ValueError, "image id=1 width=1e+300: expected an integer in [1, 1e7]"),
        ("focal loss on probabilities, fast without hp_ind", lambda: MultiPoseLoss(
            pose.replace(reg_hp_offset=False), LossOptions(focal="fast")), ValueError,
         "reg_hp_offset=False"),
        ("class changed after loading (a remapping subclass)", lambda: _remapped_item(1),
         ValueError, "annotation id=1 (category_id=1): class 1: expected a class index in [0, 1)"),
        ("file_name leading outside image_root", item_of("../etc/passwd"), ValueError,
         "file_name='../etc/passwd', which leads outside image_root"),
        ("an image file that does not decode", item_of("junk.jpg"), ValueError,
         "exists (64 bytes) but cannot be decoded"),
        ("an item over max_item_bytes", item_of("junk.jpg", max_item_bytes=1000), ValueError,
         "expected at most max_item_bytes=1000"),
        ("exdet annotation without four extreme points", lambda: CenterNetDataset(
            CocoDataset({"images": [{"id": 1, "file_name": "a.jpg", "width": 9, "height": 9}],
                         "annotations": [{"id": 7, "image_id": 1, "category_id": 1,
                                          "bbox": [1, 1, 4, 4],
                                          "extreme_points": [[2, 1], [1, 2], [2, 5]]}],
                         "categories": [{"id": 1, "name": "thing"}]}),
            ExdetConfig(output_size=(8, 8), num_classes=1)), ValueError,
         "annotation id=7 extreme_points=[[2, 1], [1, 2], [2, 5]]: expected 4 points"),
        ("exdet points of the wrong shape", lambda: ExdetEncoder(ExdetConfig(num_classes=1))
         .encode(np.zeros((1, 3, 2)), [0]), ValueError, "points has shape (1, 3, 2)"),
        ("ddd annotation without depth", lambda: CenterNetDataset(
            CocoDataset(_ddd_with(lambda d: d["annotations"][0].pop("depth"))), DddConfig()),
         ValueError, "annotation id=1 depth=None: expected the depth in metres"),
        ("ddd calib that is not 3x4", lambda: CenterNetDataset(
            CocoDataset(_ddd_with(lambda d: d["images"][0].update(calib=[[1, 0, 0]]))),
            DddConfig()), ValueError, "image id=1 calib=[[1, 0, 0]]: expected the camera's 3x4"),
        ("ddd category without a class", lambda: DddConfig(category_map=((1, 0), (2, -9))),
         ValueError, "category 2 maps to -9"),
        ("positions beyond the map in the functional gather", lambda: LF.transpose_and_gather(
            torch.zeros(1, 2, 4, 4), torch.tensor([[16]])), ValueError, "ind holds 16"),
    ]


def _ddd_with(mutate):
    from centertargets.synthetic import ddd_coco

    d = ddd_coco(num_images=1, num_objects=2, seed=0)
    mutate(d)
    return d


def _aliased(enc):
    out = {k: s.zeros() for k, s in enc.spec.items()}
    out["reg"] = out["wh"]
    return out


def test_bad_input_catalogue():
    for label, call, exc, fragment in _catalogue():
        with pytest.raises(exc) as info:
            call()
        assert fragment in str(info.value), f"{label}: {info.value}"


def test_seeded_fuzz_of_losses_and_decoders_stays_finite_and_in_range():
    import fuzz_losses

    counts = fuzz_losses.run(60, seed=3)
    assert counts["cases"] == 60 and min(counts[k] for k in ("float32", "float16", "bfloat16")) > 0


def test_seeded_fuzz_of_the_coco_loader_names_every_refusal_and_keeps_the_invariants():
    import fuzz_coco

    counts = fuzz_coco.run(300, seed=0)
    assert counts["loaded"] > 100 and counts["refused"] > 100 and counts["items"] > 150
