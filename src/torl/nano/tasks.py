"""Synthetic arithmetic word problems and worked ToRL-format solutions for the nano run.

Small problems (one-digit operands) are safe to do by hand; large ones (3-5 digit operands) are not:
the tiny model cannot do long arithmetic, and the hand solutions in the pretraining data are noisy
there too (as a person's would be). A Python cell is exact at any size. So the right behaviour is
adaptive, as in ToRL: hand on small numbers is fine, large numbers need the tool.

Solutions follow ToRL's format exactly: a ```python cell, closed, then ```output written by the
model (the stop string); the system appends "\\n{stdout}\\n```\\n"; the answer goes in \\boxed{}.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from typing import Literal

from torl.rollout.formats import torl_prompt

Op = Literal["+", "-", "*"]
Size = Literal["small", "large"]
Style = Literal["hand", "tool", "buggy_tool"]
OPS: tuple[Op, ...] = ("+", "-", "*")

EOS = "<|endoftext|>"
NAMES = ("Ann", "Ben", "Cleo", "Dan", "Eva", "Finn", "Gus", "Hana", "Ivo", "Jo")
ITEMS = ("apples", "coins", "pens", "books", "stamps", "cards", "shells", "beads")

# One question form per operation; `{n}` a name, `{i}` an item, `{a}` and `{b}` the operands.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "+": (
        "{n} has {a} {i} and gets {b} more. How many {i} does {n} have now?",
        "A shop sold {a} {i} on Monday and {b} on Tuesday. How many {i} did it sell in all?",
    ),
    "-": (
        "{n} had {a} {i} and gave away {b}. How many {i} are left?",
        "A box holds {a} {i}. {n} takes out {b}. How many {i} remain in the box?",
    ),
    "*": (
        "{n} buys {a} bags with {b} {i} in each. How many {i} is that?",
        "There are {a} rows of {i} with {b} in each row. How many {i} are there?",
    ),
}


@dataclass(frozen=True)
class NanoProblem:
    """One synthetic word problem of the nano run: `text` for the prompt, the exact `answer`, and how it
    was made. (A benchmark problem of `torl eval` is `torl.eval.Problem`.)"""

    text: str
    answer: str
    a: int
    b: int
    op: Op
    size: Size

    @property
    def prompt(self) -> str:
        """ToRL's exact base-model prompt for this problem."""
        return torl_prompt(self.text)


