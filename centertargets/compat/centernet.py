"""Bit-exact reproduction of upstream CenterNet's samples (xingyizhou/CenterNet).

:func:`encode_sample` takes the ``__meta__`` dict of a scene fixture (COCO
annotations, image size, augmentation ``c``/``s``/``rot``/``flipped``,
input/output sizes, CenterNet options) and returns exactly the targets
CenterNet's ``CTDetDataset`` / ``MultiPoseDataset.__getitem__`` returned.

It is the package's own pipeline and encoders with CenterNet's defaults;
what is specific here is reading the fixture format and turning CenterNet's
options into a config, which each task unit does for its own options.  :func:`replay_sample` goes through
:class:`~centertargets.CenterNetDataset` itself: a whole training sample,
image in, network input and targets out, for upstream's recorded draws.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping

import numpy as np

from ..augment import AugmentParams
from ..coco import CocoDataset
from ..dataset import CenterNetDataset
from ..encoders import EncodeReport
from ..tasks import get, make_encoder, unit_of


def config_from_meta(meta: Mapping[str, Any]) -> Any:
    """The config that reproduces a fixture's CenterNet options (defaults = CenterNet's)."""
    opts = meta.get("options", {})
    common = dict(
        output_size=(int(meta["output_w"]), int(meta["output_h"])),
        num_classes=int(meta["num_classes"]),
        max_objs=int(meta["max_objs"]),
        reg_offset=bool(opts.get("reg_offset", True)),
        heatmap="msra" if opts.get("mse_loss", False) else "umich",
        msra_sigma=float(opts.get("hm_gauss", 2)),
    )
    return get(str(meta["task"])).config_from_meta(meta, common)


def config_from_loss_fixture(task: str, options: Mapping[str, Any],
                             targets: Mapping[str, np.ndarray]) -> Any:
    """The config of a loss fixture's batch: sizes from the targets' shapes, heads from options."""
    meta: dict[str, Any] = {"task": task, "options": dict(options)}
    meta.update(get(task).loss_fixture_meta(targets))
    return config_from_meta(meta)


def encode_sample_with_report(meta: Mapping[str, Any], heatmaps: str = "dense"
                              ) -> tuple[dict[str, np.ndarray], EncodeReport]:
    """:func:`encode_sample` plus the encoder's :class:`EncodeReport`.

    The fixture's annotations go through the task's mapping and the checked
    public encode (``encode_annotations``), not the dataset's fast path.  ``heatmaps``:
    the config's ``heatmaps`` (``"sparse"``: ``draws`` instead of the heatmaps).
    """
    ds = dataset_for_meta(meta, heatmaps)
    out = (int(meta["output_w"]), int(meta["output_h"]))
    unit = unit_of(ds.config)
    params = dataclasses.replace(AugmentParams.from_dict(meta), center_dtype=unit.center_dtype)
    a = unit.prepared(ds.annotations(0), params, out, ds.config)
    return _encoder(ds.config).encode_annotations(a)


@functools.lru_cache(maxsize=64)
def _encoder(config: Any) -> Any:
    """One encoder per config (configs are frozen and hashable), not one per call."""
    return make_encoder(config)


def encode_sample(meta: Mapping[str, Any], heatmaps: str = "dense") -> dict[str, np.ndarray]:
    """Exactly upstream CenterNet's targets for the sample a fixture's ``__meta__`` describes."""
    return encode_sample_with_report(meta, heatmaps)[0]


def dataset_for_meta(meta: Mapping[str, Any], heatmaps: str = "dense") -> CenterNetDataset:
    """A one-image :class:`CenterNetDataset` holding a fixture's scene, configured as upstream was.

    The image is item 0 (``width``/``height`` from the meta); the task unit
    gives the file's categories (ctdet: the meta's ``category_ids``); ``keep_res``
    (a ``[w, h]`` scale) uses upstream's ``pad`` of 31.
    """
    config = config_from_meta(meta).replace(heatmaps=heatmaps)
    anns = [dict(a, id=k + 1, image_id=1) for k, a in enumerate(meta["annotations"])]
    image = {"id": 1, "file_name": "", "width": int(meta["image_width"]),
             "height": int(meta["image_height"])}
    cats, ids = unit_of(config).fixture_classes(meta)
    coco = CocoDataset({"images": [image], "annotations": anns, "categories": cats},
                       category_ids=ids)
    keep_res = unit_of(config).fixture_keep_res(meta)
    ds = CenterNetDataset(coco, config, down_ratio=int(meta["input_w"]) // int(meta["output_w"]),
                          keep_res=keep_res, pad=31, train_filter=False)
    _, inp, out = ds.sizes(0)
    want = ((int(meta["input_w"]), int(meta["input_h"])),
            (int(meta["output_w"]), int(meta["output_h"])))
    if (inp, out) != want:
        raise ValueError(f"fixture sizes input {want[0]}, output {want[1]}: the dataset gives "
                         f"{inp}, {out}")
    return ds


def replay_sample(meta: Mapping[str, Any], image: np.ndarray | None = None) -> dict[str, Any]:
    """Upstream's training sample for a fixture's recorded draws, through ``CenterNetDataset.item``.

    ``meta``: a scene or whole-sample fixture's ``__meta__`` (``center``,
    ``scale``, ``rot``, ``flipped`` and, for whole samples, ``color``);
    ``image``: the BGR uint8 image upstream read (before any flip).  Returns
    the item: targets, ``input`` when ``image`` is given, and ``meta``.
    """
    return dataset_for_meta(meta).item(0, AugmentParams.from_dict(meta), image=image)
