"""Training behaviour of SlideNetwork: determinism, resume, warm-up, evaluation, instrumentation.

Thresholds: bit equality for everything deterministic (threads=1); P@k from predict_topk equal
to the metrics module's top-k of a NumPy dense forward.
"""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from slide_bench.data import generate
from slide_bench.harness import RunSettings, epoch_order
from slide_bench.metrics import topk_from_scores
from slide_engine.engine import HashConfig, OutputConfig, SlideConfig, SlideNetwork
from slide_engine.engine.instrumentation import mean_pairwise_cosine
from slide_engine.mongoose import MongooseConfig

# union + random top-up (RNG), a rebuild every 4 and a redraw every 7 batches of 64 samples:
# everything that carries state between batches is exercised within a dozen batches
HASH = HashConfig(family="dwta", k=3, l=8, n_buckets=2**9, min_active=64,
                  rebuild_every_samples=256, redraw_every_samples=448)
CONFIG = SlideConfig(lr=1e-3, output=OutputConfig(sampled=True, hash=HASH))


@pytest.fixture(scope="module")
def tiny():
    return generate("tiny", 0)


def batches(n_points: int, count: int, start: int = 0) -> list[np.ndarray]:
    order = epoch_order(n_points, 0, 0)
    return [order[i * 64 : (i + 1) * 64] for i in range(start, start + count)]


def trained(train, n_batches: int, config: SlideConfig = CONFIG, threads: int = 1):
    net = SlideNetwork(config, seed=5, threads=threads)
    net.prepare(train)
    losses = [net.train_batch(rows) for rows in batches(train.n_points, n_batches)]
    return net, losses


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if key.endswith(("t_sched", "t_fit", "reported")):  # MONGOOSE's wall-clock counters
            continue
        assert np.array_equal(a[key], b[key]), key


def test_same_seed_one_thread_is_bit_identical(tiny):
    net_a, loss_a = trained(tiny[0], 12)
    net_b, loss_b = trained(tiny[0], 12)
    assert loss_a == loss_b
    assert_same_state(net_a.state_dict(), net_b.state_dict())


# MONGOOSE scheduler with a drift threshold that every check passes
MONGOOSE = SlideConfig(lr=1e-3, output=OutputConfig(sampled=True, hash=HashConfig(
    family="simhash", k=4, l=8, min_active=64, schedule="mongoose",
    mongoose=MongooseConfig(check_every=3, threshold=1e-6))))


# CONFIG trains the sampled output layer neuron-major (accumulate="auto" with lazy Adam: "rows")
HOGWILD = SlideConfig(lr=1e-3, accumulate="hogwild", output=CONFIG.output)


# CONFIG tops up from a run of one permutation shared by the batch (the default; its offset
# travels with the state); this one draws each sample's top-up (per-thread RNG streams)
PER_SAMPLE = SlideConfig(lr=1e-3, output=OutputConfig(sampled=True, hash=dataclasses.replace(
    HASH, topup="per-sample")))


@pytest.mark.parametrize("config", [CONFIG, pytest.param(MONGOOSE, marks=pytest.mark.slow),
                                    HOGWILD, PER_SAMPLE],
                         ids=["reference", "mongoose", "hogwild", "per-sample-topup"])
def test_resume_from_state_dict_continues_bit_identically(tiny, config):
    train = tiny[0]
    net, _ = trained(train, 6, config)
    state = {key: value.copy() for key, value in net.state_dict().items()}  # live arrays
    tail = batches(train.n_points, 8, start=6)  # spans rebuilds (8, 12) and a redraw (7)
    straight = [net.train_batch(rows) for rows in tail]
    assert net.stats()["rebuilds"] >= 2
    resumed = SlideNetwork(config, seed=5, threads=1)
    resumed.prepare(train)
    resumed.load_state_dict(state)
    again = [resumed.train_batch(rows) for rows in tail]
    assert straight == again
    assert_same_state(net.state_dict(), resumed.state_dict())


@pytest.mark.slow
def test_mongoose_learned_hash_reports_its_checks_and_fits(tiny):
    config = copy.deepcopy(MONGOOSE)
    config.output.hash.mongoose.learn = True
    config.output.hash.mongoose.fit_steps = 3
    net, _ = trained(tiny[0], 7, config)
    assert net.method == "slide-mongoose"
    stats = net.stats()
    assert stats["checks"] == 2.0 and stats["fits"] == 2.0 and stats["rebuilds"] == 2.0
    assert stats["t_fit"] > 0.0


def test_warmup_leaves_the_state_unchanged(tiny):
    net = SlideNetwork(CONFIG, seed=5, threads=1)
    net.prepare(tiny[0])
    before = {key: value.copy() for key, value in net.state_dict().items()}
    net.warmup(batches(tiny[0].n_points, 1)[0])
    assert_same_state(before, net.state_dict())


