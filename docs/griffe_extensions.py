"""Griffe extension for the API pages: the project's docstring conventions that the Google-style parser
does not know, and TRL-style config fields.

- One entry for several parameters that share a description, `timeout_s, memory_mb: override the
  matching Limits fields.`, becomes one entry per name (each still checked against the signature).
- Dataclass fields declared TRL-style, `x: int = field(default=1, metadata={"help": "..."})`, show their
  help text as docstring and their default as value.
- A sentence written at the entry level of an `Args:` section that is not an entry (`Other arguments
  go to GRPOTrainer.`) ends the section and is kept as a paragraph after it.

Loaded by mkdocstrings (mkdocs.yml, `extensions:`); not part of the site.
"""

from __future__ import annotations

import ast
import re
from typing import Any

import griffe

_SECTIONS = {"args", "arguments", "parameters", "params", "keyword args", "keyword arguments", "other parameters"}
_HEADER = re.compile(r"^(?P<indent>\s*)(?P<title>[A-Za-z][A-Za-z ]*):\s*$")
_ENTRY = re.compile(r"^\*{0,2}\w+\s*(\([^)]*\))?\s*:(\s|$)")
_GROUP = re.compile(r"^(?P<names>\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)+)\s*:\s?(?P<rest>.*)$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def rewrite(doc: str) -> str:
    """The docstring with grouped parameter entries split and stray sentences moved out of Args."""
    lines = doc.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _HEADER.match(line)
        if not (m and m["title"].strip().lower() in _SECTIONS):
            out.append(line)
            i += 1
            continue
        out.append(line)
        head = len(m["indent"])
        i += 1
        item = None  # indentation of the section's entries
        while i < len(lines):
            cur = lines[i]
            if not cur.strip():
                # a blank line followed by a dedented line ends the section
                nxt = next((x for x in lines[i + 1 :] if x.strip()), None)
                if nxt is None or _indent(nxt) <= head:
                    break
                out.append(cur)
                i += 1
                continue
            ind = _indent(cur)
            if ind <= head:
                break
            if item is None:
                item = ind
            if ind > item:  # continuation of the current entry
                out.append(cur)
                i += 1
                continue
            text = cur.strip()
            g = _GROUP.match(text)
            if g:
                cont = []
                j = i + 1
                while j < len(lines) and lines[j].strip() and _indent(lines[j]) > item:
                    cont.append(lines[j])
                    j += 1
                for name in (n.strip() for n in g["names"].split(",")):
                    out.append(" " * ind + f"{name}: {g['rest']}".rstrip())
                    out.extend(cont)
                i = j
                continue
            if _ENTRY.match(text):
                out.append(cur)
                i += 1
                continue
            # not an entry: end the section here, keep the rest as a paragraph after it
            out.append("")
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > head):
                out.append(" " * head + lines[i].strip() if lines[i].strip() else "")
                i += 1
            break
    return "\n".join(out)


def field_help(value: str) -> tuple[str, str] | None:
    """(default, help) of a dataclass `field(default=..., metadata={"help": ...})` expression, else None."""
    try:
        call = ast.parse(value, mode="eval").body
    except SyntaxError:
        return None
    if not (isinstance(call, ast.Call) and getattr(call.func, "id", getattr(call.func, "attr", "")) == "field"):
        return None
    kw = {k.arg: k.value for k in call.keywords}
    meta = kw.get("metadata")
    if not isinstance(meta, ast.Dict):
        return None
    helps = [v for k, v in zip(meta.keys, meta.values) if isinstance(k, ast.Constant) and k.value == "help"]
    if not helps or not isinstance(helps[0], ast.Constant) or not isinstance(helps[0].value, str):
        return None
    if "default" in kw:
        default = ast.unparse(kw["default"])
    elif "default_factory" in kw:
        default = ast.unparse(kw["default_factory"]) + "()"
    else:
        return None
    return default, helps[0].value


class DocstringConventions(griffe.Extension):
    """Apply `rewrite` to every docstring before it is parsed; give dataclass fields declared with
    `field(metadata={"help": ...})` (the TRL config style) their help text as docstring and their
    default as value."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ":" in obj.docstring.value:
            obj.docstring.value = rewrite(obj.docstring.value)
        if obj.is_attribute and obj.docstring is None and obj.value is not None:
            found = field_help(str(obj.value))
            if found:
                obj.value = found[0]
                obj.docstring = griffe.Docstring(found[1], parent=obj)
