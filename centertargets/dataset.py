"""``CenterNetDataset``: a COCO file, CenterNet's augmentation and an encoder -> training items.

Each item is what upstream CenterNet's ``CTDetDataset`` / ``MultiPoseDataset``
returns for the same draws: the target dict (CenterNet's names, shapes and
dtypes), ``input`` (the warped, colour-augmented, normalised image) when
images are available, and ``meta``, which says how the sample was cut from
its image so that detections can be mapped back
(:func:`centertargets.decode.detections_to_image`).  No torch is imported;
``default_collate`` batches items, ``meta`` included.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import multiprocessing.context
import os
import pickle
import sys
from typing import Any

import numpy as np

from . import _warn, images, tasks, worker
from .augment import (COCO_EIG_VAL, COCO_EIG_VEC, COCO_MEAN_BGR, COCO_STD_BGR, AugmentConfig,
                      AugmentParams, color_meta, network_input, warp_image_chw)
from .coco import CocoDataset, ImageAnnotations
from .encoders import ClassIndexError, EncodeReport


#: A pickle up to this size goes through the worker-start pipe without blocking (64 KiB buffer).
_PIPE_BYTES = 60_000


def _fits_in_shared_memory(nbytes: int) -> bool:
    """Whether /dev/shm has room for ``nbytes`` with a wide margin.  A full /dev/shm (Docker's
    default is 64 MB) kills the writer with SIGBUS instead of raising, so a dataset that does
    not fit travels through the pipe as before (workers then start one after another)."""
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return False
    return st.f_bavail * st.f_frsize > 4 * nbytes


def _shared_bytes(payload: bytes) -> Any:
    """``payload`` in a torch uint8 tensor in shared memory (pickled as a file descriptor)."""
    import torch

    t = torch.empty(len(payload), dtype=torch.uint8)
    t.numpy()[:] = np.frombuffer(payload, np.uint8)
    return t.share_memory_()


class CenterNetDataset:
    """A map-style dataset (works with ``torch.utils.data.DataLoader``) of CenterNet samples.

    ``ds[i]`` is ``ds.item(i, ds.params(i))``: the augmentation of item ``i``
    is drawn from ``default_rng((seed, epoch, i))``, so every worker, every
    rerun and every start method sees the same sample for an index and epoch,
    and :meth:`item` replays any draws (upstream's included) exactly.

    Parameters
    ----------
    coco : a :class:`~centertargets.coco.CocoDataset`.
    config : the config of any registered task (:class:`~centertargets.CtdetConfig`,
        :class:`~centertargets.MultiPoseConfig`, :class:`~centertargets.ExdetConfig`);
        its task unit checks it against the file and completes it (``adapt``: e.g.
        pose flip pairs from the joint names, exdet's ``extreme_points`` made dense).
    down_ratio : input size = output size * ``down_ratio`` (CenterNet: 4).
    augment : :class:`~centertargets.augment.AugmentConfig` (default: the
        validation transform; ``AugmentConfig(train=True)`` is upstream's
        training augmentation, colour included).
    image_root : folder of the images (``file_name`` relative to it), or None
        (items then have no ``input``, unless :meth:`item` is given the image).
    seed : seed of the per-sample draws.
    with_report : add ``report``, the :class:`~centertargets.EncodeReport` counts.
    keep_res : upstream's ``--keep_res``: the input is the image's size
        rounded up to a multiple of ``pad + 1`` (``(h | pad) + 1``), the output
        that divided by ``down_ratio``; ``config.output_size`` is ignored and
        items of differently sized images have different shapes (batch size 1,
        or images of one size).
    pad : upstream's ``pad`` (31; 127 for its hourglass network).
    train_filter : keep only images with at least one annotation, as upstream's
        pose training set does.  None (default): on for the tasks that ask for it
        (multi_pose, ``TaskUnit.train_filter``) with
        ``augment.train``, off otherwise.
    allow_outside_root : read images whose ``file_name`` is absolute or leads
        out of ``image_root`` (``../x.png``); refused by default, since a COCO
        file from elsewhere should not choose which files are read.
    max_item_bytes : refuse (ValueError naming the image) an item whose input
        and targets would take more than this many bytes, before allocating
        them: 1 GiB by default (a 512x512 ctdet item is about 9 MB; a
        20000x20000 image with ``keep_res`` would be 7.5 GB of ``hm`` alone).
        None: no limit.
    input_dtype : ``"float32"`` (default): ``input`` is the normalised,
        colour-augmented network input; ``"uint8"``: ``input`` is the warped
        image as CHW uint8 (4x less data through the DataLoader's shared
        memory), to be colour-augmented and normalised on the training device
        by :func:`centertargets.device.normalize_batch` from ``meta``.
    mean, std, eig_val, eig_vec : normalisation and PCA lighting constants,
        BGR, for 0..1 pixels (default: the task's, upstream's COCO values but for
        ddd's KITTI ones).

    Each item's ``meta`` holds ``index``, ``image_id``, ``center`` (2,) f32,
    ``scale`` (2,) f64 (``sw, sh``), ``rot``, ``flipped``, ``augmented`` (a task's
    own augmentation coin: ddd's ``aug_ddd``), ``image_size``, ``input_size`` and
    ``output_size`` (``(w, h)`` int64), ``color``
    (:func:`~centertargets.augment.color_meta` of the sample's colour draws),
    and what the task adds (ddd: ``calib`` (3, 4) f32, the camera).

    The constructor runs an empty sample through the item path once, so
    DataLoader workers forked afterwards inherit compiled kernels instead of
    compiling them again; a spawned (or forkserver) worker receives the
    dataset through shared memory, so workers start side by side, and loads
    the cached kernels.  :meth:`set_epoch` reaches workers too
    (``persistent_workers=True``, fork or spawn): the epoch lives in shared
    memory.  On its first item a DataLoader worker asks glibc to keep freed
    sample-sized blocks for reuse and, when it was spawned, runs OpenCV in one
    thread; the main process and processes that are not DataLoader workers
    are left as they are (:mod:`centertargets.worker`).
    """

    #: Whether this dataset makes two-frame samples (``TaskUnit.video`` tasks need it).
    two_frames: bool = False

    def __init__(self, coco: CocoDataset, config: Any, down_ratio: int = 4,
                 augment: AugmentConfig | None = None, image_root: str | os.PathLike[str] | None
                 = None, seed: int = 0, with_report: bool = False, keep_res: bool = False,
                 pad: int = 31, train_filter: bool | None = None,
                 input_dtype: str = "float32", allow_outside_root: bool = False,
                 max_item_bytes: int | None = 2 ** 30,
                 mean: np.ndarray | None = None, std: np.ndarray | None = None,
                 eig_val: np.ndarray = COCO_EIG_VAL, eig_vec: np.ndarray = COCO_EIG_VEC) -> None:
        if not isinstance(coco, CocoDataset):
            raise TypeError(f"coco is {type(coco).__name__}: expected a CocoDataset "
                            "(CocoDataset.load(path))")
        self.unit = tasks.unit_of(config)
        if self.unit.video and not self.two_frames:
            raise TypeError(f"config is a {type(config).__name__}: its samples are two frames "
                            f"of a video; use {self.unit.dataset.split(':')[1]} "
                            f"({self.unit.dataset.replace(':', '.')})")
        config = self.unit.adapt(config, coco)
        self.coco = coco
        self.config = config
        self.down_ratio = int(down_ratio)
        self.augment = augment or AugmentConfig()
        self.image_root = None if image_root is None else os.fspath(image_root)
        self.seed = int(seed)
        self.with_report = bool(with_report)
        self.keep_res = bool(keep_res)
        self.pad = int(pad)
        unit_mean, unit_std = self.unit.mean, self.unit.std
        self.mean = np.asarray(mean if mean is not None else unit_mean if unit_mean is not None
                               else COCO_MEAN_BGR, np.float32)
        self.std = np.asarray(std if std is not None else unit_std if unit_std is not None
                              else COCO_STD_BGR, np.float32)
        self.eig_val, self.eig_vec = np.asarray(eig_val, np.float32), np.asarray(eig_vec,
                                                                                 np.float32)
        if train_filter is None:
            train_filter = self.augment.train and self.unit.train_filter
        self.train_filter = bool(train_filter)
        if input_dtype not in ("float32", "uint8"):
            raise ValueError(f"input_dtype={input_dtype!r}: expected 'float32' or 'uint8'")
        self.input_dtype = input_dtype
        self.allow_outside_root = bool(allow_outside_root)
        if max_item_bytes is not None and not (isinstance(max_item_bytes, (int, np.integer))
                                               and max_item_bytes > 0):
            raise ValueError(f"max_item_bytes={max_item_bytes!r}: expected a number of bytes "
                             "> 0, or None for no limit")
        self.max_item_bytes = None if max_item_bytes is None else int(max_item_bytes)
        self._item_bytes: dict[tuple[tuple[int, int], tuple[int, int]], int] = {}
        #: Image ids whose files looked cut short (warned once each, in this process).
        self.truncated_images: set[int] = set()
        self.indices = [i for i, iid in enumerate(coco.image_ids)
                        if not self.train_filter or coco.num_annotations(iid) > 0]
        self._encoders: dict[tuple[int, int], Any] = {}
        self._sizes: dict[int, tuple[int, int]] = {}
        self._epoch = multiprocessing.RawValue("q", 0)
        # warm-up: compile (or load) the kernels now, through the item path, on no objects
        self._targets(coco.empty_image(), AugmentParams((0.0, 0.0), 1.0),
                      tuple(config.output_size))

    # -- epoch, shared with workers ------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return int(self._epoch.value)

    def set_epoch(self, epoch: int) -> None:
        """Draw new augmentations for ``epoch``; seen by DataLoader workers, persistent or not."""
        self._epoch.value = int(epoch)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if multiprocessing.context.get_spawning_popen() is None:
            state["_epoch"] = int(self._epoch.value)      # plain pickling: a snapshot
        elif "torch" in sys.modules:
            # Starting a spawned (or forkserver) DataLoader worker.  The process start writes the
            # pickle into a pipe that the child reads only after importing the main module; a
            # pickle larger than the pipe's 64 KiB (any real COCO file's arrays) blocks the
            # parent, and workers start one after another.  Everything but the shared epoch
            # travels in a torch shared-memory tensor instead, whose file descriptor goes with
            # the process.  The tensor is kept on self: the descriptor is handed over when the
            # process starts, after pickling (the next worker's pickling replaces it).
            rest = {k: v for k, v in state.items() if k not in ("_epoch", "_spawn_state")}
            payload = pickle.dumps(rest, 5)
            if len(payload) > _PIPE_BYTES and _fits_in_shared_memory(len(payload)):
                self._spawn_state = _shared_bytes(payload)
                return {"_epoch": state["_epoch"], "_shared": self._spawn_state}
        state.pop("_spawn_state", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "_shared" in state:
            state.update(pickle.loads(memoryview(state.pop("_shared").numpy())))
        if isinstance(state["_epoch"], int):
            state["_epoch"] = multiprocessing.RawValue("q", state["_epoch"])
        self.__dict__.update(state)

    # -- items -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.indices)

    def annotations(self, index: int) -> ImageAnnotations:
        """The :class:`~centertargets.coco.ImageAnnotations` of item ``index``."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index={index}: expected 0 <= index < {len(self)}")
        return self.coco[self.indices[index]]

    def sizes(self, index: int, image: np.ndarray | None = None
              ) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """``(image_size, input_size, output_size)`` of item ``index``, each ``(w, h)``."""
        return self._sizes_of(self.annotations(index), image)

    def _sizes_of(self, ann: ImageAnnotations, image: np.ndarray | None
                  ) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        iw, ih = self._image_size(ann, image)
        if self.keep_res:
            inp = ((iw | self.pad) + 1, (ih | self.pad) + 1)
            return (iw, ih), inp, (inp[0] // self.down_ratio, inp[1] // self.down_ratio)
        W, H = self.config.output_size
        return (iw, ih), (W * self.down_ratio, H * self.down_ratio), (W, H)

    def params(self, index: int) -> AugmentParams:
        """The augmentation parameters of item ``index`` at the current epoch."""
        (iw, ih), inp, _ = self.sizes(index)
        rng = np.random.default_rng((self.seed, self.epoch, int(index) % len(self)))
        return self.unit.sample_params(self.augment, rng, iw, ih, self.config,
                                       (float(inp[0]), float(inp[1])) if self.keep_res else None)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.item(index, self.params(index))

    def item(self, index: int, params: AugmentParams, image: np.ndarray | None = None
             ) -> dict[str, Any]:
        """Item ``index`` for explicit augmentation ``params`` (replays any draws exactly).

        ``image``: the BGR uint8 image (H, W, 3) to use instead of reading it
        from ``image_root``.  Returns the targets, ``input`` float32 (3, in_h,
        in_w) when there is an image, ``meta`` and, with ``with_report``,
        ``report``.
        """
        if not isinstance(params, AugmentParams):
            raise TypeError(f"params is {type(params).__name__}: expected AugmentParams")
        if params.center_dtype != self.unit.center_dtype:      # the task's arithmetic
            params = dataclasses.replace(params, center_dtype=self.unit.center_dtype)
        worker.setup_process()
        ann = self.annotations(index)
        if image is None and self.image_root is not None:
            if ann.width and ann.height:         # before decoding a huge image
                self.check_size(ann, *self._sizes_of(ann, None)[1:])
            image = self.read_image(ann)
        (iw, ih), inp_size, out_size = self._sizes_of(ann, image)
        self.check_size(ann, inp_size, out_size)
        item: dict[str, Any]
        try:
            item, stats, status = self._targets(ann, params, out_size)
        except ClassIndexError as exc:
            raise ValueError(
                f"image id={ann.image_id} ({ann.file_name!r}), annotation id="
                f"{int(ann.ann_ids[exc.index])} (category_id={int(ann.category_ids[exc.index])})"
                f": class {exc.value}: expected a class index in [0, {exc.num_classes}) "
                "(config.num_classes); was the class map changed after loading?") from None
        if image is not None:
            if self.input_dtype == "uint8":
                item["input"] = warp_image_chw(image, params, inp_size)
            else:
                item["input"] = network_input(image, params, inp_size, self.mean, self.std,
                                              self.eig_val, self.eig_vec)
        item["meta"] = {
            "index": np.int64(index), "image_id": np.int64(ann.image_id),
            "center": np.array(params.center, np.float32),
            "scale": np.array(params.scale if isinstance(params.scale, tuple)
                              else (params.scale, params.scale), np.float64),
            "rot": np.float64(params.rot), "flipped": np.bool_(params.flipped),
            "augmented": np.bool_(params.augmented),
            "image_size": np.array((iw, ih), np.int64),
            "input_size": np.array(inp_size, np.int64),
            "output_size": np.array(out_size, np.int64),
            "color": color_meta(params.color),
            **self.unit.item_meta(ann, self.config),
        }
        if self.with_report:
            item["report"] = EncodeReport.from_kernel(stats, status).as_dict()
        return item

    # -- pieces ----------------------------------------------------------------------------------
    def _targets(self, ann: ImageAnnotations, params: AugmentParams, out_size: tuple[int, int]
                 ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """Targets, stats and status of one image's COCO arrays under ``params``.

        The arrays were checked when the file was loaded: the task unit maps them
        (``prepared``) and the encoder takes them unchecked (``encode_prepared``),
        which is what ``sample_annotations`` + ``encode_annotations`` do after
        checking them again; the kernels still check every class.
        """
        a = self.unit.prepared(ann, params, out_size, self.config)
        return self.encoder(out_size).encode_prepared(a)

    def encoder(self, output_size: tuple[int, int]) -> Any:
        """The encoder for an output size (one per size, built once)."""
        key = (int(output_size[0]), int(output_size[1]))
        enc = self._encoders.get(key)
        if enc is None:
            cfg = self.config if key == tuple(self.config.output_size) else \
                self.config.replace(output_size=key)
            enc = self._encoders[key] = tasks.make_encoder(cfg)
        return enc

    def image_path(self, ann: ImageAnnotations) -> str:
        """The file of ``ann`` under ``image_root`` (refused outside it, see ``allow_outside_root``)."""
        return images.image_path(self.image_root or "", ann.file_name, ann.image_id,
                                 self.allow_outside_root)

    def read_image(self, ann: ImageAnnotations) -> np.ndarray:
        """The BGR uint8 image of ``ann``; warns once per file when it looks cut short.

        ``FileNotFoundError`` when the file is missing,
        :class:`~centertargets.images.UndecodableImageError` when it does not decode.
        """
        path = self.image_path(ann)
        img, truncated = images.read_image(path, ann.image_id)
        if truncated and ann.image_id not in self.truncated_images:
            self.truncated_images.add(ann.image_id)
            _warn.warn(f"image id={ann.image_id} ({path!r}) is {truncated}: the file looks "
                          "cut short, and the decoder fills what is missing (grey rows for "
                          "JPEG); replace the file, or drop the image", RuntimeWarning)
        return img

    def check_size(self, ann: ImageAnnotations, input_size: tuple[int, int],
                   output_size: tuple[int, int]) -> None:
        """Refuse an item over ``max_item_bytes`` before anything of it is allocated."""
        if self.max_item_bytes is None:
            return
        key = (input_size, output_size)
        nbytes = self._item_bytes.get(key)
        if nbytes is None:
            cfg = self.config.replace(output_size=output_size)
            pixel = 1 if self.input_dtype == "uint8" else 4
            nbytes = 3 * input_size[0] * input_size[1] * pixel + sum(
                int(np.prod(s.shape)) * np.dtype(s.dtype).itemsize for s in cfg.spec().values())
            self._item_bytes[key] = nbytes
        if nbytes > self.max_item_bytes:
            raise ValueError(
                f"image id={ann.image_id} ({ann.file_name!r}): its item would take "
                f"{nbytes / 2 ** 20:.0f} MiB (input {input_size[0]}x{input_size[1]}, output "
                f"{output_size[0]}x{output_size[1]}): expected at most max_item_bytes="
                f"{self.max_item_bytes} ({self.max_item_bytes / 2 ** 20:.0f} MiB); raise "
                "max_item_bytes (None: no limit) or resize the image")

    def _image_size(self, ann: ImageAnnotations, image: np.ndarray | None) -> tuple[int, int]:
        if image is not None:
            ih, iw = image.shape[:2]
            if ann.width and ann.height and (ann.width, ann.height) != (iw, ih):
                raise ValueError(f"image {ann.file_name!r} (id={ann.image_id}) is {iw}x{ih} "
                                 f"pixels: expected {ann.width}x{ann.height} as its json entry "
                                 "says")
            return iw, ih
        if ann.width and ann.height:
            return ann.width, ann.height
        size = self._sizes.get(ann.image_id)
        if size is None:
            if self.image_root is None:
                raise ValueError(f"image id={ann.image_id} ({ann.file_name!r}) has no width/"
                                 "height in the json: expected them there, or image_root= so "
                                 "that they can be read from the image")
            ih, iw = self.read_image(ann).shape[:2]
            size = self._sizes[ann.image_id] = (iw, ih)
        return size
