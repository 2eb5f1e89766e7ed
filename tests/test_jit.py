"""numba caching: can be switched off, and falls back when no cache folder is writable."""

from __future__ import annotations

import os
import subprocess
import sys

import numba
import numpy as np

from centertargets.kernels import _jit


def test_cache_falls_back_when_numba_cannot_cache(monkeypatch):
    real = numba.njit

    def refusing_njit(*args, **kwargs):
        if kwargs.get("cache"):
            def deco(fn):
                raise RuntimeError(f"cannot cache function {fn.__name__!r}: no locator available")
            return deco
        return real(*args, **kwargs)

    monkeypatch.setattr(_jit.numba, "njit", refusing_njit)
    monkeypatch.setattr(_jit, "CACHE_ENABLED", True)

    def add_one(a):
        return a + 1

    fn = _jit.jit(add_one)
    assert fn(np.int64(41)) == 42
    assert any("add_one" in n for n in _jit.UNCACHED)


def test_cache_can_be_switched_off_and_import_never_pulls_torch(tmp_path):
    env = dict(os.environ, CENTERTARGETS_NUMBA_CACHE="0", NUMBA_CACHE_DIR=str(tmp_path))
    code = ("import sys, centertargets.kernels._jit as j; import centertargets; "
            "print(j.CACHE_ENABLED, 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False"]
