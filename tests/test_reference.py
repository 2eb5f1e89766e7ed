"""Bit-compatibility with upstream CenterNet, fixture by fixture (../shared/reference)."""

from __future__ import annotations

import numpy as np
import pytest

from centertargets.compare import check_fixture, load_fixture
from centertargets.compat.centernet import encode_sample

from conftest import need_reference, reference_files, supported


@pytest.mark.parametrize("path", reference_files(supported()))
def test_scene_fixture_matches_centernet(path):
    path = need_reference(path)
    meta, expected = load_fixture(path)
    got = encode_sample(meta)
    assert set(got) == set(expected)
    for key, want in expected.items():
        assert got[key].dtype == want.dtype, key
        assert got[key].shape == want.shape, key
        if np.issubdtype(want.dtype, np.floating):
            np.testing.assert_allclose(got[key], want, rtol=1e-6, atol=1e-5, err_msg=key)
        else:
            np.testing.assert_array_equal(got[key], want, err_msg=key)


@pytest.mark.parametrize("path", reference_files(("prim_",)))
def test_primitive_fixture_matches_centernet(path):
    path = need_reference(path)
    result = check_fixture(path)
    assert result.ok, result.line()


@pytest.mark.parametrize("path", [p for p in reference_files(supported())
                                  if "_mse_" not in p.id])
def test_scene_fixture_is_bit_exact(path):
    """Beyond the tolerance: every target is identical.  MSRA (``_mse_``) scenes are left
    out: their float32 ``exp`` is numpy's SIMD code, which may differ by an ulp between CPUs."""
    path = need_reference(path)
    meta, expected = load_fixture(path)
    got = encode_sample(meta)
    for key, want in expected.items():
        np.testing.assert_array_equal(got[key], want, err_msg=key)


@pytest.mark.parametrize("path", reference_files(supported("decode")))
def test_decode_fixtures_match_centernet(path):
    path = need_reference(path)
    result = check_fixture(path)
    assert result.ok, result.line()


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("path", reference_files(supported("loss")))
def test_loss_fixtures_match_centernet_on_any_thread_count(path, threads):
    """Float32 reductions change with the thread count; the losses sum in float64."""
    import torch

    path = need_reference(path)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        result = check_fixture(path)
    finally:
        torch.set_num_threads(before)
    assert result.ok, result.line()


@pytest.mark.parametrize("path", reference_files(supported("sample")))
def test_whole_sample_fixture_replays_through_the_dataset(path):
    """Image in, upstream's draws (crop, scale, flip, rotation, colour) replayed through
    ``CenterNetDataset.item``: every target identical, the network input within 1e-5."""
    from centertargets.compat.centernet import replay_sample

    path = need_reference(path)
    meta, expected = load_fixture(path)
    if meta["task"] in ("ctdet", "multi_pose"):      # colour augmentation was on upstream
        assert meta["color"]["order"]
    image = expected.pop("image")
    item = replay_sample(meta, image)
    np.testing.assert_allclose(item.pop("input"), expected.pop("input"), rtol=0, atol=1e-5)
    for key, want in expected.items():
        np.testing.assert_array_equal(item[key], want, err_msg=key)
    assert check_fixture(path).ok


def test_fixtures_of_other_tasks_pass_when_their_task_is_registered():
    """``tasks/`` holds the fixtures of tasks adopted one at a time: each fixture of a
    registered task must pass, and only those of unregistered tasks may go unchecked."""
    from centertargets import tasks
    from centertargets.compare import iter_fixture_paths

    from conftest import reference_dir, reference_required

    folder = reference_dir() / "tasks"
    if not folder.is_dir():
        if reference_required():
            pytest.fail(f"no {folder} and CENTERTARGETS_REQUIRE_REFERENCE=1")
        pytest.skip(f"reference fixtures not found at {folder}")
    results = [check_fixture(p) for p in iter_fixture_paths([folder])]
    failed = [r.line() for r in results if not r.ok and not r.unsupported]
    assert not failed, failed
    unchecked = {r.unsupported for r in results if r.unsupported}
    assert not unchecked & set(tasks.names()), unchecked
    assert len(results) > 50
