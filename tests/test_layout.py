"""The layout's promises: no module imports one that imports it back, and shared code never
tests a task's name (tasks are reached through the registry)."""

from __future__ import annotations

import ast
import re

from conftest import ROOT

PKG = ROOT / "centertargets"


def _modules() -> dict[str, ast.Module]:
    out = {}
    for f in PKG.rglob("*.py"):
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = ast.parse(f.read_text(), str(f))
    return out


def _imports(name: str, tree: ast.Module, known: set[str], is_pkg: bool) -> set[str]:
    skip = set()
    for node in ast.walk(tree):                            # imports for type checking only
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    deps = set()
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            base = name.split(".") if is_pkg else name.split(".")[:-1]
            if node.level:
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        deps.update(t for t in targets if t in known)
    return deps


def test_no_module_imports_one_that_imports_it_back():
    mods = _modules()
    known = set(mods)
    pkg = {m for m in mods if (PKG / m.replace("centertargets", "", 1).lstrip(".").replace(
        ".", "/") / "__init__.py").exists() or m == "centertargets"}

    def parents(m: str) -> set[str]:
        parts = m.split(".")
        return {".".join(parts[:i]) for i in range(1, len(parts))}

    graph = {m: {d for d in _imports(m, t, known, m in pkg)
                 if d != m and d not in parents(m) and m not in parents(d)}
             for m, t in mods.items()}

    def reaches(a: str, b: str) -> bool:
        seen, todo = set(), [a]
        while todo:
            x = todo.pop()
            if x == b:
                return True
            if x not in seen:
                seen.add(x)
                todo.extend(graph[x])
        return False

    cycles = sorted((a, b) for a in graph for b in graph[a] if reaches(b, a))
    assert not cycles, cycles
    assert graph["centertargets.dataset"] and graph["centertargets.tasks.exdet"]   # it reads


def test_shared_code_never_tests_a_task_name():
    task_test = re.compile(r"""\.task\s*(==|!=|in\b)|\btask\s*(==|!=)\s*["']""")
    offenders = []
    for f in PKG.rglob("*.py"):
        if "tasks" in f.relative_to(PKG).parts:
            continue
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if task_test.search(line):
                offenders.append(f"{f.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not offenders, offenders
