"""Retrieval quality per family against exact top-k: recall@10 and similarity of what LSH returns.

Each family is queried with the union policy (no random top-up) and compared with the exact top-10
of its similarity. A random set of the same size has expected recall equal to its fraction of the
neurons and a mean similarity equal to the average: LSH must beat both by a clear margin. The
measured numbers are printed (``pytest -s``).
"""

import numpy as np
import pytest

from slide_engine.lsh import LSHIndex, make_policy

N_NEURONS = 5000
N_QUERIES = 50


@pytest.fixture(scope="module")
def dense_problem():
    # Gaussian neurons, ReLU queries (hidden activations); similarity = inner product.
    rng = np.random.default_rng(0)
    w = rng.standard_normal((N_NEURONS, 64)).astype(np.float32)
    q = np.maximum(rng.standard_normal((N_QUERIES, 64)), 0).astype(np.float32)
    return w, q, q.astype(np.float64) @ w.T.astype(np.float64)


@pytest.fixture(scope="module")
def binary_problem():
    # Sparse binary neurons in 250 clusters (noisy copies of a 30-element prototype over 2,000
    # features), queries drawn the same way; similarity = Jaccard (MinHash's own similarity).
    rng = np.random.default_rng(1)
    d, size, n_clusters = 2000, 30, 250
    protos = np.array([rng.choice(d, size, replace=False) for _ in range(n_clusters)])

    def noisy(p):
        keep = rng.random(size) < 0.7
        return np.unique(np.concatenate([p[keep], rng.choice(d, size - keep.sum(), False)]))

    w = np.zeros((N_NEURONS, d), dtype=np.float32)
    for i in range(N_NEURONS):
        w[i, noisy(protos[i % n_clusters])] = 1.0
    q = np.zeros((N_QUERIES, d), dtype=np.float32)
    for r in range(N_QUERIES):
        q[r, noisy(protos[rng.integers(n_clusters)])] = 1.0
    inter = q.astype(np.float64) @ w.T
    return w, q, inter / (q.sum(1)[:, None] + w.sum(1)[None, :] - inter)


# (family, data, options): DWTA also runs on the sparse binary data, where most bins are empty
# and densification does the work.
CASES = {
    "simhash": ("simhash", "dense", dict(k=8, l=16)),
    "wta": ("wta", "dense", dict(k=3, l=16)),
    "dwta": ("dwta", "dense", dict(k=3, l=16)),
    "dwta-sparse": ("dwta", "binary", dict(k=4, l=20)),
    "minhash": ("minhash", "binary", dict(k=2, l=20, code_bits=8, minhash_topk=0)),
}


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c == "dwta-sparse"
                                  else c for c in CASES])  # densifying sparse data: seconds
def test_lsh_retrieves_high_similarity_neurons(case, dense_problem, binary_problem):
    family, data, options = CASES[case]
    w, q, sim = binary_problem if data == "binary" else dense_problem
    index = LSHIndex(N_NEURONS, w.shape[1], family=family, n_buckets=2**16,
                     capacity=N_NEURONS, seed=7, **options)
    index.build(w)
    policy = make_policy("union", min_active=0)
    scratch = index.make_scratch(1)
    top10 = np.argsort(-sim, axis=1, kind="stable")[:, :10]
    recall, fraction, z = [], [], []
    for r in range(N_QUERIES):
        if data == "binary":  # the KDD-2017 setting: hash the sparse input as is
            nz = np.flatnonzero(q[r]).astype(np.int32)
            active = index.query((nz, q[r, nz]), policy=policy, scratch=scratch)
        else:
            active = index.query(q[r], policy=policy, scratch=scratch)
        assert active.size > 0
        recall.append(np.isin(top10[r], active).mean())
        fraction.append(active.size / N_NEURONS)
        z.append((sim[r, active].mean() - sim[r].mean()) / sim[r].std())
    recall_, fraction_, z_ = np.mean(recall), np.mean(fraction), np.mean(z)
    print(f"\n{case}: recall@10 {recall_:.3f}, active fraction {fraction_:.4f} "
          f"(= recall of a random set), mean similarity {z_:.2f} sd above average")
    assert recall_ > 3.0 * fraction_
    assert recall_ > 0.2
    assert z_ > 0.5
