"""Regenerate the two diagrams of ``docs/architecture.md`` from the code itself.

- **Packages**: the import graph of the suite's packages (``slide_bench``, ``slide_engine``,
  ``baselines``) and the pipeline's scripts, read from the source with :mod:`ast` (every
  ``import``, also those inside functions), one node per module or sub-package below a package,
  plus TensorFlow and Numba; ``baselines`` is one node. Imports between the parts of one
  package are drawn for ``slide_engine`` only (the others' structure is listed in the page).
  When the method registry (``slide_bench.methods``) can be imported, dashed edges show which
  plug-in module each registered method names: the registry imports them only when a method
  is built.
- **Data flow**: the pipeline's rules as Snakemake sees them (``snakemake --rulegraph`` for
  every config given, edges united), each labelled with its output patterns; rules that run on
  the submitting host (``localrules``) are drawn round; the target rule ``all`` is left out.

Both are Mermaid blocks written between ``<!-- BEGIN GENERATED: name -->`` and
``<!-- END GENERATED: name -->`` markers of the page. Run from the repository root::

    python docs/make_diagrams.py            # rewrite the blocks
    python docs/make_diagrams.py --check    # exit 1 if the page is out of date
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "architecture.md"
PACKAGES = ("slide_bench", "slide_engine", "baselines")
#: Packages drawn as one node (their modules are listed in the page).
WHOLE = ("baselines",)
#: Packages whose imports between their own parts are drawn (the others' are listed in the page).
INNER_EDGES = ("slide_engine",)
SCRIPTS = Path("workflow") / "scripts"
EXTERNAL = ("tensorflow", "numba")
CONFIGS = ("config/config.yaml", "config/paper-amazon.yaml", "config/crossover.yaml")


def _unit(module: str) -> str | None:
    """The diagram node of a dotted module name: ``pkg.child`` (or ``pkg``), an external name."""
    parts = module.split(".")
    if parts[0] in PACKAGES:
        if len(parts) == 1 or parts[1] in ("__init__", "__main__") or parts[0] in WHOLE:
            return parts[0]
        return f"{parts[0]}.{parts[1]}"
    if parts[0] in EXTERNAL:
        return parts[0]
    return None


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    return ".".join(rel.parts)


def _imports(path: Path, module: str) -> Iterable[str]:
    """Dotted names a source file imports (relative imports resolved against ``module``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module.split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            yield from (f"{name}.{alias.name}" for alias in node.names)


def import_graph() -> tuple[dict[str, set[str]], set[tuple[str, str]]]:
    """Nodes per group and import edges between diagram nodes."""
    groups: dict[str, set[str]] = {}
    edges: set[tuple[str, str]] = set()
    sources = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    sources += sorted((ROOT / SCRIPTS).glob("*.py"))
    for path in sources:
        module = _module_name(path)
        src = _unit(module) or f"scripts.{path.stem}"
        if path.name == "__main__.py" and src.split(".")[0] not in WHOLE:
            src = module  # a command line: its own node ("python -m ...")
        groups.setdefault(src.split(".")[0], set()).add(src)
        for name in _imports(path, module):
            dst = _unit(name)
            if dst is None or dst == src:
                continue
            top = src.split(".")[0]
            if top == dst.split(".")[0] and top not in INNER_EDGES:
                continue
            # "from pkg import child" names a sub-module; "from pkg.mod import func" does not
            if "." in dst and not _exists(dst):
                dst = dst.split(".")[0]
                if dst == src:
                    continue
            edges.add((src, dst))
    return groups, edges


def _exists(unit: str) -> bool:
    pkg, child = unit.split(".")
    return (ROOT / pkg / f"{child}.py").exists() or (ROOT / pkg / child / "__init__.py").exists()


def registry_edges() -> set[tuple[str, str]]:
    """(registry, plug-in unit) for every registered method, when the registry imports."""
    sys.path.insert(0, str(ROOT))
    try:
        from slide_bench import methods  # optional: only after the move
    except ImportError:
        return set()
    out = set()
    for method in methods.METHODS.values():
        unit = _unit(method.plugin_module)
        if unit is not None:
            out.add(("slide_bench.methods", unit))
    return out


def _node_id(name: str) -> str:
    return re.sub(r"\W", "_", name)


def packages_mermaid() -> str:
    """The package diagram as a Mermaid flowchart."""
    groups, edges = import_graph()
    dashed = registry_edges()
    used = {n for e in edges | dashed for n in e}
    lines = ["flowchart LR"]
    for group in [*PACKAGES, "scripts"]:
        members = sorted(n for n in groups.get(group, ()) if n != group or n in used)
        if not members:
            continue
        title = "workflow/scripts" if group == "scripts" else group
        lines.append(f"  subgraph {_node_id(group)}_box [{title}]")
        for node in members:
            if node.endswith(".__main__"):
                label = "python -m " + node.removesuffix(".__main__")
            else:
                label = node.split(".", 1)[1] if "." in node else f"{node} (package)"
            lines.append(f'    {_node_id(node)}["{label}"]')
        lines.append("  end")
    for ext in EXTERNAL:
        if ext in used:
            lines.append(f"  {ext}[({ext})]")
    for src, dst in sorted(edges):
        lines.append(f"  {_node_id(src)} --> {_node_id(dst)}")
    for src, dst in sorted(dashed):
        lines.append(f"  {_node_id(src)} -.-> {_node_id(dst)}")
    return "\n".join(lines)


def _rule_outputs() -> tuple[dict[str, list[str]], set[str]]:
    """Output patterns per rule (wildcard constraints removed) and the local rules."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings,
        DeploymentSettings,
        OutputSettings,
        ResourceSettings,
        StorageSettings,
        WorkflowSettings,
    )

    with SnakemakeApi(OutputSettings()) as api:
        wf = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(configfiles=[ROOT / CONFIGS[0]]),
            storage_settings=StorageSettings(),
            workflow_settings=WorkflowSettings(),
            deployment_settings=DeploymentSettings(),
            snakefile=ROOT / "Snakefile",
            workdir=ROOT,
        )
        workflow = wf._workflow  # the parsed workflow: rules and their output patterns
        outputs = {
            rule.name: [re.sub(r"\{(\w+),[^}]*\}", r"{\1}", str(o)) for o in rule.output]
            for rule in workflow.rules
        }
        return outputs, set(workflow._localrules)


def _rule_edges() -> set[tuple[str, str]]:
    edges = set()
    for config in CONFIGS:
        dot = subprocess.run(
            ["snakemake", "--rulegraph", "--forceall", "--configfile", config],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout
        names = dict(re.findall(r'^\s*(\d+)\[label = "([^"]+)"', dot, flags=re.M))
        for a, b in re.findall(r"^\s*(\d+) -> (\d+)", dot, flags=re.M):
            if "all" not in (names[a], names[b]):  # the target rule: every final output
                edges.add((names[a], names[b]))
    return edges


def _short(patterns: list[str]) -> str:
    """Output patterns grouped by folder, extensions merged: ``results/plots/{dataset}/*.png``."""
    by_dir: dict[str, list[str]] = {}
    for p in patterns:
        folder, _, name = p.rpartition("/")
        by_dir.setdefault(folder, []).append(name)
    parts = []
    for folder, names in by_dir.items():
        exts = sorted({n.rpartition(".")[2] for n in names})
        stems = sorted({n.rpartition(".")[0] for n in names})
        ext = f".{{{','.join(exts)}}}" if len(exts) > 1 else f".{exts[0]}"
        if len(stems) > 3:
            stem = "*"
        else:
            stem = stems[0] if len(stems) == 1 else "{" + ",".join(stems) + "}"
        parts.append(f"{folder}/{stem}{ext}")
    return "<br/>".join(parts)


def pipeline_mermaid() -> str:
    """The rule graph as a Mermaid flowchart, each rule with its outputs."""
    outputs, local = _rule_outputs()
    edges = _rule_edges()
    rules = sorted({r for e in edges for r in e})
    lines = ["flowchart TD"]
    for rule in rules:
        files = _short(outputs.get(rule, []))
        label = f"<b>{rule}</b>" + (f"<br/>{files}" if files else "")
        label = label.replace('"', "'")
        shape = ('(["', '"])') if rule in local else ('["', '"]')
        lines.append(f"  {rule}{shape[0]}{label}{shape[1]}")
    for a, b in sorted(edges):
        lines.append(f"  {a} --> {b}")
    return "\n".join(lines)


def _replace(text: str, name: str, body: str) -> str:
    begin, end = f"<!-- BEGIN GENERATED: {name} -->", f"<!-- END GENERATED: {name} -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), flags=re.S)
    if not pattern.search(text):
        raise SystemExit(f"error: {PAGE}: no '{begin}' ... '{end}' block")
    block = f"{begin}\n```mermaid\n{body}\n```\n{end}"
    return pattern.sub(lambda _: block, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is out of date")
    args = parser.parse_args(argv)
    text = PAGE.read_text()
    new = _replace(text, "packages", packages_mermaid())
    new = _replace(new, "pipeline", pipeline_mermaid())
    if args.check:
        if new != text:
            print(f"{PAGE.relative_to(ROOT)} is out of date: run python docs/make_diagrams.py")
            return 1
        print(f"{PAGE.relative_to(ROOT)} is up to date")
        return 0
    PAGE.write_text(new)
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