@dataclass(frozen=True)
class TaskConfig:
    """Knobs of the generator and of the pretraining mix. Its `key()` names the cached model."""

    small_max: int = 9
    """Small operands are 2..small_max (one digit): safe by hand."""
    large_digits: tuple[int, int] = (3, 3)
    """Large operands have this many digits (inclusive range)."""
    tool_share: float = 0.3
    """Share of pretraining solutions that write a Python cell (the rest compute by hand)."""
    buggy_share: float = 0.2
    """Share of the tool solutions whose cell fails (a NameError); they fall back to hand arithmetic."""
    hand_error_rate: float = 0.7
    """Chance that a hand solution on large numbers has a wrong digit in the pretraining data."""
    large_share: float = 0.5
    """Share of large-number problems in the pretraining data."""
    ops: tuple[str, ...] = OPS

    def __post_init__(self) -> None:
        for name in ("tool_share", "buggy_share", "hand_error_rate", "large_share"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"TaskConfig.{name} must be in [0, 1], got {v}")
        lo, hi = self.large_digits
        if not 2 <= lo <= hi <= 9:
            raise ValueError(
                f"TaskConfig.large_digits must satisfy 2 <= lo <= hi <= 9, got {self.large_digits}"
            )
        if not 2 <= self.small_max <= 9:
            raise ValueError(f"TaskConfig.small_max must be in 2..9, got {self.small_max}")
        bad = set(self.ops) - set(OPS)
        if bad or not self.ops:
            raise ValueError(f"TaskConfig.ops must be a non-empty subset of {OPS}, got {self.ops}")

    def key(self) -> str:
        """A short stable hash of the config."""
        blob = json.dumps(asdict(self), sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _operand(rng: random.Random, size: Size, cfg: TaskConfig) -> int:
    if size == "small":
        return rng.randint(2, cfg.small_max)
    digits = rng.randint(*cfg.large_digits)
    return rng.randint(10 ** (digits - 1), 10**digits - 1)


def make_problem(rng: random.Random, size: Size, cfg: TaskConfig = TaskConfig()) -> NanoProblem:
    """Draw one problem of the given size."""
    op: Op = rng.choice(cfg.ops)  # type: ignore[assignment]
    a, b = _operand(rng, size, cfg), _operand(rng, size, cfg)
    if op == "-" and b > a:
        a, b = b, a
    value = {"+": a + b, "-": a - b, "*": a * b}[op]
    text = rng.choice(TEMPLATES[op]).format(n=rng.choice(NAMES), i=rng.choice(ITEMS), a=a, b=b)
    return NanoProblem(text=text, answer=str(value), a=a, b=b, op=op, size=size)


def make_problems(
    n: int, seed: int, *, large_share: float = 0.5, cfg: TaskConfig = TaskConfig()
) -> list[NanoProblem]:
    """`n` problems, a `large_share` of them large, from a seeded generator (same seed, same list)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    n_large = round(n * large_share)
    sizes: list[Size] = ["large"] * n_large + ["small"] * (n - n_large)
    rng.shuffle(sizes)
    return [make_problem(rng, s, cfg) for s in sizes]


def _noisy(value: int, rng: random.Random) -> int:
    """The value with one digit changed (a typical slip in long hand arithmetic)."""
    s = list(str(value))
    i = rng.randrange(len(s))
    s[i] = rng.choice([d for d in "0123456789" if d != s[i] and not (i == 0 and d == "0" and len(s) > 1)])
    return int("".join(s))


def _hand(p: NanoProblem, rng: random.Random, cfg: TaskConfig) -> str:
    value = int(p.answer)
    if p.size == "large" and rng.random() < cfg.hand_error_rate:
        value = _noisy(value, rng)
    return str(value)


def solution_segments(
    p: NanoProblem, style: Style, rng: random.Random, cfg: TaskConfig = TaskConfig()
) -> list[tuple[str, str]]:
    """A worked solution as ("model" | "tool", text) segments, in ToRL's format.

    hand: the arithmetic written out, then the boxed result (noisy on large numbers).
    tool: a Python cell that prints the result; after its output, the boxed result.
    buggy_tool: a cell that prints an undefined name; after the NameError, the hand result.

    Both styles copy the operands right after "x = ", so the copying the tiny model must learn is
    trained by every example, not only by the tool ones.
    """
    expr = f"x = {p.a} {p.op} {p.b}"
    if style == "hand":
        value = _hand(p, rng, cfg)
        return [("model", f"By hand, {expr} = {value}.\nThe answer is \\boxed{{{value}}}.{EOS}")]
    name = "y" if style == "buggy_tool" else "x"
    cell = f"With Python:\n```python\n{expr}\nprint({name})\n```\n```output"
    if style == "tool":
        return [
            ("model", cell),
            ("tool", f"\n{p.answer}\n```\n"),
            ("model", f"The answer is \\boxed{{{p.answer}}}.{EOS}"),
        ]
    if style == "buggy_tool":
        value = _hand(p, rng, cfg)
        return [
            ("model", cell),
            ("tool", "\nNameError: name 'y' is not defined\n```\n"),
            ("model", f"The code failed. By hand, {expr} = {value}.\nThe answer is \\boxed{{{value}}}.{EOS}"),
        ]
    raise ValueError(f"unknown style {style!r}; expected 'hand', 'tool' or 'buggy_tool'")


@dataclass(frozen=True)
class Example:
    """A pretraining example: the problem, the solution style and its segments."""

    problem: NanoProblem
    style: Style
    segments: list[tuple[str, str]]


def pretraining_examples(n: int, seed: int, cfg: TaskConfig = TaskConfig()) -> list[Example]:
    """`n` worked examples: mostly by hand, a `tool_share` with a Python cell (some of them buggy)."""
    rng = random.Random(seed)
    out = []
    for p in make_problems(n, seed + 1, large_share=cfg.large_share, cfg=cfg):
        r = rng.random()
        style: Style = "hand"
        if r < cfg.tool_share:
            style = "buggy_tool" if rng.random() < cfg.buggy_share else "tool"
        out.append(Example(p, style, solution_segments(p, style, rng, cfg)))
    return out
