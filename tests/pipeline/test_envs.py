"""The pipeline's conda environments (workflow/envs/) hold what their jobs import.

Every job imports the suite from the checkout (common.smk puts it on PYTHONPATH), so an
environment must provide every third-party package that the suite code a rule runs imports. The
oracle is the code itself: the imports of each rule's script, followed through the suite's
modules (package ``__init__`` files included, imports inside functions too; imports guarded by
``except ImportError`` are optional and not required), mapped to their distributions with
:func:`importlib.metadata.packages_distributions`. Creating the environments needs conda and
conda-forge; this test checks what they list without building them.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "workflow" / "rules"
SUITE = ("slide_bench", "slide_engine", "baselines")
# conda-forge packages under another name than the distribution, or that bring another one
PROVIDED_BY = {"matplotlib": ("matplotlib", "matplotlib-base"), "llvmlite": ("llvmlite", "numba")}
# a rule's start: `rule name:`, `use rule a as name with:`, or a rule made in a loop (`name:`)
RULE_BLOCK = re.compile(
    r"^(?:rule (\w+):|use rule \w+ as (\w+) with:|    rule:\n\s+name:\n\s+(f?\"[^\"]+\"))",
    re.MULTILINE,
)


def module_file(name: str) -> Path | None:
    """The source file of a suite module, or None when it is not one."""
    base = REPO.joinpath(*name.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def imported_names(path: Path, module: str) -> list[str]:
    """Absolute names a file imports (``from a import b`` gives ``a`` and ``a.b``), optional
    imports (inside a ``try`` that catches ImportError) left out."""
    tree = ast.parse(path.read_text())
    optional = {id(node) for t in ast.walk(tree) if isinstance(t, ast.Try)
                and any(isinstance(h.type, ast.Name)
                        and h.type.id in ("ImportError", "ModuleNotFoundError")
                        for h in t.handlers)
                for stmt in t.body for node in ast.walk(stmt)}
    names = []
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: -1 if path.name != "__init__.py" else None]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, *([node.module] if node.module else [])])
            names += [base, *(f"{base}.{alias.name}" for alias in node.names)]
    return names


def third_party_imports(entries: list[tuple[Path, str]]) -> set[str]:
    """Top-level third-party modules imported by the entry files and the suite modules they
    reach (snakemake itself, which runs the scripts, not counted)."""
    seen: set[str] = set()
    todo = list(entries)
    found: set[str] = set()
    while todo:
        path, module = todo.pop()
        for name in imported_names(path, module):
            parts = name.split(".")
            if parts[0] in SUITE:
                for i in range(1, len(parts) + 1):
                    sub = ".".join(parts[:i])
                    source = module_file(sub)
                    if source is not None and sub not in seen:
                        seen.add(sub)
                        todo.append((source, sub))
            elif parts[0] not in sys.stdlib_module_names and parts[0] != "snakemake":
                found.add(parts[0])
    return found


def env_packages(env: Path) -> set[str]:
    """Package names an environment file lists (conda and pip), lower case, no versions."""
    names = set()
    for dep in yaml.safe_load(env.read_text())["dependencies"]:
        for spec in dep["pip"] if isinstance(dep, dict) else [dep]:
            names.add(re.split(r"[=<>\[ ]", spec, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def rule_environments() -> dict[str, tuple[Path, list[tuple[Path, str]]]]:
    """Every rule with its conda environment and the code it runs: its `script:`, or for the
    training rules (shell) workflow/scripts/train.py and the method packages' command lines."""
    rules = {}
    for smk in sorted(RULES.glob("*.smk")):
        text = smk.read_text()
        starts = list(RULE_BLOCK.finditer(text))
        inherited = None
        ends = [m.start() for m in starts[1:]] + [len(text)] if starts else []
        for match, end in zip(starts, ends, strict=True):
            block = text[match.start(): end]
            name = next(g for g in match.groups() if g)
            conda = re.search(r"conda:\s*\n\s*\"([^\"]+)\"", block)
            script = re.search(r"script:\s*\n\s*\"([^\"]+)\"", block)
            if script:
                entries = [(RULES / script[1], "__script__")]
            elif "{params.script}" in block or block.startswith("use rule"):
                entries = [(REPO / "workflow" / "scripts" / "train.py", "__script__")]
                entries += [(module_file(f"{pkg}.__main__"), f"{pkg}.__main__")
                            for pkg in SUITE if module_file(f"{pkg}.__main__")]
            else:
                continue
            env = (RULES / conda[1]).resolve() if conda else inherited
            inherited = env if not block.startswith("use rule") else inherited
            rules[name] = (env, entries)
    return rules


RULE_ENVS = rule_environments()


def test_every_rule_that_runs_code_has_an_environment():
    assert {"prepare_dataset", "train_cpu", "train_gpu", "aggregate", "headline",
            "environment"} <= set(RULE_ENVS)
    assert any(name.startswith('f"plot_') for name in RULE_ENVS), "the figure rules' loop"
    for name, (env, _) in RULE_ENVS.items():
        assert env is not None and env.is_file(), f"rule {name}: no conda environment file"


@pytest.mark.parametrize("rule", sorted(RULE_ENVS))
def test_the_rule_environment_lists_every_package_its_code_imports(rule):
    env, entries = RULE_ENVS[rule]
    listed = env_packages(env)
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for module in sorted(third_party_imports(entries)):
        dists = [d.lower().replace("_", "-") for d in distributions.get(module, [module])]
        wanted = {alias for d in dists for alias in PROVIDED_BY.get(d, (d,))}
        if not wanted & listed:
            missing.append(f"{module} ({', '.join(dists)})")
    assert not missing, f"{env.relative_to(REPO)} (rule {rule}) lacks {', '.join(missing)}"


def test_the_report_environment_needs_neither_numba_nor_tensorflow():
    env = RULE_ENVS["aggregate"][0]
    for rule in ("aggregate", "headline", "environment", "crossover"):
        assert RULE_ENVS[rule][0] == env
        assert not {"numba", "tensorflow"} & third_party_imports(RULE_ENVS[rule][1]), rule
    assert not {"numba", "tensorflow"} & env_packages(env)
