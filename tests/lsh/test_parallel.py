"""Selection from inside a prange loop (the engine's pattern) and the measurement tool."""

import numba
import numpy as np
import pytest

from slide_engine.lsh import LSHIndex, make_policy, out_capacity
from slide_engine.lsh.measure import _select_batch, measure


@pytest.mark.slow
def test_prange_selection_equals_serial_queries():
    rng = np.random.default_rng(0)
    n, d, batch = 3000, 32, 64
    w = rng.standard_normal((n, d)).astype(np.float32)
    x = np.maximum(rng.standard_normal((batch, d)), 0).astype(np.float32)
    labels = rng.integers(0, n, (batch, 4)).astype(np.int32)
    index = LSHIndex(n, d, family="dwta", k=3, l=12, n_buckets=512, capacity=32, seed=2)
    index.build(w)
    for policy in (make_policy("union", min_active=0), make_policy("threshold", threshold=2),
                   make_policy("topk-count", budget=100)):
        cap = out_capacity(policy, index.tables, 4)
        ids = np.full((batch, cap), -1, dtype=np.int32)
        cnt = np.zeros(batch, dtype=np.int32)
        scratch = index.make_scratch(numba.config.NUMBA_NUM_THREADS)
        _select_batch(index.hash_functions, index.tables, policy, x, labels, w, scratch, ids, cnt)
        for i in range(batch):
            expected = index.query(x[i], labels[i], policy)
            np.testing.assert_array_equal(ids[i, : cnt[i]], expected)


def test_measure_reports_build_selection_and_memory():
    records = measure(2000, 16, "dwta", 3, 4, 256, 16, [1], batch=8, n_batches=2, seed=0)
    kinds = [r["what"] for r in records]
    assert kinds == ["build_all_tables", "hash_and_union_per_batch", "table_memory"]
    assert records[1]["active_mean"] == 1000.0  # union topped up to the reference minimum
    assert records[2]["bytes"] > 0 and records[2]["reference_bytes"] == 4 * 256 * 16 * 4
