"""MONGOOSE drift scheduler against a dense NumPy reference of the sketch and flipped fraction."""

from __future__ import annotations

import numpy as np
import pytest

from slide_bench.errors import ConfigError
from slide_engine.mongoose.scheduler import DriftScheduler
from slide_engine.mongoose.sketch import (
    _sketch_rows_parallel,
    _sketch_rows_serial,
    sketch_rows,
)

N, D, BITS = 3000, 32, 16


def reference_bits(weights: np.ndarray, bias: np.ndarray, proj: np.ndarray) -> np.ndarray:
    """Dense oracle: (n, B) bool sign bits of [w | b] @ proj.T, in float64."""
    aug = np.concatenate([weights, bias[:, None]], axis=1).astype(np.float64)
    return aug @ proj.astype(np.float64).T > 0


def unpack(codes: np.ndarray, n_bits: int) -> np.ndarray:
    """(n,) uint64 -> (n, n_bits) bool."""
    shifts = np.arange(n_bits, dtype=np.uint64)
    return ((codes[:, None] >> shifts) & np.uint64(1)).astype(bool)


def reference_fraction(sched: DriftScheduler, w0, b0, w1, b1) -> float:
    """Flipped fraction between two full states, by the dense oracle."""
    old = reference_bits(w0, b0, sched.proj)
    new = reference_bits(w1, b1, sched.proj)
    return float(np.mean(old != new))


