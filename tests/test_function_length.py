"""No function of the suite is longer than 60 lines of code (its docstring not counted), except
Numba kernels, whose loop nests are kept whole so that they compile to one tight loop.

Measured on the source (AST): a function spans from its ``def`` (or first decorator) to its last
line; a kernel is a function decorated with numba's ``njit``/``jit`` (any form) or an
``intrinsic``. Long functions are the ones that mix concerns; the harness loop, the engine's
training step and the bench are each a few lines over named parts.
"""

from __future__ import annotations

import ast
from pathlib import Path

# the repository root, wherever in tests/ this file lives
REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
ROOTS = ("slide_bench", "slide_engine", "baselines", "workflow/scripts")
MAX_LINES = 60
KERNEL_DECORATORS = {"njit", "jit", "intrinsic"}


def _is_kernel(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name in KERNEL_DECORATORS:
            return True
    return False


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    lines = node.end_lineno - start + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
        first.value.value, str
    ):
        lines -= first.end_lineno - first.lineno + 1
    return lines


def _long_functions(source: str, name: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not _is_kernel(node):
            n = _code_lines(node)
            if n > MAX_LINES:
                found.append(f"{name}:{node.lineno} {node.name}: {n} lines")
    return found


def test_no_function_is_longer_than_60_lines_outside_numba_kernels() -> None:
    files = [p for root in ROOTS for p in sorted((REPO / root).rglob("*.py"))]
    assert len(files) > 50  # the scan sees the suite
    long = [hit for p in files for hit in _long_functions(p.read_text(), str(p.relative_to(REPO)))]
    assert not long, "\n".join(long)


def test_the_measure_counts_code_not_docstrings_and_exempts_kernels() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_LINES))
    doc = '    """A docstring\n\n    of four lines.\n    """\n'
    at_limit = f"def f():\n{doc}{body[: body.rindex('    x')]}"  # def + 59 lines of code
    over = f"def g():\n{doc}{body}"  # def + 60 lines of code
    kernel = f"@numba.njit(cache=True)\ndef h():\n{body}{body}"
    assert _long_functions(at_limit, "m") == []
    assert _long_functions(over, "m") == ["m:1 g: 61 lines"]
    assert _long_functions(kernel, "m") == []
