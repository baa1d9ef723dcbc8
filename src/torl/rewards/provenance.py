"""Provenance checks: where a trajectory's final answer came from, and the tool uses that game a checker.

`check_provenance(trajectory)` decides, from the recorded cells, outputs and the model's text:

- `copied`: the final answer appears in a tool output the model saw before it wrote the answer (the tool
  computed it and the model copied it); otherwise, with tool calls, the answer is `derived`;
- `boxed_by_code`: a `\\boxed{}` is in a cell's source or in a tool output (code produced the box);
- `hardcoded`: a cell prints a literal that is the final answer (`print(413)`, `x = 413; print(x)`,
  `print(f"\\boxed{{413}}")`) instead of computing it;
- `repeated_cells`: cells identical to an earlier cell of the same trajectory;
- `echo_calls`: cells that compute nothing (no operator, no call but `print`) and print only words and
  numbers of the question.

The checks are syntactic heuristics (numbers compare by value, other answers as normalised text), cheap
enough to run on every training batch: the trainer logs them as `tir/*` metrics, `torl view` filters on
them, and `ProvenancePenalty` (in `torl.rewards.shaping`) turns them into optional shaping penalties.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

from torl.core import Trajectory
from torl.rewards.extract import extract_answer, formats_of, strip_code

__all__ = ["FLAGS", "Provenance", "check_provenance", "check_text", "provenance_rates", "record_provenance"]

FLAGS: tuple[str, ...] = ("copied", "boxed_by_code", "hardcoded", "repeated_cells", "echo_calls")
"""The checks, in the order metrics and reports show them."""


@dataclass(frozen=True)
class Provenance:
    """What the checks found in one trajectory."""

    answer: str | None
    """The final answer the checks looked for (None: the model gave none)."""
    tool_calls: int
    copied: bool = False
    boxed_by_code: bool = False
    hardcoded: bool = False
    repeated_cells: int = 0
    echo_calls: int = 0

    @property
    def derived(self) -> bool:
        """The model used the tool and gave an answer that no tool output showed it."""
        return self.tool_calls > 0 and self.answer is not None and not self.copied

    @property
    def suspicious(self) -> bool:
        """A sign of gaming the checker through the tool: a box from code, a hard-coded answer, a repeated
        or an echoing cell."""
        return self.boxed_by_code or self.hardcoded or self.repeated_cells > 0 or self.echo_calls > 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "derived": self.derived}


@dataclass
class _Cell:
    code: str
    shown: str
    """What the model saw: the rendered output (or the raw one when there is no rendering)."""
    output: str
    """What the code printed."""
    segment: int


def check_provenance(
    trajectory: Trajectory,
    *,
    answer: str | None = None,
    question: str | None = None,
    tir_format: Any = None,
) -> Provenance:
    """The provenance of a trajectory's final answer and its tool calls (see the module docstring).

    `answer`: default `metadata["pred"]` (what the correctness reward read), else the last `\\boxed{}` (or
    `<answer>`) of the model's prose. `question`: default `metadata["problem"]`, else the prompt text.
    """
    segments = [(s.kind, s.text) for s in trajectory.segments]
    cells = []
    for r in trajectory.tool_calls:
        seg = r.output_segment
        shown = segments[seg][1] if seg is not None and seg < len(segments) else r.result.output
        cells.append(_Cell(r.call.code, shown, r.result.output, seg if seg is not None else len(segments)))
    meta = trajectory.metadata
    if answer is None:
        answer = meta["pred"] if "pred" in meta else _final_answer(trajectory.model_text, tir_format)
    if question is None:
        question = meta.get("problem") or meta.get("question") or _prompt_text(trajectory.prompt)
    return _check(segments, cells, answer, question, tir_format)


def record_provenance(trajectory: Trajectory, **kwargs: Any) -> Provenance:
    """`check_provenance`, also written onto the trajectory as `metadata["provenance"]` (the trainer does
    this for every sample, evaluation for every scored one: the saved files carry the flags)."""
    p = check_provenance(trajectory, **kwargs)
    trajectory.metadata["provenance"] = p.to_dict()
    return p


def recorded_provenance(trajectory: Trajectory) -> Provenance:
    """The provenance recorded on a trajectory (`record_provenance`), else checked now."""
    d = trajectory.metadata.get("provenance")
    if isinstance(d, dict):
        try:
            return Provenance(**{k: d[k] for k in ("answer", "tool_calls", *FLAGS)})
        except (KeyError, TypeError):
            pass
    return check_provenance(trajectory)


def check_text(
    completion: str, *, answer: str | None = None, question: str | None = None, tir_format: Any = "torl"
) -> Provenance:
    """`check_provenance` for a rendered completion only (no trajectory): the format's tool output blocks
    are the outputs, the last code cell before each is its code."""
    fmt = formats_of(tir_format)[0]
    segments: list[tuple[str, str]] = []
    cells: list[_Cell] = []
    if fmt.env_fences:
        from torl.rollout.formats.base import _blocks

        last = 0
        for m in _blocks(fmt.env_fences).finditer(completion):
            model = completion[last : m.start() + len(fmt.env_fences[0])]
            segments.append(("model", model))
            calls = fmt.parse_calls(model, True)
            segments.append(("tool", m.group(1)))
            if calls:
                cells.append(_Cell(calls[-1].code, m.group(1), m.group(1), len(segments) - 1))
            last = m.end()
        segments.append(("model", completion[last:]))
    else:
        segments.append(("model", completion))
    model_text = "".join(t for k, t in segments if k == "model")
    if answer is None:
        answer = _final_answer(model_text, tir_format)
    return _check(segments, cells, answer, question or "", tir_format)


def provenance_rates(checks: Sequence[Provenance]) -> dict[str, float]:
    """Shares of trajectories with each flag (`repeated_cells`, `echo_calls`: with at least one), and
    `derived` among those that used the tool and answered. Empty input: {}."""
    n = len(checks)
    if not n:
        return {}
    out = {
        "answer_copied": sum(c.copied for c in checks) / n,
        "boxed_by_code": sum(c.boxed_by_code for c in checks) / n,
        "hardcoded_answer": sum(c.hardcoded for c in checks) / n,
        "repeated_cells": sum(c.repeated_cells > 0 for c in checks) / n,
        "echo_calls": sum(c.echo_calls > 0 for c in checks) / n,
    }
    used = [c for c in checks if c.tool_calls and c.answer is not None]
    out["answer_derived"] = sum(c.derived for c in used) / len(used) if used else 0.0
    return out


# ----- the checks -----


def _check(
    segments: list[tuple[str, str]], cells: list[_Cell], answer: str | None, question: str, tir_format: Any
) -> Provenance:
    answer = answer.strip() if isinstance(answer, str) and answer.strip() else None
    written = _answer_segment(segments, tir_format) if answer is not None else len(segments)
    seen: list[str] = []
    repeated = echo = 0
    copied = boxed = hard = False
    q_tokens = _tokens(question)
    for c in cells:
        norm = _norm_code(c.code)
        if norm and norm in seen:
            repeated += 1
        seen.append(norm)
        if "boxed" in c.code or "\\boxed" in c.shown or "\\boxed" in c.output:
            boxed = True
        tree = _parse(c.code)
        if answer is not None and c.segment < written and _appears(answer, c.shown):
            copied = True
        if (
            answer is not None
            and tree is not None
            and any(_same(lit, answer) for lit in _printed_literals(tree))
        ):
            hard = True
        out_tokens = _tokens(c.output)
        if tree is not None and not _computes(tree) and out_tokens and out_tokens <= q_tokens:
            echo += 1
    return Provenance(answer, len(cells), copied, boxed, hard, repeated, echo)


def _answer_segment(segments: list[tuple[str, str]], tir_format: Any) -> int:
    """Index of the model segment where the final answer is written (the last with a box in its prose)."""
    for i in range(len(segments) - 1, -1, -1):
        kind, text = segments[i]
        if kind == "model" and _final_answer(text, tir_format) is not None:
            return i
    return len(segments)


def _final_answer(model_text: str, tir_format: Any) -> str | None:
    prose = strip_code(model_text, tir_format)
    return extract_answer(prose, "boxed") or extract_answer(prose, "answer_tag")


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n".join(str(m.get("content") or "") for m in prompt if isinstance(m, dict))


_NUMBER = re.compile(
    r"(?<![\w.])[-+]?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?(?![\w.])|(?<![\w.])[-+]?\.\d+(?![\w.])"
)
_FRAC = re.compile(r"^\\[dt]?frac\{(-?\d+)\}\{(\d+)\}$")


def _norm(s: str) -> str:
    s = re.sub(r"\\left|\\right|\\!|\\,|\\ |\$|\s", "", s)
    return s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").rstrip(".")


def _number(s: str) -> Fraction | None:
    s = _norm(s).lstrip("+")
    m = _FRAC.match(s)
    try:
        if m:
            return Fraction(int(m.group(1)), int(m.group(2)))
        if re.fullmatch(r"-?\d+(?:,\d{3})*(?:\.\d+)?|-?\.\d+", s):
            return Fraction(s.replace(",", ""))
        if re.fullmatch(r"-?\d+/\d+", s):
            return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None
    return None


def _same(text: str, answer: str) -> bool:
    """`text` is the answer: the same number, the same normalised text, or a box holding it."""
    boxed = extract_answer(text)
    for t in (text, boxed) if boxed is not None else (text,):
        a, b = _number(t), _number(answer)
        if a is not None and b is not None:
            if a == b:
                return True
        elif _norm(t) == _norm(answer):
            return True
    return False


def _appears(answer: str, text: str) -> bool:
    """The answer occurs in `text`: as a number (by value), or as normalised text between non-word
    characters."""
    value = _number(answer)
    if value is not None:
        return any(_number(tok) == value for tok in _NUMBER.findall(text))
    a, t = _norm(answer), _norm(text)
    return bool(a) and re.search(rf"(?<![A-Za-z0-9]){re.escape(a)}(?![A-Za-z0-9])", t) is not None


def _tokens(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z]+|\d+(?:\.\d+)?", text.lower()))


def _norm_code(code: str) -> str:
    return "\n".join(line.rstrip() for line in code.strip().splitlines() if line.strip())


def _parse(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError):
        return None


_PASSIVE_CALLS = frozenset({"print", "str", "repr", "int", "float", "format"})


def _computes(tree: ast.AST) -> bool:
    """Whether a cell does any work: an operator, a comparison, a call other than printing, a loop."""
    for node in ast.walk(tree):
        if isinstance(
            node,
            (
                ast.BinOp,
                ast.BoolOp,
                ast.Compare,
                ast.For,
                ast.While,
                ast.comprehension,
                ast.Lambda,
                ast.Subscript,
                ast.AugAssign,
                ast.FunctionDef,
                ast.ClassDef,
            ),
        ):
            return True
        if isinstance(node, ast.UnaryOp) and not isinstance(node.operand, ast.Constant):
            return True
        if isinstance(node, ast.Call) and not (
            isinstance(node.func, ast.Name) and node.func.id in _PASSIVE_CALLS
        ):
            return True
    return False


def _literal(node: ast.AST, consts: dict[str, str]) -> str | None:
    """The text a printed expression shows when it is a literal (or a name bound to one), else None."""
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, (int, float, str))
        and not isinstance(node.value, bool)
    ):
        return str(node.value)
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
    ):
        inner = _literal(node.operand, consts)
        return None if inner is None else "-" + inner
    if isinstance(node, ast.Name):
        return consts.get(node.id)
    if isinstance(node, ast.JoinedStr):
        parts = []
        for v in node.values:
            if isinstance(v, ast.FormattedValue):
                if v.format_spec is not None:
                    return None
                v = v.value
            lit = _literal(v, consts)
            if lit is None:
                return None
            parts.append(lit)
        return "".join(parts)
    return None


def _printed_literals(tree: ast.Module) -> list[str]:
    """What the cell's `print` calls show when they print only literals (resolved through `x = <literal>`)."""
    consts: dict[str, str] = {}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            lit = _literal(node.value, {})
            if lit is not None:
                consts[node.targets[0].id] = lit
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "print"
            and node.args
        ):
            lits = [_literal(a, consts) for a in node.args]
            if all(x is not None for x in lits):
                out.append(" ".join(lits))  # type: ignore[arg-type]
                out += [x for x in lits if x is not None]
    return out
