"""``centertargets.batch.collate``: default_collate's batch, in one block of memory."""

from __future__ import annotations

import os

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


# -- reused blocks --------------------------------------------------------------------------


@pytest.fixture
def as_worker(monkeypatch):
    """This process collates as a DataLoader worker would (into its pool of blocks), with a
    pool of 2; ``send`` pickles a batch as the worker's result queue does and loads it as
    the main process does."""
    from multiprocessing.reduction import ForkingPickler

    import centertargets.batch as batch

    if not hasattr(os, "memfd_create"):
        pytest.skip("block reuse needs memfd_create (Linux)")
    monkeypatch.setattr(batch, "get_worker_info", lambda: object())
    monkeypatch.setattr(batch._PoolBlock, "_pool", [])
    monkeypatch.setenv("CENTERTARGETS_BATCH_POOL", "2")
    return lambda packed: ForkingPickler.loads(bytes(ForkingPickler.dumps(packed)))


def _items(seed):
    rng = np.random.default_rng(seed)
    return [{"x": rng.random((4, 5), dtype=np.float32), "i": rng.integers(0, 9, 3)}
            for _ in range(3)]


def test_a_block_is_reused_only_once_nothing_views_it(as_worker):
    import gc

    first = collate(_items(0))
    block = first._pooled
    assert block is not None
    got = as_worker(first)
    assert_same_batch(default_collate(_items(0)), got)
    del first
    kept = got["x"][1]                        # a view keeps the whole batch's block
    del got
    gc.collect()
    second = collate(_items(1))
    assert second._pooled is not None and second._pooled is not block
    got2 = as_worker(second)
    third = collate(_items(2))                # both blocks in use: a one-off block
    assert third._pooled is None
    assert_same_batch(default_collate(_items(2)), as_worker(third))
    torch.testing.assert_close(kept, torch.from_numpy(_items(0)[1]["x"]), rtol=0, atol=0)
    del kept, second
    gc.collect()
    fourth = collate(_items(3))               # the first block is free again
    assert fourth._pooled is block
    assert_same_batch(default_collate(_items(3)), as_worker(fourth))
    assert_same_batch(default_collate(_items(1)), got2)   # the other block untouched


def test_a_batch_tensor_sent_on_is_copied_not_shared(as_worker):
    """A tensor of a received batch put on a multiprocessing queue goes to shared memory of
    its own, so the worker's next batch in the block does not change it."""
    import gc
    from multiprocessing.reduction import ForkingPickler

    first = collate(_items(0))
    block = first._pooled
    got = as_worker(first)
    del first
    sent = bytes(ForkingPickler.dumps(got["x"]))
    del got                      # loaded only now: in-process, loading would share the storage
    gc.collect()
    elsewhere = ForkingPickler.loads(sent)
    again = collate(_items(1))
    assert again._pooled is block                            # overwritten in place
    torch.testing.assert_close(elsewhere, default_collate(_items(0))["x"], rtol=0, atol=0)


def test_a_pooled_batch_is_sent_once(as_worker):
    """A second pickle of a batch sent in a reused block is refused (its memory may already
    hold the next batch), naming the way out."""
    packed = collate(_items(0))
    as_worker(packed)
    with pytest.raises(RuntimeError, match="already sent .* CENTERTARGETS_BATCH_POOL=0"):
        as_worker(packed)


@pytest.mark.parametrize("pool", ["2", "0"])
def test_a_batch_changed_after_collating_is_sent_as_changed(as_worker, monkeypatch, pool):
    """A collate_fn that adds a key, replaces a value or changes ``meta`` after ``collate``:
    the receiver gets the changed dict, not the collated one."""
    monkeypatch.setenv("CENTERTARGETS_BATCH_POOL", pool)
    items = [dict(it, meta={"k": np.int64(i)}) for i, it in enumerate(_items(0))]
    for change in ("add", "replace", "nested"):
        packed = collate(items)
        if change == "add":
            packed["names"] = ["a", "b", "c"]
        elif change == "replace":
            packed["x"] = packed["x"] * 2
        else:
            packed["meta"]["k"] = packed["meta"]["k"] + 10
        want = {k: (dict(v) if isinstance(v, dict) else v) for k, v in packed.items()}
        got = as_worker(packed)
        assert type(got) is dict
        assert_same_batch(want, got)


