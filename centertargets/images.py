"""Image files of a COCO dataset, read as untrusted input.

A COCO file from elsewhere names its images; this module turns a name into a
path only inside the image folder (unless asked otherwise), reads the file,
and tells a missing file, a file that does not decode, and a file cut short
apart:

* :func:`image_path`: ``file_name`` joined to the image folder; a name that
  is absolute or climbs out of the folder (``../x.png``) is refused, as the
  path is written (a symbolic link inside the folder is followed: datasets
  are often linked in).  ``allow_outside_root=True`` reads it anyway.
* :func:`read_image`: BGR uint8 ``(H, W, 3)``; ``FileNotFoundError`` when the
  file does not exist, :class:`UndecodableImageError` when it exists but
  OpenCV cannot decode it.
* :func:`truncation`: a cheap end-of-image check on the file's bytes (JPEG's
  ``FF D9`` after the last scan, PNG's ``IEND`` chunk).  libjpeg decodes a
  truncated JPEG with its missing rows grey and says so only on stderr; the
  dataset warns once per file and ``centertargets audit`` counts them.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import cv2
import numpy as np

__all__ = ["UndecodableImageError", "image_path", "read_image", "truncation"]


class UndecodableImageError(ValueError):
    """An image file exists but OpenCV cannot decode it."""


def image_path(root: str | os.PathLike[str], file_name: str, image_id: int,
               allow_outside_root: bool = False) -> str:
    """``file_name`` inside ``root``; a name that leads outside ``root`` is a ValueError.

    The check is on the path as written (``os.path.normpath``), so a symbolic
    link inside ``root`` still works.
    """
    root = os.fspath(root)
    path = os.path.join(root, file_name)
    if not allow_outside_root:
        base = os.path.normpath(root)
        inside = os.path.normpath(path)
        if os.path.isabs(file_name) or os.path.commonpath([base, inside]) != base:
            raise ValueError(f"image id={image_id} has file_name={file_name!r}, which leads "
                             f"outside image_root={root!r}: expected a path relative to it "
                             "(CenterNetDataset(..., allow_outside_root=True) reads it anyway)")
    return path


def truncation(data: np.ndarray) -> str | None:
    """Why the encoded image ``data`` (uint8 file bytes) looks cut short, or None.

    JPEG: no end-of-image marker ``FF D9`` after the last start-of-scan
    ``FF DA`` (data appended after a complete image, as in motion photos,
    is fine).  PNG: no ``IEND`` chunk.  Other formats are not checked.
    """
    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    if raw[:2] == b"\xff\xd8":
        if raw.rstrip(b"\x00\r\n ")[-2:] == b"\xff\xd9":
            return None                         # the common case: the marker ends the file
        if raw.rfind(b"\xff\xd9") > raw.rfind(b"\xff\xda"):
            return None
        return "a JPEG without its end-of-image marker (FF D9) after the last scan"
    if raw[:8] == b"\x89PNG\r\n\x1a\n" and raw.rfind(b"IEND") < 0:
        return "a PNG without its IEND chunk"
    return None


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """OpenCV's own ``[ WARN ]`` lines off while decoding (errors are raised by this module,
    naming the image)."""
    log = getattr(getattr(cv2, "utils", None), "logging", None)
    if log is None:
        yield
        return
    before = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        log.setLogLevel(before)


def read_image(path: str, image_id: int) -> tuple[np.ndarray, str | None]:
    """``(image, truncation)``: the BGR uint8 ``(H, W, 3)`` image and :func:`truncation`."""
    try:
        data = np.fromfile(path, np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"image id={image_id}: no file {path!r}: expected an image "
                                "file under image_root") from None
    except OSError as exc:
        raise FileNotFoundError(f"image id={image_id}: cannot read {path!r} ({exc}): expected "
                                "a readable image file under image_root") from None
    with _quiet_opencv():          # this function reports what went wrong itself
        img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        cut = truncation(data)
        if img is None and cut is not None:
            # OpenCV's decoder of memory buffers refuses a cut-short JPEG that its file reader
            # decodes (missing rows grey, as upstream's cv2.imread gives them): take the latter
            img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise UndecodableImageError(
            f"image id={image_id}: {path!r} exists ({data.size} bytes) but cannot be decoded"
            f"{f' (it looks cut short: {cut})' if cut else ''}: expected an image file OpenCV "
            "reads (JPEG, PNG, ...)")
    return img, cut
