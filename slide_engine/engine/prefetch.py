"""Software prefetch for Numba kernels that visit rows of large arrays in a data-dependent order.

The neuron-major kernels (:mod:`slide_engine.engine.rowwise`) visit ~87,000 random 512-byte rows
of 343 MB weight and moment matrices per batch; the hardware prefetchers cannot guess the next
row, so each row's first access waits for memory. :func:`prefetch_row` (a row) and
:func:`prefetch_item` (one element) ask for data a few iterations ahead (``llvm.prefetch``: a
hint, never a fault, no effect on results).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_LINE_FLOATS = 16  # 64-byte cache lines of float32


@intrinsic
def prefetch_item(typingctx, arr, i, j):
    """Prefetch the cache line of ``arr[i, j]`` (2-D array) for writing; call from Numba code.

    ``llvm.prefetch(address, write, high locality, data cache)``.
    """
    if not (isinstance(arr, types.Array) and arr.ndim == 2):
        return None
    sig = types.void(arr, i, j)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        idx = [
            context.cast(builder, args[1], signature.args[1], types.intp),
            context.cast(builder, args[2], signature.args[2], types.intp),
        ]
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, idx, wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(1), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, inline="always")
def prefetch_row(arr: np.ndarray, row: int) -> None:
    """Prefetch every cache line of ``arr[row]`` for writing.

    Parameters
    ----------
    arr : 2-D C-contiguous float32 array
        The matrix (rows of any length).
    row : int
        Row to bring into the cache.
    """
    for q in range(0, arr.shape[1], _LINE_FLOATS):
        prefetch_item(arr, row, q)
