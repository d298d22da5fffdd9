"""MongoosePolicy on real LSH tables under simulated training drift: the tables it leaves behind
must equal a fresh hash of the current weights, and its counters must match its log."""

from __future__ import annotations

import numpy as np
import pytest

from slide_bench.errors import ConfigError
from slide_engine.lsh import LSHIndex, hash_rows
from slide_engine.mongoose import MongooseConfig, MongoosePolicy, mongoose_overrides

N, D, K, L = 2000, 24, 5, 8


def fresh_buckets(index: LSHIndex, weights: np.ndarray) -> np.ndarray:
    """Oracle: every neuron's bucket in every table under the index's current hash functions."""
    out = np.empty((L, N), dtype=np.int32)
    hash_rows(index.hash_functions, weights, np.arange(N, dtype=np.int32), out)
    return out


def make(mode: str, learn: bool, threshold: float = 0.1, family: str = "simhash"):
    rng = np.random.default_rng(0)
    weights = rng.normal(0.0, 0.1, (N, D)).astype(np.float32)
    bias = np.zeros(N, dtype=np.float32)
    index = LSHIndex(N, D, family=family, k=K, l=L, n_buckets=2**K, capacity=N, seed=1, bin_size=4)
    index.build(weights)
    cfg = MongooseConfig(
        threshold=threshold, check_every=5, mode=mode, learn=learn, query_buffer=64, fit_steps=10
    )
    return rng, weights, bias, index, MongoosePolicy(cfg, weights, bias, index, seed=2)


def train(rng, weights, bias, index, policy, iterations: int, active_matrix: bool = False):
    """Random sparse updates (like lazy Adam on active rows); returns the actions taken."""
    actions = []
    for it in range(1, iterations + 1):
        ids = rng.integers(0, N, (8, 30)).astype(np.int32)  # 8 samples x 30 active neurons
        cnt = rng.integers(10, 31, 8).astype(np.int32)
        touched = np.unique(np.concatenate([ids[i, : cnt[i]] for i in range(8)]))
        weights[touched] += rng.normal(0.0, 0.05, (touched.size, D)).astype(np.float32)
        bias[touched] += rng.normal(0.0, 0.05, touched.size).astype(np.float32)
        policy.observe(rng.normal(0.0, 1.0, (8, D)).astype(np.float32))
        if active_matrix:
            action = policy.after_batch(it, weights, bias, ids, index, counts=cnt)
        else:
            action = policy.after_batch(it, weights, bias, touched, index)
        actions.append(action)
        if action is not None:
            assert np.array_equal(index.tables.bucket_of, fresh_buckets(index, weights))
    return actions


@pytest.mark.parametrize("mode", ["rebuild", "reinsert"])
def test_maintained_tables_equal_fresh_hash(mode):
    rng, weights, bias, index, policy = make(mode, learn=False)
    actions = train(rng, weights, bias, index, policy, 120, active_matrix=mode == "reinsert")
    taken = [a for a in actions if a is not None]
    assert taken and set(taken) == {mode}
    assert len(taken) < 120 // 5  # drift-driven: not every check fires
    stats = policy.stats()
    assert stats == policy.totals()  # first call: everything so far
    assert policy.stats()["checks"] == 0.0  # then deltas
    assert stats["checks"] == 120 // 5 == len(policy.scheduler.events)
    assert stats["rebuilds" if mode == "rebuild" else "reinserts"] == len(taken)
    assert all(e["action"] == "none" or "t_action" in e for e in policy.scheduler.events)


def test_learned_policy_installs_fitted_projection_and_resumes():
    rng, weights, bias, index, policy = make("rebuild", learn=True)
    random_proj = index.hash_functions.proj.copy()
    actions = train(rng, weights, bias, index, policy, 60)
    assert policy.fits == sum(a is not None for a in actions) >= 1
    proj = index.hash_functions.proj
    assert proj.dtype == np.float32 and proj.shape == random_proj.shape
    assert not np.array_equal(proj, random_proj.astype(np.float32))
    # the drift sketch watches hyperplanes of the learned tables (bias weight 0)
    sketch = policy.scheduler.proj
    assert np.all(sketch[:, -1] == 0.0)
    assert all((proj.T == row[:-1]).all(axis=1).any() for row in sketch)
    fitted_events = [e for e in policy.scheduler.events if "t_fit" in e]
    assert len(fitted_events) == policy.fits and all(e["pairs"] >= 0 for e in fitted_events)

    state = policy.state_dict("mg.")
    index2, other = make("rebuild", learn=True)[3:]
    other.load_state_dict(state, "mg.")
    other.install(index2)
    assert np.array_equal(index2.hash_functions.proj, proj)
    index2.build(weights)
    assert np.array_equal(index2.tables.bucket_of, fresh_buckets(index, weights))
    assert other.totals() == policy.totals()
    assert other.stats() == policy.stats()


def test_config_validation_and_presets():
    with pytest.raises(ConfigError):
        make("rebuild", learn=True, family="dwta")
    with pytest.raises(ConfigError):
        make("reinsert", learn=True)
    with pytest.raises(ConfigError):
        MongooseConfig(threshold=0.0)
    with pytest.raises(ConfigError):
        mongoose_overrides("slide-mongoose-fast")
    assert mongoose_overrides("slide-mongoose-scheduler") == {
        "output.hash.schedule": "mongoose",
        "output.hash.mongoose.learn": "false",
    }
    assert mongoose_overrides("slide-mongoose")["output.hash.mongoose.learn"] == "true"
