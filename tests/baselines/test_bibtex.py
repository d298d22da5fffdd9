"""The full-softmax baseline learns the real Bibtex data (split 1, shuffled) to published levels.

Published XC methods reach P@1 ~0.63-0.65 on Bibtex. The paper's lr 1e-4 is too slow for 15
epochs of 39 batches here (P@1 0.37 after 15 epochs), so this uses lr 1e-3, inside the paper's
tuning range 1e-5..1e-3 (P@1 0.60). About 20 s on 2 idle cores.
"""

from __future__ import annotations

import numpy as np
import pytest

from baselines.config import BaselineConfig
from baselines.trainable import TFSoftmaxTrainable
from slide_bench.data import shuffle
from slide_bench.data.repo_zip import read_repo_zip
from slide_bench.harness import RunSettings, run


@pytest.mark.slow
def test_full_softmax_reaches_p_at_1_058_on_bibtex_within_15_epochs(bibtex_zip, tmp_path):
    train, test = read_repo_zip(bibtex_zip, 1)
    train, test = shuffle(train, 0), shuffle(test, 0)
    model = TFSoftmaxTrainable(BaselineConfig(model="full", lr=1e-3), seed=0)
    settings = RunSettings(epochs=15, eval_every=10**6, eval_points=0, dataset="bibtex")
    result = run(model, train, test, settings, tmp_path / "curve.csv", {"lr": 1e-3})
    assert result.status == "done"
    final = result.curve[-1]
    assert final["eval_set"] == "full" and final["eval_points"] == test.n_points == 2515
    assert final["p_at_1"] >= 0.58
    by_epoch = [row["p_at_1"] for row in result.curve[1:-1]]
    assert len(by_epoch) == 15 and np.all(np.diff(by_epoch[:5]) > 0)  # learning, not luck
