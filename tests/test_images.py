"""Image files as untrusted input: paths kept inside image_root, undecodable and cut-short
files told apart, and a size guard before anything huge is allocated."""

from __future__ import annotations

import json
import os
import warnings

import cv2
import numpy as np
import pytest

from centertargets import CenterNetDataset, CocoDataset, CtdetConfig, MultiPoseConfig
from centertargets.images import UndecodableImageError, image_path, truncation
from centertargets.synthetic import person_scene, to_coco


def _dataset(root, file_names, **kwargs):
    data = to_coco([person_scene(i, num_people=2) for i in range(len(file_names))])
    for img, name in zip(data["images"], file_names):
        img["file_name"] = name
    return CenterNetDataset(CocoDataset(data), MultiPoseConfig(output_size=(32, 32)),
                            image_root=root, **kwargs)


def _jpeg(path, h=480, w=640) -> bytes:
    img = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    path.write_bytes(buf.tobytes())
    return buf.tobytes()


@pytest.mark.parametrize("name", ["../outside.jpg", "a/../../outside.jpg", "ABSOLUTE"])
def test_a_file_name_leading_outside_image_root_is_refused(tmp_path, name):
    root = tmp_path / "images"
    (root / "a").mkdir(parents=True)
    _jpeg(tmp_path / "outside.jpg")
    if name == "ABSOLUTE":
        name = str(tmp_path / "outside.jpg")
    ds = _dataset(root, [name])
    with pytest.raises(ValueError, match=r"image id=1 has file_name=.*leads outside "
                                         r"image_root=.*allow_outside_root=True"):
        ds[0]
    item = _dataset(root, [name], allow_outside_root=True)[0]       # the documented opt-in
    assert item["input"].shape == (3, 128, 128)


def test_paths_inside_image_root_and_links_in_it_are_read(tmp_path):
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    _jpeg(root / "sub" / "a.jpg")
    elsewhere = tmp_path / "store"
    elsewhere.mkdir()
    _jpeg(elsewhere / "b.jpg")
    os.symlink(elsewhere, root / "linked")            # a folder linked in, as datasets often are
    ds = _dataset(root, ["sub/a.jpg", "linked/b.jpg"])
    assert ds[0]["input"].shape == ds[1]["input"].shape == (3, 128, 128)
    assert image_path(str(root), "sub/./a.jpg", 1) == os.path.join(str(root), "sub/./a.jpg")


def test_missing_and_undecodable_files_say_which(tmp_path):
    (tmp_path / "text.jpg").write_text("not an image at all")
    (tmp_path / "empty.jpg").write_bytes(b"")
    ds = _dataset(tmp_path, ["missing.jpg", "text.jpg", "empty.jpg"])
    with pytest.raises(FileNotFoundError, match="image id=1: no file .*missing.jpg"):
        ds[0]
    for i, size in ((1, 19), (2, 0)):
        with pytest.raises(UndecodableImageError,
                           match=rf"image id={i + 1}: .* exists \({size} bytes\) but cannot be "
                                 "decoded"):
            ds[i]


