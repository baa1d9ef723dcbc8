"""The documentation site builds with warnings as errors, and every public package has an API page."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from docs_snippets import REPO

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SRC = REPO / "src" / "torl"


def _declares_all(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(
        isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
        for node in tree.body
    )


def public_modules() -> list[str]:
    """`torl`, its sub-packages and its top-level modules that declare `__all__` (from the source, no import)."""
    candidates = {"torl": SRC / "__init__.py"}
    for path in sorted(SRC.iterdir()):
        if path.name.startswith("_"):
            continue
        if path.is_dir() and (path / "__init__.py").exists():
            candidates[f"torl.{path.name}"] = path / "__init__.py"
        elif path.suffix == ".py":
            candidates[f"torl.{path.stem}"] = path
    return [name for name, path in candidates.items() if _declares_all(path)]


def test_every_public_package_has_an_api_page():
    pages = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "docs" / "api").glob("*.md"))
    nav = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    modules = public_modules()
    assert "torl" in modules and "torl.tools" in modules
    missing = [m for m in modules if f"::: {m}\n" not in pages]
    assert not missing, f"no API page (docs/api/*.md with '::: name') for {missing}"
    for page in (REPO / "docs" / "api").glob("*.md"):
        assert f"api/{page.name}" in nav, f"docs/api/{page.name} is not in the mkdocs.yml nav"


def test_strict_build(tmp_path):
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings_handlers") is None:
        msg = "mkdocs-material and mkdocstrings[python] are not installed (see docs/contributing.md)"
        if IN_CI:
            pytest.fail(f"CI=true but {msg}", pytrace=False)
        pytest.skip(msg)
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=300,
    )
    assert r.returncode == 0, f"mkdocs build --strict failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "api" / "tools" / "index.html").exists()
