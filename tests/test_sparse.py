"""Sparse heatmaps (``heatmaps="sparse"``): draw lists out of the encoders, rendered bit for bit.

The contract: for every configuration, the maps rendered from ``draws`` (numpy's reference
renderer and torch's batch renderer) equal the dense encoder's maps exactly, and every other
target and the report are the dense encoder's too.
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import torch

from centertargets import (AugmentConfig, CenterNetDataset, CocoDataset, CtdetConfig, DddConfig,
                           MultiPoseConfig, RadiusConfig, sparse)
from centertargets.compare import load_fixture
from centertargets.compat import centernet, centertrack
from centertargets.device import DeviceFeed, normalize_batch, render_heatmaps
from centertargets.encoders import Annotations
from centertargets.synthetic import detection_scene, person_scene, to_coco
from centertargets.tasks import make_encoder
from centertargets.tasks.tracking import TrackingConfig

from conftest import need_reference, reference_files, supported


def _quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)       # a dense fallback's warning
        return fn(*args, **kw)


def _both_renderers(sparse_targets, config):
    """Each renderer's dense targets: numpy's one sample, torch's as a batch of one."""
    by_numpy = sparse.render(sparse_targets, config)
    batch = {k: torch.as_tensor(np.asarray(v))[None] for k, v in sparse_targets.items()}
    by_scatter = {k: v[0].numpy() for k, v in
                  render_heatmaps(batch, config, method="scatter").items()}
    return by_numpy, by_scatter


def _assert_same(dense, rendered, what):
    assert set(rendered) == set(dense), what
    for k, want in dense.items():
        got = np.asarray(rendered[k])
        assert got.dtype == want.dtype and got.shape == want.shape, (what, k)
        np.testing.assert_array_equal(got, want, err_msg=f"{what}: {k}")


@pytest.mark.parametrize("path", reference_files(supported()))
def test_every_centernet_fixture_renders_bit_for_bit(path):
    """Each scene fixture through the sparse encoder, rendered, equals the dense encoder's
    targets (which test_reference holds to upstream's), and upstream's own maps."""
    meta, expected = load_fixture(need_reference(path))
    dense, dense_report = centernet.encode_sample_with_report(meta)
    got, report = _quiet(centernet.encode_sample_with_report, meta, "sparse")
    assert report.as_dict() == dense_report.as_dict()
    config = _quiet(centernet.config_from_meta(meta).replace, heatmaps="sparse")
    maps = config.sparse_layout().maps
    if maps:                                   # recorded, not the dense fallback
        assert "draws" in got and not set(maps) & set(got), sorted(got)
    else:
        assert "_dense_" in path.stem, config.sparse_layout()
    for name, rendered in zip(("replay", "scatter"), _both_renderers(got, config)):
        _assert_same(dense, rendered, f"{path.stem} ({name})")
        for k in config.sparse_layout().maps:
            np.testing.assert_allclose(rendered[k], expected[k], rtol=1e-6, atol=1e-5)


def _check_sparse_equals_dense(config, samples, also=None):
    """Each of ``samples`` (Annotations) through ``config``'s dense and sparse encoders: the
    reports agree, ``also(dense_encoder, sparse_encoder)`` holds, the sparse targets rendered
    (numpy) are the dense ones; then all of them as one batch, by both torch methods."""
    sc = config.replace(heatmaps="sparse")
    dense_enc, sparse_enc = make_encoder(config), make_encoder(sc)
    dense, got = [], []
    for i, a in enumerate(samples):
        d, rd = dense_enc.encode_annotations(a)
        s, rs = sparse_enc.encode_annotations(a)
        assert rs.as_dict() == rd.as_dict()
        if also is not None:
            also(dense_enc, sparse_enc)
        _assert_same(d, sparse.render(s, sc), f"sample {i}")
        dense.append(d)
        got.append(s)
    batch = {k: torch.as_tensor(np.stack([s[k] for s in got])) for k in got[0]}
    want = {k: np.stack([d[k] for d in dense]) for k in dense[0]}
    for method in ("auto", "scatter"):
        rendered = render_heatmaps(batch, sc, method=method)
        _assert_same(want, {k: v.numpy() for k, v in rendered.items()}, method)


