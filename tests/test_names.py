"""One name per thing: no two module-level classes, functions or public constants of mptop share a name.

Two exceptions, both conventions rather than concepts: each command module (``mptop.commands.<name>``)
has ``add_arguments`` and ``run`` (the interface ``mptop.cli`` calls), and a module run with
``python -m`` has ``main``.  Type variables (``T``) are local by nature and not counted.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import mptop
from mptop.cli import COMMANDS

SRC = Path(mptop.__file__).parent
COMMAND_MODULES = {f"mptop.commands.{module}" for module, _ in COMMANDS.values()}
COMMAND_INTERFACE = {"add_arguments", "run"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_typevar(value: ast.expr | None) -> bool:
    return isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "TypeVar"


def top_level_names(tree: ast.Module) -> list[str]:
    """Classes and functions (private ones too) and public UPPER_CASE constants defined at module level."""
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and not is_typevar(node.value):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                elts = target.elts if isinstance(target, ast.Tuple) else [target]
                names += [e.id for e in elts if isinstance(e, ast.Name) and e.id.isupper() and not e.id.startswith("_")]
    return names


def definitions() -> dict[str, list[str]]:
    """name -> the modules that define it."""
    where: dict[str, list[str]] = defaultdict(list)
    for path in sorted(SRC.rglob("*.py")):
        module = module_name(path)
        for name in top_level_names(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if name == "main" or (name in COMMAND_INTERFACE and module in COMMAND_MODULES):
                continue
            where[name].append(module)
    return where


def test_the_walk_sees_the_package() -> None:
    where = definitions()
    assert where["History"] == ["mptop.core.history"]
    assert where["NdjsonOut"] == ["mptop.sinks"]
    assert len(where) > 500


def test_no_two_definitions_share_a_name() -> None:
    duplicates = {name: modules for name, modules in definitions().items() if len(modules) > 1}
    assert duplicates == {}