def layer(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    weights = rng.normal(0.0, 0.05, (N, D)).astype(np.float32)
    bias = rng.normal(0.0, 0.05, N).astype(np.float32)
    return weights, bias


def perturb(weights, bias, rows, scale, rng):
    """Add noise of std ``scale`` to the given rows (weights and bias), in place."""
    weights[rows] += rng.normal(0.0, scale, (rows.shape[0], weights.shape[1])).astype(np.float32)
    bias[rows] += rng.normal(0.0, scale, rows.shape[0]).astype(np.float32)


def test_sketch_matches_dense_reference_and_parallel_matches_serial():
    weights, bias = layer(0)
    proj = np.random.default_rng(1).standard_normal((BITS, D + 1)).astype(np.float32)
    rows = np.arange(N, dtype=np.int64)
    codes = sketch_rows(weights, bias, proj, rows)
    ref = reference_bits(weights, bias, proj)
    aug = np.concatenate([weights, bias[:, None]], axis=1).astype(np.float64)
    clear = np.abs(aug @ proj.astype(np.float64).T) > 1e-5  # float32 rounding can flip |x|~0
    assert np.array_equal(unpack(codes, BITS)[clear], ref[clear])
    assert np.array_equal(
        _sketch_rows_serial(weights, bias, proj, rows),
        _sketch_rows_parallel(weights, bias, proj, rows),
    )


def test_flipped_fraction_equals_reference_under_controlled_perturbation():
    rng = np.random.default_rng(2)
    weights, bias = layer(3)
    w0, b0 = weights.copy(), bias.copy()
    sched = DriftScheduler(weights, bias, BITS, 0.99, 10, "rebuild", seed=4)
    for scale, share in [(0.01, 0.1), (0.05, 0.3), (0.2, 0.5)]:
        rows = rng.choice(N, int(share * N), replace=False).astype(np.int64)
        perturb(weights, bias, rows, scale, rng)
        sched.mark(rows)
        sched.mark(rows[: len(rows) // 2])  # duplicates across batches are harmless
        decision = sched.check(10, weights, bias)
        expected = reference_fraction(sched, w0, b0, weights, bias)
        assert decision.action == "none"
        assert decision.resketched == len(rows)
        assert abs(decision.fraction - expected) < 1e-3, (decision.fraction, expected)
    assert expected > 0.05  # the perturbations really flipped bits


def test_dirty_resketch_equals_full_resketch():
    rng = np.random.default_rng(5)
    weights, bias = layer(6)
    sched = DriftScheduler(weights, bias, BITS, 0.99, 1, "rebuild", seed=7)
    for it in range(1, 30):
        rows = rng.integers(0, N, 200).astype(np.int64)  # with repeats, like a batch's touched rows
        perturb(weights, bias, np.unique(rows), 0.03, rng)
        sched.mark(rows)
        if it % 3 == 0:
            sched.check(it, weights, bias)
    sched.check(30, weights, bias)
    full = sketch_rows(weights, bias, sched.proj, np.arange(N, dtype=np.int64))
    assert np.array_equal(sched.cur, full)
    flipped = sum(bin(int(x)).count("1") for x in (sched.ref ^ full))
    assert sched.flipped == flipped


@pytest.mark.parametrize("mode", ["rebuild", "reinsert"])
def test_fires_iff_threshold_crossed(mode):
    rng = np.random.default_rng(8)
    weights, bias = layer(9)
    threshold = 0.05
    sched = DriftScheduler(weights, bias, BITS, threshold, 5, mode, seed=10)
    base_w, base_b = weights.copy(), bias.copy()
    touched_since_tables: set[int] = set()
    fired = 0
    for it in range(5, 200, 5):
        assert sched.due(it)
        rows = rng.choice(N, 150, replace=False).astype(np.int64)
        perturb(weights, bias, rows, 0.04, rng)
        sched.mark(rows)
        touched_since_tables.update(rows.tolist())
        expected = reference_fraction(sched, base_w, base_b, weights, bias)
        decision = sched.check(it, weights, bias)
        assert abs(decision.fraction - expected) < 1e-3
        should_fire = expected > threshold
        if abs(expected - threshold) > 1e-3:  # away from the float32 rounding band
            assert (decision.action != "none") == should_fire
        if decision.action != "none":
            fired += 1
            assert decision.action == mode
            assert sched.fraction() == 0.0
            if mode == "reinsert":
                assert set(decision.rows.tolist()) == touched_since_tables
            base_w, base_b = weights.copy(), bias.copy()
            touched_since_tables.clear()
            full = sketch_rows(weights, bias, sched.proj, np.arange(N, dtype=np.int64))
            assert np.array_equal(sched.ref, full)
    assert 2 <= fired < sched.checks  # both outcomes occurred
    counters = sched.counters()
    assert counters["checks"] == len(sched.events) == sched.checks
    assert counters["rebuilds" if mode == "rebuild" else "reinserts"] == fired
    assert [e["action"] != "none" for e in sched.events].count(True) == fired


def test_state_dict_roundtrip_and_config_errors():
    rng = np.random.default_rng(11)
    weights, bias = layer(12)
    sched = DriftScheduler(weights, bias, BITS, 0.3, 5, "reinsert", seed=13)
    rows = rng.choice(N, 100, replace=False).astype(np.int64)
    perturb(weights, bias, rows, 0.5, rng)
    sched.mark(rows)
    sched.check(5, weights, bias)
    sched.mark(rows[:10])
    state = sched.state_dict("out.")
    other = DriftScheduler(*layer(14), BITS, 0.3, 5, "reinsert", seed=15)
    other.load_state_dict(state, "out.")
    a, b = sched.check(10, weights, bias), other.check(10, weights, bias)
    assert (a.fraction, a.resketched, a.action) == (b.fraction, b.resketched, b.action)
    assert np.array_equal(sched.ref, other.ref)
    with pytest.raises(ConfigError):
        DriftScheduler(weights, bias, 65, 0.3, 5, "rebuild", seed=0)
    with pytest.raises(ConfigError):
        DriftScheduler(weights, bias, 16, 0.3, 5, "sometimes", seed=0)


def test_reproject_rebaselines_with_new_hyperplanes():
    rng = np.random.default_rng(16)
    weights, bias = layer(17)
    sched = DriftScheduler(weights, bias, BITS, 0.3, 5, "rebuild", seed=18)
    rows = rng.choice(N, 500, replace=False).astype(np.int64)
    perturb(weights, bias, rows, 0.5, rng)
    sched.mark(rows)
    new_proj = rng.standard_normal((8, D + 1)).astype(np.float32)
    sched.reproject(new_proj, weights, bias)
    full = sketch_rows(weights, bias, new_proj, np.arange(N, dtype=np.int64))
    assert sched.n_bits == 8 and np.array_equal(sched.proj, new_proj)
    assert np.array_equal(sched.ref, full) and np.array_equal(sched.cur, full)
    assert sched.fraction() == 0.0
    assert sched.check(5, weights, bias).resketched == 0  # dirty rows were folded into the base
