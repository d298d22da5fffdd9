"""The output layer's inner-product hashing (``output.hash.mips``) in the engine, against oracles.

- The tables: after the first build and after every scheduled rebuild (here one per batch)
  each neuron's buckets are NumPy SimHash (float64) of ``[w, b, sqrt(M^2 - |[w, b]|^2)]`` with
  the engine's projections; ``M`` is at least every neuron's norm after a rebuild (a neuron
  grown past it makes the rebuild a full one, with ``M`` taken anew).
- The queries: with the threshold policy at 1 (no top-up) a sample's active set is its labels
  plus the members of the buckets that NumPy SimHash of ``[h, 1, 0]`` gives, ``h`` the
  hidden activations computed in NumPy.
- Norm ranges (``mips_ranges``): each neuron is hashed with its range's M, at least its norm.
- Training lowers the loss; a resume from the state dict continues bit-identically (``M``
  travels with the state) and a save/load round trip keeps ``M``.
- Validation: another family, a hidden layer, centred tables or the mongoose schedule with
  ``mips`` are errors naming the option.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from slide_bench.data import generate
from slide_bench.harness import epoch_order
from slide_engine.engine import HashConfig, LayerConfig, OutputConfig, SlideConfig, SlideNetwork

HASH = HashConfig(family="simhash", k=5, l=6, n_buckets=2**18, min_active=32, mips=True,
                  rebuild_every_samples=32, redraw_every_samples=32 * 9)
CONFIG = SlideConfig(lr=1e-2, output=OutputConfig(sampled=True, hash=HASH))
BATCH = 32


@pytest.fixture(scope="module")
def tiny():
    return generate("tiny", 0)


def batches(n_points: int, count: int, start: int = 0) -> list[np.ndarray]:
    order = epoch_order(n_points, 0, 0)
    return [order[i * BATCH: (i + 1) * BATCH] for i in range(start, start + count)]


def network(train, config: SlideConfig = CONFIG) -> SlideNetwork:
    net = SlideNetwork(config, seed=2, threads=1)
    net.prepare(train)
    return net


def numpy_buckets(hf, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Buckets (l, n) of float64 vectors (n, D + 2) and each table's smallest |projection|."""
    proj = np.vstack([hf.proj, hf.mips_proj]).astype(np.float64)
    z = vectors @ proj
    n = len(vectors)
    bits = (z > 0).astype(np.int64).reshape(n, hf.l, hf.k)
    weights = 1 << np.arange(hf.k - 1, -1, -1)
    return (bits * weights).sum(axis=2).T, np.abs(z).reshape(n, hf.l, hf.k).min(axis=2).T


def transformed(w: np.ndarray, b: np.ndarray, m: float | np.ndarray) -> np.ndarray:
    x = np.hstack([w, b[:, None]]).astype(np.float64)
    return np.hstack([x, np.sqrt(np.maximum(m * m - (x * x).sum(axis=1), 0.0))[:, None]])


def assert_tables_hash_the_transform(net: SlideNetwork) -> None:
    out = net.layers[-1]
    index = net._samplers[len(net.layers) - 1].index
    norms = np.sqrt((out.w.astype(np.float64) ** 2).sum(axis=1) + out.b.astype(np.float64) ** 2)
    assert index.mips_m >= norms.max() * (1 - 1e-12)
    assert np.all(index.mips_row_m >= norms * (1 - 1e-12))  # each neuron within its M
    if index.mips_ranges == 1:
        assert np.all(index.mips_row_m == index.mips_m)
    want, margin = numpy_buckets(index.hash_functions,
                                 transformed(out.w, out.b, index.mips_row_m))
    clear = margin > 1e-5
    assert clear.mean() > 0.98
    assert np.array_equal(index.tables.bucket_of[clear], want[clear])


@pytest.mark.parametrize("ranges", [1, 3])
def test_tables_hold_the_transformed_neurons_after_build_and_each_rebuild(tiny, ranges):
    train = tiny[0]
    net = network(train, dataclasses.replace(CONFIG, output=OutputConfig(
        sampled=True, hash=dataclasses.replace(HASH, mips_ranges=ranges))))
    assert_tables_hash_the_transform(net)
    first_m = net._samplers[1].index.mips_m
    for rows in batches(train.n_points, 8):
        net.train_batch(rows)  # one rebuild per batch of 32 samples
        assert_tables_hash_the_transform(net)
    assert net.stats()["rebuilds"] == 8
    sampler = net._samplers[1]
    # lr 1e-2 from init std 0.01: the norms grow, so some rebuilds re-hashed everything
    assert sampler.mips_full_rebuilds >= 1 and sampler.index.mips_m > first_m


