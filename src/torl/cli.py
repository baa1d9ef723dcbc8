"""The `torl` command: `torl train`, `torl eval`, `torl sandbox`, `torl view`, `torl rescore`.

Importing this module is cheap: each subcommand imports what it needs when it runs.
User errors (a missing file, or any `torl.errors.UserError`: bad data, a bad recipe or setting, conflicting
results, an unreadable report input, an unavailable sandbox) print one line and exit with status 2 (set
TORL_DEBUG=1 to see the traceback); an interrupted run exits with 130.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torl.errors import SandboxUnavailableError, UserError

EPILOG_EVAL = """\
examples:
  torl eval --model Qwen/Qwen2.5-Math-1.5B --data-dir data            # the five ToRL benchmarks, greedy
  torl eval --model ckpt/ --data-dir data -b aime24,amc23 -k 16         # pass@1 over 16 samples, pass@16, maj@16
  torl eval --model ckpt/ -b my_problems.jsonl -b hf:HuggingFaceH4/MATH-500 --limit 50
  torl eval --model ckpt/ --data-dir data --compare-torl              # add ToRL's reported rows
  torl eval --model ckpt/ -b math500 --limit 100 --counterfactual      # does the model rely on the tool?

Benchmarks are names of <name>.jsonl files in --data-dir (or $TORL_DATA_DIR), paths to JSON Lines files,
or hf:owner/name[:split]. Rows need a problem and an answer field (see --problem-key, --answer-key).
Finished problems are appended to OUTPUT/trajectories.jsonl as they complete; run the same command
again to resume. Scores go to OUTPUT/results.json. --counterfactual re-runs every tool call from its
recorded prefix with the tool disabled, an error, or another problem's output, and reports how often the
answer changes, how often a correct answer becomes wrong, and the reliance rate (runs go to
OUTPUT/trajectories_counterfactual.jsonl).
"""

EPILOG_VIEW = """\
examples:
  torl view eval_results/my-model/trajectories.jsonl -o report.html
  torl view runs/exp1/trajectories/ --metrics runs/exp1/trainer_state.json -o exp1.html
  torl view runs/exp1 -o exp1.html        # a trainer output folder: trajectories/ and trainer_state.json

