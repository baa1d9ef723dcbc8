"""The ```python examples inside docstrings (shown on the API pages) stay in step with the API.

Docstring examples are sketches (they use names such as `model_path` or `...` that a reader fills in), so
they are not executed like the guide pages. Each one must still compile (top-level `await` allowed), and
every torl name it imports, and every attribute it uses on such a name, must exist.
"""

from __future__ import annotations

import ast
import importlib

import pytest
from docs_snippets import REPO, parse


def _docstring_blocks():
    griffe = pytest.importorskip("griffe")
    package = griffe.load("torl", search_paths=[str(REPO / "src")], resolve_aliases=False)
    seen: set[str] = set()
    blocks = []

    def walk(obj):
        if obj.is_alias or obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            blocks.extend((obj.path, b) for b in parse(obj.docstring.value, obj.path))
        for name, member in obj.members.items():
            if not name.startswith("_") or name == "__init__":
                walk(member)

    walk(package)
    return blocks


BLOCKS = _docstring_blocks() if importlib.util.find_spec("griffe") else []


def _check(where: str, code: str) -> list[str]:
    problems = []
    try:
        tree = compile(code, where, "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except SyntaxError as e:
        return [f"{where}: does not compile: {e}"]
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "torl":
            mod = importlib.import_module(node.module)
            for alias in node.names:
                if not hasattr(mod, alias.name):
                    problems.append(f"{where}: `from {node.module} import {alias.name}`: no such name")
                else:
                    bound[alias.asname or alias.name] = getattr(mod, alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound:
            if not hasattr(bound[node.value.id], node.attr):
                problems.append(f"{where}: `{node.value.id}.{node.attr}` does not exist")
    return problems


@pytest.mark.skipif(not BLOCKS, reason="griffe is not installed (pip install 'mkdocstrings[python]')")
def test_docstring_examples_match_the_api():
    problems = [p for where, b in BLOCKS for p in _check(f"{where} (line {b.line})", b.code)]
    assert not problems, "\n".join(problems)
    assert len(BLOCKS) >= 3
