"""Sandbox speed on a model-like mix of cells, against baselines measured in the same run.

The mix (`make_cells`, seeded): 60% sympy, 20% numpy and plain loops, 10% errors, 5% large output,
5% infinite loops. Infinite loops get a 1 s wall-clock limit (`--loop-timeout`), every other cell 10 s.

Executors, all fed the same cells:
  - torl `LocalSandbox` and `DockerSandbox`: warm workers, a fresh forked process per cell;
  - `unisolated pool`: the peers' design (the executors shipped with ToRL and Qwen2.5-Math): long-lived
    worker processes forked from this process (numpy and sympy imported) that `exec` every cell in
    themselves, output captured in memory; a cell past its limit gets its worker killed and replaced.
    No isolation: a cell sees what earlier cells left in its worker;
  - `fresh python -c` and `docker exec` per cell (a stratified sample of the cells, `--baseline-cells`).

Phases (each on its own cells of the same mix, so no executor is helped by having seen them):
  1. latency: one caller, cells one after another, infinite loops left out: p50/p90/p99 per cell, the
     p50 of the sympy cells, and the CPU time per cell of all the executor's processes (and this one's);
  2. 8 callers: cells/s, and p50/p90/p99 of what each caller waited per cell;
  3. batch: all cells in one call (`execute_many` for torl; a map over the pool for the baseline).
Phases 2 and 3 run twice, the executors in mirrored order (A B C, then C B A), and are pooled, so that a
drift of other load on the machine weighs on every executor alike. The pool runs with torl's number of
workers and with the peers' (one per core). Outputs of the cells that finish are compared between
executors that run the same Python and packages.

    python benchmarks/bench_sandbox.py [--cells 200] [--baseline-cells 40] [--workers N] [--skip-docker]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core per worker, as in torl
    os.environ.setdefault(_var, "1")

import numpy  # noqa: F401  (the unisolated pool's workers are forked from here, with these imported)
import sympy  # noqa: F401

from torl.tools import DockerSandbox, Limits, LocalSandbox, docker_available
from torl.tools.docker_sandbox import DEFAULT_IMAGE
from torl.tools.sandbox import default_workers, truncate_middle

MAX_OUTPUT = 65536
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int, children: bool = True) -> float:
    """CPU seconds of a process (and of the children it reaped), from /proc; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11 : 15 if children else 13]) / TICK


