"""Warnings that point at the user's line: the first caller outside this package."""

from __future__ import annotations

import os
import sys
import warnings

#: Source folders whose frames are skipped (the package and its torch side).
_OURS = (os.path.dirname(os.path.abspath(__file__)),
         os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "losses"))


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` with the stack level of the first frame outside centertargets (and
    torch's module machinery), so the warning names the user's call."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and (frame.f_code.co_filename.startswith(_OURS)
                                 or "torch/nn/modules" in frame.f_code.co_filename):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level + 1)
