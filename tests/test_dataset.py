"""COCO parsing, the Dataset through a real DataLoader (forked workers), augmentation."""

from __future__ import annotations

import json
import pickle

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from centertargets import CtdetConfig, MultiPoseConfig
from centertargets.coco import CocoDataset
from centertargets import AugmentConfig, AugmentParams, CenterNetDataset
from centertargets.synthetic import detection_scene, person_scene, to_coco


@pytest.fixture
def pose_json(tmp_path):
    scenes = [person_scene(i, num_people=2 + i) for i in range(6)]
    path = tmp_path / "person_keypoints.json"
    path.write_text(json.dumps(to_coco(scenes)))
    return path, scenes


def test_coco_json_round_trips_the_scenes(pose_json):
    path, scenes = pose_json
    coco = CocoDataset.load(path)
    assert len(coco) == 6 and coco.num_joints == 17 and coco.num_classes == 1
    for ann, s in zip(coco, scenes):
        np.testing.assert_allclose(ann.boxes_xywh, s.boxes_xywh)
        np.testing.assert_allclose(ann.keypoints, s.keypoints)
        assert (ann.classes == 0).all() and ann.width == s.width


def test_coco_detection_classes_follow_sorted_category_ids():
    data = to_coco([detection_scene(0, 10)], categories="coco80")
    coco = CocoDataset(data)
    ann = coco[0]
    ids = sorted(c["id"] for c in data["categories"])
    assert [ids[c] for c in ann.classes] == ann.category_ids.tolist()


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d["annotations"][0].update(bbox=[1, 2, -3, 4]), r"annotation id=1 bbox=\[1, 2, -3, 4\]"),
    (lambda d: d["annotations"][0].update(keypoints=[0] * 50), r"keypoints has 50 values"),
    (lambda d: d["annotations"][0].update(image_id=999), r"image_id=999"),
    (lambda d: d["annotations"][0].update(category_id=7), r"category_id=7"),
    (lambda d: d.pop("categories"), r"no list 'categories'"),
])
def test_bad_coco_annotations_are_named(mutate, match):
    data = to_coco([person_scene(0, 2)])
    mutate(data)
    with pytest.raises(ValueError, match=match):
        coco = CocoDataset(data)
        coco[0]


def test_dataloader_with_forked_workers_matches_single_process(pose_json):
    path, _ = pose_json
    cfg = MultiPoseConfig(output_size=(64, 64))
    ds = CenterNetDataset(CocoDataset.load(path), cfg, augment=AugmentConfig(train=True, rot_prob=0.3,
                                                                            rotate=10), seed=3)
    single = [ds[i] for i in range(len(ds))]
    loader = DataLoader(ds, batch_size=3, num_workers=2, multiprocessing_context="fork")
    batches = list(loader)
    assert len(batches) == 2
    for name, spec in cfg.spec().items():
        got = torch.cat([b[name] for b in batches]).numpy()
        np.testing.assert_array_equal(got, np.stack([s[name] for s in single]), err_msg=name)
        assert got.shape[1:] == spec.shape and got.dtype == spec.dtype
    ds.set_epoch(1)
    assert any(not np.array_equal(ds[i]["hm"], single[i]["hm"]) for i in range(len(ds)))


def test_dataloader_with_spawned_workers(pose_json):
    path, _ = pose_json
    cfg = MultiPoseConfig(output_size=(48, 48))
    ds = CenterNetDataset(CocoDataset.load(path), cfg)
    loader = DataLoader(ds, batch_size=6, num_workers=1, multiprocessing_context="spawn")
    (batch,) = list(loader)
    np.testing.assert_array_equal(batch["hm_hp"].numpy(), np.stack([ds[i]["hm_hp"] for i in range(6)]))


def test_dataset_reads_and_warps_images(tmp_path):
    scene = detection_scene(1, 5, image_size=(200, 120))
    data = to_coco([scene], categories="coco80")
    img = np.full((120, 200, 3), 128, np.uint8)
    cv2.imwrite(str(tmp_path / data["images"][0]["file_name"]), img)
    cfg = CtdetConfig(output_size=(32, 32), num_classes=80)
    ds = CenterNetDataset(CocoDataset(data), cfg, image_root=str(tmp_path), with_report=True)
    item = ds[0]
    assert item["input"].shape == (3, 128, 128) and item["input"].dtype == np.float32
    assert item["report"]["num_objects"] == 5
    ds_missing = CenterNetDataset(CocoDataset(data), cfg, image_root=str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="image id=1: no file .*synthetic_000001.jpg"):
        ds_missing[0]