def container_cpu(cid: str) -> float:
    """CPU seconds used by everything in a container (its cgroup, v1 or v2); 0 if not found."""
    for path, scale in (
        (f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage", 1e-9),
        (f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat", 1e-6),
    ):
        try:
            with open(path) as f:
                text = f.read().split()
        except OSError:
            continue
        return int(text[0] if len(text) == 1 else text[text.index("usage_usec") + 1]) * scale
    return 0.0


def own_cpu() -> float:
    """CPU seconds of this process (the callers, the asyncio host side of every executor)."""
    t = os.times()
    return t.user + t.system


# ---------------------------------------------------------------------------------------------
# The cells


@dataclass(frozen=True)
class Cell:
    kind: str  # sympy | numpy | error | output | loop
    code: str
    timeout_s: float = 10.0


def _sympy(r: random.Random) -> str:
    a, b, c = r.randint(2, 9), r.randint(2, 30), r.randint(1, 12)
    n = r.randint(10**5, 10**9)
    return r.choice(
        [
            f"from sympy import symbols, solve\nx = symbols('x')\nprint(solve(x**2 - {a + c}*x + {a * c}, x))",
            f"import sympy as sp\nx = sp.symbols('x')\nprint(sp.factor(x**3 - {a}*x**2 - {c}*x + {a * c}))",
            f"from sympy import *\nx, y = symbols('x y')\nprint(simplify((x**2 - {a * a})/(x - {a})))",
            (
                f"from sympy import factorint, isprime, divisors\nprint(factorint({n}), isprime({n}), "
                f"sum(divisors({b * 12})))"
            ),
            f"from sympy import Rational\nprint(sum(Rational(1, k * (k + 1)) for k in range(1, {b + 10})))",
            f"import sympy as sp\nx = sp.Symbol('x')\nprint(sp.expand((x + {a})**{c % 6 + 2}))",
            (
                f"from sympy import Matrix\nM = Matrix([[{a}, 1, 0], [2, {c}, 1], [0, 3, {b}]])\n"
                "print(M.det(), M.inv()[0, 0])"
            ),
            (
                f"from sympy import symbols, Eq, solve\nx, y = symbols('x y')\n"
                f"print(solve([Eq(x + y, {b}), Eq(x - y, {a})], [x, y]))"
            ),
            f"import sympy as sp\nn = sp.symbols('n', integer=True)\nprint(sp.summation(n**2, (n, 1, {b})))",
            f"import sympy as sp\nprint(sp.gcd({a * b * 6}, {b * c * 4}), sp.lcm({a}, {b}), sp.totient({n % 10000 + 2}))",
            f"from sympy import sqrt, pi, N\nprint(sqrt({a * a * b}), N(pi, {c + 10}))",
            f"from sympy import binomial, Rational\nprint(binomial({b + 10}, {c}), Rational({a}, {b}) + Rational(1, {c}))",
            f"import sympy as sp\nx = sp.symbols('x')\nprint(sp.diff(sp.sin(x) * x**{c}, x))",
            f"import sympy as sp\nx = sp.symbols('x')\nprint(sp.integrate(x**{c % 4 + 1} + {a}*x, (x, 0, {b})))",
            f"import sympy as sp\nx = sp.symbols('x', real=True)\nprint(sp.solve(sp.Abs(x - {a}) - {c}, x))",
        ]
    )


def _numpy(r: random.Random) -> str:
    n, s = r.randint(100, 400), r.randint(0, 99)
    return r.choice(
        [
            f"import numpy as np\na = np.arange(1, {n * 100})\nprint(a.sum(), (a**2).mean())",
            (
                f"import numpy as np\nA = np.random.default_rng({s}).random((40, 40))\n"
                "print(round(float(np.linalg.slogdet(A @ A.T + np.eye(40))[1]), 6))"
            ),
            (
                f"count = 0\nfor a in range(1, {n}):\n    for b in range(a, {n}):\n"
                "        if (a * a + b * b) % 7 == 0:\n            count += 1\nprint(count)"
            ),
            "from itertools import permutations\nprint(sum(1 for p in permutations(range(7)) if p[0] < p[-1]))",
            f"total = 0\nfor i in range(1, {n * 200}):\n    total += i % 7\nprint(total)",
            f"import math\nprint(sum(math.comb({n % 30 + 10}, k) for k in range(0, {n % 30 + 11}, 2)))",
            f"import numpy as np\nv = np.linspace(0, 1, {n * 10})\nprint(round(float(np.sum(v**2) / len(v)), 6))",
        ]
    )


def _error(r: random.Random) -> str:
    return r.choice(
        [
            "print(undefined_name + 1)",
            "x = 1 / 0",
            "def f(:\n    pass",
            "import sympy as sp\nx = sp.symbols('x')\nprint(sp.solve(x**2 - 1, y))",
            "import numpy as np\nprint(np.zeros((2, 3)) @ np.zeros((2, 3)))",
            "lst = [1, 2, 3]\nprint(lst[10])",
            "import not_a_module_xyz",
            "print(int('abc'))",
        ]
    )


def _output(r: random.Random) -> str:
    n = r.randint(20000, 40000)
    return r.choice([f"for i in range({n}):\n    print(i, i * i)", f"print(list(range({n * 3})))"])


def _loop(r: random.Random) -> str:
    return r.choice(
        [
            "while True:\n    pass",
            "x = 0\nwhile True:\n    x += 1",
            "n = 27\nwhile n != 0:\n    n = n // 2 + 1",
        ]
    )


MIX = {"sympy": (0.6, _sympy), "numpy": (0.2, _numpy), "error": (0.1, _error), "output": (0.05, _output)}


def make_cells(n: int = 200, seed: int = 0, loop_timeout_s: float = 1.0) -> list[Cell]:
    """`n` model-like cells in the issue's proportions, shuffled; the rest after rounding are loops."""
    r = random.Random(seed)
    counts = {kind: round(n * share) for kind, (share, _) in MIX.items()}
    counts["loop"] = n - sum(counts.values())
    cells = []
    for kind, count in counts.items():
        gen = MIX[kind][1] if kind in MIX else _loop
        cells += [Cell(kind, gen(r), loop_timeout_s if kind == "loop" else 10.0) for _ in range(count)]
    r.shuffle(cells)
    return cells


def sample(cells: list[Cell], k: int) -> list[Cell]:
    """`k` of `cells` in the same proportions (the first of each kind), in their order."""
    if k >= len(cells):
        return cells
    keep = set()
    for kind in dict.fromkeys(c.kind for c in cells):
        idx = [i for i, c in enumerate(cells) if c.kind == kind]
        keep.update(idx[: max(1, round(k * len(idx) / len(cells)))])
    return [c for i, c in enumerate(cells) if i in keep]


# ---------------------------------------------------------------------------------------------
# Executors: run(cell) -> (status, output)


class Torl:
    batch = True

    def __init__(self, name: str, sandbox) -> None:
        self.name, self.sb = name, sandbox

    @staticmethod
    def _limits(cell: Cell) -> Limits:
        return Limits(timeout_s=cell.timeout_s, max_output=MAX_OUTPUT)

    async def start(self) -> None:
        await self.sb.start()
        self.workers = self.sb.workers

    async def close(self) -> None:
        await self.sb.close()

    async def run(self, cell: Cell) -> tuple[str, str]:
        r = await self.sb.execute(cell.code, limits=self._limits(cell))
        return r.status, r.output

    async def run_many(self, cells: list[Cell]) -> list[tuple[str, str]]:
        rs = await self.sb.execute_many([c.code for c in cells], limits=[self._limits(c) for c in cells])
        return [(r.status, r.output) for r in rs]

    def cpu(self) -> float:
        """Workers and their cells (a local worker reaps its cells; a container counts everything)."""
        if isinstance(self.sb, DockerSandbox):
            return sum(container_cpu(c) for c in self.sb.container_ids())
        return sum(proc_cpu(s.conn.worker_pid) for s in self.sb._slots if s.conn is not None)


def _pool_worker(conn) -> None:
    """An unisolated worker: exec each cell here, in a fresh globals dict, output captured in memory."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    while True:
        try:
            code = conn.recv()
        except (EOFError, OSError):
            return
        buf, status = io.StringIO(), "ok"
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            try:
                exec(compile(code, "<cell>", "exec"), {"__name__": "__main__"})  # noqa: S102
            except SystemExit as e:
                status = "ok" if e.code in (None, 0) else "error"
            except BaseException:  # noqa: BLE001
                status = "error"
                traceback.print_exc()
        conn.send((status, truncate_middle(buf.getvalue(), MAX_OUTPUT)[0]))


class UnisolatedPool:
    """The peers' executor: N long-lived processes that exec cells; a timeout kills and replaces one."""

    name = "unisolated pool"
    batch = True

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.ctx = mp.get_context("fork")
        self.free: asyncio.Queue | None = None
        self.fifo: asyncio.Lock | None = None
        self.respawns = 0
        self.live: set[int] = set()
        self.dead_cpu = 0.0

    def _spawn(self):
        parent, child = self.ctx.Pipe()
        p = self.ctx.Process(target=_pool_worker, args=(child,), daemon=True)
        p.start()
        child.close()
        self.live.add(p.pid)
        return p, parent

    def _kill(self, p) -> None:
        self.dead_cpu += proc_cpu(p.pid)
        self.live.discard(p.pid)
        p.kill()
        p.join()

    def cpu(self) -> float:
        return self.dead_cpu + sum(proc_cpu(pid) for pid in self.live)

    async def start(self) -> None:
        self.free, self.fifo = asyncio.Queue(), asyncio.Lock()
        for _ in range(self.workers):
            self.free.put_nowait(self._spawn())

    async def close(self) -> None:
        assert self.free is not None
        while not self.free.empty():
            p, conn = self.free.get_nowait()
            conn.close()
            self._kill(p)

    async def run(self, cell: Cell) -> tuple[str, str]:
        assert self.free is not None and self.fifo is not None
        async with self.fifo:  # callers get workers in the order they asked (as pebble's task queue)
            p, conn = await self.free.get()
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        loop.add_reader(conn.fileno(), lambda: ready.done() or ready.set_result(None))
        lost = False
        try:
            conn.send(cell.code)
            await asyncio.wait_for(ready, cell.timeout_s)
            result = conn.recv()
        except TimeoutError:
            result = ("timeout", "")
        except (EOFError, OSError):  # the cell took its worker down
            result, lost = ("error", ""), True
        finally:
            loop.remove_reader(conn.fileno())
        if result[0] == "timeout" or lost:  # the peers' way: kill the worker, start a new one
            self._kill(p)
            conn.close()
            self.respawns += 1
            p, conn = self._spawn()
        self.free.put_nowait((p, conn))
        return result

    async def run_many(self, cells: list[Cell]) -> list[tuple[str, str]]:
        return list(await asyncio.gather(*(self.run(c) for c in cells)))


class PerCellProcess:
    """A new interpreter per cell: `python -c` here, or `python3 -c` through `docker exec`."""

    batch = False

    def __init__(self, name: str, prefix: list[str], python: str, container: str | None = None) -> None:
        self.name, self.prefix, self.python, self.container = name, prefix, python, container
        self.workers = 8

    def cpu(self) -> float:
        """The interpreters (or docker CLIs) this process started, and the container's processes."""
        t = os.times()
        return t.children_user + t.children_system + (container_cpu(self.container) if self.container else 0)

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def run(self, cell: Cell) -> tuple[str, str]:
        # `timeout -s KILL` inside: killing a `docker exec` client leaves its process running.
        cmd = [*self.prefix, "timeout", "-s", "KILL", f"{cell.timeout_s:g}", self.python, "-c", cell.code]
        p = await asyncio.create_subprocess_exec(
            *cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        out, _ = await p.communicate()
        text = truncate_middle(out.decode(errors="replace"), MAX_OUTPUT)[0]
        if p.returncode in (-9, 137, 124):
            return "timeout", text
        return ("ok" if p.returncode == 0 else "error"), text

    async def run_many(self, cells: list[Cell]) -> list[tuple[str, str]]:
        return (await callers(self, cells, 8))[0]


# ---------------------------------------------------------------------------------------------
# Phases


@dataclass
class Report:
    name: str
    workers: int = 0
    seq: list[float] | None = None
    seq_sympy: list[float] | None = None
    cpu_ms: float = 0.0
    callers_rate: float = 0.0
    callers_lat: list[float] | None = None
    batch_rate: float | None = None
    outputs: dict | None = None
    mismatches: int = 0
    compared: int = 0


async def sequential(ex, cells: list[Cell]) -> tuple[list[float], list[float], dict]:
    lat, sym, outs = [], [], {}
    for c in cells:
        t = time.perf_counter()
        outs[("seq", c.code)] = await ex.run(c)
        lat.append(time.perf_counter() - t)
        if c.kind == "sympy":
            sym.append(lat[-1])
    return lat, sym, outs


async def callers(ex, cells: list[Cell], n: int) -> tuple[list, float, list[float]]:
    results: list = [None] * len(cells)
    lat: list[float] = []
    it = iter(enumerate(cells))

    async def caller() -> None:
        for i, c in it:
            t = time.perf_counter()
            results[i] = await ex.run(c)
            lat.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(n)))
    return results, len(cells) / (time.perf_counter() - t0), lat


async def measure(executors: list, cells: dict[str, list[Cell]], warm: list[Cell]) -> list[Report]:
    """Every phase for every executor. The throughput phases run twice, in mirrored order (A B C, then
    C B A) on new cells, and are pooled: a drift of the machine's other load weighs on all alike."""
    reps = [Report(ex.name) for ex in executors]
    for ex, rep in zip(executors, reps, strict=True):
        await ex.start()
        rep.workers = ex.workers
        await ex.run_many(warm)  # not timed: every executor starts from warm workers
        rep.outputs, rep.callers_lat = {}, []
    try:
        for ex, rep in zip(executors, reps, strict=True):
            seq_cells = [c for c in cells["latency"] if c.kind != "loop"]
            cpu0 = ex.cpu() + own_cpu()
            rep.seq, rep.seq_sympy, outs = await sequential(ex, seq_cells)
            rep.cpu_ms = (ex.cpu() + own_cpu() - cpu0) / len(seq_cells) * 1000
            rep.outputs.update(outs)
        spent = {id(r): [0, 0.0, 0, 0.0] for r in reps}  # cells and seconds: 8 callers, batch
        print(f"  1 caller: done ({', '.join(r.name for r in reps)})", flush=True)
        for n, order in enumerate((list(zip(executors, reps)), list(zip(executors, reps))[::-1])):
            for ex, rep in order:
                todo = cells[f"callers{n}"]
                res, rate, lat = await callers(ex, todo, 8)
                rep.callers_lat += lat
                spent[id(rep)][:2] = [spent[id(rep)][0] + len(todo), spent[id(rep)][1] + len(todo) / rate]
                rep.outputs.update({(f"callers{n}", c.code): r for c, r in zip(todo, res, strict=True)})
            for ex, rep in order:
                if ex.batch:
                    todo = cells[f"batch{n}"]
                    t = time.perf_counter()
                    res = await ex.run_many(todo)
                    spent[id(rep)][2:] = [
                        spent[id(rep)][2] + len(todo),
                        spent[id(rep)][3] + time.perf_counter() - t,
                    ]
                    rep.outputs.update({(f"batch{n}", c.code): r for c, r in zip(todo, res, strict=True)})
            print(f"  8 callers and batch, round {n + 1}: done", flush=True)
        for rep in reps:
            k, t, kb, tb = spent[id(rep)]
            rep.callers_rate = k / t
            rep.batch_rate = kb / tb if kb else None
    finally:
        for ex in executors:
            await ex.close()
    return reps


def compare(rep: Report, ref: Report) -> None:
    """Count the cells that ran fine in both whose output differs from the reference's."""
    assert rep.outputs is not None and ref.outputs is not None
    for key, (status, out) in rep.outputs.items():
        other = ref.outputs.get(key)
        if other is None or status != "ok" or other[0] != "ok":
            continue
        rep.compared += 1
        rep.mismatches += out != other[1]


def pct(xs: list[float] | None, q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000


def table(reports: list[Report]) -> None:
    head = (
        f"{'executor':<26}{'workers':>8} | {'1 caller p50':>12}{'p90':>8}{'p99':>8}{'sympy p50':>10}{'CPU/cell':>9} | "
        f"{'8 callers':>10}{'p50':>8}{'p90':>8}{'p99':>8} | {'batch':>8} | {'same output':>12}"
    )
    print(head)
    print("-" * len(head))
    for r in reports:
        batch = f"{r.batch_rate:8.1f}" if r.batch_rate else f"{'-':>8}"
        same = f"{r.compared - r.mismatches}/{r.compared}" if r.compared else "-"
        print(
            f"{r.name:<26}{r.workers:>8} | {pct(r.seq, 0.5):10.1f}ms{pct(r.seq, 0.9):8.1f}{pct(r.seq, 0.99):8.1f}"
            f"{pct(r.seq_sympy, 0.5):10.1f}{r.cpu_ms:7.1f}ms | {r.callers_rate:6.1f}/s {pct(r.callers_lat, 0.5):8.1f}"
            f"{pct(r.callers_lat, 0.9):8.1f}{pct(r.callers_lat, 0.99):8.1f} | {batch} | {same:>12}"
        )
    print(
        "(latencies in ms; throughput in cells/s; CPU/cell: CPU time of all the executor's processes and of\n"
        " this one per cell of the 1-caller phase (no infinite loops), which other load does not change much)"
    )


def ratios(t: Report | None, b: Report | None, label: str = "") -> None:
    if not t or not b:
        return
    parts = [f"8 callers {t.callers_rate / b.callers_rate:.2f}x"]
    if t.batch_rate and b.batch_rate:
        parts.append(f"batch {t.batch_rate / b.batch_rate:.2f}x")
    elif t.batch_rate:
        parts.append(f"batch vs its 8 callers {t.batch_rate / b.callers_rate:.2f}x")
    parts.append(f"sympy p50 {pct(b.seq_sympy, 0.5) / pct(t.seq_sympy, 0.5):.2f}x")
    print(f"  {t.name} vs {b.name}{label}: " + ", ".join(parts))


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=200)
    ap.add_argument("--baseline-cells", type=int, default=40, help="cells for the per-cell-process baselines")
    ap.add_argument("--workers", type=int, default=None, help="workers of torl and of the same-size pool")
    ap.add_argument("--loop-timeout", type=float, default=1.0)
    ap.add_argument("--skip-docker", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated: pool,local,docker,fresh,exec")
    args = ap.parse_args()
    workers = args.workers or default_workers()
    peers = os.cpu_count() or 1  # the peers' executors size their pool by os.cpu_count()
    only = set(args.only.split(",")) if args.only else {"pool", "local", "docker", "fresh", "exec"}
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    print(
        f"host: {os.cpu_count()} cores, python {sys.version.split()[0]} at {sys.prefix}, checkout {here}\n"
        f"cells: {args.cells} per phase (60% sympy, 20% numpy/loops, 10% errors, 5% large output, "
        f"5% infinite loops with a {args.loop_timeout:g} s limit); torl workers: {workers}",
        flush=True,
    )
    phases = (("latency", 1), ("callers0", 2), ("batch0", 3), ("callers1", 4), ("batch1", 5))
    cells = {phase: make_cells(args.cells, seed, args.loop_timeout) for phase, seed in phases}
    small = {k: sample(v, args.baseline_cells) for k, v in cells.items()}
    warm = [c for c in make_cells(4 * workers, 99, args.loop_timeout) if c.kind != "loop"]
    docker_ok = not args.skip_docker and docker_available() is None and bool({"docker", "exec"} & only)
    main, slow = [], []
    if "pool" in only:
        main += [UnisolatedPool(n) for n in dict.fromkeys((workers, peers))]
    if "local" in only:
        main.append(Torl("torl LocalSandbox", LocalSandbox(workers=workers)))
    if docker_ok and "docker" in only:
        main.append(Torl("torl DockerSandbox", DockerSandbox(workers=workers)))
    if "fresh" in only:
        slow.append(PerCellProcess("fresh python -c", [], sys.executable))
    cid = None
    if docker_ok and "exec" in only:
        cid = subprocess.run(  # noqa: ASYNC221
            ["docker", "run", "-d", "--rm", "--network", "none", DEFAULT_IMAGE, "sleep", "3600"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        slow.append(PerCellProcess("docker exec", ["docker", "exec", cid], "python3", cid))
    try:
        reports = await measure(main, cells, warm) + await measure(slow, small, warm[:2])
    finally:
        if cid:
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True)  # noqa: ASYNC221, PLW1510
    for ex, rep in zip(main + slow, reports, strict=True):
        if isinstance(ex, UnisolatedPool):
            rep.name = f"unisolated pool ({ex.workers}w)"
            print(f"  {rep.name}: {ex.respawns} workers killed and replaced after a timeout")
        elif isinstance(getattr(ex, "sb", None), LocalSandbox):
            rep.name = f"torl LocalSandbox ({ex.sb.isolation})"
    by = {r.name.split(" (")[0] if not r.name.startswith("unisolated") else r.name: r for r in reports}
    pools = {w: by[f"unisolated pool ({w}w)"] for w in (workers, peers) if f"unisolated pool ({w}w)" in by}
    local, docker = by.get("torl LocalSandbox"), by.get("torl DockerSandbox")
    fresh, dexec = by.get("fresh python -c"), by.get("docker exec")
    same = pools.get(workers)
    for rep, ref in ((local, same), (fresh, same), (docker, dexec)):  # same Python and packages
        if rep and ref:
            compare(rep, ref)
    print()
    table(reports)
    print(
        f"(1 caller: {args.cells} cells minus the infinite loops; 8 callers, batch: twice {args.cells} cells; the "
        f"per-cell-process baselines ran {len(small['callers0'])} of each {args.cells}, in the same proportions)"
    )
    print("\nratios, same run (above 1: torl does more cells per second, or answers a sympy cell sooner):")
    for t in (local, docker):
        ratios(t, same, " (same number of workers)")
        if peers != workers:
            ratios(t, pools.get(peers), " (the peers' size: one worker per core)")
    ratios(local, fresh)
    ratios(docker, dexec)
    print("\ngoals (issue 16), this run:")
    for t, base in ((local, fresh), (docker, dexec)):
        if t is None:
            continue
        vs = [f"{t.callers_rate / p.callers_rate:.2f}x with {n}w" for n, p in pools.items()]
        print(
            f"  {t.name}: vs the unisolated pool (8 callers) {', '.join(vs) or '-'}; sympy p50 "
            f"{pct(t.seq_sympy, 0.5):.1f} ms (goal <= 15)"
            + (
                f"; {pct(base.seq_sympy, 0.5) / pct(t.seq_sympy, 0.5):.0f}x {base.name} (goal >= 30)"
                if base
                else ""
            )
        )


if __name__ == "__main__":
    asyncio.run(main())