The page is a single HTML file (no network access): a summary line per run, trajectories with their code
cells and outputs, filters by benchmark, correctness, tool use, provenance and reliance, several runs side
by side (accuracy, tool use, reliance per problem size or benchmark), and training curves.
"""


_ONE_LINE_ERRORS: tuple[type[BaseException], ...] = (
    UserError,
    FileNotFoundError,
    IsADirectoryError,
    PermissionError,
)
"""Printed as one line, without a traceback: any `torl.errors.UserError` (bad data, a bad recipe or setting,
conflicting results, an unreadable report input, an unavailable sandbox) and files that cannot be opened."""


# ---------------------------------------------------------------- eval


def _engine_arg(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a model with tools on math benchmarks",
        description="Evaluate a model with the Python tool (the training rollout engine, on vLLM): "
        "pass@1 averaged over k samples, pass@k, maj@k and tool-use statistics per benchmark.",
        epilog=EPILOG_EVAL,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", "-m", required=True, help="model path or Hugging Face name (loaded by vLLM)")
    p.add_argument(
        "--benchmarks",
        "-b",
        action="append",
        metavar="LIST",
        help="comma-separated benchmarks (repeatable); default: aime24,aime25,math500,olympiadbench,amc23",
    )
    p.add_argument("--data-dir", help="folder of <benchmark>.jsonl files (default: $TORL_DATA_DIR)")
    p.add_argument("--limit", type=_positive_int, help="only the first N problems of each benchmark")
    p.add_argument("--problem-key", default="problem", help="field holding the problem (default: problem)")
    p.add_argument(
        "--answer-key", default="answer", help="field holding the reference answer (default: answer)"
    )
    p.add_argument(
        "--id-key", default="id", help="field holding a unique id (default: id; else the row number)"
    )
    g = p.add_argument_group("sampling")
    g.add_argument(
        "-k",
        "--samples",
        type=_positive_int,
        default=1,
        dest="k",
        help="samples per problem (default 1: greedy, as in ToRL)",
    )
    g.add_argument("--temperature", type=float, help="default: 0 when k=1, else 1.0")
    g.add_argument("--top-p", type=float, default=1.0, help="default 1.0")
    g.add_argument("--seed", type=int, help="base sampling seed (default: random)")
    g.add_argument(
        "--max-new-tokens",
        type=_positive_int,
        default=3072,
        help="completion budget, tool output included (default 3072, as ToRL)",
    )
    g.add_argument("--max-tool-calls", type=int, default=1, help="tool-call budget C (default 1, as ToRL)")
    g.add_argument(
        "--tir-format",
        default="torl",
        choices=["torl", "torl_exact", "xml", "chat", "zero_tir", "zero_tir_exact"],
        help="how code and output appear in the text (default: torl; *_exact: the originals' rules)",
    )
    g.add_argument(
        "--answer-format",
        default="boxed",
        choices=["boxed", "answer_tag"],
        help="where the final answer is: the last \\boxed{} (ToRL, default) or <answer>...</answer> (ZERO-TIR)",
    )
    g.add_argument(
        "--scorer",
        default="default",
        choices=["default", "torl", "zero_tir"],
        help="the answer check: torl's rules (default), ToRL's own (torl) or AReaL ZERO-TIR-RL's (zero_tir)",
    )
    g = p.add_argument_group("engine")
    g.add_argument(
        "--sandbox",
        default="auto",
        choices=["auto", "local", "docker"],
        help="where code runs (auto: Docker when its image is there, else local)",
    )
    g.add_argument(
        "--engine-arg",
        action="append",
        type=_engine_arg,
        default=[],
        metavar="KEY=VALUE",
        help="a vLLM engine argument, e.g. gpu_memory_utilization=0.8 (repeatable; JSON values)",
    )
    g.add_argument("--concurrency", type=_positive_int, default=32, help="problems in flight (default 32)")
    g = p.add_argument_group("counterfactual tool reliance")
    g.add_argument(
        "--counterfactual",
        action="store_true",
        help="re-run each tool call with its output perturbed and report how much answers rely on the tool",
    )
    g.add_argument(
        "--counterfactual-kinds",
        default="disabled,error,swap",
        metavar="LIST",
        help="perturbations: disabled, error, swap (another problem's output), replay (control); "
        "default disabled,error,swap",
    )
    g = p.add_argument_group("output")
    g.add_argument("--output", "-o", help="results folder (default: eval_results/<name>)")
    g.add_argument("--name", help="row name in the table (default: the model folder's name)")
    g.add_argument("--overwrite", action="store_true", help="discard saved results in the output folder")
    g.add_argument("--retry-errors", action="store_true", help="redo saved problems whose rollouts failed")
    g.add_argument(
        "--compare-torl",
        action="store_true",
        help="add ToRL's reported numbers (Table 3) and this run rescored with ToRL's check, saying which "
        "problem sets and answer check made each number",
    )
    g.add_argument(
        "--compare",
        action="append",
        type=Path,
        default=[],
        metavar="RESULTS",
        help="add the row of another run (its results.json, or its folder); repeatable",
    )
    g.add_argument("--json", action="store_true", help="print the results JSON instead of tables")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    import asyncio

    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # keep the engine's start-up chatter out

    from torl.eval import (
        TORL_BENCHMARKS,
        TORL_REPORTED,
        TORL_REPORTED_SOURCE,
        CounterfactualSettings,
        EvalSettings,
        default_reward,
        evaluate_model,
        format_counterfactual,
        format_details,
        format_table,
        load_problems,
        problem_sets,
        row_source,
        summarize_counterfactual,
        summarize_rescored,
        summary_row,
    )

    model = Path(args.model).expanduser()
    if not model.exists() and (args.model.startswith((".", "/", "~")) or args.model.count("/") != 1):
        raise UserError(
            f"{args.model}: no such model folder (give a local path or a Hugging Face name owner/name)"
        )
    if model.is_dir() and not (model / "config.json").exists() and not (model / "params.json").exists():
        raise UserError(f"{args.model}: not a model folder (no config.json)")
    specs = [
        s.strip() for group in (args.benchmarks or [",".join(TORL_BENCHMARKS)]) for s in group.split(",")
    ]
    specs = [s for s in specs if s]
    if not specs:
        raise UserError("no benchmarks given")
    problems, sources = [], {}
    for spec in specs:
        loaded = load_problems(
            spec,
            data_dir=args.data_dir,
            limit=args.limit,
            problem_key=args.problem_key,
            answer_key=args.answer_key,
            id_key=args.id_key,
        )
        problems += loaded
        sources[loaded[0].benchmark] = spec
    if len({(p.benchmark, p.id) for p in problems}) != len(problems):
        raise UserError("a benchmark is given twice (two sources with the same name)")
    settings = EvalSettings(  # a bad value raises ConfigError, a UserError
        k=args.k,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        max_tool_calls=args.max_tool_calls,
        tir_format=args.tir_format,
        answer_format=args.answer_format,
        model=args.model,
        seed=args.seed,
    )
    counterfactual = CounterfactualSettings(kinds=args.counterfactual_kinds) if args.counterfactual else None
    others = _other_rows(args.compare)  # checked before a long run, not after
    name = args.name or Path(args.model.rstrip("/")).name or args.model
    out_dir = Path(args.output or Path("eval_results") / name)
    traj_file = out_dir / "trajectories.jsonl"
    if args.overwrite and traj_file.exists():
        traj_file.unlink()
    try:
        result = asyncio.run(
            evaluate_model(
                args.model,
                problems,
                settings,
                sandbox=args.sandbox,
                engine_kwargs=dict(args.engine_arg),
                output=traj_file,
                concurrency=args.concurrency,
                progress=not args.no_progress,
                retry_errors=args.retry_errors,
                scorer=args.scorer,
                counterfactual=counterfactual,
            )
        )
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: finished problems are saved in {traj_file}; run again to resume", file=sys.stderr
        )
        return 130
    row = summary_row(result.summary)
    rows = {name: row, **others}
    sets = problem_sets(problems, sources)
    sources = {name: row_source(name, settings, sets, args.scorer)}
    if args.compare_torl:
        if args.scorer != "torl" and settings.answer_format == "boxed":
            rescored = asyncio.run(summarize_rescored(result.trajectories, default_reward(settings, "torl")))
            rows[f"{name} (ToRL's check)"] = summary_row(rescored)
            sources[f"{name} (ToRL's check)"] = row_source(name, settings, sets, "torl", rescored=True)
        rows.update(TORL_REPORTED)
        sources.update(dict.fromkeys(TORL_REPORTED, TORL_REPORTED_SOURCE))
    payload = {
        "name": name,
        "model": args.model,
        "settings": settings.fingerprint(),
        "scorer": args.scorer,
        "summary": result.summary,
        "table": {"metric": "pass@1", "rows": rows, "sources": sources},
        "problem_sets": sets,
        "trajectories": str(traj_file),
    }
    (out_dir / "results.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(payload, indent=2))
        return 0
    print(f"\npass@1 (%), k={settings.k}, temperature={settings.sampling_temperature:g}, scorer={args.scorer}")
    print(format_table(rows))
    if args.compare_torl or others:
        print("\nwhere each row comes from:")
        said: dict[str, list[str]] = {}
        for row_name in rows:
            said.setdefault(sources.get(row_name, "another run's results.json (see its own sources)"), []).append(row_name)
        print("\n".join(f"- {', '.join(names)}: {text}" for text, names in said.items()))
    print()
    print(format_details(result.summary))
    if counterfactual is not None:
        print("\ncounterfactual tool reliance (answers re-generated from each tool call, output perturbed)")
        print(format_counterfactual(summarize_counterfactual(result.trajectories)))
    if result.generated == 0:
        print(f"\n(all {len(problems)} problems were already in {traj_file})")
    errors = sum(s["error_count"] for s in result.summary["benchmarks"].values())
    if errors:
        print(
            f"\nwarning: {errors} rollouts failed (see their `error`); --retry-errors redoes them",
            file=sys.stderr,
        )
    print(f"\nresults: {out_dir / 'results.json'}\ntrajectories: {traj_file}")
    return 0


def _other_rows(paths: Sequence[Path]) -> dict[str, dict[str, float]]:
    rows: dict[str, dict[str, float]] = {}
    for p in paths:
        f = p / "results.json" if p.is_dir() else p
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
            rows[data["name"]] = data["table"]["rows"][data["name"]]
        except FileNotFoundError:
            raise UserError(f"{f}: no such file") from None
        except (json.JSONDecodeError, KeyError, TypeError):
            raise UserError(f"{f}: not a results.json written by `torl eval`") from None
    return rows


# ---------------------------------------------------------------- view


def _add_view(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "view",
        help="write a self-contained HTML report of trajectories and training curves",
        description="Write one HTML file (inline CSS and JavaScript, no network) showing trajectories "
        "(text, code cells, outputs, errors, answers) and training curves.",
        epilog=EPILOG_VIEW,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "files",
        nargs="*",
        type=Path,
        help="trajectory JSON Lines files (eval output), or folders of them (the trainer's trajectories/)",
    )
    p.add_argument(
        "--metrics", type=Path, help="trainer_state.json, or a JSON / JSON Lines file of logged metrics"
    )
    p.add_argument(
        "--output", "-o", type=Path, default=Path("torl_report.html"), help="default: torl_report.html"
    )
    p.add_argument("--title", default="torl report", help="page title")
    p.add_argument(
        "--max-trajectories",
        type=_positive_int,
        default=2000,
        help="show at most about this many, spread evenly over files and steps (default 2000)",
    )
    p.set_defaults(func=cmd_view)


def cmd_view(args: argparse.Namespace) -> int:
    from torl.view import write_report

    if not args.files and args.metrics is None:
        raise UserError("give trajectory files and/or --metrics")
    out = write_report(
        args.output, args.files, args.metrics, title=args.title, max_trajectories=args.max_trajectories
    )
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


# ---------------------------------------------------------------- rescore


EPILOG_RESCORE = """\
examples:
  torl rescore nano-run --scorer torl-tol             # would the Qwen grader's tolerance flip verdicts?
  torl rescore eval_results/my-model --scorer torl-response
  torl rescore nano-run --scorer torl --format torl --format-arg max_chars=64   # shorter tool output

