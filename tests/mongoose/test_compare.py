"""Fixed-schedule SLIDE vs MONGOOSE: maintenance counts against the schedules' arithmetic."""

from __future__ import annotations

import json

import pytest

from slide_bench.data import generate
from slide_bench.errors import ConfigError
from slide_bench.harness import RunSettings
from slide_engine.compare import METHODS, compare
from slide_engine.engine import SlideConfig
from slide_engine.engine.config import HashConfig, OutputConfig
from slide_engine.mongoose import MongooseConfig
from slide_engine.mongoose.__main__ import main


@pytest.mark.slow
def test_compare_counts_maintenance(tmp_path):
    train, test = generate("tiny", 0)
    hashing = HashConfig(
        family="simhash", k=4, l=6, min_active=32, rebuild_every_samples=1280,
        redraw_every_samples=0,
    )
    config = SlideConfig(lr=1e-3, output=OutputConfig(hash=hashing))
    settings = RunSettings(
        epochs=3,
        max_iterations=40,
        eval_every=20,
        eval_points=200,
        final_eval_points=200,
        dataset="tiny",
    )
    mongoose = MongooseConfig(check_every=5, threshold=1e-6)  # every check fires
    rows = compare(train, test, list(METHODS), config, mongoose, settings, tmp_path)
    by_method = {row["method"]: row for row in rows}
    assert set(by_method) == set(METHODS)
    # the fixed schedule counts samples: 40 batches of 2,000 training points at 128 (epochs of
    # 15 x 128 + 80) are 2 * 2,000 + 8 * 128 = 5,024 samples, three multiples of 1,280
    assert by_method["slide"]["rebuilds"] == 5024 // 1280
    assert by_method["slide"]["checks"] == 0
    for method in ("slide-mongoose-scheduler", "slide-mongoose"):
        assert by_method[method]["checks"] == 40 // 5
        assert by_method[method]["rebuilds"] == 40 // 5
    assert by_method["slide-mongoose"]["fits"] == 40 // 5
    assert by_method["slide-mongoose-scheduler"]["fits"] == 0
    assert all(0.0 <= row["p_at_1"] <= 1.0 and row["iterations"] == 40 for row in rows)
    assert json.loads((tmp_path / "summary.json").read_text()) == rows
    assert (tmp_path / "slide-mongoose.csv").is_file()


def test_cli_rejects_unknown_method(tmp_path):
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        main(
            [
                "compare",
                "--synthetic",
                "tiny",
                "--methods",
                "slide,nope",
                "--out-dir",
                str(tmp_path),
            ]
        )