@pytest.mark.parametrize("path", reference_files(("track_",)))
def test_every_tracking_fixture_renders_bit_for_bit(path):
    """Each CenterTrack fixture's sample with heatmaps='sparse', rendered by both renderers,
    equals the dense sample (which test_reference holds to upstream's): ``hm``, ``hm_hp`` and
    the input-resolution ``pre_hm``, every other target and the previous centres."""
    meta, expected = load_fixture(need_reference(path))
    dense = centertrack.replay(meta)
    item = centertrack.replay(meta, heatmaps="sparse")
    config = centertrack.config_from_meta(meta).replace(heatmaps="sparse")
    maps = config.sparse_layout().maps
    assert "draws" in item and not set(maps) & set(item), sorted(item)
    for k in ("pre_cts", "pre_track_ids", "pre_status", "pre_fp"):
        np.testing.assert_array_equal(item["meta"][k], dense["meta"][k])
    got = {k: v for k, v in item.items() if k != "meta"}
    want = {k: v for k, v in dense.items() if k != "meta"}
    for name, rendered in zip(("replay", "scatter"), _both_renderers(got, config)):
        _assert_same(want, rendered, f"{path.stem} ({name})")
        for k in maps:
            if k in expected:
                np.testing.assert_array_equal(rendered[k], expected[k])


def _random_tracking(rng, config):
    """Current objects with every kind of class code (ignore 0 / -c, skipped > C), crowds,
    degenerate and off-map boxes, joints of each visibility; previous objects with disturbed
    centres, losses and false positives."""
    W, H = config.output_size
    C, J = config.num_classes, config.num_joints
    n, P = int(rng.integers(0, 30)), int(rng.integers(0, 20))
    xy = rng.uniform(-0.2, 1.1, (n, 2)) * (W, H)
    wh = rng.uniform(0, 0.5, (n, 2)) * (W, H) * (rng.random((n, 1)) < 0.9)
    boxes = np.concatenate([xy, xy + wh], 1)
    classes = rng.choice(np.array([0, -1, C + 1, -999] + list(range(1, C + 1))), n,
                         p=None if C < 1 else [0.08, 0.04, 0.04, 0.04] +
                         [0.8 / C] * C)
    track = np.where(rng.random(n) < 0.8, rng.integers(1, 15, n), np.nan)
    pxy = rng.uniform(-0.2, 1.1, (P, 2)) * config.input_size
    pwh = rng.uniform(0, 0.5, (P, 2)) * config.input_size
    disturb = np.concatenate([rng.normal(0, 1, (P, 2)), rng.random((P, 2)),
                              rng.normal(0, 1, (P, 2))], 1)
    extras = {"track": track, "crowd": rng.random(n) < 0.05,
              "pre_boxes": np.concatenate([pxy, pxy + pwh], 1), "pre_track": rng.integers(
                  1, 15, P).astype(np.float64), "pre_classes": rng.integers(1, C + 1, P),
              "pre_disturb": disturb}
    kps = None
    if J:
        kps = np.concatenate([rng.uniform(-0.1, 1.1, (n, J, 2)) * (W, H),
                              rng.integers(0, 3, (n, J, 1))], 2)
    return Annotations(boxes, classes, kps, extras=extras)


TRACKING_CONFIGS = [
    TrackingConfig(output_size=(48, 40), num_classes=3, max_objs=24, max_pre_objs=24,
                   hm_disturb=0.05, lost_disturb=0.4, fp_disturb=0.3),
    TrackingConfig(output_size=(40, 40), num_classes=1, num_joints=5, max_objs=16,
                   max_pre_objs=20, fp_disturb=0.5, lost_disturb=0.2, hm_disturb=0.1,
                   outside_ignore="strip"),
    TrackingConfig(output_size=(32, 48), num_classes=2, pre_hm=False, max_objs=12,
                   radius=RadiusConfig(min_radius=40)),
]


