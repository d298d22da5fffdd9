"""Synthetic generator (determinism, shape, learnability), npz cache, shuffle, stats and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numba
import numpy as np
import pytest

from slide_bench.data import (
    PRESETS,
    SynthSpec,
    XCData,
    dataset_stats,
    generate,
    load_dataset,
    load_npz,
    read_xc_text,
    save_npz,
    shuffle,
)
from slide_bench.data.__main__ import main
from slide_bench.errors import ConfigError

ARRAYS = ("x_indptr", "x_indices", "x_values", "y_indptr", "y_indices")


def assert_same(a: XCData, b: XCData) -> None:
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        assert getattr(a, name).dtype == getattr(b, name).dtype
    assert (a.n_features, a.n_labels) == (b.n_features, b.n_labels)


@pytest.fixture(scope="module")
def tiny() -> tuple[XCData, XCData]:
    return generate("tiny", seed=0)


def dense(data: XCData) -> tuple[np.ndarray, np.ndarray]:
    rows = np.repeat(np.arange(data.n_points), np.diff(data.x_indptr))
    x = np.zeros((data.n_points, data.n_features), dtype=np.float32)
    x[rows, data.x_indices] = data.x_values
    rows = np.repeat(np.arange(data.n_points), np.diff(data.y_indptr))
    y = np.zeros((data.n_points, data.n_labels), dtype=np.float32)
    y[rows, data.y_indices] = 1.0
    return x, y


def test_generator_is_deterministic_and_thread_independent(tiny: tuple[XCData, XCData]) -> None:
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        again = generate("tiny", seed=0)
    finally:
        numba.set_num_threads(threads)
    for a, b in zip(tiny, again, strict=True):
        assert_same(a, b)
    other, _ = generate("tiny", seed=1)
    assert not np.array_equal(other.y_indices[:100], tiny[0].y_indices[:100])


def test_generated_data_is_valid_and_matches_preset(tiny: tuple[XCData, XCData]) -> None:
    spec = PRESETS["tiny"]
    train, test = tiny
    assert (train.n_points, test.n_points) == (spec.n_train, spec.n_test)
    for data in tiny:
        data.validate()
        stats = dataset_stats(data)
        assert stats["labels_per_point"] == pytest.approx(spec.labels_per_point, rel=0.1)
        assert stats["features_per_point"] == pytest.approx(spec.features_per_point, rel=0.1)
        assert stats["points_without_labels"] == 0
        norms = np.sqrt(np.add.reduceat(data.x_values.astype(np.float64) ** 2, data.x_indptr[:-1]))
        np.testing.assert_allclose(norms, 1.0, atol=1e-4)  # tf-idf rows are L2-normalised


def test_label_frequencies_follow_a_power_law(tiny: tuple[XCData, XCData]) -> None:
    counts = np.sort(np.bincount(tiny[0].y_indices, minlength=tiny[0].n_labels))[::-1]
    median = np.median(counts)
    assert counts[0] >= 20 * median  # a head far above the typical label
    assert np.mean(counts <= 5) >= 0.25  # and a long tail of rare labels
    # log-count falls roughly linearly in log-rank over the body of the distribution
    ranks = np.arange(1, counts.size + 1)
    body = slice(5, counts.size // 2)
    slope = np.polyfit(np.log(ranks[body]), np.log(counts[body]), 1)[0]
    assert -1.2 < slope < -0.4


def test_feature_frequencies_are_heavy_tailed(tiny: tuple[XCData, XCData]) -> None:
    df = np.sort(np.bincount(tiny[0].x_indices, minlength=tiny[0].n_features))[::-1]
    assert df[0] >= 20 * np.median(df)


def test_learnable_but_not_trivial(tiny: tuple[XCData, XCData]) -> None:
    """Nearest-centroid P@1 is far above the most-frequent-label baseline and well below 1."""
    train, test = tiny
    x_train, y_train = dense(train)
    x_test, y_test = dense(test)
    centroids = y_train.T @ x_train
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True) + 1e-12
    top1 = np.argmax(x_test @ centroids.T, axis=1)
    p_at_1 = y_test[np.arange(test.n_points), top1].mean()
    baseline = y_test[:, np.argmax(y_train.sum(axis=0))].mean()
    assert p_at_1 > 3 * baseline
    assert 0.3 < p_at_1 < 0.9


def test_spec_overrides_and_errors() -> None:
    from slide_bench.data.synthetic import resolve_spec

    spec = resolve_spec("tiny", {"n_train": "300", "signal": "0.5"})
    assert (spec.n_train, spec.signal) == (300, 0.5)
    with pytest.raises(ConfigError, match="unknown synthetic preset"):
        resolve_spec("huge")
    with pytest.raises(ConfigError, match="unknown synthetic spec field 'nope'"):
        resolve_spec("tiny", {"nope": "1"})
    with pytest.raises(ConfigError, match="labels_per_point"):
        generate(SynthSpec(10, 10, 100, 4, labels_per_point=3.0, features_per_point=5.0), 0)


def test_text_and_npz_hold_the_same_data(tmp_path: Path, tiny: tuple[XCData, XCData]) -> None:
    code = main(["generate", "--preset", "tiny", "--seed", "0", "--out", str(tmp_path)])
    assert code == 0
    for part, data in zip(("train", "test"), tiny, strict=True):
        assert_same(read_xc_text(tmp_path / f"{part}.txt"), data)  # values print exactly
        assert_same(load_dataset(tmp_path / f"{part}.npz"), data)


def test_npz_round_trip_is_atomic(tmp_path: Path, tiny: tuple[XCData, XCData]) -> None:
    path = tmp_path / "c" / "train.npz"
    save_npz(tiny[1], path)
    assert_same(load_npz(path), tiny[1])
    assert sorted(p.name for p in path.parent.iterdir()) == ["train.npz"]


def test_shuffle_is_the_pinned_permutation(tiny: tuple[XCData, XCData]) -> None:
    # default_rng(0).permutation(10) on every platform (NumPy's PCG64 stream)
    np.testing.assert_array_equal(
        np.random.default_rng(0).permutation(10), [4, 6, 2, 7, 3, 5, 9, 0, 8, 1]
    )
    data = tiny[1].take(np.arange(10))
    shuffled = shuffle(data, 0)
    assert_same(shuffled, data.take(np.array([4, 6, 2, 7, 3, 5, 9, 0, 8, 1])))
    assert_same(shuffle(data, 0), shuffled)
    prefix = np.array([1631, 285, 1268, 747, 390, 166, 656, 260])  # default_rng(42), n=2000
    assert_same(shuffle(tiny[0], 42).take(np.arange(8)), tiny[0].take(prefix))


def test_stats_cli_side_by_side(
    bibtex_zip: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    tiny: tuple[XCData, XCData],
) -> None:
    save_npz(tiny[0], tmp_path / "tiny.npz")
    assert main(["stats", str(bibtex_zip), str(tmp_path / "tiny.npz"), "--split", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["Bibtex:train", "Bibtex:test", f"{tmp_path.name}/tiny.npz"]
    rows = {line.split()[0]: line.split()[1:] for line in out[1:]}
    assert rows["points"] == ["4,880", "2,515", "2,000"]
    assert rows["labels"] == ["159", "159", "500"]
    assert rows["features"] == ["1,836", "1,836", "2,000"]


def test_generate_cli_marks_completion_and_keeps_the_old_set_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import slide_bench.data.__main__ as cli

    assert main(["generate", "--preset", "tiny", "--seed", "0", "--out", str(tmp_path)]) == 0
    meta = json.loads((tmp_path / cli.GENERATED).read_text())
    assert meta["preset"] == "tiny" and meta["seed"] == 0
    assert meta["spec"]["n_train"] == load_dataset(tmp_path / "train.npz").n_points
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(before) == ["generated.json", "test.npz", "test.txt", "train.npz", "train.txt"]

    # a temporary left by a killed run is cleaned up by the next one
    (tmp_path / ".train.txt.abc123.part").write_text("half")

    def fail_on_test(data: XCData, path: Path) -> None:
        if ".test." in path.name:
            raise OSError(28, "No space left on device")
        save_npz(data, path)

    monkeypatch.setattr(cli, "save_npz", fail_on_test)
    with pytest.raises(OSError, match="No space"):
        cli._cmd_generate(cli.build_parser().parse_args(
            ["generate", "--preset", "tiny", "--seed", "1", "--out", str(tmp_path)]))
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before  # every file of seed 0 intact, no temporaries, marker kept
