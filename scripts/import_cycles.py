"""
Fails when the modules of a package import each other in a cycle, counting imports made
inside functions too (those only hide a cycle). `make lint` runs it on streaming/.

Usage: python scripts/import_cycles.py streaming
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

# Edges of known cycles, each with its reason (none today).
KNOWN: set[tuple[str, str]] = set()


def modules(package: Path) -> dict[str, Path]:
    """Returns every module of `package` by dotted name (a package by its own name)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Returns the import statements of a module, but those under `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def targets(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Returns the modules of `known` that module `name` imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in runtime_imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base])
        found.add(base.rstrip("."))
        found.update(f"{base}.{alias.name}" for alias in node.names)
    return {target for target in found if target in known and target != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Returns the strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def main(package: str) -> int:
    """Prints each cycle of `package` with its edges; returns the exit status."""
    known = modules(Path(package))
    graph = {
        name: targets(name, path, known) - {b for a, b in KNOWN if a == name}
        for name, path in known.items()
    }
    found = cycles(graph)
    for component in found:
        members = set(component)
        edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a] & members)]
        print(f"import cycle among {len(component)} modules:\n  " + "\n  ".join(edges))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "streaming"))
