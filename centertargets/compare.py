"""Recompute reference fixtures with this package and report every mismatch.

The fixture format is described in ``../shared/reference/README.md``: scene
fixtures (one CenterNet sample), primitive fixtures (radius, drawing, affine),
loss fixtures and decoder fixtures.  Tolerances (the project's contract):
integer and mask arrays exactly equal; float targets within 1e-5 absolute
plus 1e-6 relative; loss values within 1e-5 relative; decoded detections
within 1e-4.
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from . import tasks

FLOAT_ATOL = 1e-5
FLOAT_RTOL = 1e-6
LOSS_RTOL = 1e-5
DECODE_ATOL = 1e-4
INPUT_ATOL = 1e-5

#: Targets that are masks or indices: compared exactly even when stored as float.
EXACT_KEYS = {"ind", "reg_mask", "hps_mask", "hp_ind", "hp_mask", "cat_spec_mask"}


@dataclass(frozen=True)
class FixtureResult:
    """Outcome for one fixture: ``ok``, else the first differing ``key`` and ``max_diff``."""

    name: str
    ok: bool
    key: str = ""
    max_diff: float = 0.0
    reason: str = ""
    #: A fixture of a task this package does not support yet: neither passed nor failed.
    unsupported: str = ""

    def line(self) -> str:
        """One human-readable line (used by ``centertargets compare``)."""
        if self.ok:
            return f"ok    {self.name}"
        if self.unsupported:
            return f"--    {self.name}: task {self.unsupported!r} not supported yet"
        if self.key:
            return (f"FAIL  {self.name}: first differing key {self.key!r}, "
                    f"largest difference {self.max_diff:.6g}" +
                    (f" ({self.reason})" if self.reason else ""))
        return f"FAIL  {self.name}: {self.reason}"


def load_fixture(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(meta, arrays)`` of a fixture ``.npz``; raises ValueError if it is not one."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # zipfile/OSError/ValueError: report uniformly
        raise ValueError(f"cannot read {path}: {exc}") from exc
    if "__meta__" not in arrays:
        raise ValueError(f"{path} has no __meta__ entry")
    try:
        meta = json.loads(str(arrays.pop("__meta__")))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: __meta__ is not JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: __meta__ is not a JSON object")
    return meta, arrays


def _diff(expected: np.ndarray, got: np.ndarray, exact: bool, atol: float,
          rtol: float) -> tuple[bool, float, str]:
    expected = np.asarray(expected)
    got = np.asarray(got)
    if expected.shape != got.shape:
        return False, float("inf"), f"shape {got.shape}, expected {expected.shape}"
    if expected.size == 0:
        return True, 0.0, ""
    e = expected.astype(np.float64)
    g = got.astype(np.float64)
    if not np.array_equal(np.isnan(e), np.isnan(g)):
        return False, float("inf"), "NaN in different places"
    nan = np.isnan(e)                       # upstream's NaN (exdet/ddd --mse_loss): same places
    d = np.abs(np.where(nan, 0.0, e - g))
    md = float(d.max())
    if exact:
        return md == 0.0, md, "" if md == 0.0 else "must be equal"
    return bool(np.all(d <= atol + rtol * np.abs(np.where(nan, 0.0, e)))), md, ""


def compare_arrays(name: str, expected: dict[str, np.ndarray], got: dict[str, np.ndarray],
                   atol: float = FLOAT_ATOL, rtol: float = FLOAT_RTOL) -> FixtureResult:
    """Compare two dicts of arrays key by key (sorted); keys must match."""
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    if missing or extra:
        return FixtureResult(name, False, reason=f"keys differ: missing {missing}, unexpected {extra}")
    for key in sorted(expected):
        e, g = np.asarray(expected[key]), np.asarray(got[key])
        exact = key in EXACT_KEYS or not np.issubdtype(e.dtype, np.floating)
        if e.dtype != g.dtype and key not in ("detections",):
            return FixtureResult(name, False, key, 0.0, f"dtype {g.dtype}, expected {e.dtype}")
        ok, md, why = _diff(e, g, exact, atol, rtol)
        if not ok:
            return FixtureResult(name, False, key, md, why)
    return FixtureResult(name, True)


# --- fixture kinds --------------------------------------------------------------------------

def _check_scene(name: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> FixtureResult:
    from .compat.centernet import encode_sample

    return compare_arrays(name, arrays, encode_sample(meta))


def _check_sample(name: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]
                  ) -> FixtureResult:
    """A whole training sample: the image through ``CenterNetDataset.item`` with upstream's
    draws (crop, scale, flip, rotation, colour); targets as scenes, ``input`` within 1e-5."""
    from .compat.centernet import replay_sample

    expected = dict(arrays)
    image = expected.pop("image")
    item = replay_sample(meta, image)
    got = {k: v for k, v in item.items() if k != "meta"}
    inp = {"input": expected.pop("input")}
    res = compare_arrays(name, expected, {k: v for k, v in got.items() if k != "input"})
    if not res.ok or "input" not in got:
        return res if res.ok is False else FixtureResult(name, False, reason="no input computed")
    return compare_arrays(name, inp, {"input": got["input"]}, atol=INPUT_ATOL, rtol=0.0)


def _check_radius(name: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> FixtureResult:
    from .kernels.gaussian import gaussian_radius_centernet

    got = {}
    expected = {}
    for o in meta.get("overlaps", [0.7, 0.5, 0.9]):
        key = f"radius_{o}"
        expected[key] = arrays[key]
        got[key] = np.array([gaussian_radius_centernet(float(h), float(w), float(o))
                             for h, w in zip(arrays["h"], arrays["w"])], dtype=np.float64)
    return compare_arrays(name, expected, got)


def _check_draw(name: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> FixtureResult:
    from .kernels.gaussian import (draw_dense_reg, draw_msra, draw_umich, get_patch,
                                   msra_patch, patch_table)

    table = patch_table()
    shape = arrays["umich"].shape
    C, H, W = shape
    umich = np.zeros(shape, np.float32)
    msra = np.zeros(shape, np.float32)
    dense = np.zeros((C, 2, H, W), np.float32)
    dense_hm = np.zeros(shape, np.float32)
    for row in arrays["draws"]:
        ch, cx, cy, radius, k = int(row[0]), int(row[1]), int(row[2]), int(row[3]), float(row[4])
        value = np.array(row[5:7], dtype=np.float32)
        is_offset = bool(row[7])
        patch = get_patch(radius, table)
        draw_umich(umich[ch], cx, cy, radius, k, patch)
        sigma = float(max(radius, 1))
        draw_msra(msra[ch], cx + 0.3, cy + 0.6, sigma, msra_patch(sigma))
        if 0 <= cx < W and 0 <= cy < H:
            draw_dense_reg(dense[ch], dense_hm, ch, cx, cy, value, radius, is_offset, patch)
            draw_umich(dense_hm[ch], cx, cy, radius, 1.0, patch)
    return compare_arrays(name, {k: arrays[k] for k in ("umich", "msra", "dense_reg",
                                                        "dense_reg_heatmap")},
                          {"umich": umich, "msra": msra, "dense_reg": dense,
                           "dense_reg_heatmap": dense_hm})


def _check_affine(name: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> FixtureResult:
    from .geometry import get_affine_transform

    mats = []
    for cx, cy, scale, rot, ow, oh, inv in arrays["params"]:
        mats.append(get_affine_transform(np.array([cx, cy], np.float32), float(scale), float(rot),
                                         [int(ow), int(oh)], inv=bool(inv)))
    return compare_arrays(name, {"matrices": arrays["matrices"]},
                          {"matrices": np.array(mats, dtype=np.float64)})


def _check_loss(name: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> FixtureResult:
    import torch

    from centertargets.losses import LossOptions, make_loss

    from .compat.centernet import config_from_loss_fixture

    opts = meta["options"]
    targets = {k[len("target_"):]: v for k, v in arrays.items() if k.startswith("target_")}
    outputs = {k[len("output_"):]: torch.from_numpy(v) for k, v in arrays.items()
               if k.startswith("output_")}
    config = config_from_loss_fixture(meta["task"], opts, targets)
    options = LossOptions(**{k: opts[k] for k in ("hm_weight", "wh_weight", "off_weight",
                                                  "hp_weight", "hm_hp_weight", "dep_weight",
                                                  "dim_weight", "rot_weight", "reg_loss",
                                                  "norm_wh") if k in opts})
    batch = {k: torch.from_numpy(v) for k, v in targets.items()}
    with torch.no_grad():
        _, stats = make_loss(config, options)(outputs, batch)
    return compare_loss_stats(name, meta["loss_stats"], {k: float(v) for k, v in stats.items()})


def compare_loss_stats(name: str, expected: dict[str, Any], stats: dict[str, float]
                       ) -> FixtureResult:
    """Every recorded loss stat within ``LOSS_RTOL`` relative (NaN only where recorded)."""
    for key in sorted(expected):
        want = float(expected[key])
        if key not in stats:
            return FixtureResult(name, False, key, float("inf"), "stat not computed")
        got = float(stats[key])
        if math.isnan(want) or math.isnan(got):     # upstream's NaN (exdet/ddd --mse_loss)
            if math.isnan(want) and math.isnan(got):
                continue
            return FixtureResult(name, False, key, float("inf"), f"got {got:.9g}, expected "
                                 f"{want:.9g}")
        diff = abs(got - want)
        if not diff <= LOSS_RTOL * abs(want) + 1e-12:
            return FixtureResult(name, False, key, diff, f"got {got:.9g}, expected {want:.9g}")
    return FixtureResult(name, True)


def _check_decode(name: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> FixtureResult:
    """A decoder fixture through its task's decoder class (the unit answering its ``kind``).

    The config comes from the fixture (sizes from the arrays' shapes, heads
    from its flags); its heatmaps are probabilities, so no sigmoid is applied.
    """
    import torch

    unit = tasks.decode_unit(str(meta["kind"]))
    assert unit is not None
    decoder, heads = unit.decode_fixture(meta, arrays)
    outputs = {k: torch.from_numpy(v) for k, v in heads.items() if v is not None}
    dets = decoder(outputs)
    return compare_arrays(name, {"detections": arrays["detections"]},
                          {"detections": dets.numpy()}, atol=DECODE_ATOL, rtol=0.0)


_BY_KIND: dict[str, Callable[[str, dict[str, Any], dict[str, np.ndarray]], FixtureResult]] = {
    "gaussian_radius": _check_radius,
    "draw": _check_draw,
    "get_affine_transform": _check_affine,
}


def _check_steps(replay: Callable[..., list[tuple]], name: str, meta: dict[str, Any],
                 arrays: dict[str, np.ndarray]) -> FixtureResult:
    """A fixture a task replays itself (``TaskUnit.fixture_checker``): each of its steps
    compared in turn, the first failure reported."""
    for step in replay(meta, arrays):
        if step[0] == "loss":
            res = compare_loss_stats(name, step[1], step[2])
        else:
            _, expected, got, atol, rtol = step
            res = compare_arrays(name, expected, got, atol=atol, rtol=rtol)
        if not res.ok:
            return res
    return FixtureResult(name, True)


def check_fixture(path: str | os.PathLike[str]) -> FixtureResult:
    """Recompute one fixture and compare; never raises for a bad fixture (it fails instead)."""
    name = Path(path).name
    try:
        meta, arrays = load_fixture(path)
    except ValueError as exc:
        return FixtureResult(name, False, reason=str(exc))
    kind, task = meta.get("kind"), meta.get("task")
    supported = task in tasks.names()
    fn: Callable[[str, dict[str, Any], dict[str, np.ndarray]], FixtureResult]
    if kind in _BY_KIND:
        fn = _BY_KIND[kind]
    elif isinstance(kind, str) and kind.endswith("_decode"):
        if tasks.decode_unit(kind) is None:
            return FixtureResult(name, False, unsupported=kind)
        fn = _check_decode
    elif not isinstance(task, str):
        return FixtureResult(name, False, reason=f"unknown fixture kind {kind!r} "
                                                 f"(task {task!r})")
    elif not supported:
        return FixtureResult(name, False, unsupported=task)
    elif (own := tasks.get(task).fixture_checker()) is not None:
        fn = functools.partial(_check_steps, own)
    elif kind == "loss":
        fn = _check_loss
    elif kind == "sample":
        fn = _check_sample
    else:                           # a scene: 'empty', 'mixed', 'crowd', 'tiny', ...
        fn = _check_scene
    try:
        return fn(name, meta, arrays)
    except Exception as exc:  # a fixture we cannot replay is a failure with its reason
        return FixtureResult(name, False, reason=f"{type(exc).__name__}: {exc}")


def iter_fixture_paths(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Expand folders into their ``*.npz`` files, subfolders included (sorted); files are
    passed through."""
    for p in paths:
        p = Path(p)
        if p.is_dir():
            yield from sorted(p.rglob("*.npz"))
        else:
            yield p
