"""No pickle anywhere on data from outside: a static check of the code and a booby-trapped file.

Static: every ``np.load`` in the package and the pipeline passes ``allow_pickle=False``
explicitly; nothing imports ``pickle``/``joblib``/``dill``/``cloudpickle``/``shelve``/``marshal``,
nor calls ``torch.load``, ``pd.read_pickle`` or an unsafe YAML loader. Dynamic: ``.npz`` files
(dataset caches, checkpoints) whose arrays unpickle into a call that creates a marker file are
refused with a clear error by every loader, and the marker never appears.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

from slide_bench.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from slide_bench.data import generate, load_dataset, load_npz, save_npz
from slide_bench.errors import DataFormatError

REPO = Path(__file__).resolve().parents[2]
PYTHON_ROOTS = [REPO / "slide_bench", REPO / "slide_engine", REPO / "baselines", REPO / "workflow"]
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "joblib", "dill", "cloudpickle", "shelve",
                  "marshal"}
FORBIDDEN_CALLS = {
    "torch.load": "torch.load unpickles",
    "pd.read_pickle": "read_pickle unpickles",
    "pandas.read_pickle": "read_pickle unpickles",
    "yaml.load": "yaml.load with a full loader builds arbitrary objects: use yaml.safe_load",
    "yaml.unsafe_load": "unsafe YAML loader",
    "yaml.full_load": "full YAML loader",
    "np.fromstring": "deprecated; use np.frombuffer",
}


def python_files() -> list[Path]:
    files = [p for root in PYTHON_ROOTS for p in root.rglob("*.py")]
    files += [REPO / "Snakefile", *(REPO / "workflow").rglob("*.smk")]
    assert len(files) > 20
    return sorted(files)


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return ""


def calls(path: Path):
    """(dotted name, call node) of every call in a Python file (Snakemake files: regex only)."""
    text = path.read_text()
    if path.suffix == ".py":
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, ast.Call):
                yield dotted(node.func), node
    else:  # Snakemake syntax is not Python: fall back to the call names
        for match in re.finditer(r"([A-Za-z_][\w.]*)\s*\(", text):
            yield match[1], None


def numpy_aliases(path: Path) -> set[str]:
    aliases = {"np", "numpy"}
    if path.suffix == ".py":
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                aliases |= {a.asname or a.name for a in node.names if a.name == "numpy"}
    return aliases


def test_every_np_load_refuses_pickles_explicitly():
    seen = 0
    for path in python_files():
        aliases = numpy_aliases(path)
        for name, node in calls(path):
            head, _, attr = name.rpartition(".")
            if attr != "load" or head not in aliases:
                continue
            seen += 1
            where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', '?')}"
            assert node is not None, f"{where}: np.load in a Snakemake file"
            flags = {kw.arg: kw.value for kw in node.keywords}
            assert "allow_pickle" in flags, f"{where}: np.load without allow_pickle=False"
            value = flags["allow_pickle"]
            assert isinstance(value, ast.Constant) and value.value is False, (
                f"{where}: allow_pickle must be the constant False"
            )
    assert seen >= 2  # the npz cache and the checkpoint loader at least


def test_no_pickle_module_or_unpickling_call_anywhere():
    problems = []
    for path in python_files():
        text = path.read_text()
        rel = path.relative_to(REPO)
        for match in re.finditer(r"^\s*(?:import|from)\s+([\w.]+)", text, re.MULTILINE):
            if match[1].split(".")[0] in PICKLE_MODULES:
                problems.append(f"{rel}: imports {match[1]}")
        for name, node in calls(path):
            for forbidden, why in FORBIDDEN_CALLS.items():
                if name == forbidden or name.endswith("." + forbidden):
                    problems.append(f"{rel}:{getattr(node, 'lineno', '?')}: {name} ({why})")
        if re.search(r"allow_pickle\s*=\s*True", text):
            problems.append(f"{rel}: allow_pickle=True")
    assert not problems, "\n".join(problems)


class _Trap:
    """Unpickling this object creates ``path`` (a stand-in for running arbitrary code)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def trap(tmp_path):
    marker = tmp_path / "PWNED"
    yield np.array([_Trap(str(marker))], dtype=object), marker
    assert not marker.exists(), "a pickle from a data file was executed"


def test_dataset_cache_with_a_pickle_is_refused(tmp_path, trap):
    payload, _ = trap
    train, _ = generate("tiny", 0)
    good = tmp_path / "good.npz"
    save_npz(train, good)
    with np.load(good, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for key in arrays:
        bad = tmp_path / f"bad-{key}.npz"
        np.savez(bad, **{**arrays, key: payload})
        for loader in (load_npz, load_dataset):
            with pytest.raises(DataFormatError, match=rf"bad-{key}.npz: .*delete it"):
                loader(bad)


def test_checkpoint_with_a_pickle_is_refused(tmp_path, trap):
    payload, _ = trap
    path = tmp_path / "c.npz"
    save_checkpoint(path, {"w": np.ones(3, np.float32)}, {"iteration": 1})
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for key in arrays:
        np.savez(path, **{**arrays, key: payload})
        with pytest.raises(CheckpointError, match="unreadable"):
            load_checkpoint(path)
