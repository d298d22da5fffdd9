"""The reference documents name only files and modules that exist.

Every path in backticks that starts with one of the repository's folders (``slide_bench/...``,
``tests/...``, ``workflow/...``, ...) must exist, and every dotted name of a suite package
(``slide_bench.harness.run``, ``python -m slide_engine.lsh.measure``) must resolve to a module
whose source defines or mentions the rest of the name. Dated logs under ``docs/journal/`` are
records of their day and are not checked; ``data/`` and ``results/`` paths are inputs and
outputs of runs, not part of the checkout.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

# the repository root, wherever in tests/ this file lives
REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
PACKAGES = ("slide_bench", "slide_engine", "baselines")
FOLDERS = (*PACKAGES, "tests", "workflow", "docs", "config", "profiles")
DOCS = sorted([
    REPO / "README.md",
    REPO / "CONTRIBUTING.md",
    *(REPO / "docs").glob("*.md"),
    *REPO.glob("*/README.md"),
])
_PATH = re.compile(rf"(?:{'|'.join(FOLDERS)})/[\w./-]*")
_DOTTED = re.compile(rf"(?:{'|'.join(PACKAGES)})(?:\.\w+)+")


def _tokens(text: str) -> list[tuple[int, str]]:
    """(line, token) for every word inside backticks."""
    out = []
    for match in re.finditer(r"`([^`\n]+)`", text):
        line = text.count("\n", 0, match.start()) + 1
        for word in re.split(r"[\s,()\[\]=]+", match.group(1)):
            out.append((line, word.rstrip(":.;")))
    return out


def _module_source(parts: list[str]) -> tuple[Path, list[str]] | None:
    """The source of the longest module prefix of ``parts`` and the rest of the name."""
    for i in range(len(parts), 0, -1):
        base = REPO.joinpath(*parts[:i])
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                return path, parts[i:]
    return None


def _problems(text: str, name: str) -> list[str]:
    """What ``text`` (shown as ``name``) names that does not exist."""
    problems = []
    for line, word in _tokens(text):
        where = f"{name}:{line}"
        if _PATH.fullmatch(word) and not any(c in word for c in "{*<"):
            if not (REPO / word).exists():
                problems.append(f"{where}: no such path {word}")
        elif _DOTTED.fullmatch(word):
            found = _module_source(word.split("."))
            if found is None:
                problems.append(f"{where}: no such module {word}")
                continue
            source, rest = found
            if rest and not re.search(rf"\b{re.escape(rest[0])}\b", source.read_text()):
                problems.append(f"{where}: {source.relative_to(REPO)} has no {rest[0]!r}")
    return problems


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_named_files_and_modules_exist(doc: Path) -> None:
    assert _problems(doc.read_text(), str(doc.relative_to(REPO))) == []


def test_the_check_finds_a_missing_path_and_a_missing_name() -> None:
    text = (
        "`slide_bench/harness.py` and `slide_bench.harness.run` exist;\n"
        "`slide_bench/no_such_module.py` and `slide_bench.harness.no_such_function` do not,\n"
        "nor does `python -m slide_engine.no_such_command`.\n"
    )
    assert _problems(text, "probe.md") == [
        "probe.md:2: no such path slide_bench/no_such_module.py",
        "probe.md:2: slide_bench/harness.py has no 'no_such_function'",
        "probe.md:3: slide_engine/__init__.py has no 'no_such_command'",
    ]
