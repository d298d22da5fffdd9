"""The output layer's uniform top-up drawn after the tables (``HashConfig.topup_extra``,
``topup_correct``, ``uniform_above_cos``) and the learning-rate warm-up, against oracles.

- The top-up kernel against set algebra: the sample keeps its labels and table neurons in front
  (``found`` says how many), the top-up is disjoint from them, without duplicates, and the
  count is ``max(min_active, found + extra)``.
- The importance-corrected softmax against a NumPy reference (loss and ``p - t``), and the
  correction's purpose: over many uniform top-ups the corrected normaliser's mean is the full
  softmax normaliser (Monte Carlo, 4 standard errors).
- The uniform phase against a direct cosine computation of the batch's hidden activations, and
  the log-uniform phase (draws instead of the tables) against a twin sampler's draws.
- Warm-up: one step with ``lr_warmup_steps=4`` equals one step with a quarter of the rate.
"""

from __future__ import annotations

import numpy as np
import pytest

from slide_bench.cli import from_dict, load_config
from slide_bench.data import generate
from slide_bench.errors import ConfigError
from slide_engine.engine import HashConfig, SlideConfig, SlideNetwork
from slide_engine.engine.instrumentation import mean_pairwise_cosine
from slide_engine.engine.kernels import SERIAL
from slide_engine.engine.sampling import (
    LayerSampler,
    append_parallel,
    append_serial,
    correct_topup_logits,
)

N_NEURONS, DIM, BATCH = 5000, 16, 12


def make_sampler(cfg: HashConfig) -> LayerSampler:
    sampler = LayerSampler(cfg, N_NEURONS, DIM, is_output=True, max_labels=3, seed=3,
                           layer_index=1, threads=1)
    sampler.build(np.random.default_rng(1).standard_normal((N_NEURONS, DIM)).astype(np.float32))
    return sampler


def select(sampler: LayerSampler, val: np.ndarray, y: tuple, training: bool,
           query_cos: float = float("nan")) -> tuple[np.ndarray, np.ndarray]:
    ids = np.zeros((BATCH, sampler.capacity), dtype=np.int32)
    cnt = np.zeros(BATCH, dtype=np.int32)
    prev = (np.zeros((BATCH, DIM), dtype=np.int32), np.full(BATCH, DIM, dtype=np.int32), val)
    sampler.select_dense(False, np.zeros((1, 1), np.float32), prev, True,
                         np.arange(BATCH, dtype=np.int64), *y, True, ids, cnt,
                         center_queries=training, query_cos=query_cos)
    return ids, cnt


def batch(seed: int) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    val = np.maximum(rng.standard_normal((BATCH, DIM)), 0).astype(np.float32)
    counts = rng.integers(1, 4, size=BATCH)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    labels = np.concatenate([rng.choice(N_NEURONS, c, replace=False) for c in counts])
    return val, (indptr, labels.astype(np.int32))


@pytest.mark.parametrize("topup", ["shared", "per-sample"])
@pytest.mark.parametrize("extra,floor", [(300, 0), (0, 900), (200, 2500)])
def test_topup_after_tables_keeps_the_union_and_adds_disjoint_uniform_neurons(topup, extra,
                                                                            floor):
    val, y = batch(0)
    plain = make_sampler(HashConfig(family="simhash", k=6, l=8, min_active=0, topup=topup))
    post = make_sampler(HashConfig(family="simhash", k=6, l=8, min_active=floor, topup=topup,
                                   topup_extra=extra, topup_correct=True))
    ids0, cnt0 = select(plain, val, y, training=True)
    ids, cnt = select(post, val, y, training=True)
    for i in range(BATCH):
        union = ids0[i, : cnt0[i]]
        n_lab = int(y[0][i + 1] - y[0][i])
        found = int(post.found[i])
        assert found == cnt0[i]
        assert set(ids[i, :n_lab].tolist()) == set(y[1][y[0][i]: y[0][i + 1]].tolist())
        assert set(ids[i, :found].tolist()) == set(union.tolist())
        top = ids[i, found: cnt[i]]
        assert len(set(top.tolist())) == top.size
        assert not set(top.tolist()) & set(union.tolist())
        assert cnt[i] == min(max(floor, found + extra), N_NEURONS)
    # inference: no extra neurons, the floor only (the plain union's behaviour)
    ids, cnt = select(post, val, y, training=False)
    assert np.array_equal(cnt, np.maximum(cnt0, floor))


