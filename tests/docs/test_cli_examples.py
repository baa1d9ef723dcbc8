"""Every `torl ...` command shown in a shell block of the docs is accepted by the CLI's parser (nothing runs)."""

from __future__ import annotations

import re
import shlex

import pytest
from docs_snippets import REPO, doc_files

_FENCE = re.compile(r"^\s*(`{3,})\s*(bash|sh|shell|console)\s*$")


def shell_commands() -> list[tuple[str, list[str]]]:
    out = []
    for path in doc_files():
        lines = path.read_text(encoding="utf-8").splitlines()
        i = 0
        while i < len(lines):
            m = _FENCE.match(lines[i])
            if not m:
                i += 1
                continue
            j = i + 1
            buf = ""
            while j < len(lines) and lines[j].strip() != m[1]:
                line = lines[j].strip()
                if line.startswith("$ "):
                    line = line[2:]
                buf += line[:-1] + " " if line.endswith("\\") else line
                if not line.endswith("\\"):
                    argv = shlex.split(buf, comments=True) if buf else []
                    if argv and argv[0] == "torl":
                        out.append((f"{path.relative_to(REPO)}:{j + 1}", argv[1:]))
                    buf = ""
                j += 1
            i = j + 1
    return out


COMMANDS = shell_commands()


@pytest.mark.parametrize("where,argv", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_cli_example_parses(where, argv):
    from torl.cli import build_parser

    try:
        build_parser().parse_args(argv)
    except SystemExit as e:
        pytest.fail(f"{where}: `torl {' '.join(argv)}` is rejected by the CLI (exit {e.code})")


def test_docs_show_cli_commands():
    assert len(COMMANDS) >= 5, COMMANDS
