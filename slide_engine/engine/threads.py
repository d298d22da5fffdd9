"""The thread budget of the engine's calls: numba's threads and the BLAS pool together."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import numba
import threadpoolctl

__all__ = ["thread_budget"]


@functools.cache
def _blas_controller() -> threadpoolctl.ThreadpoolController:
    # discovering the loaded BLAS libraries costs ~0.4 ms; limiting through a kept controller
    # costs ~20 us, cheap enough to do around every batch
    return threadpoolctl.ThreadpoolController()


@contextmanager
def thread_budget(n: int) -> Iterator[None]:
    """Run the block with ``n`` numba threads and at most ``n`` BLAS threads (restored after)."""
    # The thread budget covers BLAS too: table rebuilds (SimHash as BLAS products) and the
    # MONGOOSE hash fit call NumPy's matmul, whose OpenBLAS pool would otherwise use every core
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        with _blas_controller().limit(limits=n, user_api="blas"):
            yield
    finally:
        numba.set_num_threads(previous)
