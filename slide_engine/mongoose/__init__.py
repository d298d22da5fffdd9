"""MONGOOSE (Chen et al., ICLR 2021) for the SLIDE engine: drift-triggered table maintenance
and learnable SimHash functions.

API::

    MongooseConfig(sketch_bits=16, threshold=0.3, check_every=50, mode="rebuild"|"reinsert",
                   learn=False, query_buffer=256, pos_frac=0.001, pos_min_k=5, fit_steps=10,
                   fit_batch=512, fit_lr=0.01, binarize=False)
    mongoose_overrides("slide-mongoose-scheduler" | "slide-mongoose", layer="output")
        -> {"output.hash.schedule": "mongoose", "output.hash.mongoose.learn": ...}

    policy = MongoosePolicy(config, W (n, d) f32, b (n,) f32, index: LSHIndex, seed)
    policy.observe(layer_inputs (B, d) f32)              # learn only: recent queries
    policy.after_batch(iteration, W, b, touched, index, counts=None)
        -> "rebuild" | "reinsert" | None      # touched: row ids, or (B, cap) active ids + counts
    policy.stats() -> {checks, rebuilds, reinserts, t_sched, fits, t_fit}  (since last call)
    policy.totals() -> the same, cumulative
    policy.state_dict(prefix) / load_state_dict(state, prefix) / install(index)
    policy.scheduler.events                             # one dict per check (the log)

    DriftScheduler(W, b, n_bits, threshold, check_every, mode, seed)  # the scheduler alone
    mine_pairs, fit_projection, hashing_projection     # the learnable hash, step by step
    retrieve_from_tables, retrieve_by_codes, topk_recall  # retrieval and recall oracles
"""

from slide_engine.mongoose.config import VARIANTS, MongooseConfig, mongoose_overrides
from slide_engine.mongoose.learned import (
    FitSettings,
    Pairs,
    fit_projection,
    hashing_projection,
    mine_pairs,
)
from slide_engine.mongoose.policy import MongoosePolicy
from slide_engine.mongoose.retrieval import (
    retrieve_by_codes,
    retrieve_from_tables,
    simhash_codes,
    topk_recall,
)
from slide_engine.mongoose.scheduler import Decision, DriftScheduler

__all__ = [
    "VARIANTS",
    "Decision",
    "DriftScheduler",
    "FitSettings",
    "MongooseConfig",
    "MongoosePolicy",
    "Pairs",
    "fit_projection",
    "hashing_projection",
    "mine_pairs",
    "mongoose_overrides",
    "retrieve_by_codes",
    "retrieve_from_tables",
    "simhash_codes",
    "topk_recall",
]
