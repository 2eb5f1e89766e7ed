"""Shared test helpers: where the CenterNet reference fixtures are, and sample scenes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def glibc() -> bool:
    """Whether this Python runs on glibc (malloc tuning applies there only)."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):
        return False


def reference_dir() -> Path:
    """``$CENTERTARGETS_REFERENCE_DIR`` or ``../shared/reference`` from the repository root."""
    env = os.environ.get("CENTERTARGETS_REFERENCE_DIR")
    return Path(env) if env else (ROOT.parent / "shared" / "reference")


def reference_required() -> bool:
    return os.environ.get("CENTERTARGETS_REQUIRE_REFERENCE", "") == "1"


def reference_files(prefixes: tuple[str, ...]) -> list:
    """pytest params, one per fixture whose name starts with one of ``prefixes`` (in the
    reference folder and its ``tasks/`` subfolder).

    When the folder is absent the single param skips with a reason, or fails
    when ``CENTERTARGETS_REQUIRE_REFERENCE=1``.
    """
    d = reference_dir()
    found = [*d.glob("*.npz"), *d.glob("tasks/*.npz")] if d.is_dir() else []
    files = sorted((p for p in found if p.name.startswith(prefixes)), key=lambda p: p.name)
    if files:
        return [pytest.param(p, id=p.stem) for p in files]
    return [pytest.param(None, id="no-reference")]


def need_reference(path: Path | None) -> Path:
    if path is not None:
        return path
    msg = f"reference fixtures not found at {reference_dir()}"
    if reference_required():
        pytest.fail(msg + " and CENTERTARGETS_REQUIRE_REFERENCE=1")
    pytest.skip(msg + " (set CENTERTARGETS_REFERENCE_DIR to run these tests)")


def supported(kind: str = "") -> tuple[str, ...]:
    """Fixture-name prefixes of every registered task: ``"exdet_"``, or ``"loss_exdet_"``
    with ``kind="loss"``."""
    from centertargets import tasks

    return tuple(f"{kind}_{t}_" if kind else f"{t}_" for t in tasks.names())


@pytest.fixture(params=[1, 4], ids=lambda n: f"{n}-threads")
def threads(request):
    """torch's intra-op threads at 1 and 4 for the test (numeric results must not move)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def random_boxes(rng: np.random.Generator, n: int, W: int, H: int, min_side: float = 2.0,
                 max_side: float = 40.0) -> np.ndarray:
    """(n, 4) float32 x1, y1, x2, y2 boxes whose centres lie inside a W x H map."""
    w = rng.uniform(min_side, max_side, n)
    h = rng.uniform(min_side, max_side, n)
    cx = rng.uniform(0, W - 1, n)
    cy = rng.uniform(0, H - 1, n)
    b = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, W - 1)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, H - 1)
    return b.astype(np.float32)


def random_keypoints(rng: np.random.Generator, boxes: np.ndarray, J: int = 17,
                     spill: float = 0.2) -> np.ndarray:
    """(n, J, 3) keypoints around each box, some outside it, random visibility."""
    n = len(boxes)
    u = rng.uniform(-spill, 1 + spill, (n, J, 2))
    x = boxes[:, None, 0] + u[..., 0] * (boxes[:, None, 2] - boxes[:, None, 0])
    y = boxes[:, None, 1] + u[..., 1] * (boxes[:, None, 3] - boxes[:, None, 1])
    v = rng.choice([0.0, 1.0, 2.0], size=(n, J), p=[0.2, 0.2, 0.6])
    k = np.stack([x, y, v], -1).astype(np.float32)
    k[v == 0, :2] = 0
    return k