@pytest.mark.parametrize("config", TRACKING_CONFIGS, ids=["det", "pose", "no_pre_hm"])
def test_random_tracking_samples_render_to_the_dense_targets(config, threads):
    rng = np.random.default_rng(config.max_objs)

    def same_previous_centres(dense_enc, sparse_enc):
        for k, v in dense_enc.last_pre.items():
            np.testing.assert_array_equal(sparse_enc.last_pre[k], v)

    _check_sparse_equals_dense(config, [_random_tracking(rng, config) for _ in range(12)],
                               same_previous_centres)


def test_sparse_tracking_refuses_more_previous_objects_than_its_draw_list_holds():
    cfg = TrackingConfig(output_size=(32, 32), max_pre_objs=2, heatmaps="sparse")
    a = Annotations(np.zeros((0, 4)), np.zeros(0), extras={
        "pre_boxes": np.tile([[1.0, 1.0, 9.0, 9.0]], (3, 1))})
    with pytest.raises(ValueError, match="3 previous-frame objects.*max_pre_objs=2"):
        make_encoder(cfg).encode_annotations(a)
    assert make_encoder(cfg.replace(heatmaps="dense")).encode_annotations(a)[0]["pre_hm"].max() \
        == 1.0


def _random_annotations(rng, config, rotated=False):
    n = int(rng.integers(0, 40))
    W, H = config.output_size
    xy = rng.uniform(-0.2, 1.1, (n, 2)) * (W, H)
    wh = rng.uniform(0, 0.5, (n, 2)) * (W, H) * (rng.random((n, 1)) < 0.9)  # some degenerate
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    classes = rng.integers(0, config.num_classes, n)
    if config.task == "ctdet":
        return Annotations(boxes, classes)
    J = config.num_joints
    xyj = rng.uniform(-0.1, 1.1, (n, J, 2)) * (W, H)
    v = rng.integers(0, 3, (n, J, 1)) * (rng.random((n, 1, 1)) < 0.7)      # persons without
    return Annotations(boxes, classes, np.concatenate([xyj, v], 2).astype(np.float32), rotated)


CONFIGS = [
    *(CtdetConfig(output_size=(96, 72), num_classes=4, heatmap=h) for h in
      ("umich", "msra", "elliptic", "mmdet")),
    CtdetConfig(output_size=(64, 64), num_classes=3, radius=RadiusConfig("corrected")),
    CtdetConfig(output_size=(64, 64), num_classes=3, radius=RadiusConfig.mmdet(),
                heatmap="mmdet", cat_spec_wh=True, with_cat=True),
    CtdetConfig(output_size=(64, 56), num_classes=2, radius=RadiusConfig(min_radius=52)),
    *(MultiPoseConfig(output_size=(72, 96), num_joints=5, heatmap=h, no_keypoints=nk,
                      hm_hp=hp, rotation=rot)
      for h in ("umich", "msra") for nk in ("centernet", "ignore") for hp in (True, False)
      for rot in ("centernet", "corners")),
    MultiPoseConfig(output_size=(64, 64), num_classes=2, num_joints=3, heatmap="elliptic",
                    occluded_joints="ignore_in_hm_hp", max_objs=8),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.describe()[:60] + c.heatmap)
def test_random_batches_render_to_the_dense_targets(config, threads):
    """Random scenes (objects off the map, degenerate boxes, persons without keypoints, the
    rotation quirk, radii beyond the patch table, overflow), rendered as one batch."""
    rng = np.random.default_rng(len(config.describe()))
    _check_sparse_equals_dense(config, [_random_annotations(rng, config, rotated=i % 3 == 0)
                                        for i in range(10)])


