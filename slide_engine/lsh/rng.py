"""Counter-free random numbers for Numba kernels: splitmix64 over explicit uint64 state arrays.

Every kernel that needs randomness takes a ``uint64`` state array and an index into it (one slot
per thread or per table), so a serial run is bit-deterministic for a seed and parallel workers never
share a state.
"""

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)


@njit(cache=True, inline="always")
def mix64(z: np.uint64) -> np.uint64:
    """Splitmix64 finaliser: a bijective, well-mixing map of one uint64."""
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@njit(cache=True, inline="always")
def next_u64(state: np.ndarray, slot: int) -> np.uint64:
    """Advance ``state[slot]`` (uint64 array) and return the next 64 random bits."""
    z = state[slot] + _GOLDEN
    state[slot] = z
    return mix64(z)


@njit(cache=True, inline="always")
def randint(state: np.ndarray, slot: int, n: int) -> int:
    """Uniform integer in ``[0, n)`` for ``0 < n < 2**32`` (multiply-shift; bias < n / 2**32)."""
    return np.int64(((next_u64(state, slot) >> _S32) * np.uint64(n)) >> _S32)


@njit(cache=True, inline="always")
def hash3(seed: np.uint64, a: int, b: int) -> np.uint64:
    """Stateless keyed hash of two non-negative integers (densification and MinHash)."""
    z = seed + np.uint64(a) * _MIX1 + np.uint64(b) * _MIX2 + _GOLDEN
    return mix64(z)


def make_states(seed: int, n: int) -> np.ndarray:
    """Independent splitmix64 states.

    Parameters
    ----------
    seed : int
        Master seed.
    n : int
        Number of states (threads or tables).

    Returns
    -------
    numpy.ndarray
        uint64 array of shape (n,), drawn from ``numpy.random.SeedSequence(seed)``.
    """
    return np.random.SeedSequence(seed).generate_state(max(n, 1), dtype=np.uint64)[:n].copy()
