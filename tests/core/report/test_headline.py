"""Time to accuracy levels and the headline (slide_bench.report.headline) against hand-computed
values: levels from the grid's best P@1, per-seed ratios, inf/0 when one side never got there,
the verdict's clauses."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from slide_bench.report.headline import (
    HEADLINE_COLUMNS,
    LEVEL_COLUMNS,
    RATIO_COLUMNS,
    headline_tables,
    level_targets,
)

SETTINGS = {"method": "slide", "peers": None, "levels": [0.5, 0.9], "headline": 0.9}


def run_rows(method, seed, points, iterations, final, threads=2, reason="time budget of 10 s"):
    """Curve rows (subset evaluations at (seconds, P@1) points, then the full-test row) and the
    matching summary row."""
    curve = [dict(dataset="d", method=method, device="cpu", threads=threads, seed=seed,
                  eval_set="subset", train_seconds=t, p_at_1=p) for t, p in points]
    curve.append(dict(curve[-1], eval_set="full", p_at_1=final))
    summary = dict(dataset="d", method=method, device="cpu", threads=threads, seed=seed,
                   status="timeout", reason=reason, adam="lazy", iterations=iterations,
                   train_seconds=points[-1][0], best_p_at_1=max(p for _, p in points),
                   final_p_at_1=final, active_mean=math.nan)
    return curve, summary


def tables(*runs):
    curves = pd.DataFrame([row for c, _ in runs for row in c])
    summary = pd.DataFrame([s for _, s in runs])
    return headline_tables(curves, summary, SETTINGS)


def test_levels_are_fractions_of_the_best_any_run_reached():
    assert level_targets([0.2, math.nan, 0.5], [0.5, 0.9]) == pytest.approx({0.5: 0.25, 0.9: 0.45})
    assert all(math.isnan(v) for v in level_targets([math.nan], [0.5]).values())


def test_ratios_are_per_seed_then_median_min_max_and_the_verdict_says_who_was_first():
    # best P@1 of the grid: 0.5 (slide) -> levels 0.25 and 0.45
    head, ratios, levels = tables(
        run_rows("slide", 0, [(0, 0.0), (2, 0.3), (4, 0.5)], 100, 0.48),
        run_rows("slide", 1, [(0, 0.0), (2, 0.2), (5, 0.46)], 100, 0.44),
        # the peer: 3x dearer steps, 0.45 first at 12 s and 10 s
        run_rows("tf-full", 0, [(0, 0.0), (6, 0.3), (12, 0.45)], 40, 0.44),
        run_rows("tf-full", 1, [(0, 0.0), (6, 0.3), (10, 0.46)], 40, 0.40),
    )
    assert tuple(head.columns) == HEADLINE_COLUMNS
    assert tuple(ratios.columns) == RATIO_COLUMNS and tuple(levels.columns) == LEVEL_COLUMNS
    row = head.iloc[0]
    assert row["peer"] == "tf-full"
    # per step: peer 12/40 = 0.3 s and 10/40 = 0.25 s; slide 4/100 and 5/100 -> 7.5 and 5
    assert row["step_time_ratio"] == pytest.approx(6.25)
    # time to 0.45: seed 0 12/4 = 3, seed 1 10/5 = 2
    assert (row["tta_ratio_median"], row["tta_ratio_min"], row["tta_ratio_max"]) == \
        pytest.approx((2.5, 2.0, 3.0))
    assert row["best_p1_diff"] == pytest.approx(0.025)  # (0.5-0.45 + 0.46-0.46) / 2
    assert row["final_p1_diff"] == pytest.approx(0.04)  # (0.04 + 0.04) / 2
    assert row["verdict"].startswith("slide reached P@1 0.45 (90% of the grid's best) 2.5x "
                                     "sooner than tf-full")
    # at the 50% level: slide 2 s (seed 0) and 5 s (seed 1); the peer 6 s in both
    low = ratios[ratios["level"] == 0.5].iloc[0]
    assert (low["tta_ratio_min"], low["tta_ratio_max"]) == pytest.approx((1.2, 3.0))
    slide_levels = levels[levels["method"] == "slide"].set_index("level")
    assert slide_levels.loc[0.9, "time_median_s"] == pytest.approx(4.5)
    assert slide_levels.loc[0.9, "n_reached"] == 2


def test_never_reached_gives_inf_or_zero_and_an_honest_verdict():
    head, _, _ = tables(
        run_rows("slide", 0, [(0, 0.0), (10, 0.3), (20, 0.5)], 100, 0.5),
        # fast to the low level, then stalls below the headline level
        run_rows("tf-sampled-1pct", 0, [(0, 0.0), (1, 0.3), (20, 0.35)], 400, 0.33),
        # reaches the headline level, slide never reaches... (slide did, so: a peer that wins)
        run_rows("tf-full", 0, [(0, 0.0), (5, 0.46), (20, 0.5)], 50, 0.5),
    )
    by_peer = head.set_index("peer")
    sampled = by_peer.loc["tf-sampled-1pct"]
    assert sampled["tta_ratio_median"] == math.inf
    verdict = sampled["verdict"]
    assert "tf-sampled-1pct never did in 20 training seconds" in verdict
    # the order is reversed at the 50% level (0.25): the peer got there at 1 s, slide at 10 s
    assert "but tf-sampled-1pct reached P@1 0.25 (50% of the grid's best) 10x sooner" in verdict
    full = by_peer.loc["tf-full"]
    assert full["tta_ratio_median"] == pytest.approx(0.25)  # 5 s against slide's 20 s
    assert full["verdict"].startswith("tf-full reached P@1 0.45 (90% of the grid's best) 4x "
                                      "sooner than slide")


def test_a_tie_is_called_a_tie_not_one_times_sooner():
    # both reach the grid's best 0.5 (levels 0.25, 0.45) first at the same evaluation, 8 s
    head, _, _ = tables(
        run_rows("slide", 0, [(0, 0.0), (4, 0.2), (8, 0.5)], 100, 0.5),
        run_rows("tf-full", 0, [(0, 0.0), (4, 0.2), (8, 0.5)], 40, 0.5),
    )
    row = head.iloc[0]
    assert row["tta_ratio_median"] == pytest.approx(1.0)
    assert row["verdict"].startswith("slide and tf-full reached P@1 0.45 (90% of the grid's "
                                     "best) at the same time (8 s; 1 seed)")
    assert "sooner" not in row["verdict"]


def test_a_run_stopped_by_the_epoch_cap_is_flagged():
    head, _, _ = tables(
        run_rows("slide", 0, [(0, 0.0), (3, 0.5)], 100, 0.5, reason="completed 3 epochs"),
        run_rows("tf-full", 0, [(0, 0.0), (10, 0.5)], 50, 0.5),
    )
    assert "WARNING: a run stopped at the epoch cap (completed 3 epochs)" in head.iloc[0]["verdict"]


def test_slide_without_a_successful_run_gives_no_headline():
    _, tf = run_rows("tf-full", 0, [(0, 0.0), (10, 0.5)], 50, 0.5)
    failed = dict(tf, method="slide", status="failed")
    curves = pd.DataFrame(run_rows("tf-full", 0, [(0, 0.0), (10, 0.5)], 50, 0.5)[0])
    head, ratios, levels = headline_tables(curves, pd.DataFrame([tf, failed]), SETTINGS)
    assert head.empty and ratios.empty
    assert set(levels["method"]) == {"tf-full"}


def test_seeds_that_disagree_are_counted_and_the_median_ratio_decides():
    head, _, _ = tables(
        run_rows("slide", 0, [(0, 0.0), (10, 0.5)], 100, 0.5),
        run_rows("slide", 1, [(0, 0.0), (20, 0.4)], 100, 0.4),
        run_rows("tf-full", 0, [(0, 0.0), (5, 0.5)], 50, 0.5),
        run_rows("tf-full", 1, [(0, 0.0), (6, 0.46)], 50, 0.46),
    )
    row = head.iloc[0]
    # seed 0: 5/10 = 0.5; seed 1: only tf-full reached 0.45 -> 0
    assert (row["tta_ratio_median"], row["tta_ratio_min"], row["tta_ratio_max"]) == \
        pytest.approx((0.25, 0.0, 0.5))
    assert row["verdict"].startswith(
        "P@1 0.45 (90% of the grid's best) was reached in 1 of 2 seeds by slide and 2 by "
        "tf-full; tf-full sooner (peer/slide time median 0.25x, 0x-0.5x over seeds)")
