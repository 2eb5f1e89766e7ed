"""A one-byte flag two processes hand a shared block back and forth with.

:mod:`centertargets.batch` reuses a DataLoader worker's shared-memory blocks:
the worker claims a free block (flag 0 -> 1), fills it and sends it; the main
process sets the flag back to 0 once nothing of the batch is referenced any
more.  Each side puts a full memory fence between its accesses to the block
and its access to the flag, so on any CPU (x86's ordering forbids the
reordering anyway; ARM's and POWER's allow it) the worker never writes a block
the main process may still be reading.
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.extending import intrinsic

from ._jit import jit


@intrinsic
def _fence(typingctx):  # type: ignore[no-untyped-def]
    """A sequentially consistent memory fence (LLVM ``fence seq_cst``)."""
    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        builder.fence("seq_cst")
        return context.get_dummy_value()
    return types.void(), codegen


@jit
def claim(flag: np.ndarray) -> bool:
    """Take the block whose flag is ``flag`` (uint8 (1,)): True, and the flag 1, when it was
    free (0); False, and nothing changed, when it is still in use."""
    if flag[0] != 0:
        return False
    _fence()
    flag[0] = 1
    return True


@jit
def release(flag: np.ndarray) -> None:
    """Give the block back (flag 0), after every access to it before this call."""
    _fence()
    flag[0] = 0