def test_a_query_probes_the_buckets_of_h_1_0(tiny):
    train = tiny[0]
    cfg = dataclasses.replace(CONFIG, output=OutputConfig(sampled=True, hash=dataclasses.replace(
        HASH, policy="threshold", threshold=1, rebuild_every_samples=0)))
    net = network(train, cfg)
    for rows in batches(train.n_points, 3):
        net.train_batch(rows)
    rows = batches(train.n_points, 1, start=3)[0]
    w0, b0 = net.layers[0].w.copy(), net.layers[0].b.copy()  # (n_features, 128), before the step
    index = net._samplers[1].index
    net.train_batch(rows)  # selection happens before the update; no rebuild (never scheduled)
    buf = net._buffers
    checked = 0
    for i, r in enumerate(rows):
        a, c = train.x_indptr[r], train.x_indptr[r + 1]
        x = np.zeros(train.n_features)
        x[train.x_indices[a:c]] = train.x_values[a:c]
        h = np.maximum(x @ w0.astype(np.float64) + b0, 0.0)
        want, margin = numpy_buckets(index.hash_functions, np.concatenate([h, [1.0, 0.0]])[None])
        if margin.min() < 1e-5:
            continue  # a projection at zero: float32 may take the other side
        members = {int(j) for t in range(index.l) for j in index.bucket(t, int(want[t, 0]))}
        labels = set(train.y_indices[train.y_indptr[r]: train.y_indptr[r + 1]].tolist())
        got = buf.ids[1][i, : buf.cnt[1][i]]
        assert set(got.tolist()) == labels | members
        checked += 1
    assert checked >= len(rows) // 2


def test_training_with_mips_lowers_the_loss(tiny):
    train = tiny[0]
    net = network(train)
    losses = [net.train_batch(rows) for rows in batches(train.n_points, 24)]
    assert np.mean(losses[-4:]) < 0.8 * np.mean(losses[:4])


def test_resume_and_save_load_keep_m(tiny, tmp_path):
    train = tiny[0]
    net = network(train)
    for rows in batches(train.n_points, 5):
        net.train_batch(rows)
    state = {key: value.copy() for key, value in net.state_dict().items()}
    assert state["lsh1.mips_m"][0] == net._samplers[1].index.mips_m
    assert np.array_equal(state["lsh1.mips_row_m"], net._samplers[1].index.mips_row_m)
    net.save(tmp_path / "net.npz")
    loaded = SlideNetwork.load(tmp_path / "net.npz")
    assert loaded._samplers[1].index.mips_m == net._samplers[1].index.mips_m
    assert np.array_equal(loaded._samplers[1].index.tables.bucket_of,
                          net._samplers[1].index.tables.bucket_of)
    tail = batches(train.n_points, 6, start=5)  # rebuilds every batch, a redraw at batch 9
    straight = [net.train_batch(rows) for rows in tail]
    resumed = network(train)
    resumed.load_state_dict(state)
    assert resumed._samplers[1].index.mips_m == state["lsh1.mips_m"][0]
    again = [resumed.train_batch(rows) for rows in tail]
    assert straight == again
    for key, value in net.state_dict().items():
        assert np.array_equal(value, resumed.state_dict()[key]), key


@pytest.mark.parametrize("change,message", [
    (dict(family="dwta"), "output.hash.mips .*'simhash' only"),
    (dict(center_tables=2), "output.hash.mips does not combine with center_tables"),
    (dict(schedule="mongoose"), "output.hash.mips does not combine with the mongoose"),
    (dict(mips_ranges=0), "output.hash.mips_ranges must be >= 1"),
])
def test_mips_settings_that_cannot_work_are_errors(change, message):
    with pytest.raises(ValueError, match=message):
        SlideConfig(output=OutputConfig(sampled=True, hash=dataclasses.replace(HASH, **change)))


def test_mips_on_a_hidden_layer_is_an_error():
    with pytest.raises(ValueError, match=r"hidden\[0\].hash.mips: the output layer"):
        SlideConfig(hidden=[LayerConfig(units=16, sampled=True, hash=HASH)])