def test_uniform_phase_follows_the_batch_query_cosine():
    val, y = batch(1)
    cfg = HashConfig(family="simhash", k=6, l=8, min_active=0, topup_extra=400,
                     uniform_above_cos=0.9)
    sampler = make_sampler(cfg)
    _, cnt = select(sampler, val, y, training=True, query_cos=0.95)
    n_lab = np.diff(y[0])
    assert sampler.last_uniform
    assert np.array_equal(sampler.found[:BATCH], n_lab)  # labels only, no table neuron
    assert np.array_equal(cnt, n_lab + 400)
    _, cnt = select(sampler, val, y, training=True, query_cos=0.85)
    assert not sampler.last_uniform
    assert np.all(sampler.found[:BATCH] > n_lab)  # the tables are probed again


def reference_loss(z: np.ndarray, found: int, n_lab: int, n: int) -> tuple[float, np.ndarray]:
    z = z.astype(np.float64).copy()
    r = z.size - found
    if r:
        z[found:] += np.log((n - found) / r)
    lse = np.log(np.exp(z - z.max()).sum()) + z.max()
    p = np.exp(z - lse)
    t = np.zeros_like(p)
    t[:n_lab] = 1.0 / n_lab
    return float(lse - z[:n_lab].mean()), p - t


def test_corrected_softmax_matches_numpy():
    rng = np.random.default_rng(2)
    n, cap = 10_000, 64
    cnt = rng.integers(20, cap + 1, size=BATCH).astype(np.int32)
    found = np.array([rng.integers(3, c + 1) for c in cnt], dtype=np.int32)
    found[0] = cnt[0]  # no top-up: no correction
    n_lab = rng.integers(1, 4, size=BATCH)
    indptr = np.concatenate([[0], np.cumsum(n_lab)]).astype(np.int64)
    labels = rng.integers(0, n, size=indptr[-1]).astype(np.int32)
    z = rng.standard_normal((BATCH, cap)).astype(np.float32) * 2
    val = z.copy()
    loss = np.zeros(BATCH)
    correct_topup_logits(found, cnt, val, n)
    SERIAL.softmax_loss(np.arange(BATCH, dtype=np.int64), indptr, labels,
                        np.zeros((BATCH, cap), np.int32), cnt, val, True, loss)
    for i in range(BATCH):
        want_loss, want_delta = reference_loss(z[i, : cnt[i]], found[i], n_lab[i], n)
        assert loss[i] == pytest.approx(want_loss, rel=1e-5)
        np.testing.assert_allclose(val[i, : cnt[i]], want_delta, atol=2e-6)


