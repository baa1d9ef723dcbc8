"""Extract and run the ```python blocks of the documentation (docs/**/*.md and README.md).

The convention (docs/contributing.md):

- every ```python block runs; blocks of one page share one namespace and run in order, each page
  starts fresh; top-level `await` works (all blocks of a page share one event loop);
- an HTML comment on the line right before the fence (or a `# snippet: ...` comment as the first
  line of the block) changes that:
  `<!-- snippet: skip (reason) -->` shows the block without running it (a GPU, a big model, a
  server on another host), `<!-- snippet: vllm -->` runs it only where vLLM is installed;
- pages run in a temporary working directory, with TORL_TINY_MODEL, TORL_TIR_MODEL (tiny models
  from `torl.testing`), TORL_REPO (the repository root) and TORL_DATA_DIR in the environment.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*snippet:\s*(?P<kind>[a-z-]+)\s*(?:\((?P<reason>.*)\))?\s*-->\s*$")
_COMMENT = re.compile(r"^\s*#\s*snippet:\s*(?P<kind>[a-z-]+)\s*(?:\((?P<reason>.*)\))?\s*$")
_PYTHON = {"python", "py", "python3"}


@dataclass
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    code: str
    directive: str | None = None  # "skip", "vllm" or None
    reason: str | None = None

    @property
    def skipped(self) -> bool:
        return self.directive == "skip"

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


@dataclass
class Page:
    path: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def runnable(self) -> list[Block]:
        return [b for b in self.blocks if not b.skipped]

    @property
    def needs_vllm(self) -> bool:
        return any(b.directive == "vllm" for b in self.runnable)


def doc_files() -> list[Path]:
    files = sorted((REPO / "docs").rglob("*.md"))
    readme = REPO / "README.md"
    return ([readme] if readme.exists() else []) + files


def parse(text: str, page: str) -> list[Block]:
    """The python blocks of one markdown text, with the snippet directive that precedes each."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m["indent"], m["fence"], m["info"].strip()
        lang = info.split()[0].lstrip("{.").rstrip("}") if info else ""
        j = i + 1
        body: list[str] = []
        while j < len(lines):
            c = _FENCE.match(lines[j])
            if c and c["fence"][0] == fence[0] and len(c["fence"]) >= len(fence) and not c["info"].strip():
                break
            body.append(lines[j])
            j += 1
        if lang in _PYTHON:
            prev = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
            first = next((line for line in body if line.strip()), "")
            d = _DIRECTIVE.match(prev) or _COMMENT.match(first)
            if d and d["kind"] not in ("skip", "vllm"):
                raise ValueError(f"{page}:{i}: unknown snippet directive {d['kind']!r} (use skip or vllm)")
            code = textwrap.dedent("\n".join(line[len(indent):] if line.startswith(indent) else line for line in body))
            blocks.append(
                Block(page, i + 1, code + "\n", d["kind"] if d else None, (d["reason"] or "").strip() if d else None)
            )
        i = j + 1
    return blocks


def collect() -> list[Page]:
    return [Page(str(p.relative_to(REPO)), parse(p.read_text(encoding="utf-8"), str(p.relative_to(REPO)))) for p in doc_files()]


def run_page(page: Page) -> None:
    """Run the runnable blocks of a page in order, in one namespace and one event loop."""
    ns: dict = {"__name__": "__snippet__"}
    loop = asyncio.new_event_loop()
    try:
        for block in page.runnable:
            try:
                code = compile(block.code, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
                if code.co_flags & inspect.CO_COROUTINE:
                    asyncio.set_event_loop(loop)
                    loop.run_until_complete(eval(code, ns))
                else:
                    exec(code, ns)
            except BaseException as e:
                if isinstance(e, KeyboardInterrupt):
                    raise
                raise AssertionError(f"snippet at {block.where} failed: {type(e).__name__}: {e}\n---\n{block.code}---") from e
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
