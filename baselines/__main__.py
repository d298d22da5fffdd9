"""``python -m baselines train|bench|doctor``: train a TensorFlow baseline in the suite's harness,
time the phases of its training step (``bench`` prints one JSON line, see ``baselines.profile``),
or check that this machine runs the baselines on its GPU (``doctor``, see ``baselines.doctor``).

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
import json
import os
from collections.abc import Sequence

from baselines.config import BaselineConfig
from slide_bench.cli import (
    add_run_arguments,
    add_set_argument,
    from_dict,
    load_config,
    main_guard,
    run_settings,
    to_dict,
)
from slide_bench.data import load_dataset
from slide_bench.errors import ConfigError
from slide_bench.harness import epoch_order, run

__all__ = ["main"]


def _add_method_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        choices=("full", "sampled"),
        help="full softmax or sampled softmax (default: config, else full)",
    )
    parser.add_argument(
        "--device", choices=("cpu", "gpu"), help="device to train on (default: config, else cpu)"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m baselines``."""
    parser = argparse.ArgumentParser(
        prog="python -m baselines",
        description="TensorFlow full- and sampled-softmax baselines of the SLIDE paper.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train one baseline and write its curve")
    _add_method_arguments(train)
    add_run_arguments(train)
    bench = commands.add_parser(
        "bench", help="time the phases of training batches (host, forward, backward, Adam)"
    )
    _add_method_arguments(bench)
    bench.add_argument("--train", required=True, help="training set: XC text or .npz cache")
    bench.add_argument("--threads", type=int, default=1, help="TF intra- and inter-op threads")
    bench.add_argument("--seed", type=int, default=0, help="seed of the model and batch order")
    bench.add_argument("--batches", type=int, default=6, help="batches to time (+1 warm-up)")
    bench.add_argument("--batch-size", type=int, default=128, help="points per batch")
    bench.add_argument("--config", help="YAML config file (method settings)")
    add_set_argument(bench, "override one method setting (e.g. adam=lazy); repeatable")
    bench.add_argument("--debug", action="store_true", help="show tracebacks")
    doctor = commands.add_parser(
        "doctor",
        help="TensorFlow build, CUDA libraries, driver and devices; train a few steps on the GPU "
        "with their placement and losses checked",
    )
    doctor.add_argument(
        "--device",
        choices=("auto", "cpu", "gpu"),
        default="auto",
        help="auto: check the GPU if one is visible; gpu: a GPU must be visible (else exit 3); "
        "cpu: run the same checks on the CPU device",
    )
    doctor.add_argument("--steps", type=int, default=5, help="training steps per model")
    doctor.add_argument("--seed", type=int, default=0, help="seed of data, weights and sampler")
    doctor.add_argument(
        "--log-placement", action="store_true", help="print every executed op and its device"
    )
    doctor.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def _method_config(args: argparse.Namespace, tree: dict) -> BaselineConfig:
    method_keys = {key: value for key, value in tree.items() if key != "run"}
    for key in ("model", "device"):
        if getattr(args, key) is not None:
            method_keys[key] = getattr(args, key)
    return from_dict(BaselineConfig, method_keys)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (errors are raised as SuiteError)."""
    args = build_parser().parse_args(argv)
    if args.command == "doctor":
        if args.steps < 1:
            raise ConfigError("--steps must be >= 1")
        # TensorFlow's start-up chatter (printed before its log level applies) would bury the
        # report and the one-line answer to --device gpu: it is kept aside, shown with --debug
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from baselines.stderr import held_stderr

        with held_stderr(show=args.debug):
            from baselines.doctor import run as doctor

        return doctor(args.device, args.steps, args.seed, args.log_placement, debug=args.debug)
    tree = load_config(args.config, args.sets)
    settings = run_settings(args, tree) if args.command == "train" else None
    config = _method_config(args, tree)
    threads = settings.threads if settings else args.threads
    seed = settings.seed if settings else args.seed

    # Imported here so that --help and config errors answer without loading TensorFlow. A CUDA
    # build on a machine without a GPU complains from C++ when it first probes for devices
    # (cuInit), before its log level applies: the probe runs here with that chatter held back
    # (shown with --debug), so that an error stays the one line the user reads.
    from baselines.stderr import held_stderr

    with held_stderr(show=args.debug):
        from baselines.device import configure_threads, probe_devices
        from baselines.trainable import TFSoftmaxTrainable

        # TensorFlow fixes its thread pools when it runs its first op: set them first.
        configure_threads(threads)
        probe_devices()
    model = TFSoftmaxTrainable(config, seed)
    train = load_dataset(args.train)
    if settings is None:
        return _bench(model, train, args)
    test = load_dataset(args.test)
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


def _bench(model, train, args: argparse.Namespace) -> int:
    from baselines.profile import profile_batches

    if args.batches < 1 or args.batch_size < 1:
        raise ConfigError("--batches and --batch-size must be >= 1")
    model.prepare(train)
    order = epoch_order(train.n_points, args.seed, 0)
    size = args.batch_size
    batches = [order[i * size : (i + 1) * size] for i in range(args.batches + 1)]
    result = {
        "method": model.method,
        "threads": args.threads,
        "batch_size": size,
        **to_dict(model.config),
        **profile_batches(model, batches),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    main_guard(main)()