@pytest.mark.parametrize("topup", ["per-sample", "shared"])
def test_corrected_normaliser_is_unbiased_over_top_up_draws(topup):
    # every output neuron's logit is known; S (labels + tables) is deterministic given the query
    # and the top-up is random: the mean of sum(exp(corrected logits)) over draws is the full
    # softmax normaliser sum(exp(all logits)); without the correction it is far below
    val, y = batch(3)
    cfg = HashConfig(family="simhash", k=6, l=8, min_active=0, topup_extra=150, topup=topup,
                     topup_correct=True)
    sampler = make_sampler(cfg)
    logits = np.random.default_rng(4).standard_normal(N_NEURONS) * 1.5
    full = np.exp(logits).sum()
    draws = 400
    est, raw = np.zeros((draws, BATCH)), np.zeros((draws, BATCH))
    for d in range(draws):
        ids, cnt = select(sampler, val, y, training=True)
        z = np.zeros(ids.shape, np.float32)
        for i in range(BATCH):
            z[i, : cnt[i]] = logits[ids[i, : cnt[i]]]
        raw[d] = [np.exp(z[i, : cnt[i]].astype(np.float64)).sum() for i in range(BATCH)]
        correct_topup_logits(sampler.found[:BATCH], cnt, z, N_NEURONS)
        est[d] = [np.exp(z[i, : cnt[i]].astype(np.float64)).sum() for i in range(BATCH)]
    mean, se = est.mean(axis=0), est.std(axis=0) / np.sqrt(draws)
    assert np.all(np.abs(mean - full) < 4 * se + 1e-9 * full)
    assert np.all(raw.mean(axis=0) < 0.5 * full)


def test_network_skips_the_tables_exactly_when_the_measured_cosine_is_high():
    train, _ = generate("tiny", 0)
    sets = ["output.hash.k=4", "output.hash.l=4", "output.hash.n_buckets=64",
            "output.hash.min_active=4", "output.hash.topup_extra=8", "lr=0.01"]
    for threshold in (0.0, 1.0 - 1e-9):
        cfg = from_dict(SlideConfig, load_config(
            None, [*sets, f"output.hash.uniform_above_cos={threshold}"]))
        net = SlideNetwork(cfg, seed=0, threads=1)
        net.prepare(train)
        rows = np.arange(16, dtype=np.int64)
        for _ in range(3):
            net.train_batch(rows)
            buf = net._buffers
            cos = mean_pairwise_cosine(buf.val[0][:16, : net.layers[1].n_in])
            sampler = net._samplers[1]
            assert sampler.last_uniform == (cos > threshold)
            n_lab = np.diff(train.y_indptr)[rows]
            if sampler.last_uniform:
                assert np.array_equal(sampler.found[:16], n_lab)
        assert net.stats()["uniform_share"] == (1.0 if threshold == 0.0 else 0.0)


def test_lr_warmup_first_step_is_the_scaled_rate():
    train, _ = generate("tiny", 0)
    rows = np.arange(16, dtype=np.int64)
    nets = []
    for sets in (["lr=0.01", "lr_warmup_steps=4"], ["lr=0.0025"]):
        net = SlideNetwork(from_dict(SlideConfig, load_config(None, sets)), seed=0, threads=1)
        net.prepare(train)
        net.train_batch(rows)
        nets.append(net)
    for a, b in zip(nets[0].layers, nets[1].layers, strict=True):
        np.testing.assert_array_equal(a.w, b.w)
        np.testing.assert_array_equal(a.b, b.b)
    with pytest.raises(ValueError, match="lr_warmup_steps"):
        SlideConfig(lr_warmup_steps=-1)
    with pytest.raises(ConfigError, match="union policy"):
        from_dict(SlideConfig, load_config(
            None, ["output.hash.policy=random", "output.hash.topup_extra=5"]))