RUN is a trajectory file or a run folder (every *.jsonl under it). Nothing is generated or executed:
the saved ToolResults are rendered again (with --format) and the answers judged by the scorer. The
rescored files go to RUN/rescored/ (or --output), in the same layout.
"""


def _add_rescore(sub: argparse._SubParsersAction) -> None:
    from torl.eval.rescore import SCORERS

    p = sub.add_parser(
        "rescore",
        help="re-render and re-score a finished run offline (no model, no sandbox)",
        description="Re-score the saved trajectories of a run with another scorer, optionally after "
        "rendering their tool output again with another format or truncation, and report how many "
        "verdicts and rewards flipped. Scorers: "
        + "; ".join(f"{k}: {d}" for k, (_, d) in SCORERS.items())
        + "; or package.module:attr (a torl reward).",
        epilog=EPILOG_RESCORE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", type=Path, help="a trajectory file, or a run folder")
    p.add_argument("--scorer", default="torl", help="a scorer (above) or package.module:attr (default torl)")
    p.add_argument("--format", dest="tir_format", help="render the tool output again with this format")
    p.add_argument(
        "--format-arg",
        action="append",
        type=_engine_arg,
        default=[],
        metavar="KEY=VALUE",
        help="an option of the format, e.g. max_chars=512 (repeatable; JSON values)",
    )
    p.add_argument("--tokenizer", help="for the new tool output (default: the model of RUN/results.json)")
    p.add_argument("--output", "-o", type=Path, help="where the rescored files go (default RUN/rescored)")
    p.add_argument("--no-save", action="store_true", help="only report, write nothing")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_rescore)


def cmd_rescore(args: argparse.Namespace) -> int:
    from torl.eval.rescore import format_rescore, rescore_run

    if args.format_arg and not args.tir_format:
        raise UserError("--format-arg goes with --format")
    report = rescore_run(
        args.run,
        args.scorer,
        tir_format=args.tir_format,
        format_options=dict(args.format_arg),
        tokenizer=args.tokenizer,
        output=args.output,
        save=not args.no_save,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    how = f"scorer {report.scorer}"
    if report.format:
        how += f", tool output rendered again by {report.format}"
    print(f"rescored {report.total.n} trajectories of {args.run} offline ({how})")
    print(format_rescore(report))
    if report.skipped:
        print(f"\nskipped (not trajectories): {', '.join(report.skipped)}")
    if report.output:
        print(f"\nrescored trajectories: {report.output}")
    return 0


# ---------------------------------------------------------------- train


EPILOG_TRAIN = """\
examples:
  torl train examples/recipes/torl_1.5b.yaml
  torl train examples/recipes/torl_1.5b.yaml --set trainer.max_steps=10 tool.sandbox=local
  torl train examples/recipes/torl_1.5b.yaml --resume            # from the latest checkpoint
  accelerate launch --num_processes 8 -m torl.cli train examples/recipes/torl_1.5b.yaml