def test_a_block_whose_batch_never_left_leaves_the_pool(as_worker):
    """A batch dropped in the worker unsent never comes back from a receiver: its block is
    not filled again (a view of it may live on) and makes room for a new one."""
    import gc

    import centertargets.batch as batch

    packed = collate(_items(0))
    lost = packed._pooled
    kept = packed["x"]
    del packed
    gc.collect()
    for seed in (1, 2, 3):
        got = as_worker(collate(_items(seed)))
        assert_same_batch(default_collate(_items(seed)), got)
        del got
        gc.collect()
    assert lost not in batch._PoolBlock._pool
    torch.testing.assert_close(kept, default_collate(_items(0))["x"], rtol=0, atol=0)


def test_copying_a_batch_in_the_worker_leaves_it_to_send(as_worker):
    import copy

    packed = collate(_items(0))
    assert type(copy.copy(packed)) is dict and type(copy.deepcopy(packed)) is dict
    assert_same_batch(default_collate(_items(0)), as_worker(packed))


def test_pool_size_from_the_environment(monkeypatch):
    from centertargets.batch import pool_size

    monkeypatch.setenv("CENTERTARGETS_BATCH_POOL", "3")
    assert pool_size() == (3 if hasattr(os, "memfd_create") else 0)
    for bad, msg in (("many", "expected a whole number"), ("-1", "expected 0 or more")):
        monkeypatch.setenv("CENTERTARGETS_BATCH_POOL", bad)
        with pytest.raises(ValueError, match=f"CENTERTARGETS_BATCH_POOL=.*{msg}"):
            pool_size()


def test_pool_off_sends_a_block_per_batch(as_worker, monkeypatch):
    monkeypatch.setenv("CENTERTARGETS_BATCH_POOL", "0")
    packed = collate(_items(0))
    assert packed._pooled is None
    assert_same_batch(default_collate(_items(0)), as_worker(packed))


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_held_batches_stay_intact_while_the_worker_reuses_blocks(pose_ds, context,
                                                                 monkeypatch):
    """Three epochs through one persistent worker, every other batch kept to the end: each
    batch equals default_collate's when it arrives and at the end, and blocks were reused
    (fewer memory files than batches came in; while every block is held, a batch comes in a
    block of its own)."""
    import gc
    import mmap as real

    import centertargets.batch as batch

    if not hasattr(os, "memfd_create"):
        pytest.skip("block reuse needs memfd_create (Linux)")
    files = []                   # the memory file of every batch the main process maps

    class Mmap:                  # batch.mmap, recording (a forked worker records in its copy)
        @staticmethod
        def mmap(fd, *args, **kwargs):
            files.append(os.fstat(fd).st_ino)
            return real.mmap(fd, *args, **kwargs)

    monkeypatch.setattr(batch, "mmap", Mmap)
    want = [default_collate([pose_ds[i] for i in range(k, k + 2)]) for k in range(0, 8, 2)]
    loader = DataLoader(pose_ds, batch_size=2, num_workers=1, collate_fn=collate,
                        persistent_workers=True, multiprocessing_context=context)
    held = []
    for epoch in range(3):
        for j, got in enumerate(loader):
            assert_same_batch(want[j], got)
            if j % 2 == 0:
                held.append((j, got))
    for j, got in held:
        assert_same_batch(want[j], got)
    assert len(set(files)) < len(files), files         # a block carried several batches
    del loader, held, got
    gc.collect()
    with open("/proc/self/maps") as f:                 # every mapping went with its batch
        assert "centertargets-batch" not in f.read()