def test_log_uniform_top_up_draws_match_the_baseline_sampler_and_correct_by_inclusion():
    # the draw's per-neuron probability is the TF baseline's log-uniform over frequency ranks
    # (an independent implementation); each neuron's empirical inclusion frequency over many
    # batches is 1 - (1 - p)^S; the selection appends the draws each sample does not hold and
    # the correction of a drawn neuron is -log(1 - (1 - p)^S)
    from baselines.samplers import sampler_log_probs

    val, y = batch(5)
    s = 300
    cfg = HashConfig(family="simhash", k=6, l=8, min_active=0, topup_extra=s, topup_correct=True,
                     topup_sampler="log-uniform")
    sampler = make_sampler(cfg)
    counts = np.random.default_rng(6).poisson(2.0, N_NEURONS)
    sampler.set_label_counts(counts)
    p = np.exp(sampler_log_probs("log-uniform", counts))
    np.testing.assert_allclose(np.diff(sampler.draw_cdf, prepend=0.0), p, rtol=1e-9, atol=1e-15)
    want = -np.expm1(s * np.log1p(-p))
    hits = np.zeros(N_NEURONS)
    batches = 400
    for _ in range(batches):
        hits[sampler.draw_candidates()] += 1
    top = np.argsort(-p)[:50]
    se = np.sqrt(want[top] * (1 - want[top]) / batches)
    assert np.all(np.abs(hits[top] / batches - want[top]) < 4 * se + 1e-3)
    assert abs(hits.sum() / batches - want.sum()) < 0.02 * want.sum()
    for _ in range(3):
        ids, cnt = select(sampler, val, y, training=True)
        z = np.zeros(ids.shape, np.float32)
        sampler.correct(ids, cnt, z)
        for i in range(BATCH):
            f = sampler.found[i]
            own, drawn = ids[i, :f], ids[i, f: cnt[i]]
            assert not set(own.tolist()) & set(drawn.tolist())
            assert len(set(drawn.tolist())) == drawn.size > 0
            np.testing.assert_allclose(z[i, f: cnt[i]], -np.log(want[drawn]), rtol=1e-5)
            assert not z[i, :f].any()


def test_label_correction_as_tf_sampled_softmax():
    # with correct_labels each label's logit gets its own -log P(drawn), the drawn ones theirs,
    # the tables' neurons nothing: tf.nn.sampled_softmax_loss's true/sampled logits
    val, y = batch(7)
    s = 200
    cfg = HashConfig(family="simhash", k=6, l=8, min_active=0, topup_extra=s, topup_correct=True,
                     topup_sampler="log-uniform", correct_labels=True)
    sampler = make_sampler(cfg)
    counts = np.random.default_rng(8).poisson(1.0, N_NEURONS)
    sampler.set_label_counts(counts)
    p = np.diff(sampler.draw_cdf, prepend=0.0)
    neg_log = -np.log(-np.expm1(s * np.log1p(-p)))
    ids, cnt = select(sampler, val, y, training=True)
    z = np.zeros(ids.shape, np.float32)
    n_lab = np.diff(y[0])
    sampler.correct(ids, cnt, z, n_lab)
    for i in range(BATCH):
        f, m = sampler.found[i], n_lab[i]
        np.testing.assert_allclose(z[i, :m], neg_log[ids[i, :m]], rtol=1e-5)
        assert not z[i, m:f].any()
        np.testing.assert_allclose(z[i, f: cnt[i]], neg_log[ids[i, f: cnt[i]]], rtol=1e-5)


@pytest.mark.parametrize("sampler_kind", ["uniform", "log-uniform"])
def test_extra_draws_only_while_the_batch_queries_are_collapsed(sampler_kind):
    # extra_above_cos=0.9: a batch above it gets the union plus the extra draws, a batch below
    # it exactly the plain union topped up to min_active (the paper's active set)
    val, y = batch(9)
    plain = make_sampler(HashConfig(family="simhash", k=6, l=8, min_active=700))
    cfg = HashConfig(family="simhash", k=6, l=8, min_active=700, topup_extra=300,
                     topup_sampler=sampler_kind, extra_above_cos=0.9)
    sampler = make_sampler(cfg)
    sampler.set_label_counts(np.arange(N_NEURONS)[::-1].copy())
    ids0, cnt0 = select(plain, val, y, training=True)
    union = make_sampler(HashConfig(family="simhash", k=6, l=8, min_active=0))
    _, n_union = select(union, val, y, training=True)
    ids, cnt = select(sampler, val, y, training=True, query_cos=0.95)
    assert sampler.last_extra
    assert np.array_equal(sampler.found[:BATCH], n_union)
    assert np.all(cnt > n_union) and np.all(cnt <= n_union + 300)
    ids, cnt = select(sampler, val, y, training=True, query_cos=0.5)
    assert not sampler.last_extra
    assert np.array_equal(cnt, cnt0)  # max(union, 700), as the plain union policy
    for i in range(BATCH):
        assert set(ids[i, : n_union[i]].tolist()) == set(ids0[i, : n_union[i]].tolist())


