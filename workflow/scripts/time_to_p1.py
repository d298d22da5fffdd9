"""Time to absolute P@1 levels, and best / final P@1, per method over seeds, from curve CSVs.

The pipeline's headline measures time to fractions of the best P@1 of a grid; this table answers
"when does each method reach P@1 0.04 (0.05)" across seeds, as docs/slow-start.md reports:

    python workflow/scripts/time_to_p1.py results/curves/amazon670k-like/*.csv --levels 0.04 0.05 \
        --figure p1-time.png

A run reaches a level at the training seconds (and iteration) of its first subset evaluation at
or above it; the median is over the seeds that reached it ("k/n" says how many), the range over
those seeds. Best P@1 is over the subset evaluations; final P@1 is the run's full-test row.
The method is taken from the pipeline's file name ``<method>-<device>-t<threads>-s<seed>.csv``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

_NAME = re.compile(r"^(?P<method>.+)-(?:cpu|gpu)-t\d+-s(?P<seed>\d+)$")


def run_rows(path: Path, levels: list[float]) -> dict[str, object]:
    """One run's first times at ``levels``, best subset P@1 and final P@1.

    Parameters
    ----------
    path : Path
        A curve CSV written by the harness (columns ``eval_set``, ``train_seconds``,
        ``iteration``, ``p_at_1``).
    levels : list of float
        Absolute P@1 levels.

    Returns
    -------
    dict
        ``method``, ``seed``, ``best``, ``final``, ``steps`` and per level ``t@<level>`` /
        ``it@<level>`` (NaN when not reached).
    """
    match = _NAME.match(path.stem)
    if match is None:
        raise ValueError(f"{path}: not a pipeline curve name <method>-<device>-t<n>-s<seed>.csv")
    curve = pd.read_csv(path)
    sub = curve[curve["eval_set"] == "subset"].sort_values("train_seconds")
    full = curve[curve["eval_set"] == "full"]
    row: dict[str, object] = {
        "method": match["method"],
        "seed": int(match["seed"]),
        "best": float(sub["p_at_1"].max()),
        "final": float(full["p_at_1"].iloc[-1]) if len(full) else float("nan"),
        "steps": int(curve["iteration"].max()),
    }
    for level in levels:
        hit = sub[sub["p_at_1"] >= level]
        row[f"t@{level:g}"] = float(hit["train_seconds"].iloc[0]) if len(hit) else float("nan")
        row[f"it@{level:g}"] = float(hit["iteration"].iloc[0]) if len(hit) else float("nan")
    return row


def _median_range(values: pd.Series, digits: int) -> str:
    got = values.dropna()
    if got.empty:
        return f"never (0/{len(values)})"
    med = f"{np.median(got):.{digits}f}"
    text = med if len(got) == 1 else f"{med} [{got.min():.{digits}f}, {got.max():.{digits}f}]"
    return text if len(got) == len(values) else f"{text} ({len(got)}/{len(values)})"


def table(paths: list[Path], levels: list[float]) -> pd.DataFrame:
    """Per method: time (s) and iteration to each level, best and final P@1, median [range]."""
    runs = pd.DataFrame([run_rows(p, levels) for p in paths])
    out = []
    for method, group in runs.groupby("method", sort=False):
        row = {"method": method, "seeds": ",".join(map(str, sorted(group["seed"])))}
        for level in levels:
            row[f"s to {level:g}"] = _median_range(group[f"t@{level:g}"], 1)
            row[f"it to {level:g}"] = _median_range(group[f"it@{level:g}"], 0)
        row["best P@1"] = _median_range(group["best"], 4)
        row["final P@1"] = _median_range(group["final"], 4)
        row["steps"] = _median_range(group["steps"].astype(float), 0)
        out.append(row)
    return pd.DataFrame(out)


def figure(paths: list[Path], levels: list[float], out: Path) -> None:
    """P@1 on the test subset against training seconds, one line per run (seed 0 solid, other
    seeds dashed), the levels as dotted lines; written to ``out`` (PNG or SVG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors: dict[str, str] = {}
    for path in sorted(paths):
        match = _NAME.match(path.stem)
        if match is None:
            raise ValueError(f"{path}: not a pipeline curve name")
        curve = pd.read_csv(path)
        sub = curve[curve["eval_set"] == "subset"].sort_values("train_seconds")
        color = colors.setdefault(match["method"], f"C{len(colors)}")
        ax.plot(sub["train_seconds"], sub["p_at_1"], color=color, marker="o", ms=2.5, lw=1.2,
                ls="-" if match["seed"] == "0" else "--",
                label=f"{match['method']} (seed {match['seed']})")
    for level in levels:
        ax.axhline(level, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("training seconds")
    ax.set_ylabel("P@1 (test subset)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Print the table as Markdown (and draw the figure with ``--figure``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("curves", nargs="+", type=Path, help="pipeline curve CSVs")
    parser.add_argument("--levels", nargs="+", type=float, default=[0.04, 0.05])
    parser.add_argument("--figure", type=Path, help="also draw P@1 against training seconds")
    args = parser.parse_args(argv)
    try:
        result = table(args.curves, args.levels)
        if args.figure is not None:
            figure(args.curves, args.levels, args.figure)
    except (OSError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(result.to_markdown(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
