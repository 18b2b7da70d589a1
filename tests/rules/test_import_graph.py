"""rules/'s import graph, read from the source: no cycle, and nothing from the rest of the project.

Every import counts: top-level ones, those inside functions (lazy imports) and those under
`if TYPE_CHECKING:`. A lazy or type-only import hides a cycle from the interpreter, not from the
next engineer: the two modules still cannot be understood or changed one without the other.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"
# The project's own top-level packages and modules besides rules: rules/ imports none of them.
PROJECT = frozenset({p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
                    | {p.stem for p in ROOT.glob("*.py")}
                    | {"server", "sandbox", "tests", "bench", "scripts"}) - {"rules"}


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1])


def imports_of(path: Path, modules: frozenset[str], root: Path = ROOT) -> tuple[set[str], list[str]]:
    """(the rules modules `path` imports, the project imports from outside rules it makes)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _package_of(path, root)
    inside: set[str] = set()
    outside: list[str] = []

    def target(name: str) -> None:
        top = name.split(".")[0]
        if top == "rules":
            # `rules.x.y` names module rules.x.y if it exists, else a name in rules.x.
            while name not in modules and "." in name:
                name = name.rsplit(".", 1)[0]
            inside.add(name)
        elif top in PROJECT:
            outside.append(f"{path.relative_to(root).as_posix()}:{name}")

    for node in ast.walk(tree):  # every node: function bodies and TYPE_CHECKING blocks too
        if isinstance(node, ast.Import):
            for alias in node.names:
                target(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from . import updates` names a module; `from . import X` a name in the package.
            names = [alias.name for alias in node.names]
            submodules = [f"{module}.{n}" for n in names if f"{module}.{n}" in modules]
            for sub in submodules:
                target(sub)
            if len(submodules) < len(names):
                target(module)
    inside.discard(_module_name(path, root))
    return inside, outside


def rules_graph() -> tuple[dict[str, set[str]], list[str]]:
    files = sorted(RULES.rglob("*.py"))
    modules = frozenset(_module_name(p) for p in files)
    graph: dict[str, set[str]] = {}
    outside: list[str] = []
    for path in files:
        graph[_module_name(path)], out = imports_of(path, modules)
        outside.extend(out)
    return graph, outside


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None. Depth-first, three colours."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_rules_imports_have_no_cycle() -> None:
    graph, _ = rules_graph()
    assert "rules.ops" in graph and "rules.actions" in graph  # the graph really was read
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in rules/: " + " -> ".join(cycle or [])


def test_rules_imports_nothing_from_the_project() -> None:
    _, outside = rules_graph()
    assert outside == [], "rules/ must import nothing from the project: " + ", ".join(outside)


# ---------------------------------------------------------------- the checker itself

def _write(tmp: Path, files: dict[str, str]) -> dict[str, set[str]]:
    pkg = tmp / "rules"
    pkg.mkdir()
    for name, text in files.items():
        (pkg / name).write_text(text, encoding="utf-8")
    paths = sorted(pkg.glob("*.py"))
    modules = frozenset(_module_name(p, tmp) for p in paths)
    return {_module_name(p, tmp): imports_of(p, modules, tmp)[0] for p in paths}


@pytest.mark.parametrize("b_text", [
    "from .a import X\n",                                          # top level
    "def f():\n    from .a import X\n",                            # lazy, in a function
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import X\n",  # type only
    "from . import a\n",                                           # a module by name
    "import rules.a\n",                                            # absolute
])
def test_the_checker_sees_every_kind_of_import(tmp_path: Path, b_text: str) -> None:
    graph = _write(tmp_path, {"__init__.py": "", "a.py": "from .b import Y\n", "b.py": b_text})
    assert graph["rules.b"] == {"rules.a"}
    assert find_cycle(graph) == ["rules.a", "rules.b", "rules.a"]


def test_a_name_from_the_package_itself_is_a_dependency_on_it(tmp_path: Path) -> None:
    """`from rules import X` inside rules/ runs rules/__init__.py, which imports the modules."""
    graph = _write(tmp_path, {"__init__.py": "from .b import f\n", "b.py": "def f():\n    from rules import g\n"})
    assert find_cycle(graph) == ["rules", "rules.b", "rules"]


def test_the_checker_passes_a_chain(tmp_path: Path) -> None:
    graph = _write(tmp_path, {"__init__.py": "from .a import Y\n", "a.py": "from .b import Y\n",
                              "b.py": "import re\nfrom .c import Z\n", "c.py": "X = 1\n"})
    assert find_cycle(graph) is None
    assert graph["rules.b"] == {"rules.c"}


def test_the_checker_names_project_imports(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    path = tmp_path / "rules" / "x.py"
    path.write_text("def f():\n    from server.store import keys\nimport sandbox\nimport re\n", encoding="utf-8")
    _, outside = imports_of(path, frozenset({"rules.x"}), tmp_path)
    assert sorted(outside) == ["rules/x.py:sandbox", "rules/x.py:server.store"]
