"""``centertargets.batch.collate``: default_collate's batch, in one block of memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, default_collate

from centertargets import (AugmentConfig, CenterNetDataset, CocoDataset, MultiPoseConfig,
                           TrackingDataset)
from centertargets.batch import collate
from centertargets.tasks.tracking import TrackingConfig


def assert_same_batch(want, got, path=""):
    """Same keys in the same order, and tensors of the same dtype, shape and values (NaN
    where the other has NaN: tracking pads its meta with NaN)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), (path, list(got))
        for k in want:
            assert_same_batch(want[k], got[k], f"{path}/{k}")
    elif isinstance(want, torch.Tensor):
        assert isinstance(got, torch.Tensor), path
        assert (got.dtype, got.shape) == (want.dtype, want.shape), path
        torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True, msg=path)
    else:
        assert got == want, path


@pytest.fixture(scope="module")
def pose_ds(tmp_path_factory):
    from centertargets.demo import write_dataset

    root = tmp_path_factory.mktemp("pose")
    coco = CocoDataset.load(write_dataset(root, images=8))
    cfg = MultiPoseConfig.from_coco(coco, output_size=(32, 32), heatmaps="sparse")
    return CenterNetDataset(coco, cfg, augment=AugmentConfig(train=True), image_root=root,
                            input_dtype="uint8", with_report=True)


def test_equals_default_collate_in_process(pose_ds):
    items = [pose_ds[i] for i in range(5)]
    assert_same_batch(default_collate(items), collate(items))


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_equals_default_collate_through_workers(pose_ds, context):
    """Through 2 workers the batch arrives as a plain dict of tensors viewing one block."""
    want = default_collate([pose_ds[i] for i in range(4)])
    loader = DataLoader(pose_ds, batch_size=4, num_workers=2, collate_fn=collate,
                        multiprocessing_context=context)
    got = next(iter(loader))
    assert type(got) is dict
    assert_same_batch(want, got)
    storages = {t.untyped_storage().data_ptr() for t in (got["input"], got["ind"],
                                                           got["meta"]["center"])}
    assert len(storages) == 1                                  # one block


def test_tracking_items_and_non_numeric_leaves(tmp_path):
    from centertargets.track_demo import write_videos

    coco = CocoDataset.load(write_videos(tmp_path, videos=1, frames=3, seed=1))
    ds = TrackingDataset(coco, TrackingConfig(output_size=(32, 32), num_classes=1, max_objs=4),
                         augment=AugmentConfig(train=True), image_root=tmp_path)
    items = [dict(ds[i], name=f"frame {i}") for i in range(3)]
    got = collate(items)
    assert_same_batch(default_collate(items), got)
    assert got["name"] == ["frame 0", "frame 1", "frame 2"]


def test_items_that_differ_are_named():
    a = {"x": np.zeros(3, np.float32), "m": {"c": np.zeros(2)}}
    with pytest.raises(ValueError, match=r"item 1\['x'\] is float32 \(4,\): expected float32 "
                                         r"\(3,\)"):
        collate([a, {"x": np.zeros(4, np.float32), "m": {"c": np.zeros(2)}}])
    with pytest.raises(ValueError, match=r"item 1\['m'\] has keys \['d'\]"):
        collate([a, {"x": np.zeros(3, np.float32), "m": {"d": np.zeros(2)}}])
    with pytest.raises(TypeError, match="non-empty list"):
        collate([])