def test_sparse_targets_are_small_and_name_their_maps():
    cfg = CtdetConfig(output_size=(128, 128), num_classes=80, heatmaps="sparse")
    spec = make_encoder(cfg).spec
    assert "hm" not in spec and spec["draws"].shape == (128, 8)
    assert sum(np.prod(s.shape) * s.dtype.itemsize for s in spec.values()) < 10_000
    assert cfg.dense_spec()["hm"].shape == (80, 128, 128)
    pose = MultiPoseConfig(heatmaps="sparse")
    assert pose.sparse_layout().maps == ("hm", "hm_hp")
    assert "hm_hp" not in pose.spec() and "hm_hp" in pose.dense_spec()


@pytest.mark.parametrize("config", [CtdetConfig(dense_wh=True), MultiPoseConfig(dense_hp=True),
                                    DddConfig(rect_mask=True, ignore_regions="keep_positives")],
                         ids=["dense_wh", "dense_hp", "ddd_rect_keep"])
def test_configs_that_read_their_maps_stay_dense_and_say_so(config):
    sc = config.replace(heatmaps="sparse")
    with pytest.warns(UserWarning, match="stay dense"):
        enc = make_encoder(sc)
    assert "hm" in enc.spec and "draws" not in enc.spec
    batch = {"hm": torch.ones(1)}
    assert render_heatmaps(batch, sc) == batch


def test_bad_draw_rows_are_refused_by_name():
    cfg = CtdetConfig(output_size=(16, 16), num_classes=2, max_objs=4, heatmaps="sparse")
    good = make_encoder(cfg).encode(np.array([[2, 2, 9, 9]], np.float32), np.array([1]))
    for col, value, what in ((0, 7, "op"), (1, 3, "map"), (2, 2, "channel"), (6, -1, "radius")):
        bad = good["draws"].copy()
        bad[0, col] = value
        with pytest.raises(ValueError, match=r"draws\[0\]=.*" + what):
            sparse.render(dict(good, draws=bad), cfg)
        with pytest.raises(ValueError, match=r"draws\[0, 0\]=.*" + what):
            render_heatmaps({"draws": torch.as_tensor(bad)[None]}, cfg)
    with pytest.raises(KeyError, match="no 'draws'"):
        render_heatmaps({"ind": torch.zeros(1, 4)}, cfg)
    with pytest.raises(ValueError, match=r"out\['hm'\]"):
        render_heatmaps({"draws": torch.as_tensor(good["draws"])[None]}, cfg,
                        out={"hm": torch.zeros(1, 2, 16, 15)})
    out = {"hm": torch.full((1, 2, 16, 16), 5.0)}           # reused buffers are zeroed first
    r = render_heatmaps({"draws": torch.as_tensor(good["draws"])[None]}, cfg, out=out)
    assert r["hm"] is out["hm"] and float(r["hm"].max()) == 1.0 and float(r["hm"][0, 0].sum()) == 0


def test_chunked_rendering_equals_one_pass(monkeypatch):
    """The renderer expands pixels in chunks; chunks of a few pixels give the same maps."""
    import centertargets.device as device

    cfg = MultiPoseConfig(output_size=(48, 48), num_joints=4, heatmaps="sparse")
    enc = make_encoder(cfg)
    rng = np.random.default_rng(5)
    items = [enc.encode_annotations(_random_annotations(rng, cfg, i == 1))[0] for i in range(3)]
    batch = {"draws": torch.as_tensor(np.stack([t["draws"] for t in items]))}
    whole = render_heatmaps(batch, cfg)
    monkeypatch.setattr(device, "RENDER_CHUNK", 7)
    pieces = render_heatmaps(batch, cfg, method="scatter")
    for k in cfg.sparse_layout().maps:
        assert torch.equal(whole[k], pieces[k])


