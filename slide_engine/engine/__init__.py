"""The SLIDE engine: LSH-sampled sparse training of wide softmax networks, in Numba.

API::

    net = SlideNetwork(SlideConfig(...), seed=0, threads=2)       # a harness Trainable
    net.prepare(train); net.warmup(rows); loss = net.train_batch(rows)
    net.predict_topk(data, k)        # dense forward over every label, chunked (the paper's P@k)
    net.predict_topk_lsh(data, k)    # hashing at inference (harness column p_at_1_lsh)
    net.stats()                      # active_mean, query_cos, distinct_rows, t_<phase>, ...
    net.state_dict() / net.load_state_dict(state) / net.is_finite()
    net.fit(train, test, out_csv, settings)   # slide_bench.harness.run
    net.evaluate(data, ks) / net.save(path) / SlideNetwork.load(path)

    SlideConfig(hidden=[LayerConfig(units=128, sampled=False, hash=HashConfig())],
                output=OutputConfig(sampled=True, hash=HashConfig()),
                init="normal", init_std=0.01, lr=1e-4, beta1=0.9, beta2=0.999, eps=1e-8,
                adam="lazy", accumulate="auto", eval_chunk_mb=256)
    HashConfig(family="simhash", k=9, l=50, n_buckets=2**18, bucket_capacity=128,
               replacement="fifo", insert_order="random", packing="concat", bin_size=8,
               policy="union", min_active=1000, topup="shared", center_tables=0, mips=False,
               mips_ranges=1, threshold=2,
               schedule="reference", rebuild_every_samples=6400,
               redraw_every_samples=128000, decay_first_samples=6400, decay_growth=1.5,
               mongoose=MongooseConfig())

Design decisions (see the modules for detail):

- Layout: first layer input-major ``[D, H]`` (a sparse input reads only its feature rows), other
  layers neuron-major ``[n_out, n_in]``; all state is flat float32/int64 arrays
  (:mod:`~slide_engine.engine.params`); per-batch activations are preallocated
  (:mod:`~slide_engine.engine.buffers`); kernels never allocate per sample.
- Kernels (:mod:`~slide_engine.engine.kernels`): each per-sample body is written once and
  compiled serial (one thread: bit-deterministic) and parallel (``prange``, HOGWILD: gradient rows
  are added to without locks; structures are never shared for writing). A dense layer fed by a
  dense layer, and the first layer's bias, are reduced without races instead, since every sample
  touches them. Sampled layers on a dense input (the paper's output layer) are trained
  neuron-major by default (``accumulate="auto"``, i.e. ``"rows"`` with lazy Adam;
  :mod:`~slide_engine.engine.rowwise`): the batch's (sample, neuron) pairs are grouped by neuron
  once after selection, then the forward and one fused pass (gradient, back-propagated delta and
  lazy Adam step) visit each distinct row once, with no gradient array and no race; their sums
  have the same order at any thread count (a run above one thread is still not deterministic:
  the random top-up's per-thread streams and the first layer's HOGWILD updates depend on
  scheduling). Samples share most active neurons (SimHash K=9 at
  Amazon-670K shape: 776,000 pairs, 87,000 distinct rows), so this reads each row once instead
  of ~9 times. ``accumulate="hogwild"`` keeps the paper's per-pair HOGWILD kernels; dense Adam
  (``adam="dense"``) resolves ``"auto"`` to it.
- Loss: softmax cross-entropy against ``1/|labels|`` on each label, normalised over each sample's
  active output neurons (labels always active in training). A sample without labels contributes
  no loss and no gradient; the batch loss is the mean over labelled samples.
- Adam (:mod:`~slide_engine.engine.adam`): ``lazy`` (default) updates only the rows that received
  gradient, each bias-corrected by its own step counter, so the update costs O(active rows) as the
  paper describes; ``dense`` updates every row every batch like the reference C++ (103M
  parameters per batch at Amazon-670K shape). Lazy differs from dense in two ways: the moments
  of an untouched row are neither decayed nor applied (as TensorFlow Addons' LazyAdam), and each
  row's bias correction uses that row's own update count, not the global step (LazyAdam uses
  the global step), so a row first touched late takes a fresh Adam's first, larger step.
- Hashing (:mod:`~slide_engine.engine.sampling` over :mod:`slide_engine.lsh`): the generic
  default is the paper's Delicious setting, SimHash K=9, L=50 (works on any dense input without
  tuning; 512 buckets are addressable); the Amazon setting is ``family=dwta, k=6, l=50,
  n_buckets=262144``. ``union`` tops up to ``min_active`` (1,000) random neurons, by default
  a run of one fixed permutation shared by the batch (``topup="shared"``, as the reference;
  ``"per-sample"`` draws for each sample). Tables are filled in a seeded random order
  (``insert_order``), packed codes wider than the bucket index are folded by a mixing hash, and
  the rebuild/redraw intervals count samples (the reference's 6,400 / 128,000).
- Centred queries (``center_tables``, training only, default off): ReLU activations can collapse
  onto one direction early in training, so every sample of a batch hashes to the same buckets;
  the last ``center_tables`` tables are then probed with the query minus the batch's mean query
  (``stats()``'s ``query_cos`` shows the collapse; docs/performance.md).
- Inner-product hashing (``mips``, output layer, SimHash only, default off): the tables hash
  each neuron's ``[w, b, sqrt(M^2 - |[w, b]|^2)]`` and the query ``[h, 1, 0]`` (Neyshabur &
  Srebro's simple LSH), so a query's buckets hold the neurons with the largest logit rather
  than the smallest angle; the extra coordinate is folded into the projection (no transformed
  copy of the weights). ``M`` is taken at each full rebuild (a scheduled rebuild that would
  re-hash a neuron grown past its ``M`` becomes one), per norm range with ``mips_ranges``;
  measured as a lever against the collapsed phase in docs/slow-start.md.
- Evaluation: a dense forward over every neuron of every layer, a BLAS product per chunk of
  points bounded by ``eval_chunk_mb``, then a parallel one-pass top-k (ties: lower id first).
- Threads: importing the engine sets ``OMP_WAIT_POLICY=PASSIVE`` unless already set (numba's
  OpenMP workers would otherwise spin between the ~10 parallel regions of a batch, which ruins
  a shared machine).
- Checkpoints: weights, moments, per-row step counters, hash tables (stored, because the tables
  were built from older weights), RNG streams and the schedule position; hash functions are
  redrawn from the seed and the number of redraws. A resumed run at one thread continues
  bit-identically.
"""

import os

# A batch runs about ten short parallel regions. OpenMP's default lets idle workers spin; on a
# shared or oversubscribed machine the spinning workers starve the running ones and a 10 ms batch
# takes 200 ms. Passive waiting costs a futex wake-up per region (microseconds) when the machine
# is quiet. Read by libgomp when numba first runs parallel code; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from slide_engine.engine.config import HashConfig, LayerConfig, OutputConfig, SlideConfig
from slide_engine.engine.network import SlideNetwork

__all__ = ["HashConfig", "LayerConfig", "OutputConfig", "SlideConfig", "SlideNetwork"]
