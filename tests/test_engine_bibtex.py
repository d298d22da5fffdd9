"""The engine on the real Bibtex data (split 1, shuffled): LSH sampling costs little accuracy.

The default engine (sampled softmax output) and the same network with every output neuron active
are trained identically (seed, batch order, epochs, Adam lr 1e-3) and scored by P@1 on the whole
test set. Bibtex has only 159 labels, so the sampled layer is sized to genuinely sample: SimHash
K=5, L=16 and a union top-up to 40 neurons (about a quarter of the labels active per sample).
Thresholds: |P@1 sampled - P@1 all active| <= 0.02 and the 2-thread (HOGWILD) run within 0.02 of
the 1-thread run; the active fraction must stay below 0.4.
"""

from __future__ import annotations

import numpy as np
import pytest

from slide_engine.data import read_repo_zip, shuffle
from slide_engine.engine import HashConfig, OutputConfig, SlideConfig, SlideNetwork
from slide_engine.harness import epoch_order

EPOCHS = 20
BIBTEX_HASH = HashConfig(family="simhash", k=5, l=16, n_buckets=1024, min_active=40,
                         rebuild_every=20)


def train_and_score(train, test, sampled: bool, threads: int) -> dict[str, float]:
    config = SlideConfig(lr=1e-3, output=OutputConfig(sampled=sampled, hash=BIBTEX_HASH))
    net = SlideNetwork(config, seed=0, threads=threads)
    net.prepare(train)
    active = []
    for epoch in range(EPOCHS):
        order = epoch_order(train.n_points, 0, epoch)
        for start in range(0, train.n_points, 128):
            net.train_batch(order[start : start + 128])
        active.append(net.stats()["active_fraction"])
    return {"p_at_1": net.evaluate(test, ks=(1,))[1], "active_fraction": float(np.mean(active))}


@pytest.fixture(scope="module")
def bibtex_runs(bibtex_zip):
    train, test = read_repo_zip(bibtex_zip, split=1)
    train, test = shuffle(train, 0), shuffle(test, 1)
    runs = {
        "sampled": train_and_score(train, test, sampled=True, threads=1),
        "all_active": train_and_score(train, test, sampled=False, threads=1),
        "sampled_2_threads": train_and_score(train, test, sampled=True, threads=2),
    }
    print("\nBibtex P@1 / active fraction:", runs)  # reported by pytest -s
    return runs


def test_sampled_softmax_matches_all_active_accuracy(bibtex_runs):
    sampled, full = bibtex_runs["sampled"], bibtex_runs["all_active"]
    assert full["p_at_1"] > 0.5, "the all-active network must learn Bibtex"
    assert sampled["active_fraction"] < 0.4, "the sampled layer must genuinely sample"
    assert full["active_fraction"] == 1.0
    assert abs(sampled["p_at_1"] - full["p_at_1"]) <= 0.02


def test_two_threads_reach_the_same_accuracy(bibtex_runs):
    one, two = bibtex_runs["sampled"], bibtex_runs["sampled_2_threads"]
    assert abs(one["p_at_1"] - two["p_at_1"]) <= 0.02
