"""The package's shape: its layers (pyproject.toml's ``[tool.importlinter]`` contracts), no import cycles between
its modules, no module over 300 lines and no function over 60. Imports inside functions and under
``TYPE_CHECKING`` count: each is a dependency all the same."""

import ast
import subprocess
import sys

import grimp
from helpers import ROOT

SRC = ROOT / "src"
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60  # from its ``def`` to its last line: docstring and nested functions included


def test_imports_keep_the_layers():
    """Every contract holds; a broken one's report names the imports that break it. In a subprocess: import-linter
    reconfigures logging in the process it runs in."""
    check = ("import sys; from importlinter.cli import lint_imports; "
             f"sys.exit(lint_imports(config_filename={str(ROOT / 'pyproject.toml')!r}, no_cache=True, no_logo=True))")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"lint-imports: a contract is broken\n{result.stdout}{result.stderr}"


def import_cycles(graph: grimp.ImportGraph) -> list[str]:
    """Each group of modules that import one another, directly or through others: its modules, and one cycle."""
    cycles: list[set[str]] = []
    for module in sorted(graph.modules):
        loop = graph.find_upstream_modules(module) & graph.find_downstream_modules(module)
        if loop and not any(module in cycle for cycle in cycles):
            cycles.append(loop | {module})
    described = []
    for cycle in cycles:
        first = min(cycle)
        step = min(cycle & graph.find_modules_directly_imported_by(first))
        path = (first, *graph.find_shortest_chain(importer=step, imported=first))
        described.append(f"{', '.join(sorted(cycle))} (e.g. {' -> '.join(path)})")
    return described


def test_no_import_cycles():
    graph = grimp.build_graph("seqmodels", cache_dir=None)  # TYPE_CHECKING imports included
    assert not (cycles := import_cycles(graph)), "import cycles:\n" + "\n".join(cycles)


def test_modules_and_functions_are_small():
    too_long = []
    for path in sorted(SRC.rglob("*.py")):
        source, name = path.read_text(encoding="utf-8"), path.relative_to(SRC)
        if (lines := len(source.splitlines())) > MAX_MODULE_LINES:
            too_long.append(f"{name}: {lines} lines (at most {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if (lines := node.end_lineno - node.lineno + 1) > MAX_FUNCTION_LINES:
                too_long.append(f"{name}:{node.lineno} {node.name}: {lines} lines (at most {MAX_FUNCTION_LINES})")
    assert not too_long, "\n".join(too_long)
