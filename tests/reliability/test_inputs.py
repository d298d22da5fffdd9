"""Fault injection: every malformed dataset and every invalid config value, at the command line.

Each case runs ``python -m slide_engine train``, ``python -m baselines train`` or
``python -m slide_bench.data`` exactly as a user would, and must end with exit status 2 and one
``error: ...`` line naming the problem (file and line for data, the key for config values), with no
traceback (``--debug`` brings the traceback back). Log lines (``HH:MM:SS LEVEL ...``) may precede
the error; nothing else may. The cases run through ``fixtures/reliability/cli_driver.py``, which
imports a CLI's dependencies once and forks one child per case (TensorFlow's import alone takes
seconds); a few cases also run as plain subprocesses to show the driver changes nothing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from baselines.config import BaselineConfig
from slide_bench.cli import from_dict, load_config
from slide_bench.data import generate, save_npz
from slide_bench.data.synthetic import resolve_spec
from slide_bench.harness import RunSettings
from slide_engine.engine import SlideConfig

REPO = Path(__file__).resolve().parents[2]
MALFORMED = REPO / "tests" / "fixtures" / "malformed"
DRIVER = REPO / "tests" / "fixtures" / "reliability" / "cli_driver.py"
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING) \S+: ")


@pytest.fixture(scope="module")
def files(tmp_path_factory, bibtex_zip) -> dict[str, Path]:
    """Valid tiny data and one broken file per kind of damage."""
    d = tmp_path_factory.mktemp("inputs")
    train, test = generate("tiny", 0)
    save_npz(train, d / "train.npz")
    save_npz(test, d / "test.npz")
    _, other = generate(resolve_spec("tiny", {"n_features": "1000"}), 0)
    save_npz(other, d / "other_test.npz")
    raw = (d / "train.npz").read_bytes()
    (d / "truncated.npz").write_bytes(raw[: len(raw) // 2])
    # an npz holding a pickled object array under the cache's own key names
    with np.load(d / "train.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["x_values"] = np.array([{"payload": 1}], dtype=object)
    np.savez(d / "pickled.npz", **arrays)
    (d / "empty_train.txt").write_text("0 2000 500\n")
    (d / "empty_test.txt").write_text("0 2000 500\n")
    (d / "points.csv").write_text("1,2\n")
    (d / "bad.yaml").write_text("lr: [1, 2\n")
    (d / "list.yaml").write_text("- 1\n- 2\n")
    (d / "a_file").write_text("not a folder")
    zraw = bibtex_zip.read_bytes()
    (d / "Bibtex-truncated.zip").write_bytes(zraw[: len(zraw) // 2])
    flipped = bytearray(zraw)
    flipped[600_000] ^= 0xFF
    (d / "Bibtex-flipped.zip").write_bytes(bytes(flipped))
    (d / "Bibtex.zip").write_bytes(zraw)
    with zipfile.ZipFile(d / "Bibtex-evil.zip", "w") as zf, zipfile.ZipFile(bibtex_zip) as src:
        for info in src.infolist():
            zf.writestr(info, src.read(info))
        zf.writestr("../evil.txt", "escaped")
    return {p.name: p for p in d.iterdir()} | {"dir": d}


def run_driver(module: str, cases: dict[str, list[str]], tmp_path: Path) -> dict[str, dict]:
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    proc = subprocess.run(
        [sys.executable, str(DRIVER), module, str(tmp_path / "cases.json"),
         str(tmp_path / "results.json")],
        cwd=REPO, capture_output=True, text=True, timeout=900,
        # GNU OpenMP is not fork-safe; the driver forks after warming up the parallel reader
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "NUMBA_THREADING_LAYER": "workqueue"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp_path / "results.json").read_text())


def check_one_clear_error(name: str, result: dict, code: int, pattern: str) -> None:
    """Exit ``code``; no traceback; one 'error:' line, the last, matching ``pattern``."""
    out = result["output"]
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert result["code"] == code, f"{name}: exit {result['code']}, expected {code}\n{out[-2000:]}"
    assert "Traceback" not in out, f"{name}: traceback\n{out[-3000:]}"
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1, f"{name}: expected one error line\n{out[-2000:]}"
    assert lines[-1] == errors[0], f"{name}: the error is not the last line\n{out[-2000:]}"
    others = [ln for ln in lines[:-1] if not LOG_LINE.match(ln)]
    assert not others, f"{name}: stray output {others}"
    assert re.search(pattern, errors[0]), f"{name}: {errors[0]!r} does not match {pattern!r}"


def malformed_cases(make_argv) -> dict[str, tuple[list[str], str]]:
    """Every file of the malformed corpus as the training set: message names file and line."""
    return {
        f"malformed-{path.stem}": (
            make_argv(path),
            rf"^error: {re.escape(path.name)}, line \d+(, field '.*')?: \S.*",
        )
        for path in sorted(MALFORMED.glob("*.txt"))
    }


def training_cases(f: dict[str, Path], out: Path) -> dict[str, tuple[list[str], str]]:
    """(argv after 'train', pattern) shared by both training CLIs."""

    def argv(train=None, test=None, *extra, name="x"):
        return ["--train", str(train or f["train.npz"]), "--test", str(test or f["test.npz"]),
                "--out", str(out / name / "curve.csv"), "--epochs", "1", *extra]

    def sets(*items):
        return argv(None, None, *[a for item in items for a in ("--set", item)])

    cases = malformed_cases(lambda path: argv(path, name=path.stem))
    cases.update({
        "truncated-npz": (argv(f["truncated.npz"]), r"truncated.npz: corrupt or unreadable"),
        "pickled-npz": (argv(f["pickled.npz"]), r"pickled.npz: .*(pickle|object|corrupt)"),
        "missing-file": (argv(f["dir"] / "nope.npz"), r"nope.npz: No such file: check the path"),
        "missing-txt": (argv(f["dir"] / "nope.txt"), r"nope.txt: .*No such file"),
        "folder-as-data": (argv(f["dir"]), r"unknown dataset suffix"),
        "csv-suffix": (argv(f["points.csv"]), r"points.csv: unknown dataset suffix"),
        "empty-train": (argv(f["empty_train.txt"], name="e1"), r"training set has no points"),
        "empty-test": (argv(None, f["empty_test.txt"], name="e2"), r"test set has no points"),
        "train-test-mismatch": (argv(None, f["other_test.npz"], name="mm"),
                                r"train has 2000 features / 500 labels but test has 1000 / 500"),
        "lr-negative": (sets("lr=-1"), r"lr, init_std and eps must be positive"),
        "lr-not-a-number": (sets("lr=fast"), r"config.lr: expected a number, got 'fast'"),
        "lr-nan": (sets("lr=.nan"), r"lr, init_std and eps must be positive"),
        "lr-inf": (sets("lr=.inf"), r"lr, init_std and eps must be positive"),
        "beta1-one": (sets("beta1=1"), r"beta1 and beta2 must be in \[0, 1\)"),
        "unknown-key": (sets("nosuch=1"), r"unknown key 'nosuch'; known keys: "),
        "unknown-run-key": (sets("run.nosuch=1"), r"run: unknown key 'nosuch'"),
        "value-is-a-section": (sets("lr.x=1"), r"config.lr: expected a number, got \{'x': 1\}"),
        "batch-size-0": (sets("run.batch_size=0"), r"run.batch_size must be >= 1, got 0"),
        "seed-float": (sets("run.seed=1.5"), r"run.seed: expected an integer, got 1.5"),
        "epochs-negative": (argv(None, None, "--epochs", "-1"), r"run.epochs must be >= 1"),
        "threads-0": (argv(None, None, "--threads", "0"), r"run.threads must be >= 1, got 0"),
        "eval-every-0": (argv(None, None, "--eval-every", "0"), r"run.eval_every must be >= 1"),
        "time-budget-negative": (argv(None, None, "--time-budget", "-5"),
                                 r"run.time_budget_s must be > 0 seconds, got -5"),
        "time-budget-nan": (sets("run.time_budget_s=.nan"), r"run.time_budget_s must be > 0"),
        "max-iterations-0": (sets("run.max_iterations=0"), r"run.max_iterations must be >= 1"),
        "checkpoint-every-negative": (sets("run.checkpoint_every_s=-1"),
                                      r"run.checkpoint_every_s must be >= 0"),
        "set-without-value": (sets("novalue"), r"--set expects KEY=VALUE, got 'novalue'"),
        "config-missing": (argv(None, None, "--config", str(f["dir"] / "nope.yaml")),
                           r"cannot read config file .*nope.yaml: No such file"),
        "config-bad-yaml": (argv(None, None, "--config", str(f["bad.yaml"])),
                            r"bad.yaml is not valid YAML \(line \d+, column \d+\)"),
        "config-not-a-mapping": (argv(None, None, "--config", str(f["list.yaml"])),
                                 r"list.yaml must hold a mapping, not list"),
    })
    # the output folder would sit under a regular file
    under_file = argv()
    under_file[under_file.index("--out") + 1] = str(f["a_file"] / "sub" / "curve.csv")
    cases["output-under-a-file"] = (under_file, r"cannot write to output folder .*a_file")
    return cases


ENGINE_ONLY = {
    "family-unknown": (["output.hash.family=md5"],
                       r"config.output.hash.family: 'md5' is not one of \['simhash'"),
    "hash-k-0": (["output.hash.k=0"], r"hash settings: .*must be positive"),
    "buckets-0": (["output.hash.n_buckets=0"], r"hash settings: .*must be positive"),
    "bucket-capacity-0": (["output.hash.bucket_capacity=0"], r"hash settings: .*must be positive"),
    "hidden-not-a-list": (["hidden=3"], r"config.hidden: expected a list, got 3"),
    "hidden-units-0": (["hidden=[{units: 0}]"], r"hidden\[0\].units must be >= 1"),
    "eval-chunk-0": (["eval_chunk_mb=0"], r"eval_chunk_mb must be >= 1"),
    "threads-too-many": (["run.threads=999"], r"threads must be in \[1, \d+\] on this machine"),
}
BASELINE_ONLY = {
    "sample-fraction-2": (["sample_fraction=2"], r"sample_fraction=2.0 must be in \(0, 1\]"),
    "num-sampled-negative": (["num_sampled=-1"], r"num_sampled=-1 must be >= 0"),
    "dense-feed-with-sampled": (["model=sampled", "label_feeding=dense-float64"],
                                r"label_feeding=dense-float64 .* use it with model=full"),
    "sampler-unknown": (["sampler=zipf"], r"config.sampler: 'zipf' is not one of"),
    "hidden-0": (["hidden=0"], r"hidden and eval_chunk(_mb)? must be >= 1"),
    "engine-key": (["output.hash.k=6"], r"unknown key 'output'"),
    "threads-too-many": (["run.threads=999"], r"--threads 999: this process may run on \d+ core"),
}


def _with_sets(cases, extra, f, out):
    for name, (items, pattern) in extra.items():
        argv = ["--train", str(f["train.npz"]), "--test", str(f["test.npz"]),
                "--out", str(out / name / "curve.csv")]
        for item in items:
            argv += ["--set", item]
        cases[name] = (argv, pattern)
    return cases


@pytest.mark.slow
def test_engine_cli_rejects_every_bad_input_with_one_clear_line(files, tmp_path):
    cases = _with_sets(training_cases(files, tmp_path / "out"), ENGINE_ONLY, files,
                       tmp_path / "out")
    results = run_driver("slide_engine", {k: ["train", *v[0]] for k, v in cases.items()},
                         tmp_path)
    for name, (_, pattern) in cases.items():
        check_one_clear_error(name, results[name], 2, pattern)
    assert not list((tmp_path / "out").rglob("*.csv")), "a rejected run wrote a curve"


@pytest.mark.slow
def test_baselines_cli_rejects_every_bad_input_with_one_clear_line(files, tmp_path):
    cases = _with_sets(training_cases(files, tmp_path / "out"), BASELINE_ONLY, files,
                       tmp_path / "out")
    results = run_driver(
        "baselines", {k: ["train", "--device", "cpu", *v[0]] for k, v in cases.items()}, tmp_path
    )
    for name, (_, pattern) in cases.items():
        check_one_clear_error(name, results[name], 2, pattern)
    assert not list((tmp_path / "out").rglob("*.csv")), "a rejected run wrote a curve"


@pytest.mark.slow
def test_data_cli_rejects_every_bad_input_with_one_clear_line(files, tmp_path):
    f, root = files, str(tmp_path / "root")
    cases = {
        name: (["stats", *argv[1:2]], pattern)
        for name, (argv, pattern) in malformed_cases(lambda p: ["--train", str(p)]).items()
    }
    cases.update({
        "preset-unknown": (["generate", "--preset", "nosuch", "--out", root],
                           r"unknown synthetic preset 'nosuch'; choose one of tiny"),
        "spec-negative": (["generate", "--set", "n_train=-5", "--out", root],
                          r"n_train, n_test, n_features and n_labels must be >= 1"),
        "spec-not-a-number": (["generate", "--set", "n_train=abc", "--out", root],
                              r"n_train='abc': expected a"),
        "spec-unknown": (["generate", "--set", "nosuch=1", "--out", root],
                         r"unknown synthetic spec field 'nosuch'"),
        "generate-under-a-file": (["generate", "--out", str(f["a_file"] / "sub")],
                                  r"Not a directory: .*a_file"),
        "stats-missing": (["stats", str(f["dir"] / "nope.txt")], r"nope.txt: .*No such file"),
        "stats-split-0": (["stats", "--split", "0", str(f["Bibtex.zip"])],
                          r"split must be in 1..10 .*got 0"),
        "prepare-unknown": (["prepare", "nosuch", "--root", root],
                            r"unknown dataset 'nosuch'; known: bibtex"),
        "prepare-truncated": (["prepare", "bibtex", "--root", root, "--archive",
                               str(f["Bibtex-truncated.zip"])],
                              r"574,565 bytes, expected 1,149,131 .* was not used"),
        "prepare-corrupt": (["prepare", "bibtex", "--root", root, "--archive",
                             str(f["Bibtex-flipped.zip"])],
                            r"md5 [0-9a-f]+, expected md5 78db23bd.* was not used"),
        "prepare-missing-archive": (["prepare", "bibtex", "--root", root, "--archive",
                                     str(f["dir"] / "nope.zip")], r"nope.zip does not exist"),
        "prepare-split-99": (["prepare", "bibtex", "--root", root, "--split", "99",
                              "--archive", str(f["Bibtex.zip"])], r"split must be in 1..10"),
        "prepare-root-is-a-file": (["prepare", "bibtex", "--root", str(f["a_file"]),
                                    "--archive", str(f["Bibtex.zip"])],
                                   r"Not a directory: .*a_file"),
        "prepare-no-link": (["prepare", "delicious", "--root", root],
                            r"no download link for Delicious .* place Delicious.zip at"),
    })
    results = run_driver("slide_bench.data", {k: v[0] for k, v in cases.items()}, tmp_path)
    for name, (_, pattern) in cases.items():
        check_one_clear_error(name, results[name], 2, pattern)
    assert not (tmp_path / "root" / "prepared" / "bibtex" / "train.npz").exists()


@pytest.mark.slow
def test_plain_subprocess_agrees_with_the_driver_and_debug_shows_the_traceback(files, tmp_path):
    argv = [sys.executable, "-m", "slide_engine", "train", "--train",
            str(MALFORMED / "nan_value.txt"), "--test", str(files["test.npz"]),
            "--out", str(tmp_path / "c.csv")]
    plain = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    check_one_clear_error("plain", {"code": plain.returncode, "output": plain.stderr}, 2,
                          r"^error: nan_value.txt, line 3, field '4:nan': non-finite")
    debug = subprocess.run([*argv, "--debug"], cwd=REPO, capture_output=True, text=True,
                           timeout=300)
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr and "DataFormatError" in debug.stderr


@pytest.mark.parametrize("value", ["1e-3", "1.0e-3", "1E-3", "0.001", ".1e-2"])
def test_exponent_floats_are_numbers_in_config_values(value, tmp_path):
    """PyYAML reads '1e-3' as a string; the pipeline writes small values that way (str(1e-05))."""
    for cls in (SlideConfig, BaselineConfig):
        assert from_dict(cls, load_config(None, [f"lr={value}"])).lr == pytest.approx(1e-3)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"run": {"time_budget_s": 1e-05}}).replace("1.0e-05", "1e-5"))
    tree = load_config(str(cfg), [])
    assert from_dict(RunSettings, tree["run"], "run").time_budget_s == pytest.approx(1e-5)


@pytest.mark.parametrize(
    ("config_text", "pattern"),
    [
        ("datasets:\n  tiny: [1, 2\n", r"Config file is not valid JSON or YAML"),
        (None, r"ValidationError: 0 is less than the minimum of 1"),
    ],
)
@pytest.mark.slow
def test_pipeline_bad_config_is_one_clear_error_without_traceback(config_text, pattern, tmp_path):
    """(Message wording per config key: tests/pipeline/test_config.py; here: no traceback.)"""
    if config_text is None:
        config = yaml.safe_load((REPO / "config" / "ci" / "config.yaml").read_text())
        config["grid"]["threads"] = [0]
        config_text = yaml.safe_dump(config)
    configfile = tmp_path / "config.yaml"
    configfile.write_text(config_text)
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "-n",
         "--configfile", str(configfile)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Traceback (most recent call last)" not in out, out[-3000:]
    assert re.search(pattern, out), out[-3000:]
    assert not (tmp_path / "results").exists()