def _coco_with_images(tmp_path, scenes, categories):
    data = to_coco(scenes, categories)
    rng = np.random.default_rng(9)
    for im in data["images"]:
        img = rng.integers(0, 256, (im["height"], im["width"], 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / im["file_name"]), img)
    return CocoDataset(data)


def _datasets(tmp_path, task):
    if task == "ctdet":
        scenes = [detection_scene(i, 12, image_size=(160, 120)) for i in range(4)]
        config = CtdetConfig(output_size=(64, 64), num_classes=80)
        coco = _coco_with_images(tmp_path, scenes, "coco80")
    else:
        scenes = [person_scene(i, 4, image_size=(160, 120)) for i in range(4)]
        config = MultiPoseConfig(output_size=(64, 64))
        coco = _coco_with_images(tmp_path, scenes, "person")
    aug = AugmentConfig(train=True)
    dense = CenterNetDataset(coco, config, augment=aug, image_root=tmp_path, seed=1)
    fast = CenterNetDataset(coco, config.replace(heatmaps="sparse"), augment=aug,
                            image_root=tmp_path, seed=1, input_dtype="uint8")
    return dense, fast


@pytest.mark.parametrize("task", ["ctdet", "multi_pose"])
def test_device_feed_equals_the_float32_dense_path(tmp_path, task):
    """uint8 input + sparse targets through a DataLoader (2 workers) and DeviceFeed: targets
    bit for bit the dense dataset's, input within 1e-6, loss equal."""
    from torch.utils.data import DataLoader

    from centertargets.losses import make_loss

    dense, fast = _datasets(tmp_path, task)
    ref = next(iter(DataLoader(dense, batch_size=4)))
    batch = next(iter(DataLoader(fast, batch_size=4, num_workers=2)))
    assert "draws" in batch and "hm" not in batch
    inp, targets = DeviceFeed(fast)(batch)
    assert inp.dtype == torch.float32
    torch.testing.assert_close(inp, ref["input"], rtol=0, atol=1e-6)
    for k, v in ref.items():
        if k not in ("input", "meta"):
            assert torch.equal(targets[k], v), k
    heads = {n: torch.randn((4, c) + tuple(reversed(fast.config.output_size)))
             for n, c in fast.config.heads().items()}
    want, _ = make_loss(dense.config)(heads, ref)
    got_sparse, _ = make_loss(fast.config)(heads, batch)       # the loss renders draws itself
    got_dense, _ = make_loss(fast.config)(heads, targets)
    assert torch.equal(want, got_sparse) and torch.equal(want, got_dense)


def test_tracking_device_feed_and_loss_equal_the_dense_path(tmp_path):
    """CenterTrack samples (two uint8 frames + sparse hm and pre_hm) through a DataLoader and
    DeviceFeed: both frames within 1e-6 of the float32 path, the targets and pre_hm bit for
    bit the dense dataset's; GenericLoss takes the sparse batch and gives the dense value."""
    from torch.utils.data import DataLoader

    from centertargets.losses import make_loss
    from centertargets.track_demo import write_videos
    from centertargets.tracking import TrackingDataset

    coco = CocoDataset.load(write_videos(tmp_path, videos=1, frames=4, seed=2))
    cfg = TrackingConfig(output_size=(32, 32), num_classes=1, max_objs=6, max_pre_objs=8,
                         hm_disturb=0.05, lost_disturb=0.4, fp_disturb=0.3)
    kw = dict(augment=AugmentConfig(train=True), image_root=tmp_path, seed=3)
    dense = TrackingDataset(coco, cfg, **kw)
    fast = TrackingDataset(coco, cfg.replace(heatmaps="sparse"), input_dtype="uint8", **kw)
    ref = next(iter(DataLoader(dense, batch_size=3)))
    batch = next(iter(DataLoader(fast, batch_size=3, num_workers=2)))
    assert "draws" in batch and not {"hm", "pre_hm"} & set(batch)
    inp, targets = DeviceFeed(fast)(batch)
    torch.testing.assert_close(inp, ref["input"], rtol=0, atol=1e-6)
    torch.testing.assert_close(targets["pre_img"], ref["pre_img"], rtol=0, atol=1e-6)
    for k, v in ref.items():
        if k not in ("input", "pre_img", "meta"):
            assert torch.equal(targets[k], v), k
    assert targets["pre_hm"].max() == 1.0
    heads = {n: torch.randn(h.shape(3)) for n, h in cfg.head_spec().items()}
    want, _ = make_loss(cfg)(heads, ref)
    got, _ = make_loss(fast.config)(heads, batch)
    assert torch.equal(want, got)


