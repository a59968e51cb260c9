"""The layering of docs/architecture.md, checked on the source: imports point one way, no cycles, small parts.

Each module of ours is parsed (never imported). A dependency is any import of one of our modules, inside
functions too; cycles count only imports that run when the module loads (``if TYPE_CHECKING:`` excluded).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: our top-level packages; ``app`` is the composition root (``urbaneye run``), ``tools`` the benchmarks and
#: evaluations that measure the whole stack
PACKAGES = ("vision", "urbaneye", "streams", "api", "models", "datasets", "app", "tools")
#: package -> the packages of ours it must not import
FORBIDDEN = {
    "vision": set(PACKAGES) - {"vision"},
    "urbaneye": set(PACKAGES) - {"vision", "urbaneye"},
    "streams": {"api", "datasets", "models", "app", "tools"},
    "api": {"models", "datasets", "streams", "app", "tools"},
    "models": {"api", "streams", "app", "tools"},
    "datasets": {"api", "models", "app", "tools"},
    "app": {"tools"},
}
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
#: packages whose functions must stay under MAX_FUNCTION_LINES
FUNCTION_SIZE_PACKAGES = ("vision", "streams", "urbaneye", "api", "app")


def parse(source: str) -> ast.Module:
    """``ast.parse``, once more if CPython 3.11 trips over its own thread-unsafe AST recursion counter: another
    thread formatting a traceback (3.11 parses the failing line for its carets) while this one parses raises
    ``SystemError: AST constructor recursion depth mismatch`` (CPython gh-106905), which says nothing about
    the source."""
    for attempt in range(3):
        try:
            return ast.parse(source)
        except SystemError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Import:
    target: str  # the module of ours it loads
    line: int
    at_load: bool  # runs when the module loads (not inside a function, not under TYPE_CHECKING)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """Our module names -> their files (migrations left out: they are Alembic's, loaded by path)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                found[_module_name(path)] = path
    return found


def _ours(name: str) -> str | None:
    """The module of ours that ``import name`` loads (its longest known prefix), or None."""
    known = modules()
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, *([node.module] if node.module else [])])


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


@cache
def imports_of(module: str) -> tuple[Import, ...]:
    """Every import of one of our modules in ``module``, with its line and whether it runs at load."""
    path = modules()[module]
    found: list[Import] = []

    def visit(node: ast.AST, at_load: bool) -> None:
        for child in ast.iter_child_nodes(node):
            child_at_load = at_load and not isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            if _is_type_checking(child):
                child_at_load = False
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = _absolute(child, module, path.name == "__init__.py")
                names = [base, *(f"{base}.{alias.name}" for alias in child.names)]
            for name in names:
                target = _ours(name)
                if target is not None and target != module:
                    found.append(Import(target, child.lineno, child_at_load))
            visit(child, child_at_load)

    visit(parse(path.read_text(encoding="utf-8")), True)
    return tuple(found)


def _where(module: str, line: int) -> str:
    return f"{modules()[module].relative_to(ROOT)}:{line}"


def test_packages_import_only_the_layers_below() -> None:
    offenders = []
    for module in modules():
        package = module.split(".")[0]
        for imp in imports_of(module):
            if imp.target.split(".")[0] in FORBIDDEN.get(package, set()):
                offenders.append(f"{_where(module, imp.line)}: {package} imports {imp.target}")
    offenders = sorted(set(offenders))  # one line per import statement, not per name it imports
    assert not offenders, (
        "imports against the layering of docs/architecture.md (vision <- urbaneye <- streams/api, "
        "datasets <- models; app on top); move the shared piece down a layer:\n"
        + "\n".join(sorted(set(offenders)))
    )


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def test_no_import_cycles_between_modules() -> None:
    graph = {m: {i.target for i in imports_of(m) if i.at_load} for m in modules()}
    lines = []
    for component in _cycles(graph):
        members = set(component)
        lines.append("cycle: " + ", ".join(component))
        for module in component:
            for imp in imports_of(module):
                if imp.at_load and imp.target in members:
                    lines.append(f"  {_where(module, imp.line)}: {module} imports {imp.target}")
    assert not lines, "import cycles; move the piece both need into its own module:\n" + "\n".join(lines)


def test_modules_and_functions_stay_small() -> None:
    offenders = []
    for module, path in modules().items():
        rel = path.relative_to(ROOT)
        source = path.read_text(encoding="utf-8")
        lines = len(source.splitlines())
        if lines > MAX_MODULE_LINES and not rel.as_posix().startswith("datasets/synth/"):
            offenders.append(f"{rel}:1: module of {lines} lines (at most {MAX_MODULE_LINES})")
        if module.split(".")[0] not in FUNCTION_SIZE_PACKAGES:
            continue
        for node in ast.walk(parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    offenders.append(
                        f"{rel}:{node.lineno}: function {node.name} of {length} lines "
                        f"(at most {MAX_FUNCTION_LINES}; split it into named steps)"
                    )
    assert not offenders, "too large:\n" + "\n".join(sorted(offenders))


def test_the_checker_sees_imports_inside_functions_and_skips_type_checking() -> None:
    """The checker itself: a function-level import counts as a dependency, not as a load-time edge."""
    imports = imports_of("app.cli")
    assert any(i.target == "app.run" and not i.at_load for i in imports)
    assert any(i.target == "streams.cli" and i.at_load for i in imports)
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
