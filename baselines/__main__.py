"""``python -m baselines train``: train a TensorFlow baseline in the suite's harness.

Example::

    python -m baselines train --model full --device cpu --threads 2 \
        --train data/prepared/bibtex/train.npz --test data/prepared/bibtex/test.npz \
        --out results/bibtex-tf-full.csv --set lr=1e-3

Same run flags, config layout (``run:`` section + method keys of
:class:`~baselines.config.BaselineConfig`), curve schema and exit codes as ``python -m
slide_engine train``: 2 for bad input or config, 3 when ``--device gpu`` finds no GPU. The data
are used as given (the pipeline's prepared files are already shuffled).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from baselines.config import BaselineConfig
from slide_engine.cli import (
    add_run_arguments,
    from_dict,
    load_config,
    main_guard,
    run_settings,
    to_dict,
)
from slide_engine.data import load_dataset
from slide_engine.harness import run

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m baselines``."""
    parser = argparse.ArgumentParser(
        prog="python -m baselines",
        description="TensorFlow full- and sampled-softmax baselines of the SLIDE paper.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train one baseline and write its curve")
    train.add_argument(
        "--model",
        choices=("full", "sampled"),
        help="full softmax or sampled softmax (default: config, else full)",
    )
    train.add_argument(
        "--device", choices=("cpu", "gpu"), help="device to train on (default: config, else cpu)"
    )
    add_run_arguments(train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (errors are raised as SuiteError)."""
    args = build_parser().parse_args(argv)
    tree = load_config(args.config, args.sets)
    settings = run_settings(args, tree)
    method_keys = {key: value for key, value in tree.items() if key != "run"}
    for key in ("model", "device"):
        if getattr(args, key) is not None:
            method_keys[key] = getattr(args, key)
    config = from_dict(BaselineConfig, method_keys)

    # Imported here so that --help and config errors answer without loading TensorFlow.
    from baselines.device import configure_threads
    from baselines.trainable import TFSoftmaxTrainable

    # TensorFlow fixes its thread pools when it runs its first op: set them before anything else.
    configure_threads(settings.threads)
    model = TFSoftmaxTrainable(config, settings.seed)
    train, test = load_dataset(args.train), load_dataset(args.test)
    run(
        model,
        train,
        test,
        settings,
        args.out,
        to_dict(config),
        checkpoint_path=args.checkpoint,
        extra_provenance=model.provenance(),
    )
    return 0


if __name__ == "__main__":
    main_guard(main)()
