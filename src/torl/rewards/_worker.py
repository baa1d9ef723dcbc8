"""A `VerifyPool` worker process: receive a job, run it in the main thread, send the result.

Started as `python -m torl.rewards._worker FD MEMORY_MB`, FD being its end of a socket pair.
"""

from __future__ import annotations

import os
import resource
import signal
import time
from collections.abc import Callable
from typing import Any

from torl.rewards.verify import Verdict, check_pair


def _check(
    pred: str,
    ref: str,
    timeout_s: float | None,
    quick: bool,
    question: str | None,
    rel_tol: float | None,
    scorer: str = "default",
) -> Verdict:
    return check_pair(pred, ref, timeout_s, quick, question=question, rel_tol=rel_tol, scorer=scorer)


def _sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


def _exit(code: int) -> None:
    os._exit(code)


TASKS: dict[str, Callable[..., Any]] = {
    "check": _check,
    "ping": lambda: os.getpid(),
    # fault injection for tests of the pool: a hang and a crash
    "sleep": _sleep,
    "exit": _exit,
}


_WARMUP = [
    ("0.5", r"\frac{1}{2}"),
    ("x=5", "5"),
    ("[0, 1)", r"(0, 1]"),
    (r"\{1, 2\}", "2, 1"),
    (r"(3, \frac{\pi}{2})", r"\left( 3, \frac{\pi}{2} \right)"),
    (r"2\sqrt{3}", r"\sqrt{12}"),
    ("x^2+2x+1", "(x+1)^2"),
    (r"\begin{pmatrix}1\\2\end{pmatrix}", r"\begin{pmatrix}1\\3\end{pmatrix}"),
    (r"5\text{ cm}", r"50\%"),
    ("-48g", "-48*g"),  # the parse that keeps letters
]
_WARMUP_ORIGINALS = [("3\\sqrt{2}", "\\sqrt{18}", "torl"), ("The answer is 7", "7", "zero_tir")]


def main(conn: Any, memory_mb: int | None) -> None:
    """Serve jobs `(job_id, task, args)` from `conn` until it closes; reply `(job_id, ok, value)`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent; we exit when it closes conn
    if memory_mb:
        limit = memory_mb * 1024 * 1024
        try:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ValueError, OSError):
            pass
    for pred, ref in _WARMUP:  # load math-verify's and sympy's lazy parts before taking jobs
        check_pair(pred, ref, None, quick=False)
    for pred, ref, scorer in _WARMUP_ORIGINALS:
        check_pair(pred, ref, None, scorer=scorer)
    try:
        conn.send(("ready", os.getpid()))
    except (EOFError, OSError):
        return
    while True:
        try:
            job_id, task, args = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        try:
            value = TASKS[task](*args)
            reply = (job_id, True, value)
        except MemoryError:
            reply = (job_id, True, Verdict(None, "error", "MemoryError: verification hit the memory limit"))
        except Exception as e:  # noqa: BLE001 - reported to the parent
            reply = (job_id, False, f"{type(e).__name__}: {e}"[:300])
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return


if __name__ == "__main__":
    import sys
    from multiprocessing.connection import Connection

    main(Connection(int(sys.argv[1])), int(sys.argv[2]) or None)
