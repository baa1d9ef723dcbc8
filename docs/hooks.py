"""MkDocs hooks (mkdocs.yml, `hooks:`): `<!-- torl-help: SUBCOMMAND -->` in a page becomes the current
`torl SUBCOMMAND --help` text, taken from the CLI's own parser at build time, so the CLI reference
cannot drift from the code."""

from __future__ import annotations

import os
import re

_MARKER = re.compile(r"^<!-- torl-help:(?P<cmd>[a-z ]*)-->$", re.MULTILINE)


def _help(words: list[str]) -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal width
    from torl.cli import build_parser

    parser = build_parser()
    for w in words:
        sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        parser = sub.choices[w]
    return parser.format_help().rstrip()


def on_page_markdown(markdown: str, page, config, files) -> str:
    def repl(m: re.Match) -> str:
        return "```text\n" + _help(m["cmd"].split()) + "\n```"

    return _MARKER.sub(repl, markdown)