# Run in a fresh interpreter: numba dispatchers gain a signature when a kernel is first compiled
# (or loaded from the on-disk cache) in a process, so earlier tests cannot hide a kernel that
# warm-up missed. After warm-up, batches on both sides of a query-cosine threshold must not add
# one (a kernel compiled there would count its compile time as training time).
_COMPILED_AFTER_WARMUP = """
import sys
import numpy as np
from numba.core.registry import CPUDispatcher
from slide_bench.data import generate
from slide_engine.engine import HashConfig, OutputConfig, SlideConfig, SlideNetwork

def signatures():
    return {f"{name}.{key}": len(value.signatures)
            for name, module in list(sys.modules.items()) if name.startswith("slide_engine")
            for key, value in vars(module).items() if isinstance(value, CPUDispatcher)}

key, threshold = sys.argv[1], float(sys.argv[2])
train = generate("tiny", 0)[0]
hash_config = HashConfig(family="dwta", k=3, l=8, n_buckets=2**9, min_active=64,
                         topup_extra=16, topup_sampler="log-uniform", **{key: threshold})
net = SlideNetwork(SlideConfig(lr=1e-3, output=OutputConfig(sampled=True, hash=hash_config)),
                   seed=5, threads=1)
net.prepare(train)
rows = np.arange(64)
net.warmup(rows)
before = signatures()
sampler = net._samplers[len(net.layers) - 1]
for side in (0.0, 1.0):  # every batch above the threshold, then none
    setattr(sampler.cfg, key, side)
    for _ in range(2):
        net.train_batch(rows)
print({k: v for k, v in signatures().items() if v != before.get(k, 0)})
"""


