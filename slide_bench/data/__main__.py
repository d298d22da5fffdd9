"""Command line of the data layer: ``python -m slide_bench.data {generate,stats,prepare,compare-real}``.

Exit codes: 0 done, 2 bad input (one clear message, no traceback unless ``--debug``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from pathlib import Path

from slide_bench.atomic import atomic_target
from slide_bench.cli import split_set
from slide_bench.data.cache import load_dataset, save_npz
from slide_bench.data.prepare import prepare
from slide_bench.data.repo_zip import read_repo_zip
from slide_bench.data.stats import dataset_stats, format_stats_table
from slide_bench.data.synthetic import PRESETS, generate, resolve_spec
from slide_bench.data.xc_text import write_xc_text
from slide_bench.errors import ConfigError, SuiteError


def _key_values(pairs: list[str]) -> dict[str, str]:
    return {key: value.strip() for key, value in map(split_set, pairs)}


GENERATED = "generated.json"  # completion marker of `generate`: written last, holds spec + seed


def _cmd_generate(args: argparse.Namespace) -> None:
    spec = resolve_spec(args.preset, _key_values(args.set))
    train, test = generate(spec, args.seed)
    out = Path(args.out)
    targets = [out / f"{part}{ext}" for part in ("train", "test") for ext in (".txt", ".npz")]
    for target in targets:  # temporaries left by a killed earlier run (see atomic_target)
        for stale in out.glob(f".{target.name}.*.part*"):
            stale.unlink()
    # all four files are staged first and renamed together at the end, the marker last: a
    # failure (disk full, kill) leaves the earlier dataset and its marker as they were
    with contextlib.ExitStack() as staged:
        for target in targets:
            tmp = staged.enter_context(atomic_target(target, suffix=target.suffix))
            data = train if target.stem == "train" else test
            (write_xc_text if target.suffix == ".txt" else save_npz)(data, tmp)
        (out / GENERATED).unlink(missing_ok=True)
    with atomic_target(out / GENERATED) as tmp:
        meta = {"preset": args.preset, "seed": args.seed, "spec": dataclasses.asdict(spec)}
        tmp.write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {out}/{{train,test}}.{{txt,npz}}: {train.n_points} train, {test.n_points} test")


def _cmd_stats(args: argparse.Namespace) -> None:
    columns = {}
    for name in args.files:
        path = Path(name)
        if path.suffix == ".zip":
            train, test = read_repo_zip(path, args.split)
            columns[f"{path.stem}:train"] = dataset_stats(train)
            columns[f"{path.stem}:test"] = dataset_stats(test)
        else:
            label = f"{path.parent.name}/{path.name}" if path.parent.name else path.name
            columns[label] = dataset_stats(load_dataset(path))
    print(format_stats_table(columns))


def _cmd_prepare(args: argparse.Namespace) -> None:
    out = prepare(args.name, root=args.root, archive=args.archive, split=args.split, seed=args.seed)
    print(f"prepared {out}/train.npz and {out}/test.npz (shuffled, seed {args.seed})")


def _cmd_compare_real(args: argparse.Namespace) -> None:
    from slide_bench.realism import (
        CompareSettings,
        compare_real,
        format_comparison,
        write_rows,
    )

    settings = CompareSettings(
        epochs=args.epochs, seeds=tuple(range(args.seeds)), threads=args.threads
    )
    rows = compare_real(
        args.dataset, args.data_root, settings, split=args.split,
        preset_overrides=_key_values(args.set),
        progress=lambda msg: print(f"  training {msg}", file=sys.stderr, flush=True),
    )  # fmt: skip
    print(format_comparison(rows))
    if args.csv:
        write_rows(rows, args.csv)
        print(f"wrote {args.csv}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m slide_bench.data``."""
    parser = argparse.ArgumentParser(prog="python -m slide_bench.data", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks of input errors")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser(
        "generate",
        parents=[common],
        help="write a synthetic dataset (train/test .txt and .npz, then generated.json)",
    )
    gen.add_argument("--preset", default="tiny", help=f"one of: {', '.join(PRESETS)}")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--out", required=True, help="output folder")
    gen.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a spec field"
    )
    gen.set_defaults(func=_cmd_generate)

    st = sub.add_parser("stats", parents=[common], help="print dataset statistics side by side")
    st.add_argument("files", nargs="+", help=".txt, .npz, or a repository .zip")
    st.add_argument("--split", type=int, default=1, help="split column for .zip files")
    st.set_defaults(func=_cmd_stats)

    pr = sub.add_parser("prepare", parents=[common], help="get, verify, shuffle, cache a dataset")
    pr.add_argument("name")
    pr.add_argument("--archive", default=None, help="use this local archive")
    pr.add_argument("--root", default="data")
    pr.add_argument("--split", type=int, default=1)
    pr.add_argument("--seed", type=int, default=0)
    pr.set_defaults(func=_cmd_prepare)
    cr = sub.add_parser(
        "compare-real",
        parents=[common],
        help="train the same small experiment on a real dataset and its twin preset; print both",
    )
    cr.add_argument("--dataset", default="bibtex", help="real dataset with a twin (bibtex)")
    cr.add_argument("--data-root", default="../shared/data", help="folder of the archives")
    cr.add_argument("--split", type=int, default=1)
    cr.add_argument("--epochs", type=int, default=10)
    cr.add_argument("--seeds", type=int, default=2, help="seeds 0 .. N-1 per method")
    cr.add_argument("--threads", type=int, default=1)
    cr.add_argument("--csv", default=None, help="also write the tidy rows here")
    cr.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override a field of the twin preset (calibration)",
    )  # fmt: skip
    cr.set_defaults(func=_cmd_compare_real)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (2 on a :class:`SuiteError`)."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except SuiteError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except OSError as err:  # unwritable output folder, disk full: the user's to fix
        if args.debug:
            raise
        print(f"error: {err.strerror or err}: {err.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