def test_cut_short_images_warn_once_per_file_and_whole_ones_do_not(tmp_path):
    full = _jpeg(tmp_path / "whole.jpg")
    (tmp_path / "cut.jpg").write_bytes(full[:int(len(full) * 0.6)])
    (tmp_path / "appended.jpg").write_bytes(full + b"\x00" * 7 + b"trailing data" * 10)
    ds = _dataset(tmp_path, ["whole.jpg", "cut.jpg", "appended.jpg"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in (0, 1, 1, 2):
            ds[i]
    msgs = [str(w.message) for w in caught if "cut short" in str(w.message)]
    assert len(msgs) == 1, msgs
    assert "image id=2" in msgs[0] and "end-of-image marker (FF D9)" in msgs[0]
    assert ds.truncated_images == {2}
    assert truncation(np.frombuffer(full, np.uint8)) is None


def test_a_cut_short_png_is_an_error_that_says_so(tmp_path):
    ok, png = cv2.imencode(".png", np.zeros((40, 50, 3), np.uint8))
    (tmp_path / "cut.png").write_bytes(png.tobytes()[:-12])        # IEND chunk gone
    with pytest.raises(UndecodableImageError, match=r"cannot be decoded \(it looks cut short: "
                                                    r"a PNG without its IEND chunk\)"):
        _dataset(tmp_path, ["cut.png"])[0]


def test_audit_counts_cut_short_and_unreadable_images(tmp_path, capsys):
    from centertargets.cli import main

    full = _jpeg(tmp_path / "whole.jpg")
    (tmp_path / "cut.jpg").write_bytes(full[:len(full) // 2])
    (tmp_path / "junk.jpg").write_bytes(b"\x00" * 100)
    data = to_coco([person_scene(i, num_people=2) for i in range(4)])
    for img, name in zip(data["images"], ["whole.jpg", "cut.jpg", "junk.jpg", "gone.jpg"]):
        img["file_name"] = name
    (tmp_path / "a.json").write_text(json.dumps(data))
    assert main(["audit", str(tmp_path / "a.json"), "--image-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "image files cut short (decoded with grey rows): 1 (image ids 2)" in out
    assert "image files missing or not decodable (skipped): 2 (image ids 3, 4)" in out


def test_an_item_over_max_item_bytes_is_refused_before_it_is_allocated(tmp_path):
    data = to_coco([person_scene(0, num_people=2)], categories="coco80")
    data["images"][0].update(width=20000, height=20000)
    coco = CocoDataset(data)
    cfg = CtdetConfig(output_size=(128, 128), num_classes=80)
    # no file on disk: the guard answers from the json's size, before reading the image
    ds = CenterNetDataset(coco, cfg, keep_res=True, image_root=tmp_path)
    # 80 x 5008 x 5008 float32 hm (7.5 GiB) + the 3 x 20032 x 20032 float32 input (4.5 GiB)
    want = (80 * 5008 * 5008 + 3 * 20032 * 20032) * 4 / 2 ** 20
    with pytest.raises(ValueError, match=rf"image id=1 .*would take {want:.0f} MiB \(input "
                                         r"20032x20032, output 5008x5008\): expected at most "
                                         r"max_item_bytes=1073741824"):
        ds[0]
    small = CenterNetDataset(coco, cfg, max_item_bytes=2 ** 20)      # 5 MB hm > 1 MiB
    with pytest.raises(ValueError, match="expected at most max_item_bytes=1048576"):
        small[0]
    assert CenterNetDataset(coco, cfg, max_item_bytes=None)[0]["hm"].shape == (80, 128, 128)
    with pytest.raises(ValueError, match="max_item_bytes=0: expected a number of bytes"):
        CenterNetDataset(coco, cfg, max_item_bytes=0)


# --- the warp: upstream's cv2.warpAffine of the BGR image, byte for byte, by either route ----

@pytest.mark.parametrize("route", ["as built", "bgr"])
def test_the_warp_is_upstreams_bgr_warp_byte_for_byte(monkeypatch, route):
    """Random images (noise and smooth), zooms, rotations, flips, translations that bring the
    border into view, square and odd output sizes: warp_image and warp_image_chw give what
    upstream's cv2.warpAffine of the flipped BGR image gives, through BGRA where this OpenCV
    takes that route and through BGR where it is switched off."""
    from centertargets import augment
    from centertargets.augment import AugmentParams, warp_image, warp_image_chw

    if route == "bgr":
        monkeypatch.setattr(augment, "_FOUR_CHANNELS", [False])
    rng = np.random.default_rng(5)
    for k in range(80):
        h, w = int(rng.integers(20, 500)), int(rng.integers(20, 700))
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if k % 2:
            img = cv2.GaussianBlur(img, (5, 5), 2)
        p = AugmentParams(center=(float(rng.uniform(-50, w + 50)), float(rng.uniform(-50, h + 50))),
                          scale=float(rng.uniform(0.3, 2.0) * max(w, h)),
                          rot=float(rng.uniform(-45, 45)) if k % 3 else 0.0,
                          flipped=bool(k % 4 < 2))
        size = (int(rng.integers(8, 400)), int(rng.integers(8, 400)))
        src = img[:, ::-1] if p.flipped else img
        want = cv2.warpAffine(np.ascontiguousarray(src), p.matrix(size), size,
                              flags=cv2.INTER_LINEAR)
        got = warp_image(img, p, size)
        assert got.shape == want.shape and got.flags.c_contiguous
        np.testing.assert_array_equal(got, want, err_msg=f"case {k}")
        np.testing.assert_array_equal(warp_image_chw(img, p, size), want.transpose(2, 0, 1))


def test_the_bgra_route_is_checked_once_and_can_be_switched_off(monkeypatch):
    from centertargets import augment

    monkeypatch.setattr(augment, "_FOUR_CHANNELS", [])
    first = augment.four_channel_warp()
    assert augment._FOUR_CHANNELS == [first]               # decided once per process
    monkeypatch.setattr(augment, "_FOUR_CHANNELS", [])
    monkeypatch.setenv("CENTERTARGETS_BGRA_WARP", "0")
    assert augment.four_channel_warp() is False
    # a build whose two routes disagreed would take the BGR one
    monkeypatch.delenv("CENTERTARGETS_BGRA_WARP")
    monkeypatch.setattr(augment, "_FOUR_CHANNELS", [])
    real = cv2.warpAffine

    def off_by_one_for_bgra(img, m, size, flags):
        out = real(img, m, size, flags=flags)
        if img.shape[2] == 4:
            out[0, 0, 0] ^= 1
        return out

    monkeypatch.setattr(augment.cv2, "warpAffine", off_by_one_for_bgra)
    assert augment.four_channel_warp() is False


def test_warp_image_of_other_layouts_is_the_plain_warp():
    """Only a BGR uint8 image takes the BGRA route: grey, BGRA and float images are warped as
    they are (as cv2.warpAffine warps them); warp_image_chw asks for a BGR uint8 image."""
    from centertargets.augment import AugmentParams, warp_image, warp_image_chw

    rng = np.random.default_rng(2)
    p = AugmentParams(center=(30.0, 20.0), scale=70.0, rot=15.0, flipped=True)
    for img in (rng.integers(0, 256, (40, 60), dtype=np.uint8),
                rng.integers(0, 256, (40, 60, 4), dtype=np.uint8),
                rng.random((40, 60, 3)).astype(np.float32)):
        want = cv2.warpAffine(np.ascontiguousarray(img[:, ::-1]), p.matrix((32, 24)), (32, 24),
                              flags=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(warp_image(img, p, (32, 24)), want)
    with pytest.raises(ValueError, match="expected a BGR uint8"):
        warp_image_chw(rng.integers(0, 256, (40, 60), dtype=np.uint8), p, (32, 24))
