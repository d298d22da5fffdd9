"""The layering of the packages, checked on the source (an AST scan of every import statement).

The core (``slide_bench``) knows no method: it imports neither ``slide_engine`` nor
``baselines`` (it names their plug-ins by module path in its method registry). ``baselines``
(TensorFlow) never imports ``slide_engine``; ``slide_engine`` may import the core. Imports inside
functions count as much as those at the top of a module. No module imports itself back through a
chain of imports, and the top-level packages and the subpackages of each form no cycle either
(a package's ``__main__`` is an entry point nobody imports, and is left out of the package graph).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from slide_bench.methods import METHODS

# the repository root, wherever in tests/ this file lives
REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
PACKAGES = ("slide_bench", "slide_engine", "baselines")
#: package -> packages it must never import
FORBIDDEN = {
    "slide_bench": {"slide_engine", "baselines", "tensorflow"},
    "baselines": {"slide_engine"},
    "slide_engine": {"baselines", "tensorflow"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, modules: set[str] | None = None) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved).

    ``from pkg import sub`` counts as an import of the module ``pkg.sub`` when ``sub`` is one of
    ``modules`` (Python runs ``pkg/__init__.py`` first for every module of ``pkg``, so that is
    no edge of its own); without ``modules`` both names are returned.
    """
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if modules is None:
                    found.update((base, sub))
                else:
                    found.add(sub if sub in modules else base)
    return found


def _graph() -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))]
    modules = {_module_name(p): p for p in files}
    names = set(modules)
    return {name: {m for m in _imports(path, names) if m in names and m != name}
            for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (as a path that ends where it starts), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _collapse(graph: dict[str, set[str]], depth: int) -> dict[str, set[str]]:
    """The graph between packages ``depth`` dots deep (``__main__`` modules left out)."""
    out: dict[str, set[str]] = defaultdict(set)
    for src, targets in graph.items():
        if src.endswith("__main__"):
            continue
        a = ".".join(src.split(".")[:depth])
        out[a]
        for dst in targets:
            b = ".".join(dst.split(".")[:depth])
            if b != a:
                out[a].add(b)
    return out


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_imports_only_what_its_layer_allows(package: str) -> None:
    bad = []
    for path in sorted((REPO / package).rglob("*.py")):
        for name in _imports(path):
            if name.split(".")[0] in FORBIDDEN[package]:
                bad.append(f"{path.relative_to(REPO)} imports {name}")
    assert not bad, "\n".join(bad)


def test_the_scan_sees_lazy_and_relative_imports() -> None:
    # the oracle of the scanner itself, on a module of this repository: slide_engine/lsh/index.py
    # imports ".hashing" (relative), and the engine's plug-in imports its network inside a
    # function
    assert "slide_engine.lsh.hashing" in _imports(REPO / "slide_engine/lsh/index.py")
    assert "slide_engine.engine.step" in _imports(REPO / "slide_engine/method.py")


def test_no_module_imports_itself_back() -> None:
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()) or [])


@pytest.mark.parametrize("depth", [1, 2])
def test_packages_and_subpackages_form_no_cycle(depth: int) -> None:
    collapsed = _collapse(_graph(), depth)
    cycle = _cycle(collapsed)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_registry_names_plugins_that_exist_and_fit_the_contract() -> None:
    # every plug-in module path points into a method package, never into the core
    for method in METHODS.values():
        module = method.plugin_module
        assert module.split(".")[0] == method.package != "slide_bench"
        assert (REPO / Path(*module.split("."))).with_suffix(".py").is_file(), module


def loaded_after_import(modules: str, watched: tuple[str, ...]) -> list[str]:
    """The ``watched`` top-level modules a fresh interpreter holds after importing ``modules``."""
    import subprocess
    import sys

    code = f"import sys, {modules}; print(sorted(m for m in {watched!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=REPO)
    return ast.literal_eval(proc.stdout)


@pytest.mark.slow  # a fresh interpreter (what an import pulls in)
def test_importing_the_core_imports_no_method_package() -> None:
    assert loaded_after_import(
        "slide_bench.bench, slide_bench.methods, slide_bench.harness, slide_bench.cli, "
        "slide_bench.report.summary", ("slide_engine", "baselines", "tensorflow")) == []


@pytest.mark.slow  # a fresh interpreter (what an import pulls in)
def test_the_report_and_run_log_need_neither_numba_nor_gdown() -> None:
    # the report's environment (curves in, tables and figures out) stays small: the run log and
    # the report modules import no Numba, no downloader and no method
    assert loaded_after_import(
        "slide_bench.runlog, slide_bench.report.summary, slide_bench.report.headline, "
        "slide_bench.report.figures, slide_bench.report.runs",
        ("numba", "gdown", "tensorflow", "slide_engine", "baselines")) == []
