"""numba caching: can be switched off, and falls back when no cache folder is writable."""

from __future__ import annotations

import os
import subprocess
import sys

import numba
import numpy as np
import pytest

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

    monkeypatch.setattr(_jit, "UNCACHED", [])
    with pytest.warns(RuntimeWarning, match="no writable cache folder"):
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


# A read-only install, simulated where numba decides it (the tests may run as root, for whom
# chmod does not make a folder read-only): the package's __pycache__ refuses to be written.
_READ_ONLY = r"""
import json, sys, warnings
from numba.core import caching

def refuse(self):
    raise PermissionError(13, "read-only", self.get_cache_path())

caching.InTreeCacheLocator.ensure_cache_path = refuse
if sys.argv[1] == "nowhere":
    caching.UserWideCacheLocator.ensure_cache_path = refuse
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import numpy as np
    from centertargets.kernels import _jit, validate
    got = validate.check_classes(np.array([0, 5, 1]), 3)
print(json.dumps({"got": got, "hits": sum(validate.check_classes.stats.cache_hits.values()),
                  "uncached": len(_jit.UNCACHED),
                  "warnings": [str(w.message) for w in caught]}))
"""


def _read_only_install(tmp_path, mode):
    import json
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(XDG_CACHE_HOME=str(tmp_path / "xdg"), CENTERTARGETS_NUMBA_CACHE="1")
    r = subprocess.run([sys.executable, "-c", _READ_ONLY, mode], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_read_only_install_caches_in_the_per_user_folder(tmp_path):
    first = _read_only_install(tmp_path, "per-user")
    assert first["got"] == 1 and first["uncached"] == 0 and first["warnings"] == []
    cached = list((tmp_path / "xdg" / "numba").rglob("validate.check_classes*.nbi"))
    assert cached, "no cache index in the per-user folder"
    second = _read_only_install(tmp_path, "per-user")
    assert second["hits"] >= 1                  # loaded from the per-user folder, not compiled


def test_no_writable_cache_folder_warns_once_and_still_works(tmp_path):
    out = _read_only_install(tmp_path, "nowhere")
    assert out["got"] == 1 and out["uncached"] > 1
    assert len(out["warnings"]) == 1 and "NUMBA_CACHE_DIR" in out["warnings"][0]


_ONLY_WHAT_IS_USED = r"""
import json, numpy as np
from centertargets import MultiPoseConfig, make_encoder
from centertargets.kernels import gaussian as G
enc = make_encoder(MultiPoseConfig(output_size=(16, 16), num_joints=2))
enc.encode(np.array([[2.0, 2.0, 9.0, 9.0]]), np.array([[[4.0, 4.0, 2.0], [6.0, 6.0, 1.0]]]))
print(json.dumps({f.__name__: len(f.signatures) for f in
                  (G.draw_umich_unit, G.draw_msra, G.draw_elliptic, G.draw_dense_reg)}))
"""


def test_an_encoder_compiles_only_the_drawing_its_config_uses(tmp_path):
    import json
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))      # empty: everything compiles
    r = subprocess.run([sys.executable, "-c", _ONLY_WHAT_IS_USED], capture_output=True,
                       text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    compiled = json.loads(r.stdout.strip().splitlines()[-1])
    assert compiled == {"draw_umich_unit": 1, "draw_msra": 0, "draw_elliptic": 0,
                        "draw_dense_reg": 0}
