"""Machine probes of the benchmark: the random-row probe really performs Adam steps on the listed
rows only (NumPy oracle), and reports positive rates with the thread count restored."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from slide_bench import machine


def _adam_reference(w, m, v):
    # the probe's step in float64: gradient 1e-3 * w, beta 0.9 / 0.999, lr 1e-3, eps 1e-8
    g = 1e-3 * w
    m = 0.9 * m + 0.1 * g
    v = 0.999 * v + 0.001 * g * g
    return w - 1e-3 * m / (np.sqrt(v) + 1e-8), m, v


def test_row_update_steps_listed_rows_only() -> None:
    rng = np.random.default_rng(3)
    w = rng.standard_normal((50, 24), dtype=np.float32)
    m = rng.standard_normal((50, 24), dtype=np.float32) * np.float32(1e-3)
    v = rng.random((50, 24), dtype=np.float32) * np.float32(1e-6)
    rows = np.array([4, 17, 0, 49, 31], dtype=np.int64)
    w0, m0, v0 = w.copy(), m.copy(), v.copy()
    machine._row_update(w, m, v, rows)
    ew, em, ev = _adam_reference(*(a[rows].astype(np.float64) for a in (w0, m0, v0)))
    np.testing.assert_allclose(w[rows], ew, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(m[rows], em, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(v[rows], ev, rtol=1e-5, atol=1e-12)
    others = np.setdiff1d(np.arange(50), rows)
    for before, after in ((w0, w), (m0, m), (v0, v)):
        np.testing.assert_array_equal(after[others], before[others])


def test_row_update_rates_positive_and_threads_restored() -> None:
    threads = [1, 2] if numba.config.NUMBA_NUM_THREADS >= 2 else [1]
    before = numba.get_num_threads()
    rates = machine.measure_row_update(threads, n_rows=4096, width=32, touched=512, repeats=2)
    assert sorted(rates) == threads
    assert all(r > 0 and np.isfinite(r) for r in rates.values())
    assert numba.get_num_threads() == before


def test_row_update_rejects_more_touched_rows_than_exist() -> None:
    with pytest.raises(ValueError, match="touched rows"):
        machine.measure_row_update([1], n_rows=16, width=8, touched=32, repeats=1)
