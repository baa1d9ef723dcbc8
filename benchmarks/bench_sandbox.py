"""Sandbox speed, against baselines measured in the same run.

Latency of the cell `import sympy, numpy; print(sympy.factorint(360))`:
  - LocalSandbox (warm worker, fork per cell) vs a fresh `python -c` subprocess per cell;
  - DockerSandbox (warm containers, fork per cell) vs `docker exec` per cell in a running container.
Throughput of a trivial cell with 8 concurrent callers: cells/s and cells/s per core.

    python benchmarks/bench_sandbox.py [--runs 40] [--baseline-runs 8] [--skip-docker]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time

from torl.tools import DockerSandbox, LocalSandbox, docker_available
from torl.tools.docker_sandbox import DEFAULT_IMAGE

CELL = "import sympy, numpy; print(sympy.factorint(360))"
EXPECTED = "{2: 3, 3: 2, 5: 1}\n"


def p50(xs: list[float]) -> float:
    return statistics.median(xs)


def time_subprocess(cmd: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)  # noqa: PLW1510
        out.append(time.perf_counter() - t)
        assert r.stdout == EXPECTED, (r.stdout, r.stderr[-500:])
    return out


async def time_sandbox(sb, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        r = await sb.execute(CELL)
        out.append(time.perf_counter() - t)
        assert r.output == EXPECTED, r
    return out


async def throughput(sb, callers: int = 8, cells: int = 400) -> float:
    await asyncio.gather(*(sb.execute("print(1)") for _ in range(callers)))  # warm
    left = cells

    async def caller():
        nonlocal left
        while left > 0:
            left -= 1
            r = await sb.execute("print(1)")
            assert r.ok, r

    t = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return cells / (time.perf_counter() - t)


def line(name: str, xs: list[float]) -> str:
    return f"  {name:<34} p50 {p50(xs) * 1000:8.1f} ms   (n={len(xs)}, min {min(xs) * 1000:.1f}, max {max(xs) * 1000:.1f})"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--baseline-runs", type=int, default=8)
    ap.add_argument("--cells", type=int, default=400, help="cells for the throughput test")
    ap.add_argument("--workers", type=int, default=None, help="sandbox workers (default: the library's)")
    ap.add_argument("--skip-docker", action="store_true")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    print(f"host: {cores} cores, python {sys.version.split()[0]}")

    print("\nLocalSandbox vs a fresh `python -c` per cell:")
    base = time_subprocess([sys.executable, "-c", CELL], args.baseline_runs)
    print(line("fresh subprocess", base))
    async with LocalSandbox(timeout_s=30, workers=args.workers) as sb:
        warm = await time_sandbox(sb, args.runs)
        print(line(f"LocalSandbox ({sb.isolation})", warm))
        print(f"  speed-up (p50): {p50(base) / p50(warm):.1f}x")
        tput = await throughput(sb, cells=args.cells)
        print(
            f"  throughput, trivial cell, 8 callers, {sb.workers} workers: {tput:.0f} cells/s "
            f"= {tput / cores:.0f} cells/s per core"
        )

    if args.skip_docker:
        return
    problem = docker_available()
    if problem:
        print(f"\nDocker skipped: {problem}")
        return
    print("\nDockerSandbox vs `docker exec` per cell (in a running container):")
    cid = subprocess.run(  # noqa: ASYNC221
        ["docker", "run", "-d", "--rm", "--network", "none", DEFAULT_IMAGE, "sleep", "3600"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        base = time_subprocess(["docker", "exec", cid, "python3", "-c", CELL], args.baseline_runs)
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)  # noqa: ASYNC221, PLW1510
    print(line("docker exec", base))
    async with DockerSandbox(timeout_s=30, workers=args.workers) as sb:
        warm = await time_sandbox(sb, args.runs)
        print(line("DockerSandbox", warm))
        print(f"  speed-up (p50): {p50(base) / p50(warm):.1f}x")
        tput = await throughput(sb, cells=args.cells)
        print(
            f"  throughput, trivial cell, 8 callers, {sb.workers} containers: {tput:.0f} cells/s "
            f"= {tput / cores:.0f} cells/s per core"
        )


if __name__ == "__main__":
    asyncio.run(main())
