"""The install paths: one TensorFlow distribution for CPU and GPU, and the GPU extra resolves.

The CPU install (``pip install -e .``) and the GPU install (``pip install -e '.[gpu]'``) must
name the same distribution (``tensorflow``): ``tensorflow-cpu`` writes the same package folder,
so a second name would let a reinstall replace a working CUDA build with a CPU one. The conda
files and the pipeline's environments follow pyproject.toml.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[2]
TF_NAMES = {"tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel"}


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _tf_requirements(lines: list[str]) -> list[Requirement]:
    reqs = [Requirement(line) for line in lines]
    return [r for r in reqs if r.name.lower() in TF_NAMES]


def test_cpu_and_gpu_paths_name_one_distribution_in_one_range():
    project = _project()
    base = _tf_requirements(project["dependencies"])
    gpu = _tf_requirements(project["optional-dependencies"]["gpu"])
    assert [r.name for r in base] == ["tensorflow"]
    assert base[0].marker is None  # every platform: tensorflow-cpu does not exist on aarch64
    assert [r.name for r in gpu] == ["tensorflow"]
    assert gpu[0].extras == {"and-cuda"}
    assert gpu[0].specifier == base[0].specifier
    assert gpu[0].marker is not None and gpu[0].marker.evaluate({"sys_platform": "linux"})
    for extra, lines in project["optional-dependencies"].items():
        if extra != "gpu":
            assert not _tf_requirements(lines), f"extra {extra!r} names TensorFlow"


def _env_pip_lines(path: Path) -> list[str]:
    deps = yaml.safe_load(path.read_text())["dependencies"]
    return next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)


def _pinned(lines: list[str]) -> Requirement:
    reqs = _tf_requirements([line for line in lines if not line.startswith("-")])
    assert len(reqs) == 1, lines
    return reqs[0]


def test_conda_files_and_pipeline_envs_use_the_pyproject_distribution_and_range():
    base = _tf_requirements(_project()["dependencies"])[0]
    conda = _pinned(_env_pip_lines(REPO / "environment.yml"))
    assert conda.name == "tensorflow" and conda.specifier == base.specifier
    cpu = _pinned(_env_pip_lines(REPO / "workflow/envs/train.yaml"))
    gpu = _pinned(_env_pip_lines(REPO / "workflow/envs/train-gpu.yaml"))
    assert cpu.name == gpu.name == "tensorflow"
    assert not cpu.extras and gpu.extras == {"and-cuda"}
    assert cpu.specifier == gpu.specifier  # CPU and GPU runs: the same TensorFlow build
    (pin,) = list(cpu.specifier)
    assert pin.operator == "==" and base.specifier.contains(pin.version)
    # the GPU rule runs in the GPU environment
    rules = (REPO / "workflow/rules/train.smk").read_text()
    block = rules[rules.index("use rule train_cpu as train_gpu") :]
    assert re.search(r'conda:\s*\n\s*"\.\./envs/train-gpu\.yaml"', block)


def _index_url() -> str:
    return os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple/").rstrip("/") + "/"


def _registry_unreachable() -> str | None:
    url = _index_url() + "tensorflow/"
    try:
        with urllib.request.urlopen(url, timeout=15) as response:
            response.read(1)
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        return f"package index {url} unreachable ({err})"
    return None


@pytest.mark.slow
def test_gpu_extra_resolves_to_tensorflow_with_its_cuda_libraries(tmp_path):
    reason = _registry_unreachable()
    if reason:
        pytest.skip(reason)
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
         "--no-warn-conflicts", "--report", str(report), "-e", ".[gpu]"],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    # a resolution failure is a failure, never a skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    install = json.loads(report.read_text())["install"]
    versions = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in install}
    base = _tf_requirements(_project()["dependencies"])[0]
    assert "tensorflow-cpu" not in versions
    assert SpecifierSet(str(base.specifier)).contains(versions["tensorflow"])
    if sys.platform == "linux":
        for lib in ("nvidia-cudnn-cu12", "nvidia-cublas-cu12", "nvidia-cuda-runtime-cu12"):
            assert lib in versions, sorted(versions)