A recipe is YAML with model, data, tool, reward and trainer (TIRGRPOConfig fields) sections; see
examples/recipes/README.md. Options after CONFIG go to the recipe runner.
"""


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train with GRPO and tools from a recipe (YAML)",
        description="Train a model with tool-integrated GRPO (TRL) from a recipe file.",
        epilog=EPILOG_TRAIN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", type=Path, help="recipe YAML file")
    p.add_argument(
        "options",
        nargs=argparse.REMAINDER,
        help="--set KEY=VALUE ... (override recipe keys), --resume [CHECKPOINT]",
    )
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    if not args.config.is_file():
        raise UserError(f"{args.config}: no such file")
    from torl.trainers.recipe import main as run_recipe

    run_recipe(["--config", str(args.config), *(args.options or [])])  # a bad recipe raises ConfigError
    return 0


# ---------------------------------------------------------------- sandbox


def _add_sandbox(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sandbox",
        help="build the sandbox image, check the backend, benchmark it",
        description="Manage the code sandbox: `build` the Docker image, `check` that a backend runs code "
        "and enforces its limits, `bench` its latency and throughput.",
    )
    ss = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = ss.add_parser(
        "build", help="build the Docker sandbox image", description="Build the Docker sandbox image."
    )
    b.add_argument("--force", action="store_true", help="rebuild even if the image exists")
    b.set_defaults(func=cmd_sandbox_build)
    for name, helptext, func in (
        ("check", "run a few cells (output, error, timeout) and report", cmd_sandbox_check),
        ("bench", "measure latency and throughput of small cells", cmd_sandbox_bench),
    ):
        c = ss.add_parser(name, help=helptext, description=helptext[0].upper() + helptext[1:] + ".")
        c.add_argument(
            "--backend",
            default="auto",
            choices=["auto", "local", "docker"],
            help="auto: Docker when its image is there, else local",
        )
        c.add_argument(
            "--timeout",
            type=float,
            default=2.0 if name == "check" else 10.0,
            help="per-cell time limit in seconds (default %(default)s)",
        )
        c.add_argument(
            "--workers", type=_positive_int, help="sandbox worker processes (default: the backend's)"
        )
        if name == "bench":
            c.add_argument("--calls", type=_positive_int, default=200, help="cells to run (default 200)")
            c.add_argument(
                "--concurrency", type=_positive_int, default=16, help="cells in flight (default 16)"
            )
        c.set_defaults(func=func)


def cmd_sandbox_build(args: argparse.Namespace) -> int:
    """Build the image from the Dockerfile shipped in torl.tools (needs Docker Hub for the base image)."""
    from importlib import resources

    from torl.tools.docker_sandbox import DEFAULT_IMAGE

    try:
        import docker
    except ImportError:
        raise UserError("the docker SDK is not installed (pip install 'torl[docker]')") from None
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as e:  # noqa: BLE001 - no engine, no permission...
        raise UserError(f"no Docker engine: {e}") from None
    try:
        if not args.force:
            try:
                client.images.get(DEFAULT_IMAGE)
                print(f"{DEFAULT_IMAGE} already exists (--force rebuilds it)")
                return 0
            except docker.errors.ImageNotFound:
                pass
        folder = resources.files("torl.tools")
        print(f"building {DEFAULT_IMAGE} from {folder}/Dockerfile ...", flush=True)
        try:
            client.images.build(path=str(folder), tag=DEFAULT_IMAGE, rm=True, pull=False)
        except (docker.errors.BuildError, docker.errors.APIError) as e:
            raise UserError(
                f"docker build failed: {e}. Without access to Docker Hub, build the image with "
                "scripts/build_sandbox_image.sh from the torl repository"
            ) from None
        print(f"built {DEFAULT_IMAGE}")
        return 0
    finally:
        client.close()


def _tool(args: argparse.Namespace) -> Any:
    from torl.tools import docker_available, make_sandbox

    if args.backend == "docker":
        problem = docker_available()
        if problem:
            raise SandboxUnavailableError(f"the Docker sandbox is unavailable: {problem}")
    return make_sandbox(args.backend, timeout_s=args.timeout, workers=args.workers)


def cmd_sandbox_check(args: argparse.Namespace) -> int:
    import asyncio

    cases = [
        ("output", "print(6 * 7)", lambda r: r.ok and r.output.strip() == "42"),
        ("error", "1 / 0", lambda r: r.status == "error" and "ZeroDivisionError" in (r.error or r.output)),
        ("timeout", "while True: pass", lambda r: r.status == "timeout"),
    ]

    async def run() -> int:
        tool = _tool(args)
        print(f"backend: {type(tool).__name__}")
        failures = 0
        async with tool:
            for label, code, ok in cases:
                r = await tool.execute(code)
                good = ok(r)
                failures += not good
                shown = (r.error or r.output).strip().splitlines()[-1:] or [""]
                print(
                    f"  {'ok  ' if good else 'FAIL'} {label:8s} status={r.status:8s} {r.duration_s:6.2f}s  {shown[0][:60]}"
                )
        print("sandbox works" if not failures else f"{failures} check(s) failed")
        return 0 if not failures else 1

    return asyncio.run(run())


def cmd_sandbox_bench(args: argparse.Namespace) -> int:
    import asyncio
    import statistics
    import time

    async def run() -> int:
        tool = _tool(args)
        sem = asyncio.Semaphore(args.concurrency)
        lat: list[float] = []
        bad = 0

        async def one(i: int) -> None:
            nonlocal bad
            async with sem:
                t0 = time.perf_counter()
                r = await tool.execute(f"import math\nprint(sum(math.isqrt(j) for j in range({1000 + i})))")
                lat.append(time.perf_counter() - t0)
                bad += not r.ok

        async with tool:
            await tool.execute("print(0)")  # warm-up
            t0 = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(args.calls)))
            wall = time.perf_counter() - t0
        lat.sort()
        p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))]
        print(f"backend: {type(tool).__name__}, {args.calls} cells, concurrency {args.concurrency}")
        print(
            f"  throughput {args.calls / wall:.1f} cells/s   latency p50 {statistics.median(lat) * 1000:.0f} ms"
            f"   p95 {p95 * 1000:.0f} ms   failed {bad}"
        )
        return 0 if not bad else 1

    return asyncio.run(run())


# ---------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `torl` command."""
    from torl import __version__

    parser = argparse.ArgumentParser(
        prog="torl",
        description="Tool-integrated RL for language models: train with GRPO and a Python sandbox, "
        "evaluate with tools, inspect trajectories.",
        epilog="Run `torl COMMAND --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"torl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_train(sub)
    _add_eval(sub)
    _add_sandbox(sub)
    _add_view(sub)
    _add_rescore(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `torl` command with `argv` (default: the process arguments); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if isinstance(e, _ONE_LINE_ERRORS) and not os.environ.get("TORL_DEBUG"):
            print(f"torl {args.command}: error: {e}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