def test_log_uniform_phase_replaces_the_tables_while_the_queries_are_collapsed():
    # uniform_above_cos = extra_above_cos = 0.6 with log-uniform draws (the slide-lu-phase
    # method): a batch above 0.6 gets each sample's labels plus the batch's draws it lacks,
    # no table neuron and no floor (a sampled softmax); a batch below it exactly the plain
    # union topped up to min_active. Oracle for the draws: a twin sampler's draw_candidates()
    val, y = batch(11)
    cfg = HashConfig(family="simhash", k=6, l=8, min_active=700, topup_extra=300,
                     topup_sampler="log-uniform", uniform_above_cos=0.6, extra_above_cos=0.6)
    sampler, twin = make_sampler(cfg), make_sampler(cfg)
    counts = np.random.default_rng(12).poisson(2.0, N_NEURONS)
    sampler.set_label_counts(counts)
    twin.set_label_counts(counts)
    n_lab = np.diff(y[0])
    for query_cos in (0.95, 0.7):
        ids, cnt = select(sampler, val, y, training=True, query_cos=query_cos)
        cand = twin.draw_candidates()
        assert sampler.last_uniform and sampler.last_extra
        assert np.array_equal(sampler.found[:BATCH], n_lab)
        for i in range(BATCH):
            labels = y[1][y[0][i]: y[0][i + 1]]
            assert set(ids[i, : n_lab[i]].tolist()) == set(labels.tolist())
            want = [c for c in cand if c not in set(labels.tolist())]
            assert ids[i, n_lab[i]: cnt[i]].tolist() == want
    plain = make_sampler(HashConfig(family="simhash", k=6, l=8, min_active=700))
    ids0, cnt0 = select(plain, val, y, training=True)
    ids, cnt = select(sampler, val, y, training=True, query_cos=0.5)
    assert not sampler.last_uniform and not sampler.last_extra
    assert np.array_equal(cnt, cnt0)
    found = sampler.found[:BATCH]
    assert np.all(found > n_lab)  # the tables are probed again
    for i in range(BATCH):
        assert set(ids[i, : found[i]].tolist()) == set(ids0[i, : found[i]].tolist())


def test_appending_drawn_neurons_is_the_same_on_one_thread_and_in_parallel():
    # per-sample work with per-thread marks: the parallel kernel must give the serial result
    # (the sample's own neurons in front, then the candidates it lacks, in candidate order)
    sampler = LayerSampler(HashConfig(), N_NEURONS, DIM, is_output=True, max_labels=3, seed=3,
                           layer_index=1, threads=2)
    rng = np.random.default_rng(5)
    own = np.zeros((BATCH, 400), dtype=np.int32)
    cnt = rng.integers(0, 50, size=BATCH).astype(np.int32)
    for i in range(BATCH):
        own[i, : cnt[i]] = rng.choice(300, cnt[i], replace=False)
    cand = rng.choice(300, 120, replace=False).astype(np.int32)
    results = []
    for fn in (append_serial, append_parallel):
        ids, c, found = own.copy(), cnt.copy(), np.zeros(BATCH, dtype=np.int32)
        fn(sampler.scratch, cand, ids, c, found)
        results.append((ids, c, found))
    (ids, c, found), (ids_p, c_p, found_p) = results
    np.testing.assert_array_equal(found, cnt)
    for i in range(BATCH):
        kept = list(own[i, : cnt[i]])
        expect = kept + [j for j in cand if j not in set(kept)]
        assert list(ids[i, : c[i]]) == expect
    np.testing.assert_array_equal(ids_p, ids)
    np.testing.assert_array_equal(c_p, c)
    np.testing.assert_array_equal(found_p, found)