def test_training_augmentation_matches_centernet_ranges():
    aug = AugmentConfig(train=True, rot_prob=1.0, rotate=10)
    rng = np.random.default_rng(0)
    scales, flips = [], 0
    for _ in range(300):
        p = aug.sample(rng, 640, 480)
        scales.append(p.scale / 640)
        flips += p.flipped
        assert -20 <= p.rot <= 20
        cx = 640 - p.center[0] - 1 if p.flipped else p.center[0]
        assert 128 <= cx < 640 - 128
    assert set(np.round(scales, 1)) <= {0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3}
    assert 100 < flips < 200
    assert AugmentConfig().sample(rng, 640, 480) == AugmentParams((320.0, 240.0), 640.0)


def _worker_start_pickle(ds) -> bytes:
    """``ds`` pickled as a spawned worker's start pickles it."""
    from multiprocessing.context import set_spawning_popen
    from multiprocessing.popen_spawn_posix import _DupFd
    from multiprocessing.reduction import ForkingPickler

    class Starting:                      # what a spawning Popen offers the picklers
        DupFd = _DupFd

        def duplicate_for_child(self, fd):
            return fd

    set_spawning_popen(Starting())
    try:
        return bytes(ForkingPickler.dumps(ds))
    finally:
        set_spawning_popen(None)


def _large_dataset():
    data = to_coco([person_scene(i, num_people=12) for i in range(200)])
    return CenterNetDataset(CocoDataset(data), MultiPoseConfig(output_size=(32, 32)),
                            augment=AugmentConfig(train=True), seed=4)


def test_a_worker_start_pickles_a_large_dataset_in_a_few_kilobytes():
    """Starting a spawned worker writes its pickle into a 64 KiB pipe that the child reads only
    after its imports: a larger pickle would start the workers one after another.  The dataset
    travels in shared memory instead, and a spawned worker produces the same items."""
    ds = _large_dataset()
    assert len(pickle.dumps(ds)) > 1_000_000          # the arrays alone: 200 x 12 persons
    assert len(_worker_start_pickle(ds)) < 8192
    ds.set_epoch(3)
    loader = DataLoader(ds, batch_size=3, sampler=[0, 57, 199], num_workers=1,
                        multiprocessing_context="spawn")
    (batch,) = list(loader)
    for name in ("hm", "hm_hp", "hps", "ind"):
        want = np.stack([ds[i][name] for i in (0, 57, 199)])
        np.testing.assert_array_equal(batch[name].numpy(), want, err_msg=name)


def test_without_room_in_shared_memory_the_dataset_takes_the_pipe(monkeypatch):
    # a full /dev/shm kills the writer with SIGBUS: a dataset that does not fit is not put there
    import centertargets.dataset as D

    monkeypatch.setattr(D, "_fits_in_shared_memory", lambda nbytes: False)
    assert len(_worker_start_pickle(_large_dataset())) > 1_000_000


def test_an_image_built_on_the_fast_path_is_the_dataclass_it_claims(pose_json):
    import dataclasses

    from centertargets.coco import ImageAnnotations

    coco = CocoDataset.load(pose_json[0])
    for iid in coco.image_ids:
        got = coco.image(iid)
        names = [f.name for f in dataclasses.fields(ImageAnnotations)]
        assert sorted(vars(got)) == sorted(names)          # every field set, nothing else
        same = ImageAnnotations(**{n: getattr(got, n) for n in names})
        for n in names:
            a, b = getattr(got, n), getattr(same, n)
            if isinstance(a, np.ndarray):
                np.testing.assert_array_equal(a, b)
            else:
                assert a == b
        with pytest.raises(dataclasses.FrozenInstanceError):
            got.width = 3
    assert len(coco.image(coco.image_ids[0]).boxes_xywh) > 0
