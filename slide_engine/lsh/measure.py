"""Cost of the LSH layer at a given shape: table build, table memory, hashing + selection.

``python -m slide_engine.lsh.measure`` measures the Amazon-670K output layer (670,091 neurons x
128, random weights) for DWTA K=6 and SimHash K=9 (L=50, 2**18 buckets, capacity 128) with 1 and 2
numba threads, and prints one JSON line per measurement. Compilation is excluded (every kernel
runs once on a small input first); wall and CPU (process) time are both given because a shared
machine makes wall time noisy.
"""

import argparse
import json
import os
import time

import numba
import numpy as np
from numba import njit, prange

from .index import LSHIndex, numba_threads
from .selection import SelectPolicy, SelectScratch, make_policy, out_capacity, query_dense
from .tables import TableArrays


@njit(cache=True, parallel=True)
def _select_batch(hf, tables: TableArrays, policy: SelectPolicy, x, labels, weights,
                  scr: SelectScratch, ids, cnt):
    # What the engine does per batch: one sample per prange iteration, scratch row per thread.
    for i in prange(x.shape[0]):
        tid = numba.get_thread_id()
        cnt[i] = query_dense(hf, tables, policy, x[i], labels[i], weights, scr, tid, ids[i])


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> dict[str, float]:
    # The 1-minute load average flags runs that shared the CPUs with other work.
    wall, cpu = _clock()
    return {"wall_s": round(wall - start[0], 4), "cpu_s": round(cpu - start[1], 4),
            "loadavg_1m": round(os.getloadavg()[0], 2)}


def measure(n: int, d: int, family: str, k: int, l: int, n_buckets: int,  # noqa: E741
            capacity: int, threads: list[int], batch: int, n_batches: int,
            seed: int) -> list[dict]:
    """Build and query one index; return one record per measurement.

    Parameters
    ----------
    n, d : int
        Neurons and input dimension (weights are N(0, 0.01**2), float32 (n, d)).
    family, k, l, n_buckets, capacity
        The index (see :class:`~slide_engine.lsh.LSHIndex`).
    threads : list of int
        Numba thread counts to time the build and the batched selection with.
    batch, n_batches : int
        Samples per batch (ReLU of N(0, 1) inputs, 5 labels each) and batches timed.
    seed : int

    Returns
    -------
    list of dict
    """
    rng = np.random.default_rng(seed)
    weights = (0.01 * rng.standard_normal((n, d))).astype(np.float32)
    x = np.maximum(rng.standard_normal((batch, d)), 0).astype(np.float32)
    labels = rng.integers(0, n, (batch, 5)).astype(np.int32)
    base = {"family": family, "n": n, "d": d, "k": k, "l": l, "n_buckets": n_buckets,
            "capacity": capacity}
    small = LSHIndex(256, d, family, k, l, 64, capacity, seed=seed)
    small.build(weights[:256])
    records = []
    index = LSHIndex(n, d, family, k, l, n_buckets, capacity, seed=seed)
    policy = make_policy("union", min_active=1000)
    for t in threads:
        index.n_threads = t
        start = _clock()
        index.build(weights)
        records.append({**base, "what": "build_all_tables", "threads": t, **_since(start)})
        scr = index.make_scratch(numba.config.NUMBA_NUM_THREADS)
        cap = out_capacity(policy, index.tables, labels.shape[1])
        ids = np.empty((batch, cap), dtype=np.int32)
        cnt = np.empty(batch, dtype=np.int32)
        hf, tb = index.hash_functions, index.tables
        with numba_threads(t):
            _select_batch(hf, tb, policy, x, labels, weights, scr, ids, cnt)
            start = _clock()
            for _ in range(n_batches):
                _select_batch(hf, tb, policy, x, labels, weights, scr, ids, cnt)
            timing = _since(start)
        records.append({**base, "what": "hash_and_union_per_batch", "threads": t,
                        "batch": batch, "wall_ms": round(1e3 * timing["wall_s"] / n_batches, 3),
                        "cpu_us_per_sample": round(1e6 * timing["cpu_s"] / n_batches / batch, 2),
                        "active_mean": float(cnt.mean()), "loadavg_1m": timing["loadavg_1m"]})
    records.append({**base, "what": "table_memory", "bytes": index.nbytes,
                    "reference_bytes": l * n_buckets * capacity * 4})
    return records


def main(argv: list[str] | None = None) -> None:
    """Command line entry: print the measurements as JSON lines."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=670_091)
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for family, k in (("dwta", 6), ("simhash", 9)):
        for record in measure(args.n, args.d, family, k, 50, 2**18, 128, args.threads,
                              args.batch, args.batches, args.seed):
            print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