@pytest.mark.slow
@pytest.mark.parametrize("key", ["extra_above_cos", "uniform_above_cos"])
def test_warmup_compiles_both_sides_of_a_query_cosine_threshold(key):
    proc = subprocess.run([sys.executable, "-c", _COMPILED_AFTER_WARMUP, key, "0.9"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "{}", proc.stdout


def test_save_and_load_predict_the_same(tiny, tmp_path):
    train, test = tiny
    net, _ = trained(train, 3)
    net.save(tmp_path / "net.npz")
    loaded = SlideNetwork.load(tmp_path / "net.npz")
    assert np.array_equal(net.predict_topk(test, 5), loaded.predict_topk(test, 5))


def test_predict_topk_is_the_dense_forward_in_chunks(tiny):
    train, test = tiny
    config = SlideConfig(lr=1e-3, eval_chunk_mb=1, output=CONFIG.output)  # forces many chunks
    net, _ = trained(train, 3, config)
    first, out = net.layers
    x = np.zeros((test.n_points, test.n_features), np.float32)
    for i in range(test.n_points):
        lo, hi = test.x_indptr[i], test.x_indptr[i + 1]
        x[i, test.x_indices[lo:hi]] = test.x_values[lo:hi]
    hidden = np.maximum(x.astype(np.float64) @ first.w + first.b, 0.0)
    scores = hidden @ out.w.T.astype(np.float64) + out.b
    expected = topk_from_scores(scores, 5)
    got = net.predict_topk(test, 5)
    assert (got == expected).mean() >= 0.999  # float32 vs float64 may swap near-ties
    assert np.array_equal(got[:, 0], expected[:, 0]) or (got[:, 0] != expected[:, 0]).sum() <= 1


def test_predict_with_hashing_scores_only_active_neurons(tiny):
    train, test = tiny
    net, _ = trained(train, 3)
    before = {key: value.copy() for key, value in net.state_dict().items()}
    topk = net.predict_topk_lsh(test, 5)
    assert topk.shape == (test.n_points, 5)
    assert ((topk >= 0) & (topk < test.n_labels)).all()  # min_active 64 >= k: no padding
    assert np.array_equal(topk, net.predict_topk_lsh(test, 5))  # deterministic
    assert_same_state(before, net.state_dict())  # training RNG streams untouched


def test_stats_report_sampling_and_phase_times(tiny):
    net, _ = trained(tiny[0], 5)
    stats = net.stats()
    n_labels = tiny[0].n_labels
    assert 64 <= stats["active_mean"] < n_labels
    assert stats["active_fraction"] == pytest.approx(stats["active_mean"] / n_labels)
    assert 0.0 < stats["mult_fraction"] < 1.0
    assert all(stats[f"t_{p}"] >= 0.0 for p in ("hash", "forward", "backward", "update",
                                                 "tables"))
    assert stats["rebuilds"] == 1.0  # after batch 4
    assert 0.0 < stats["table_coverage"] <= 1.0
    assert np.isnan(net.stats()["mult_fraction"])  # counters restart after each call


@pytest.mark.parametrize(("batch", "n_batches", "expected"), [(64, 8, 2), (32, 8, 1), (128, 4, 2)])
def test_table_maintenance_counts_samples_not_batches(tiny, batch, n_batches, expected):
    # a rebuild every 256 samples: every 4 batches of 64, 8 of 32, 2 of 128
    cfg = SlideConfig(lr=1e-3, output=OutputConfig(hash=HashConfig(
        family="dwta", k=3, l=8, n_buckets=2**9, min_active=64, rebuild_every_samples=256,
        redraw_every_samples=0)))
    net = SlideNetwork(cfg, seed=5, threads=1)
    net.prepare(tiny[0])
    order = epoch_order(tiny[0].n_points, 0, 0)
    for i in range(n_batches):
        net.train_batch(order[i * batch: (i + 1) * batch])
    assert net.stats()["rebuilds"] == expected
    assert int(net.state_dict()["samples"][0]) == batch * n_batches


def test_table_coverage_is_the_share_of_neurons_in_some_table(tiny):
    net, _ = trained(tiny[0], 2)
    tables = net._samplers[len(net.layers) - 1].index.tables
    stored = set()
    for t in range(tables.ids.shape[0]):
        for b in np.flatnonzero(tables.size[t]):
            s = tables.start[t, b]
            stored.update(tables.ids[t, s: s + tables.size[t, b]].tolist())
    assert net.stats()["table_coverage"] == pytest.approx(len(stored) / tiny[0].n_labels)


def brute_force_cosine(x: np.ndarray) -> float:
    rows = [r / np.linalg.norm(r) for r in x.astype(np.float64) if np.any(r)]
    pairs = [rows[i] @ rows[j] for i in range(len(rows)) for j in range(len(rows)) if i != j]
    return float(np.mean(pairs)) if pairs else float("nan")


def test_mean_pairwise_cosine_matches_brute_force():
    rng = np.random.default_rng(3)
    x = np.maximum(rng.standard_normal((17, 6)), 0.0).astype(np.float32)
    x[[2, 9]] = 0.0  # all-zero queries (a dead ReLU layer) are left out
    assert mean_pairwise_cosine(x) == pytest.approx(brute_force_cosine(x), rel=1e-6)
    assert mean_pairwise_cosine(np.tile(x[:1] * 3.0, (5, 1))) == pytest.approx(1.0)
    assert mean_pairwise_cosine(np.array([[1.0, 2.0], [-1.0, -2.0]])) == pytest.approx(-1.0)
    assert np.isnan(mean_pairwise_cosine(x[:1]))
    assert np.isnan(mean_pairwise_cosine(np.zeros((4, 3))))


def test_stats_report_query_collapse_and_distinct_rows(tiny):
    # oracles: the queries are the hidden activations of the weights before each step (NumPy
    # forward), the distinct rows the unique ids of the batch's output active sets
    train = tiny[0]
    net = SlideNetwork(CONFIG, seed=5, threads=1)
    net.prepare(train)
    cosines, distinct = [], []
    for rows in batches(train.n_points, 4):
        first = net.layers[0]
        hidden = np.zeros((rows.size, first.w.shape[1]))
        for i, r in enumerate(rows):
            lo, hi = train.x_indptr[r], train.x_indptr[r + 1]
            hidden[i] = train.x_values[lo:hi] @ first.w[train.x_indices[lo:hi]] + first.b
        cosines.append(brute_force_cosine(np.maximum(hidden, 0.0)))
        net.train_batch(rows)
        ids, cnt, _ = net._buffers.layer(len(net.layers) - 1)
        active = np.concatenate([ids[i, : cnt[i]] for i in range(rows.size)])
        distinct.append(np.unique(active).size)
    stats = net.stats()
    assert stats["query_cos"] == pytest.approx(np.mean(cosines), rel=1e-4)
    assert stats["distinct_rows"] == pytest.approx(np.mean(distinct))
    assert stats["distinct_rows"] <= stats["active_mean"] * 64
    assert np.isnan(net.stats()["query_cos"])  # counters restart after each call
    hogwild = SlideConfig(lr=1e-3, accumulate="hogwild",
                          output=OutputConfig(sampled=True, hash=HASH))
    net, _ = trained(train, 2, hogwild)
    stats = net.stats()
    assert np.isnan(stats["distinct_rows"]) and 0.0 < stats["query_cos"] <= 1.0


def test_is_finite_detects_a_diverged_weight(tiny):
    net, _ = trained(tiny[0], 1)
    assert net.is_finite()
    net.layers[-1].w[3, 7] = np.inf
    assert not net.is_finite()


def test_fit_runs_the_harness_deterministically(tiny, tmp_path):
    train, test = tiny
    curves = []
    for name in ("a", "b"):
        settings = RunSettings(batch_size=64, eval_every=5, max_iterations=10, eval_points=200,
                               seed=5, threads=1, dataset="tiny")
        net = SlideNetwork(CONFIG, seed=5, threads=1)
        result = net.fit(train, test, tmp_path / f"{name}.csv", settings)
        assert result.status == "done" and result.iterations == 10
        curves.append([{k: v for k, v in row.items()
                        if k != "train_seconds" and not k.startswith(("t_", "eval_seconds"))}
                       for row in result.curve])
    np.testing.assert_equal(curves[0], curves[1])  # NaN (no batch yet) equals NaN here