def test_sparse_item_bytes(tmp_path):
    """A 512x512 ctdet item of 80 classes: under 1 MB with uint8 input + sparse targets."""
    coco = _coco_with_images(tmp_path, [detection_scene(0, 30)], "coco80")
    cfg = CtdetConfig(output_size=(128, 128), num_classes=80, heatmaps="sparse")
    item = CenterNetDataset(coco, cfg, image_root=tmp_path, input_dtype="uint8")[0]
    nbytes = sum(v.nbytes for k, v in item.items() if k != "meta")
    assert nbytes < 1 << 20, nbytes
    assert item["input"].nbytes == 3 * 512 * 512
    np.testing.assert_array_equal(
        sparse.render({k: v for k, v in item.items() if k not in ("input", "meta")}, cfg)["hm"],
        CenterNetDataset(coco, cfg.replace(heatmaps="dense"))[0]["hm"])
    # the uint8 image normalises to the float32 path's input
    ref = CenterNetDataset(coco, cfg.replace(heatmaps="dense"), image_root=tmp_path)[0]
    batch_meta = {"color": {k: torch.as_tensor(np.asarray(v))[None]
                            for k, v in item["meta"]["color"].items()}}
    x = normalize_batch(torch.as_tensor(item["input"])[None], batch_meta)
    torch.testing.assert_close(x[0], torch.as_tensor(ref["input"]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("method", ["auto", "scatter"])
@pytest.mark.parametrize("buffers", [1, 2])
def test_heatmap_renderer_reuses_its_maps_and_clears_what_it_drew(buffers, method):
    """Batches of different content (and one rotation blank) through the same maps: each
    result equals a fresh render; a change of batch size allocates anew."""
    from centertargets.device import HeatmapRenderer

    cfg = MultiPoseConfig(output_size=(40, 32), num_joints=3, heatmaps="sparse")
    enc = make_encoder(cfg)
    rng = np.random.default_rng(11)
    renderer = HeatmapRenderer(cfg, buffers, method)
    seen = []
    for step in range(6):
        B = 3 if step < 5 else 2
        items = [enc.encode_annotations(_random_annotations(rng, cfg, rotated=(step, i) == (1, 0)))[0]
                 for i in range(B)]
        batch = {"draws": torch.as_tensor(np.stack([t["draws"] for t in items]))}
        got = renderer(batch)
        want = render_heatmaps(batch, cfg)
        for k in ("hm", "hm_hp"):
            assert torch.equal(got[k], want[k]), (step, k)
        seen.append(got["hm"].data_ptr())
    assert seen[0] == seen[buffers]                      # the same maps came back
    with pytest.raises(ValueError, match="buffers"):
        HeatmapRenderer(cfg, 0)


def test_gpu_feed_script_runs_on_a_cpu():
    """benchmarks/gpu_train_feed.py (meant for a GPU) runs end to end, tiny, on the CPU."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_train_feed.py"
    run = subprocess.run([sys.executable, str(script), "--device", "cpu", "--input", "64",
                          "--batch", "2", "--steps", "1", "--warmup", "1", "--images", "4",
                          "--workers", "0", "--tasks", "ctdet,multi_pose"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("GPU alone") == 2
    assert run.stdout.count("% of the GPU-alone rate") == 8, run.stdout


@pytest.mark.parametrize("path", [p for p in reference_files(supported())
                                  if p.id.endswith("_000_0") and "_dense_" not in p.id])
def test_every_tasks_loss_takes_the_sparse_batch(path):
    """Each task's loss on a fixture's sparse batch (rendered inside the loss) gives the
    dense batch's value exactly, with random head outputs."""
    from centertargets.losses import make_loss

    meta, _ = load_fixture(need_reference(path))
    dense = centernet.encode_sample(meta)
    got = centernet.encode_sample(meta, "sparse")
    config = centernet.config_from_meta(meta)
    batch_d = {k: torch.as_tensor(v)[None] for k, v in dense.items()}
    batch_s = {k: torch.as_tensor(v)[None] for k, v in got.items()}
    W, H = config.output_size
    gen = torch.Generator().manual_seed(0)
    heads = {n: torch.randn((1, c, H, W), generator=gen) for n, c in config.heads().items()}
    want, _ = make_loss(config)(heads, batch_d)
    sparse_loss, _ = make_loss(config.replace(heatmaps="sparse"))(heads, batch_s)
    assert torch.equal(want, sparse_loss) or (want.isnan() and sparse_loss.isnan())


def test_a_sparse_item_renders_as_a_picture_like_the_dense_one():
    from centertargets.visualize import render_targets

    cfg = MultiPoseConfig(output_size=(48, 48), num_joints=4)
    a = _random_annotations(np.random.default_rng(2), cfg)
    dense = make_encoder(cfg).encode_annotations(a)[0]
    got = make_encoder(cfg.replace(heatmaps="sparse")).encode_annotations(a)[0]
    np.testing.assert_array_equal(render_targets(got, cfg.replace(heatmaps="sparse")),
                                  render_targets(dense, cfg))


def test_hand_written_rows_of_every_op_render_alike():
    """A max box, set boxes over one channel and over all, and patches of each family, in
    an order where it matters: both renderers give the map written out by hand."""
    cfg = CtdetConfig(output_size=(12, 10), num_classes=2, max_objs=8, heatmaps="sparse")
    bits = lambda v: int(np.array(v, np.float32).view(np.int32))   # noqa: E731
    rows = np.zeros((8, 8), np.int32)
    rows[0] = (sparse.OP_PATCH, 0, 0, 3, 4, sparse.FAM_UMICH, 2, 0)
    rows[1] = (sparse.OP_MAX, 0, 1, 2, 2, 6, 5, bits(0.25))
    rows[2] = (sparse.OP_SET, 0, -1, 0, 0, 4, 3, bits(0.5))
    rows[3] = (sparse.OP_PATCH, 0, 1, 10, 8, sparse.FAM_ELLIPTIC, 3, 1)
    rows[4] = (sparse.OP_PATCH, 0, 0, 11, 0, sparse.FAM_MSRA_SIGMA, 1, 0)
    want = np.zeros((2, 10, 12), np.float32)
    p = sparse.patch(sparse.FAM_UMICH, 2)
    want[0, 2:7, 1:6] = p
    want[1, 2:5, 2:6] = 0.25
    want[:, 0:3, 0:4] = 0.5
    e = sparse.patch(sparse.FAM_ELLIPTIC, 3, 1)
    want[1, 7:10, 7:12] = np.maximum(want[1, 7:10, 7:12], e[:, :5])
    m = sparse.patch(sparse.FAM_MSRA_SIGMA, 1)
    want[0, 0:4, 8:12] = np.maximum(want[0, 0:4, 8:12], m[3:7, 0:4])
    t = {"draws": rows}
    np.testing.assert_array_equal(sparse.render(t, cfg)["hm"], want)
    got = render_heatmaps({"draws": torch.as_tensor(rows)[None]}, cfg, method="scatter")
    np.testing.assert_array_equal(got["hm"][0].numpy(), want)
