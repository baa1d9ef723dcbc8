"""A custom torl `Tool`: a safe arithmetic calculator that reads the model's Python cells.

It runs no Python at all: each cell is parsed with `ast` and only numbers, arithmetic, variables and a few
functions (`print`, `abs`, `round`, `min`, `max`, `sqrt`) are evaluated. Variables live in a session, so the
cells of one trajectory share them (the trainer opens one session per trajectory).

A tool only needs `name` and `async run(call) -> ToolResult`; it must not raise for a bad call.
"""

from __future__ import annotations

import ast
import math
import operator
import time
import uuid

from torl.core import Tool, ToolCall, ToolResult

_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_FUNCS = {"abs": abs, "round": round, "min": min, "max": max, "sqrt": math.sqrt}


class CalcError(Exception):
    """A cell the calculator cannot evaluate; the message is what the model sees."""


class CalculatorTool(Tool):
    """Evaluates arithmetic cells (`x = 12 * 34`, `print(x + 5)`); output is what `print` printed."""

    name = "calculator"
    description = "Evaluate arithmetic (numbers, + - * / ** %, variables) and print() the results."

    def __init__(self, max_exponent: int = 1000) -> None:
        self.max_exponent = max_exponent
        self._sessions: dict[str, dict[str, float]] = {}

    async def open_session(self) -> str:
        sid = uuid.uuid4().hex[:12]
        self._sessions[sid] = {}
        return sid

    async def close_session(self, session: str | None) -> None:
        self._sessions.pop(session or "", None)

    async def run(self, call: ToolCall) -> ToolResult:
        t0 = time.perf_counter()
        env = self._sessions.get(call.session or "", {}) if call.session else {}
        out: list[str] = []
        try:
            tree = ast.parse(call.code, mode="exec")
            for stmt in tree.body:
                self._exec(stmt, env, out)
        except SyntaxError as e:
            return ToolResult.failure("error", f"SyntaxError: {e.msg}", duration_s=time.perf_counter() - t0)
        except (CalcError, ArithmeticError, ValueError, TypeError) as e:
            msg = f"{type(e).__name__}: {e}" if not isinstance(e, CalcError) else str(e)
            return ToolResult.failure("error", msg, output="".join(out), duration_s=time.perf_counter() - t0)
        return ToolResult(output="".join(out), duration_s=time.perf_counter() - t0)

    def _exec(self, stmt: ast.stmt, env: dict, out: list[str]) -> None:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            env[stmt.targets[0].id] = self._eval(stmt.value, env)
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and _is_name(stmt.value.func, "print"):
            out.append(" ".join(_fmt(self._eval(a, env)) for a in stmt.value.args) + "\n")
        elif isinstance(stmt, ast.Expr):
            self._eval(stmt.value, env)
        else:
            raise CalcError(f"CalcError: unsupported statement {type(stmt).__name__}")

    def _eval(self, node: ast.AST, env: dict) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in env:
                raise CalcError(f"NameError: name '{node.id}' is not defined")
            return env[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            left, right = self._eval(node.left, env), self._eval(node.right, env)
            if isinstance(node.op, ast.Pow) and abs(right) > self.max_exponent:
                raise CalcError(f"CalcError: exponent {right} is too large")
            return _BINOPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](self._eval(node.operand, env))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS:
            return _FUNCS[node.func.id](*(self._eval(a, env) for a in node.args))
        raise CalcError(f"CalcError: unsupported expression {ast.unparse(node)!r}")


def _is_name(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _fmt(v: float) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() and abs(v) < 1e16 else str(v)
