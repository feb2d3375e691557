"""What a source file imports, read from its syntax tree (for the import-graph tests)."""

from __future__ import annotations

import ast


def imported_modules(source: str, package: str) -> set[str]:
    """Every module a source file imports, relative imports resolved against ``package``."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0]
                base = f"{parent}.{base}" if base else parent
            modules.add(base)
            modules.update(f"{base}.{alias.name}" for alias in node.names)
    return modules
