"""Every ```python block of the docs runs (see docs/contributing.md for the convention)."""

from __future__ import annotations

import importlib.util
import os

import pytest
from docs_snippets import REPO, collect, parse, run_page

# The docs must keep at least this many executable blocks: the test cannot pass empty.
MIN_RUNNABLE_BLOCKS = 30

PAGES = collect()
PAGES_WITH_CODE = [p for p in PAGES if p.blocks]


def _param(page):
    marks = [pytest.mark.vllm] if page.needs_vllm else []
    return pytest.param(page, id=page.path, marks=marks)


@pytest.fixture
def snippet_env(request, tmp_path, monkeypatch):
    """The environment pages run in: a temporary cwd and tiny models, built only when the page uses them."""
    page = request.node.callspec.params["page"]
    text = "\n".join(b.code for b in page.runnable)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORL_REPO", str(REPO))
    if "TORL_TINY_MODEL" in text:
        monkeypatch.setenv("TORL_TINY_MODEL", request.getfixturevalue("tiny_model_path"))
    if "TORL_TIR_MODEL" in text:
        monkeypatch.setenv("TORL_TIR_MODEL", request.getfixturevalue("tir_model_path"))
    if "TORL_DATA_DIR" in text and not os.environ.get("TORL_DATA_DIR"):
        monkeypatch.setenv("TORL_DATA_DIR", str(request.getfixturevalue("data_dir")))
    return tmp_path


@pytest.mark.parametrize("page", [_param(p) for p in PAGES_WITH_CODE])
def test_page_snippets_run(page, snippet_env):
    if not page.runnable:
        pytest.skip(f"all {len(page.blocks)} python blocks of {page.path} are marked skip")
    if page.needs_vllm and importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed")
    run_page(page)


def test_enough_snippets_are_executed():
    runnable = sum(len(p.runnable) for p in PAGES)
    skipped = [b for p in PAGES for b in p.blocks if b.skipped]
    assert runnable >= MIN_RUNNABLE_BLOCKS, f"only {runnable} executable python blocks in the docs"
    for b in skipped:
        assert b.reason, f"{b.where}: a skipped snippet must say why: <!-- snippet: skip (reason) -->"


def test_parser_convention():
    text = (
        "intro\n\n```python\nx = 1\n```\n\n<!-- snippet: skip (needs a GPU) -->\n```python\nimport vllm\n```\n"
        "\n```bash\nmake nano\n```\n\n!!! note\n    ```python\n    y = x + 1\n    ```\n"
        "\n<!-- snippet: vllm -->\n\n```py\nawait f()\n```\n"
        "\n```python\n# snippet: skip (a server on another host)\nconnect()\n```\n"
    )
    blocks = parse(text, "t.md")
    assert [(b.code, b.directive, b.reason) for b in blocks] == [
        ("x = 1\n", None, None),
        ("import vllm\n", "skip", "needs a GPU"),
        ("y = x + 1\n", None, None),
        ("await f()\n", "vllm", ""),
        ("# snippet: skip (a server on another host)\nconnect()\n", "skip", "a server on another host"),
    ]
