"""``python -m slide_engine train``: train the SLIDE engine in the suite's harness.

Example::

    python -m slide_engine train --threads 2 \
        --train data/prepared/bibtex/train.npz --test data/prepared/bibtex/test.npz \
        --out results/bibtex-slide.csv --set lr=1e-3 --set output.hash.k=6

Method keys are the fields of :class:`~slide_engine.engine.SlideConfig` (``hidden``,
``output.hash.*``, ``lr``, ``adam``, ...); the ``run:`` section and the run flags are shared with
``python -m baselines``. Progress is logged at every evaluation; the curve CSV and its ``.json``
sidecar are written by the harness. Exit status: 0 done/diverged/timeout (see the sidecar),
2 bad input or config, 1 bug. The data are used as given (prepared files are already shuffled).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from slide_bench.cli import (
    add_run_arguments,
    from_dict,
    load_config,
    main_guard,
    run_settings,
    to_dict,
)
from slide_bench.data import load_dataset
from slide_bench.harness import run
from slide_engine.engine import SlideConfig, SlideNetwork

__all__ = ["main"]

log = logging.getLogger("slide_engine")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m slide_engine``."""
    parser = argparse.ArgumentParser(
        prog="python -m slide_engine",
        description="SLIDE: LSH-sampled training of extreme classification networks (Numba).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train the SLIDE engine and write its curve")
    add_run_arguments(train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (errors are raised as SuiteError)."""
    args = build_parser().parse_args(argv)
    tree = load_config(args.config, args.sets)
    settings = run_settings(args, tree)
    config = from_dict(SlideConfig, {key: value for key, value in tree.items() if key != "run"})
    model = SlideNetwork(config, seed=settings.seed, threads=settings.threads)
    train, test = load_dataset(args.train), load_dataset(args.test)
    result = run(
        model, train, test, settings, args.out, to_dict(config), checkpoint_path=args.checkpoint
    )
    log.info(
        "%s: %s after %d iterations, %.1f training seconds -> %s",
        result.status,
        result.stop_reason,
        result.iterations,
        result.train_seconds,
        args.out,
    )
    return 0


if __name__ == "__main__":
    main_guard(main)()
