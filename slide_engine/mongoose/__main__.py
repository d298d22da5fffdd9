"""``python -m slide_engine.mongoose compare``: fixed-schedule SLIDE vs MONGOOSE on one dataset.

Examples (the runs of the MONGOOSE comparison; ``OPENBLAS_NUM_THREADS=1`` on a shared 2-core box)::

    # Bibtex (split 1 of the repository zip), 200 epochs = 7,800 iterations
    python -m slide_engine.mongoose compare --bibtex ../shared/data/bibtex/Bibtex.zip \
        --out-dir results/mongoose/bibtex-s0 --set run.seed=0 --set lr=0.001 \
        --set run.epochs=200 --set run.eval_every=1000 --set output.hash.k=4 \
        --set output.hash.l=10 --set output.hash.min_active=16 --set mongoose.threshold=0.05
    # the same fixed schedule without hash redraws: --methods slide
    #     --set output.hash.redraw_every_samples=0

    # a 30,000-point training subset of the amazon670k-like synthetic preset (all 670,091 labels)
    python -m slide_engine.mongoose compare --synthetic amazon670k-like \
        --synth-set n_train=30000 --synth-set n_test=3000 \
        --methods slide,slide-mongoose-scheduler --out-dir results/mongoose/amazon-30k \
        --set lr=0.001 --set output.hash.family=dwta --set output.hash.k=6 \
        --set output.hash.l=50 --set output.hash.n_buckets=262144 \
        --set output.hash.min_active=300 --set run.epochs=4 --set run.eval_every=235 \
        --set run.eval_points=500 --set mongoose.threshold=0.05

Keys of ``--set``: the engine's :class:`~slide_engine.engine.SlideConfig` fields, ``run.*``
(:class:`~slide_bench.harness.RunSettings`) and ``mongoose.*``
(:class:`~slide_engine.mongoose.MongooseConfig`). Prints one summary line per method and writes
``<out-dir>/summary.json`` beside the curves.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from slide_bench.cli import add_set_argument, from_dict, load_config, main_guard, split_set
from slide_bench.data import generate, load_dataset, shuffle
from slide_bench.data.repo_zip import read_repo_zip
from slide_bench.data.synthetic import resolve_spec
from slide_bench.errors import ConfigError
from slide_bench.harness import RunSettings
from slide_engine.compare import METHODS, compare
from slide_engine.engine import SlideConfig
from slide_engine.mongoose.config import MongooseConfig

log = logging.getLogger("slide_engine")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m slide_engine.mongoose``."""
    parser = argparse.ArgumentParser(prog="python -m slide_engine.mongoose")
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser("compare", help="fixed-schedule SLIDE vs MONGOOSE on one dataset")
    data = cmd.add_mutually_exclusive_group(required=True)
    data.add_argument("--train", help="training set (.txt or .npz); needs --test")
    data.add_argument("--bibtex", help="the repository's Bibtex.zip (uses --split)")
    data.add_argument("--synthetic", help="synthetic preset name (uses --synth-set)")
    cmd.add_argument("--test", help="test set (.txt or .npz) with --train")
    cmd.add_argument("--split", type=int, default=1, help="split column of a repository zip")
    add_set_argument(cmd, "override a synthetic spec field, e.g. n_train=50000; repeatable",
                     flag="--synth-set", dest="synth_set")
    cmd.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods")
    cmd.add_argument("--out-dir", required=True, help="directory for curves and summary.json")
    add_set_argument(cmd, "engine, run.* or mongoose.* value; repeatable")
    cmd.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (errors are raised as SuiteError)."""
    args = build_parser().parse_args(argv)
    tree = load_config(None, args.sets)
    settings = from_dict(RunSettings, tree.pop("run", None) or {}, "run")
    mongoose = from_dict(MongooseConfig, tree.pop("mongoose", None) or {}, "mongoose")
    config = from_dict(SlideConfig, tree)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ConfigError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    if args.train:
        if not args.test:
            raise ConfigError("--train needs --test")
        train, test = load_dataset(args.train), load_dataset(args.test)
    elif args.bibtex:
        train, test = read_repo_zip(args.bibtex, args.split)
        train, test = shuffle(train, settings.seed), shuffle(test, settings.seed)
    else:
        overrides = dict(map(split_set, args.synth_set))
        train, test = generate(resolve_spec(args.synthetic, overrides), settings.seed)
    rows = compare(train, test, methods, config, mongoose, settings, Path(args.out_dir))
    for row in rows:
        print(
            f"{row['method']:26s} it {row['iterations']:6d}  train {row['train_seconds']:8.1f}s  "
            f"rebuilds {row['rebuilds']:5.0f}  reinserts {row['reinserts']:4.0f}  "
            f"checks {row['checks']:4.0f}  fits {row['fits']:3.0f}  "
            f"t_tables {row['t_tables']:6.2f}s  P@1 {row['p_at_1']:.4f}"
        )
    return 0


if __name__ == "__main__":
    main_guard(main)()
