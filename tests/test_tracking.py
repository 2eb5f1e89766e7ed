"""The tracking task (CenterTrack): upstream's fixtures, videos in COCO files, the two-frame
dataset and its draws, the generic loss against float64, the decoder, the greedy tracker, the
demo, and errors that name what is wrong."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from centertargets import AugmentConfig, AugmentParams, CenterNetDataset, CocoDataset
from centertargets.compare import check_fixture
from centertargets.synthetic import person_video, to_coco, to_coco_video, person_scene
from centertargets.tasks.tracking import (PRE_LOST, PRE_USED, TrackingConfig, TrackingEncoder,
                                          TrackParams)
from centertargets.tracker import Detection, Tracker, mot_counts
from centertargets.tracking import TrackingDataset, VideoIndex

import float64_losses as R
from conftest import need_reference, reference_files

TRACK_FIXTURES = reference_files(("track_", "sample_track_", "loss_track_"))


@pytest.mark.parametrize("path", TRACK_FIXTURES)
def test_upstream_tracking_fixture(path):
    res = check_fixture(need_reference(path))
    assert res.ok, res.line()


def _video(frames: int = 4, people: int = 3, seed: int = 0, videos: int = 1) -> dict:
    return to_coco_video([person_video(seed + v, frames, people) for v in range(videos)])


def _ds(data: dict, **cfg_kw) -> TrackingDataset:
    cfg = TrackingConfig(**{"output_size": (64, 64), "num_classes": 1, "max_objs": 8,
                            **cfg_kw})
    return TrackingDataset(CocoDataset(data), cfg)          # validation draws


# --- videos in COCO files ------------------------------------------------------------------------

def test_video_index_candidates_follow_upstream():
    data = _video(frames=5)
    idx = VideoIndex(CocoDataset(data))
    ids = [img["id"] for img in data["images"]]           # frames 1..5
    assert idx.candidates(ids[2], True, 2) == ids[1:4]     # |d| < 2, the frame itself included
    assert idx.candidates(ids[2], True, 1) == [ids[2]]
    assert idx.candidates(ids[2], False, 3) == [ids[1]]    # validation: the frame before
    assert idx.candidates(ids[0], False, 3) == [ids[0]]    # ... else the frame itself


def test_a_file_without_videos_is_one_frame_videos():
    coco = CocoDataset(to_coco([person_scene(1, 3), person_scene(2, 2)]))
    ds = TrackingDataset(coco, TrackingConfig(output_size=(64, 64), num_classes=1, max_objs=8),
                         augment=AugmentConfig(train=True))
    assert ds.videos.fake and ds.videos.candidates(1, True, 3) == [1]
    np.testing.assert_array_equal(ds.frame(1).fields["track_id"], [1, 2, 3])
    item = ds[0]                  # the previous frame is the image itself, disturbed
    assert int(item["meta"]["pre_image_id"]) == 1 and not item["meta"]["same_aug"]
    assert item["mask"].sum() > 0
    np.testing.assert_array_equal(item["tracking_mask"][:, 0] > 0, item["mask"] > 0)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["images"][1].pop("frame_id"), "a frame without a video"),
    (lambda d: d["images"][1].update(frame_id=1), "expected one image per (video, frame)"),
    (lambda d: d["annotations"][1].update(track_id=d["annotations"][0]["track_id"]),
     "used by two annotations of one frame"),
])
def test_video_errors_name_the_image(edit, message):
    data = _video()
    edit(data)
    with pytest.raises(ValueError, match="image id=") as e:
        TrackingDataset(CocoDataset(data), TrackingConfig(num_classes=1))
    assert message in str(e.value)


def test_centernet_dataset_refuses_a_tracking_config():
    with pytest.raises(TypeError, match="TrackingDataset"):
        CenterNetDataset(CocoDataset(_video()), TrackingConfig(num_classes=1))


# --- the sample ---------------------------------------------------------------------------------

def _prev_centres(ds: TrackingDataset, item: dict) -> np.ndarray:
    """The previous frame's box centres / down_ratio in float64 from the file (validation:
    the current transform, no flip): what ``tracking`` points to."""
    meta = item["meta"]
    pre = ds.frame(int(meta["pre_image_id"]))
    p = AugmentParams(tuple(meta["center"]), float(meta["scale"][0]))
    m = p.matrix(ds.config.input_size)
    b = pre.boxes_xywh
    pts = np.stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]], 1)
    x = pts[:, [0, 2]] * m[0, 0] + pts[:, [1, 3]] * m[0, 1] + m[0, 2]
    y = pts[:, [0, 2]] * m[1, 0] + pts[:, [1, 3]] * m[1, 1] + m[1, 2]
    iw, ih = ds.config.input_size
    x, y = x.clip(0, iw - 1), y.clip(0, ih - 1)
    return np.stack([x.mean(1), y.mean(1)], 1) / ds.config.down_ratio


def test_tracking_points_to_the_same_track_in_the_previous_frame():
    ds = _ds(_video(frames=4, people=3))
    for i in (1, 2, 3):
        item = ds[i]
        W = ds.config.output_size[0]
        cur = ds.annotations(i).fields["track_id"]
        pre = ds.frame(int(item["meta"]["pre_image_id"])).fields["track_id"]
        want = _prev_centres(ds, item)
        for k in np.flatnonzero(item["mask"] > 0):
            assert item["tracking_mask"][k].tolist() == [1, 1]
            ct_int = np.array([item["ind"][k] % W, item["ind"][k] // W])
            j = list(pre).index(cur[k])
            np.testing.assert_allclose(ct_int + item["tracking"][k], want[j], atol=1e-4)


def test_item_replays_its_draws_and_meta_holds_them():
    ds = TrackingDataset(CocoDataset(_video(frames=6, people=4)),
                         TrackingConfig(output_size=(64, 64), num_classes=1, max_objs=8,
                                        hm_disturb=0.1, lost_disturb=0.3, fp_disturb=0.3),
                         augment=AugmentConfig(train=True), seed=3)
    for i in range(len(ds)):
        a, b = ds[i], ds[i]
        for k in a:
            if k != "meta":
                np.testing.assert_array_equal(a[k], b[k])
        m = a["meta"]
        # the draws in meta rebuild the sample (no rng involved)
        P = int((m["pre_status"] >= 0).sum())
        pre = AugmentParams(tuple(m["pre_center"]), float(m["pre_scale"][0]), float(m["rot"]),
                            bool(m["flipped"]))
        params = TrackParams(AugmentParams(tuple(m["center"]), float(m["scale"][0]),
                                           float(m["rot"]), bool(m["flipped"])),
                             int(m["pre_image_id"]), float(m["aug_s"]),
                             None if m["same_aug"] else pre, None, m["pre_disturb"][:P])
        c = ds.item(i, params)
        for k in a:
            if k != "meta":
                np.testing.assert_array_equal(a[k], c[k], err_msg=k)


def test_disturbances_lose_objects_and_add_false_positives():
    data = _video(frames=3, people=4)
    base = dict(output_size=(64, 64), num_classes=1, max_objs=8)
    lost = TrackingDataset(CocoDataset(data), TrackingConfig(**base, lost_disturb=1.0))
    item = lost[1]
    assert not item["pre_hm"].any()                       # every previous object lost
    assert (item["meta"]["pre_status"][:4] == PRE_LOST).all()
    assert item["tracking_mask"].sum() > 0                # ... their disturbed centres remain
    kept = TrackingDataset(CocoDataset(data), TrackingConfig(**base))[1]
    assert (kept["meta"]["pre_status"][:4] == PRE_USED).all()
    assert kept["pre_hm"].max() == 1.0                    # undisturbed peaks are exactly 1
    fp = TrackingDataset(CocoDataset(data), TrackingConfig(**base, fp_disturb=1.0))[1]
    assert fp["meta"]["pre_fp"][:4].all() and (fp["pre_hm"] >= kept["pre_hm"]).all()


def test_dataloader_batches_tracking_items_with_workers():
    from torch.utils.data import DataLoader

    ds = TrackingDataset(CocoDataset(_video(frames=4, people=2, videos=2)),
                         TrackingConfig(output_size=(32, 32), num_classes=1, max_objs=4),
                         augment=AugmentConfig(train=True))
    batch = next(iter(DataLoader(ds, batch_size=4, num_workers=2,
                                 multiprocessing_context="fork")))
    assert batch["hm"].shape == (4, 1, 32, 32) and batch["pre_hm"].shape == (4, 1, 128, 128)
    assert batch["meta"]["pre_disturb"].shape == (4, ds.config.max_pre_objs, 6)


def test_encoder_refuses_a_class_that_would_write_outside_hm():
    enc = TrackingEncoder(TrackingConfig(output_size=(16, 16), num_classes=2, max_objs=4))
    with pytest.raises(ValueError, match="classes"):
        enc.encode(np.array([[1, 1, 5, 5]], np.float32), [-7])     # -7: neither ignore nor skip
    t = enc.encode(np.array([[1, 1, 5, 5], [8, 8, 12, 12]], np.float32), [1, 0])
    assert t["mask"].tolist()[:2] == [1, 0] and (t["hm"][:, 8:13, 8:13] == 1).all()


@pytest.mark.parametrize("kw, field", [(dict(heatmap="msra"), "heatmap"),
                                       (dict(cat_ids=((1, -5),), num_classes=2), "cat_ids"),
                                       (dict(lost_disturb=1.5), "lost_disturb")])
def test_config_errors_name_the_field(kw, field):
    with pytest.raises(ValueError, match=f"TrackingConfig.{field}="):
        TrackingConfig(**kw)


# --- loss and decoder ---------------------------------------------------------------------------

def _batch(ds: TrackingDataset, n: int) -> dict[str, torch.Tensor]:
    items = [ds[i] for i in range(n)]
    return {k: torch.from_numpy(np.stack([it[k] for it in items])) for k in ds.config.spec()}


def test_generic_loss_equals_float64_formula(threads, rng):
    from centertargets.losses.tracking import GenericLoss

    ds = TrackingDataset(CocoDataset(_video(frames=3, people=4)),
                         TrackingConfig(output_size=(32, 32), num_classes=1, max_objs=6,
                                        num_joints=17, ltrb_amodal=True),
                         augment=AugmentConfig(train=True))
    t = _batch(ds, 3)
    cfg = ds.config
    out = {n: torch.from_numpy(rng.normal(-1.5, 2, h.shape(3)).astype(np.float32))
           for n, h in cfg.head_spec().items()}
    _, stats = GenericLoss(cfg)(out, t)
    o = {k: v.numpy() for k, v in out.items()}
    tn = {k: v.numpy() for k, v in t.items()}
    want = {"hm": R.focal(o["hm"], tn["hm"], "fast", tn["ind"], tn["mask"], tn["cat"]),
            "hm_hp": R.focal(o["hm_hp"], tn["hm_hp"], "fast", tn["hp_ind"], tn["hm_hp_mask"],
                             tn["joint"]),
            "hp_offset": R.l1(R.gather(o["hp_offset"], tn["hp_ind"]), tn["hp_offset"],
                              tn["hp_offset_mask"])}
    for name in ("reg", "wh", "tracking", "ltrb_amodal", "hps"):
        want[name] = R.l1(R.gather(o[name], tn["ind"]), tn[name], tn[name + "_mask"])
    for k, v in want.items():
        assert abs(float(stats[k]) - v) <= 1e-6 * abs(v) + 1e-9, (k, float(stats[k]), v)
    w = {"wh": 0.1, "ltrb_amodal": 0.1}
    tot = sum(w.get(k, 1.0) * v for k, v in want.items())
    assert abs(float(stats["tot"]) - tot) <= 1e-6 * tot


def test_generic_loss_is_finite_on_empty_frames_and_infinite_logits():
    from centertargets.losses.tracking import GenericLoss

    cfg = TrackingConfig(output_size=(16, 16), num_classes=2, max_objs=4, ddd=True,
                         nuscenes_att=True, velocity=True)
    batch = {k: torch.from_numpy(s.zeros()[None]) for k, s in cfg.spec().items()}
    for fill in (float("inf"), -float("inf"), 0.0):
        out = {n: torch.full(h.shape(1), fill, requires_grad=True)
               for n, h in cfg.head_spec().items()}
        loss, stats = GenericLoss(cfg)(out, batch)
        assert all(torch.isfinite(v) for v in stats.values()), (fill, stats)
        loss.backward()
        assert all(torch.isfinite(t.grad).all() for t in out.values()), fill


def test_oracle_decode_and_tracker_keep_every_identity(tmp_path):
    from centertargets.track_demo import run_track_demo

    r = run_track_demo(tmp_path, videos=2, frames=5, workers=0, log=lambda s: None)
    c = r["oracle"]
    assert c.gt > 0 and c.matches == c.gt and c.false_positives == 0
    assert c.id_switches == 0 and c.mota == 1.0
    assert {"pre_hm", "pre_img", "tracking", "tracking_mask"} <= set(r["batch_keys"])


# --- the tracker --------------------------------------------------------------------------------

def _det(x, y, s=10.0, cls=0, score=0.9, tr=(0.0, 0.0)):
    return Detection((x, y), (x - s, y - s, x + s, y + s), cls, score, tr)


def test_tracker_follows_the_tracking_offset_not_the_nearest_box():
    t = Tracker()
    a, b = t.step([_det(10, 10), _det(30, 10)])
    # the two objects swap places; their offsets say where each came from
    out = t.step([_det(30, 10, tr=(-20, 0)), _det(10, 10, tr=(20, 0))])
    assert [o.track_id for o in out] == [a.track_id, b.track_id]
    u = Tracker()
    a, b = u.step([_det(10, 10), _det(30, 10)])
    out = u.step([_det(30, 10), _det(10, 10)])          # no offsets: the nearest track wins
    assert [o.track_id for o in out] == [b.track_id, a.track_id]


def test_tracker_new_tracks_classes_and_lost_tracks():
    t = Tracker(new_thresh=0.5)
    (a,) = t.step([_det(10, 10), _det(50, 50, score=0.3)])       # low score: no new track
    out = t.step([_det(10, 10, cls=1)])                           # another class: new track
    assert [o.track_id for o in out] == [a.track_id + 1]          # a dropped (max_age -1)
    t = Tracker(max_age=2)
    (a,) = t.step([_det(10, 10)])
    (kept,) = t.step([])
    assert kept.track_id == a.track_id and kept.active == 0 and kept.age == 2
    (back,) = t.step([_det(12, 10)])                              # seen again: same id
    assert back.track_id == a.track_id and back.active == 1
    t.step([])
    t.step([])                                                    # older than max_age: gone
    assert t.step([_det(10, 10)])[0].track_id == a.track_id + 1


def test_mot_counts_detect_a_switch():
    gt = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float)
    frames = [(gt, [1, 2], gt, [7, 8]), (gt, [1, 2], gt, [8, 7])]
    c = mot_counts(frames)
    assert (c.gt, c.matches, c.id_switches) == (4, 4, 2)
    assert mot_counts([(gt, [1, 2], gt[:1], [5])]).misses == 1


# --- CLI ----------------------------------------------------------------------------------------

def test_cli_audit_and_render_take_a_video_file(tmp_path, capsys):
    from centertargets.cli import main

    path = tmp_path / "video.json"
    path.write_text(json.dumps(_video(frames=3, people=2)))
    assert main(["audit", str(path), "--train"]) == 0
    out = capsys.readouterr().out
    assert "tracking audit of 3 images" in out and "frames without previous" in out
    assert main(["render", str(path), "--index", "1", "--out", str(tmp_path / "t.png")]) == 0
    import cv2
    assert cv2.imread(str(tmp_path / "t.png")).shape[1] > 256


def test_switches_for_upstream_bugs():
    base = dict(output_size=(16, 16), num_classes=1, max_objs=4)
    outside = np.array([[-9, 2, -4, 6]], np.float32)            # wholly left of the map
    strip = TrackingEncoder(TrackingConfig(**base)).encode(outside, [0])
    assert (strip["hm"][0, 2:7, 0] == 1).all() and strip["hm"][0, :, 1:].max() == 0
    skip = TrackingEncoder(TrackingConfig(**base, outside_ignore="skip")).encode(outside, [0])
    assert not skip["hm"].any()
    # a rotated previous frame: two corners can invert a box, the hull never does
    data = _video(frames=2, people=3)
    for corners, inverted in (("two", True), ("four", False)):
        ds = TrackingDataset(CocoDataset(data), TrackingConfig(**base,
                                                               pre_box_corners=corners))
        cur = ds.annotations(1)
        p = TrackParams(AugmentParams((160.0, 120.0), 320.0, rot=120.0), cur.image_id)
        a = ds.unit.prepared(cur, p, (16, 16), ds.config, previous=ds.frame(1))
        pb = a.extras["pre_boxes"]
        assert bool(((pb[:, 2] < pb[:, 0]) | (pb[:, 3] < pb[:, 1])).any()) == inverted
    # velocity of a flipped sample: dropped (upstream) or mirrored
    v = dict(images=[{"id": 1, "file_name": "a.png", "width": 100, "height": 80}],
             annotations=[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30],
                           "velocity": [2.0, 1.0, 0.5]}],
             categories=[{"id": 1, "name": "car"}])
    for how, mask, vx in (("drop", 0, 0.0), ("mirror", 1, -2.0)):
        ds = TrackingDataset(CocoDataset(v), TrackingConfig(**base, velocity=True,
                                                            flip_velocity=how))
        p = TrackParams(AugmentParams((50.0, 40.0), 100.0, flipped=True), 1)
        t = ds.item(0, p)
        assert t["velocity_mask"][0, 0] == mask and t["velocity"][0, 0] == np.float32(vx)


def test_make_loss_builds_the_generic_loss_and_refuses_centernet_options():
    from centertargets.losses import GenericLoss, LossOptions, make_loss

    cfg = TrackingConfig(output_size=(16, 16), num_classes=1, max_objs=2)
    assert isinstance(make_loss(cfg), GenericLoss)
    with pytest.raises(TypeError, match="weights is LossOptions"):
        make_loss(cfg, LossOptions())
    with pytest.raises(ValueError, match="weights\\['dep'\\]"):
        GenericLoss(cfg, weights={"dep": 1.0})


def _float32_and_uint8_batches(tmp_path):
    """One batch of 3 two-frame samples, float32 and uint8 (same draws)."""
    from torch.utils.data import default_collate

    from centertargets.track_demo import write_videos

    coco = CocoDataset.load(write_videos(tmp_path, videos=1, frames=3, seed=1))
    cfg = TrackingConfig(output_size=(32, 32), num_classes=1, max_objs=4)
    kw = dict(augment=AugmentConfig(train=True), image_root=tmp_path, seed=5)
    f32 = TrackingDataset(coco, cfg, **kw)
    u8 = TrackingDataset(coco, cfg, input_dtype="uint8", **kw)
    return (default_collate([f32[i] for i in range(3)]),
            default_collate([u8[i] for i in range(3)]), u8)


def test_uint8_frames_finish_on_the_device_like_the_float32_path(tmp_path):
    from centertargets.device import normalize_batch

    a, b, _ = _float32_and_uint8_batches(tmp_path)
    assert b["input"].dtype == torch.uint8 and b["pre_img"].dtype == torch.uint8
    for key, color in (("input", "color"), ("pre_img", "pre_color")):
        x = normalize_batch(b[key], {"color": b["meta"][color]})
        assert (x - a[key]).abs().max() <= 1e-6, key
    assert not torch.equal(a["input"], a["pre_img"])          # two frames, two draws


def test_tracking_decoder_takes_logits():
    from centertargets.losses.tracking import TrackingDecoder, generic_decode

    cfg = TrackingConfig(output_size=(16, 16), num_classes=2, max_objs=4)
    g = torch.Generator().manual_seed(0)
    out = {n: torch.randn(h.shape(1), generator=g) for n, h in cfg.head_spec().items()}
    got = TrackingDecoder(cfg, K=5)(out)
    want = generic_decode({**out, "hm": out["hm"].sigmoid()}, K=5)
    assert set(got) == set(want) and {"tracking", "bboxes", "scores"} <= set(got)
    for k in want:
        torch.testing.assert_close(got[k], want[k])
    assert (got["scores"][0, :-1] >= got["scores"][0, 1:]).all()


def test_replayed_draws_out_of_range_are_refused_and_huge_disturbances_stay_in_bounds():
    with pytest.raises(ValueError, match="TrackParams.disturb"):
        TrackParams(AugmentParams((1.0, 1.0), 2.0), 1, disturb=[[1e300, 0, 0.5, 0.5, 0, 0]])
    with pytest.raises(ValueError, match="TrackingConfig.hm_disturb=50"):
        TrackingConfig(hm_disturb=50)
    # the largest disturbance allowed moves centres far off the map: nothing is drawn there
    cfg = TrackingConfig(output_size=(16, 16), num_classes=1, max_objs=2, hm_disturb=10.0)
    t = TrackingEncoder(cfg).encode(
        np.array([[2, 2, 8, 8]], np.float32), [1], track_ids=[1.0],
        pre_boxes=np.array([[8, 8, 40, 40]], np.float32), pre_classes=[1],
        pre_track_ids=[1.0], pre_disturb=np.array([[1e3, -1e3, 0.0, 1.0, 0, 0]]))
    assert not t["pre_hm"].any() and np.isfinite(t["tracking"]).all()
    assert t["tracking_mask"][0].tolist() == [1, 1]        # lost: its disturbed centre counts


@pytest.mark.parametrize("extra, match", [
    (dict(depth=[np.inf]), "depth holds an infinite value"),
    (dict(pre_boxes=np.array([[1, 1, 5, 5]], np.float32), pre_classes=[1],
          pre_disturb=[[0, 0, 2.0, 0.5, 0, 0]]), "pre_disturb: expected rows"),
    (dict(aug_s=0.0), "aug_s=0.0"),
])
def test_encoder_inputs_are_checked_by_name(extra, match):
    enc = TrackingEncoder(TrackingConfig(output_size=(16, 16), num_classes=1, max_objs=2,
                                         ddd=True))
    with pytest.raises(ValueError, match=match):
        enc.encode(np.array([[2, 2, 8, 8]], np.float32), [1], **extra)


def test_device_feed_finishes_both_frames(tmp_path):
    """DeviceFeed on a uint8 tracking batch: input and pre_img normalised (each with its own
    colour draws) within 1e-6 of the float32 path, every target moved unchanged."""
    from centertargets.device import DeviceFeed

    a, b, u8 = _float32_and_uint8_batches(tmp_path)
    inp, targets = DeviceFeed(u8)(b)
    assert (inp - a["input"]).abs().max() <= 1e-6
    assert (targets["pre_img"] - a["pre_img"]).abs().max() <= 1e-6
    for k, v in a.items():
        if k not in ("input", "pre_img", "meta"):
            assert torch.equal(targets[k], v), k
