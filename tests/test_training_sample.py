"""The whole training sample as upstream builds it: colour, replay, meta, keep_res, class maps,
joint sets, image sizes, the train filter and epochs in persistent workers."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from centertargets import (COCO_CATEGORY_IDS, AugmentConfig, AugmentParams, CenterNetDataset,
                           CocoDataset, ColorParams, CtdetConfig, MultiPoseConfig)
from centertargets.augment import (COCO_EIG_VAL, COCO_EIG_VEC, COCO_MEAN_BGR, COCO_STD_BGR)
from centertargets.coco import COCO_FLIP_IDX, COCO_KEYPOINT_NAMES, flip_pairs_from_names
from centertargets.compare import load_fixture
from centertargets.decode import detections_to_image, multi_pose_decode, oracle_outputs
from centertargets.synthetic import detection_scene, person_scene, to_coco

from conftest import need_reference, reference_files


# --- colour augmentation ---------------------------------------------------------------------

def _upstream_color_aug(image, order, factors, lighting, eig_val, eig_vec):
    """CenterNet's ``color_aug`` (src/lib/utils/image.py) transcribed with its draws replayed,
    under NumPy 2's scalar rules (Python floats follow the float32 array; numpy float64 arrays
    promote)."""
    def blend_(alpha, image1, image2):
        image1 *= alpha
        image2 *= (1 - alpha)
        image1 += image2

    gs = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    gs_mean = gs.mean()
    for name in order:
        alpha = factors[name]
        if name == "brightness":
            image *= alpha
        elif name == "contrast":
            blend_(alpha, image, gs_mean)
        else:
            blend_(alpha, image, gs[:, :, None])
    image += np.dot(eig_vec, eig_val * np.asarray(lighting))


def test_colour_augmentation_is_upstreams_arithmetic(rng):
    img = rng.random((37, 53, 3)).astype(np.float32)
    for order in (("brightness", "contrast", "saturation"), ("saturation", "contrast", "brightness"),
                  ("contrast", "saturation", "brightness")):
        c = ColorParams(order, 1.31, 0.72, 1.13, (0.05, -0.12, 0.2))
        want = img.copy()
        _upstream_color_aug(want, order, {"brightness": 1.31, "contrast": 0.72,
                                          "saturation": 1.13}, [0.05, -0.12, 0.2],
                            COCO_EIG_VAL, COCO_EIG_VEC)
        got = img.copy()
        c.apply(got)
        np.testing.assert_array_equal(got, want)
        assert not np.array_equal(got, img)


def test_color_params_are_validated():
    with pytest.raises(ValueError, match=r"ColorParams.order=\('brightness', 'brightness'"):
        ColorParams(("brightness", "brightness", "saturation"), 1, 1, 1, (0, 0, 0))
    with pytest.raises(ValueError, match="ColorParams.contrast=nan"):
        ColorParams(("brightness", "contrast", "saturation"), 1, float("nan"), 1, (0, 0, 0))
    with pytest.raises(ValueError, match="ColorParams.lighting=.*expected three numbers"):
        ColorParams(("brightness", "contrast", "saturation"), 1, 1, 1, (0, 0))


def test_train_mode_draws_colour_like_upstream_and_val_does_not():
    rng = np.random.default_rng(5)
    aug = AugmentConfig(train=True)
    orders, factors, light = set(), [], []
    for _ in range(400):
        c = aug.sample(rng, 640, 480).color
        assert c is not None
        orders.add(c.order)
        factors += [c.brightness, c.contrast, c.saturation]
        light += list(c.lighting)
    assert len(orders) == 6                                  # every order of the three steps
    assert 0.6 <= min(factors) and max(factors) <= 1.4 and max(factors) > 1.35
    assert abs(np.std(light) - 0.1) < 0.01
    assert AugmentConfig().sample(rng, 640, 480).color is None
    assert AugmentConfig(train=True, color=False).sample(rng, 640, 480).color is None


def test_constants_are_upstreams():
    path = need_reference(reference_files(("sample_",))[0].values[0])
    meta, _ = load_fixture(path)
    np.testing.assert_array_equal(COCO_MEAN_BGR, np.float32(meta["mean_bgr"]))
    np.testing.assert_array_equal(COCO_STD_BGR, np.float32(meta["std_bgr"]))
    np.testing.assert_array_equal(COCO_EIG_VAL, np.float32(meta["eig_val"]))
    np.testing.assert_array_equal(COCO_EIG_VEC, np.float32(meta["eig_vec"]))


# --- replay and meta -----------------------------------------------------------------------------

def _write_images(tmp_path, data, rng):
    for img in data["images"]:
        pixels = rng.integers(0, 256, (img["height"], img["width"], 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / img["file_name"]), pixels)


@pytest.fixture
def pose_files(tmp_path, rng):
    scenes = [person_scene(i, num_people=2 + i % 3, image_size=(160, 120)) for i in range(4)]
    data = to_coco(scenes)
    _write_images(tmp_path, data, rng)
    path = tmp_path / "person_keypoints.json"
    path.write_text(json.dumps(data))
    return path, tmp_path, scenes


def test_item_replays_params_and_getitem_is_item_of_params(pose_files):
    path, root, _ = pose_files
    ds = CenterNetDataset(CocoDataset.load(path), MultiPoseConfig(output_size=(32, 32)),
                          augment=AugmentConfig(train=True), image_root=root, seed=9)
    for i in range(len(ds)):
        p = ds.params(i)
        assert p.color is not None
        a, b = ds[i], ds.item(i, p)
        assert set(a) == set(b)
        for k in a:
            if k != "meta":
                np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # other params give another sample; the same params from a dict give the same one
    p = ds.params(0)
    q = AugmentParams.from_dict(p.as_dict())
    assert q == p
    other = AugmentParams(p.center, p.scale, p.rot, not p.flipped, None)
    assert not np.array_equal(ds.item(0, other)["input"], ds[0]["input"])


def test_meta_is_collated_and_maps_detections_back_to_the_image(pose_files):
    path, root, scenes = pose_files
    cfg = MultiPoseConfig(output_size=(64, 64))
    ds = CenterNetDataset(CocoDataset.load(path), cfg, augment=AugmentConfig(
        train=True, rand_crop=False, scale=0.0, shift=0.0, flip=0.5), image_root=root, seed=1)
    batch = next(iter(DataLoader(ds, batch_size=4, num_workers=0)))
    meta = batch["meta"]
    assert set(meta) == {"index", "image_id", "center", "scale", "rot", "flipped", "augmented",
                         "image_size", "input_size", "output_size", "color"}
    assert meta["color"]["order"].shape == (4, 3) and meta["color"]["on"].all()
    assert meta["index"].tolist() == [0, 1, 2, 3] and meta["center"].shape == (4, 2)
    assert meta["input_size"][0].tolist() == [256, 256] and meta["output_size"][0].tolist() == [64, 64]
    flipped = meta["flipped"].tolist()
    assert True in flipped and False in flipped
    for i in range(4):
        item = {k: v[i].numpy() for k, v in batch.items() if k not in ("meta", "input")}
        o = oracle_outputs(item, cfg)
        dets = multi_pose_decode(o["hm"], o["wh"], o["hps"], o["reg"], K=cfg.max_objs)  # no snap
        back = detections_to_image(dets, {k: v[i:i + 1] for k, v in meta.items()
                                          if k != "color"}, ds.config.flip_idx)[0]
        top = back[back[:, 4] == 1]
        s = scenes[i]
        want = s.boxes_xywh.copy()
        want[:, 2:] += want[:, :2]
        inside = (want[:, 0] >= 0) & (want[:, 1] >= 0) & (want[:, 2] < s.width - 1) & \
            (want[:, 3] < s.height - 1)
        for box in want[inside]:
            assert np.abs(top[:, :4] - box).max(axis=1).min() < 1e-2
        # a labelled joint of a fully inside person comes back to its annotated place
        k = int(np.flatnonzero(inside)[0])
        j = int(np.flatnonzero(s.keypoints[k, :, 2] > 0)[0])
        row = top[np.abs(top[:, :4] - want[k]).max(axis=1).argmin()]
        np.testing.assert_allclose(row[5 + 2 * j:7 + 2 * j], s.keypoints[k, j, :2], atol=1e-2)


# --- keep_res --------------------------------------------------------------------------------------

def test_keep_res_sizes_and_float64_training_scale(pose_files):
    path, root, _ = pose_files
    cfg = MultiPoseConfig(output_size=(32, 32))
    ds = CenterNetDataset(CocoDataset.load(path), cfg, keep_res=True, image_root=root)
    item = ds[0]
    # 160 x 120 image: input (160 | 31) + 1 = 192, (120 | 31) + 1 = 128; output / 4
    assert item["meta"]["input_size"].tolist() == [192, 128]
    assert item["input"].shape == (3, 128, 192) and item["hm"].shape == (1, 32, 48)
    assert item["meta"]["scale"].tolist() == [192.0, 128.0]
    train = CenterNetDataset(CocoDataset.load(path), cfg, keep_res=True, image_root=root,
                             augment=AugmentConfig(train=True))
    from centertargets.geometry import get_affine_transform

    choices = np.arange(0.6, 1.4, 0.1)
    lost = 0
    for epoch in range(3):
        train.set_epoch(epoch)
        for i in range(len(train)):
            p = train.params(i)
            # upstream: the float32 array [192, 128] times a float64 draw stays float64
            assert any(p.scale == (192.0 * f, 128.0 * f) for f in choices), p.scale
            m64 = get_affine_transform(np.float32(p.center), np.array(p.scale), 0, [48, 32])
            np.testing.assert_array_equal(p.matrix((48, 32)), m64)
            lost += float(np.float32(p.scale[0])) != p.scale[0]
            assert train[i]["hm"].shape == (1, 32, 48)
    assert lost > 0         # some draws are not float32 numbers: casting them would change s


def test_scene_fixtures_through_the_dataset_are_bit_exact():
    from centertargets.compat.centernet import replay_sample

    for param in reference_files(("ctdet_", "multi_pose_")):
        path = need_reference(param.values[0])
        meta, expected = load_fixture(path)
        item = replay_sample(meta)
        for key, want in expected.items():
            np.testing.assert_array_equal(item[key], want, err_msg=f"{path.name}: {key}")


# --- classes and joint sets ------------------------------------------------------------------------

def test_category_map_fixes_class_indices():
    data = to_coco([detection_scene(3, 12)], categories="coco80")
    used = sorted({a["category_id"] for a in data["annotations"]})
    data["categories"] = [c for c in data["categories"] if c["id"] in used]   # only the used ones
    own = CocoDataset(data)[0]
    fixed = CocoDataset(data, category_ids=COCO_CATEGORY_IDS)[0]
    assert fixed.classes.tolist() == [COCO_CATEGORY_IDS.index(c) for c in fixed.category_ids]
    assert own.classes.tolist() == [used.index(c) for c in own.category_ids]
    assert own.classes.tolist() != fixed.classes.tolist()
    with pytest.raises(ValueError, match=r"annotation id=\d+ has category_id=\d+: expected one "
                                         r"of the category ids \[1, 2\]"):
        CocoDataset(data, category_ids=[1, 2])


CROWDPOSE = ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
             "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
             "right_ankle", "head", "neck")
POSETRACK = ("nose", "head_bottom", "head_top", "left_ear", "right_ear", "left_shoulder",
             "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
             "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")


def _pose_file(names, J, n_images=3):
    data = to_coco([person_scene(i, num_people=2) for i in range(n_images)])
    for a in data["annotations"]:
        a["keypoints"] = a["keypoints"][:3 * J]
    data["categories"][0]["keypoints"] = list(names)
    data["categories"][0]["skeleton"] = []
    return data


def test_flip_pairs_come_from_the_files_names():
    assert flip_pairs_from_names(COCO_KEYPOINT_NAMES) == COCO_FLIP_IDX
    assert flip_pairs_from_names(CROWDPOSE) == ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11))
    assert (1, 2) not in flip_pairs_from_names(POSETRACK)          # head_bottom / head_top
    assert flip_pairs_from_names(["l_ankle", "r_ankle", "kneeLeft", "kneeRight", "spine"]) == \
        ((0, 1), (2, 3))
    coco = CocoDataset(_pose_file(POSETRACK, 17))
    assert coco.flip_idx == tuple(p for p in COCO_FLIP_IDX if p != (1, 2))
    ds = CenterNetDataset(coco, MultiPoseConfig(output_size=(32, 32)))
    assert ds.config.flip_idx == coco.flip_idx
    explicit = CenterNetDataset(coco, MultiPoseConfig(output_size=(32, 32), flip_idx=((3, 4),)))
    assert explicit.config.flip_idx == ((3, 4),)                   # the config wins


def test_other_joint_sets_load_encode_and_go_through_the_cli(tmp_path, capsys):
    from centertargets.cli import main

    crowd = _pose_file(CROWDPOSE, 14)
    coco = CocoDataset(crowd)
    assert coco.num_joints == 14 and len(coco.flip_idx) == 6
    ds = CenterNetDataset(coco, MultiPoseConfig(output_size=(32, 32), num_joints=14),
                          augment=AugmentConfig(train=True, flip=1.0))
    assert ds[0]["hps"].shape == (32, 28)
    path = tmp_path / "crowdpose.json"
    path.write_text(json.dumps(crowd))
    assert main(["audit", str(path), "--output-size", "32"]) == 0
    assert "multi_pose audit of 3 images" in capsys.readouterr().out
    assert main(["render", str(path), "--output-size", "32", "--out", str(tmp_path / "r.png")]) == 0
    # names longer than the annotations' joints: loaded, with a warning, without flip pairs
    long = _pose_file(list(COCO_KEYPOINT_NAMES) + ["a", "b", "c", "d"], 17)
    with pytest.warns(UserWarning, match="lists 21 names but annotations carry 17 joints"):
        coco21 = CocoDataset(long)
    assert coco21.num_joints == 17 and coco21.flip_idx == ()


# --- image sizes, the train filter -------------------------------------------------------------

def test_missing_image_size_is_read_from_the_image_and_a_wrong_one_is_an_error(tmp_path, rng):
    data = to_coco([detection_scene(0, 4, image_size=(90, 70))], categories="coco80")
    _write_images(tmp_path, data, rng)
    cfg = CtdetConfig(output_size=(16, 16))
    good = CenterNetDataset(CocoDataset(data), cfg, image_root=tmp_path)[0]
    del data["images"][0]["width"], data["images"][0]["height"]
    read = CenterNetDataset(CocoDataset(data), cfg, image_root=tmp_path)
    np.testing.assert_array_equal(read[0]["hm"], good["hm"])
    assert read[0]["meta"]["image_size"].tolist() == [90, 70]
    with pytest.raises(ValueError, match=r"image id=1 \('synthetic_000001.jpg'\) has no width/"
                                         "height in the json"):
        CenterNetDataset(CocoDataset(data), cfg)[0]
    data["images"][0].update(width=100, height=70)
    with pytest.raises(ValueError, match=r"image 'synthetic_000001.jpg' \(id=1\) is 90x70 pixels: "
                                         "expected 100x70"):
        CenterNetDataset(CocoDataset(data), cfg, image_root=tmp_path)[0]


def test_pose_training_keeps_only_images_with_annotations_like_upstream():
    data = to_coco([person_scene(i, num_people=i % 2) for i in range(6)])   # 3 empty images
    cfg = MultiPoseConfig(output_size=(16, 16))
    coco = CocoDataset(data)
    assert len(CenterNetDataset(coco, cfg, augment=AugmentConfig(train=True))) == 3
    assert len(CenterNetDataset(coco, cfg)) == 6                                    # val: all
    assert len(CenterNetDataset(coco, cfg, augment=AugmentConfig(train=True),
                                train_filter=False)) == 6
    train = CenterNetDataset(coco, cfg, augment=AugmentConfig(train=True))
    assert [train.annotations(i).image_id for i in range(3)] == [2, 4, 6]
    det = to_coco([detection_scene(i, num_objects=i % 2) for i in range(4)], categories="coco80")
    assert len(CenterNetDataset(CocoDataset(det), CtdetConfig(output_size=(16, 16)),
                                augment=AugmentConfig(train=True))) == 4           # ctdet: all


# --- epochs in persistent workers ---------------------------------------------------------------

@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_set_epoch_reaches_persistent_workers(context):
    data = to_coco([person_scene(i, num_people=2) for i in range(4)])
    ds = CenterNetDataset(CocoDataset(data), MultiPoseConfig(output_size=(32, 32)),
                          augment=AugmentConfig(train=True), seed=2)
    loader = DataLoader(ds, batch_size=4, num_workers=1, persistent_workers=True,
                        multiprocessing_context=context)
    seen = []
    for epoch in range(3):
        ds.set_epoch(epoch)
        (batch,) = list(loader)
        want = np.stack([ds[i]["hm"] for i in range(4)])
        np.testing.assert_array_equal(batch["hm"].numpy(), want)
        seen.append(batch["meta"]["center"].numpy())
    assert not np.array_equal(seen[0], seen[1]) and not np.array_equal(seen[1], seen[2])
    # a plain pickle (not a worker start) is a snapshot of the epoch
    import pickle
    copy = pickle.loads(pickle.dumps(ds))
    assert copy.epoch == 2
    ds.set_epoch(5)
    assert copy.epoch == 2


# --- annotations already in image pixels -------------------------------------------------------

def test_annotations_from_input_pixels_and_swapping_left_right():
    from centertargets import Annotations
    from centertargets.geometry import swap_left_right

    kps = np.array([[[8, 12, 2], [30, 4, 0], [20, 40, 1]]], np.float32)
    a = Annotations.from_input_pixels([[8, 16, 40, 48]], [3], kps, down_ratio=4)
    np.testing.assert_array_equal(a.boxes, [[2, 4, 10, 12]])
    np.testing.assert_array_equal(a.keypoints, [[[2, 3, 2], [0, 0, 0], [5, 10, 1]]])
    b = Annotations.from_input_pixels([[8, 16, 32, 32]], keypoints=kps, box_format="xywh",
                                      matrix=[[0.25, 0, 1], [0, 0.25, 0]])
    np.testing.assert_array_equal(b.boxes, [[3, 4, 11, 12]])
    assert a.classes.tolist() == [3] and b.classes is None
    with pytest.raises(ValueError, match="box_format='cxcywh'"):
        Annotations.from_input_pixels([[0, 0, 1, 1]], box_format="cxcywh")
    np.testing.assert_array_equal(swap_left_right(kps, [(0, 2)])[0, :, 0], [20, 30, 8])


def test_albumentations_example_keeps_left_and_right_joints_right():
    pytest.importorskip("albumentations")
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("alb", ROOT / "examples" / "albumentations_pose.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cfg = MultiPoseConfig(output_size=(64, 64), flip_idx=COCO_FLIP_IDX)
    flips = set()
    for seed in range(6):
        scene = person_scene(seed, num_people=4, image_size=(320, 240), p_unlabelled=0.0)
        image = np.zeros((240, 320, 3), np.uint8)
        t, flipped, ann = mod.augment_and_encode(image, scene.boxes_xywh, scene.keypoints, cfg,
                                                 seed)
        flips.add(flipped)
        on = t["reg_mask"].astype(bool)
        assert on.sum() == len(ann.boxes) > 0
        # synthetic persons face the camera: their left shoulder is left of their right one in
        # the image, and stays so after a flip only if the labels were swapped
        left_x, right_x = t["hps"][on, 2 * 5], t["hps"][on, 2 * 6]
        both = t["hps_mask"][on, 2 * 5].astype(bool) & t["hps_mask"][on, 2 * 6].astype(bool)
        assert (left_x[both] < right_x[both]).all(), (seed, flipped)
    assert flips == {True, False}


# --- uint8 items, normalised on the device -------------------------------------------------------

@pytest.mark.parametrize("size", [(128, 128), (97, 61)])
@pytest.mark.parametrize("flipped", [False, True])
def test_warp_image_chw_is_the_warp_planes_first(size, flipped):
    from centertargets.augment import warp_image, warp_image_chw

    img = np.random.default_rng(3).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    p = AugmentParams(center=(40.0, 33.0), scale=95.0, rot=10.0, flipped=flipped)
    got = warp_image_chw(img, p, size)
    assert got.dtype == np.uint8 and got.shape == (3, size[1], size[0])
    assert got.flags.c_contiguous
    np.testing.assert_array_equal(got, warp_image(img, p, size).transpose(2, 0, 1))


def test_uint8_items_normalised_by_torch_equal_the_cpu_path(pose_files):
    from centertargets.device import normalize_batch

    path, root, _ = pose_files
    coco, cfg = CocoDataset.load(path), MultiPoseConfig(output_size=(32, 32))
    aug = AugmentConfig(train=True)
    f32 = CenterNetDataset(coco, cfg, augment=aug, image_root=root, seed=4)
    u8 = CenterNetDataset(coco, cfg, augment=aug, image_root=root, seed=4, input_dtype="uint8")
    u8.set_epoch(1)
    f32.set_epoch(1)
    batch = next(iter(DataLoader(u8, batch_size=4)))
    assert batch["input"].dtype == torch.uint8 and batch["input"].shape == (4, 3, 128, 128)
    want = torch.stack([torch.from_numpy(f32[i]["input"]) for i in range(4)])
    got = normalize_batch(batch["input"], batch["meta"])
    assert got.dtype == torch.float32 and got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    # without colour (validation): the plain normalisation
    val = CenterNetDataset(coco, cfg, image_root=root, input_dtype="uint8")
    vb = next(iter(DataLoader(val, batch_size=2)))
    plain = torch.stack([torch.from_numpy(CenterNetDataset(coco, cfg, image_root=root)[i]["input"])
                         for i in range(2)])
    torch.testing.assert_close(normalize_batch(vb["input"], vb["meta"]), plain, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="expected a uint8 tensor"):
        normalize_batch(want, batch["meta"])
