"""The `torl` command: help, clear errors without tracebacks, `eval` on saved results, `view`, `sandbox`.

`torl eval` with a real engine is covered by tests/eval/test_eval_vllm.py.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest
from fakes import ScriptedPolicy, solution

from torl.cli import main
from torl.core import save_jsonl
from torl.eval import EvalSettings, evaluate, load_problems

TORL = [sys.executable, "-m", "torl.cli"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*TORL, *args], capture_output=True, text=True, timeout=120, check=False)


def model_dir(tmp_path):
    """A folder that looks like a model to `torl eval` (tests that never start the engine)."""
    d = tmp_path / "my-model"
    d.mkdir(exist_ok=True)
    (d / "config.json").write_text("{}")
    return d


def test_help_is_fast_and_imports_nothing_heavy():
    start = time.monotonic()
    r = run_cli("--help")
    assert r.returncode == 0
    assert time.monotonic() - start < 10
    for cmd in ("train", "eval", "sandbox", "view"):
        assert f"    {cmd} " in r.stdout
    code = "import sys, torl.cli; torl.cli.build_parser(); print(sorted(m for m in ('torch','vllm','transformers','docker','datasets') if m in sys.modules))"
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "[]"
    )


@pytest.mark.parametrize(
    "argv, words",
    [
        (["eval"], ["--model", "--benchmarks", "--limit", "-k", "--temperature", "--compare-torl", "resume"]),
        (["view"], ["--metrics", "--output", "trainer_state.json"]),
        (["train"], ["config", "recipe"]),
        (["sandbox"], ["build", "check", "bench"]),
        (["sandbox", "bench"], ["--backend", "--calls", "--concurrency"]),
    ],
)
def test_subcommand_help(argv, words, capsys):
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for w in words:
        assert w in out


def test_no_command_or_bad_flags_are_usage_errors(capsys):
    for argv in (
        [],
        ["eval", "-m", "x", "--limit", "0"],
        ["eval", "-m", "x", "--engine-arg", "novalue"],
        ["bogus"],
    ):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--limit: must be at least 1, got 0" in err and "expected KEY=VALUE, got 'novalue'" in err


def test_user_errors_are_one_line_without_traceback(tmp_path):
    cases = [
        (["view", str(tmp_path / "missing.jsonl")], "torl view: error: ", "missing.jsonl: no such file"),
        (["view"], "torl view: error: ", "give trajectory files and/or --metrics"),
        (
            ["eval", "-m", str(model_dir(tmp_path)), "-b", "aime24"],
            "torl eval: error: ",
            "no data folder given",
        ),
        (["eval", "-m", str(tmp_path / "nomodel")], "torl eval: error: ", "no such model folder"),
        (["eval", "-m", str(tmp_path)], "torl eval: error: ", "not a model folder (no config.json)"),
        (["train", str(tmp_path / "nope.yaml")], "torl train: error: ", "nope.yaml: no such file"),
    ]
    for argv, prefix, message in cases:
        r = run_cli(*argv)
        assert r.returncode == 2, (argv, r.stderr)
        assert r.stderr.startswith(prefix) and message in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_eval_data_errors(tmp_path, data_dir, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "1+1"}\n')
    model = str(model_dir(tmp_path))
    assert main(["eval", "-m", model, "-b", str(bad)]) == 2
    assert main(["eval", "-m", model, "-b", "aime2024", "--data-dir", str(data_dir)]) == 2
    assert main(["eval", "-m", model, "-b", "aime24,aime24", "--data-dir", str(data_dir)]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:1: no 'problem' field (fields: question)" in err
    assert "no file" in err and "found: aime24, aime25" in err
    assert "a benchmark is given twice" in err


@pytest.fixture
def saved_run(tmp_path):
    """A results folder as `torl eval -m MODEL -b toy.jsonl` leaves it, made with the scripted engine."""
    model = model_dir(tmp_path)
    toy = tmp_path / "toy.jsonl"
    toy.write_text(
        "".join(json.dumps({"id": f"t{i}", "problem": f"Q{i}", "answer": str(i)}) + "\n" for i in range(3))
    )
    settings = EvalSettings(k=1, max_new_tokens=3072, max_tool_calls=1, tir_format="torl", model=str(model))
    out = tmp_path / "out"
    policy = ScriptedPolicy({"Q0": ["0"], "Q1": ["1"], "Q2": ["5"]})
    asyncio.run(
        evaluate(
            policy,
            load_problems(str(toy)),
            settings,
            output=out / "trajectories.jsonl",
            prompt_fn=lambda p: p,
            progress=False,
        )
    )
    return ["eval", "-m", str(model), "-b", str(toy), "-o", str(out)], out


def test_eval_reports_saved_results_without_starting_an_engine(saved_run, capsys):
    argv, out = saved_run
    assert main([*argv, "--compare-torl"]) == 0
    printed = capsys.readouterr().out
    assert "| my-model" in printed and "66.7" in printed and "| ToRL-1.5B (reported)  " in printed
    assert "| my-model (ToRL's check) |" in printed and "scorer=default" in printed
    # each row says which problem sets and which answer check made it
    assert "- my-model: torl eval of" in printed and "toy 3 problems (" in printed
    assert "answer check: ToRL's check on the whole response" in printed
    assert "- ToRL-1.5B (reported), ToRL-7B (reported): ToRL's paper, Table 3" in printed and "#13" in printed
    assert "(all 3 problems were already in" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["problem_sets"]["toy"]["problems"] == 3 and len(results["problem_sets"]["toy"]["sha256"]) == 12
    assert set(results["table"]["sources"]) == set(results["table"]["rows"]) and results["scorer"] == "default"
    assert results["summary"]["benchmarks"]["toy"]["pass@1"] == pytest.approx(2 / 3)
    assert results["table"]["rows"]["my-model"]["toy"] == pytest.approx(200 / 3)
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "my-model"


def test_eval_scorer_rescores_saved_results(tmp_path, capsys):
    """`--scorer torl` judges saved samples again with ToRL's check, without generating; `--compare-torl`
    puts both scales side by side."""
    model = model_dir(tmp_path)
    data = tmp_path / "forms.jsonl"
    refs = {"Q0": "\\sqrt{18}", "Q1": "(1, 2)", "Q2": "7"}
    data.write_text("".join(json.dumps({"id": q, "problem": q, "answer": a}) + "\n" for q, a in refs.items()))
    settings = EvalSettings(k=1, max_new_tokens=3072, max_tool_calls=1, tir_format="torl", model=str(model))
    policy = ScriptedPolicy({"Q0": ["3\\sqrt{2}"], "Q1": ["(1,2)"], "Q2": ["7"]})
    out = tmp_path / "out"
    asyncio.run(evaluate(policy, load_problems(str(data)), settings, output=out / "trajectories.jsonl",
                         prompt_fn=lambda p: p, progress=False))
    argv = ["eval", "-m", str(model), "-b", str(data), "-o", str(out)]
    assert main([*argv, "--compare-torl"]) == 0
    capsys.readouterr()
    rows = json.loads((out / "results.json").read_text())["table"]["rows"]
    assert rows["my-model"]["forms"] == pytest.approx(100.0)
    assert rows["my-model (ToRL's check)"]["forms"] == pytest.approx(100 / 3)  # 3\sqrt{2} and (1,2) rejected
    assert main([*argv, "--scorer", "torl", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["scorer"] == "torl" and payload["summary"]["benchmarks"]["forms"]["pass@1"] == pytest.approx(1 / 3)
    assert main([*argv, "--scorer", "zero_tir"]) == 2  # boxed answers: ZERO-TIR's check reads <answer> tags
    assert "--scorer zero_tir" in capsys.readouterr().err


def test_eval_refuses_results_made_with_other_settings(saved_run, capsys):
    argv, out = saved_run
    before = (out / "trajectories.jsonl").read_bytes()
    assert main([*argv, "-k", "4"]) == 2
    err = capsys.readouterr().err
    assert "holds results made with other settings: k=1 (now 4)" in err and "--overwrite" in err
    assert (out / "trajectories.jsonl").read_bytes() == before


def test_view_writes_a_report(tmp_path, capsys):
    t = solution("413", cells=2, failed=1)
    t.metadata.update(benchmark="toy", problem_id="q1", correct=True, pred="413")
    f = tmp_path / "trajectories.jsonl"
    save_jsonl([t], f)
    metrics = tmp_path / "trainer_state.json"
    metrics.write_text(json.dumps({"log_history": [{"step": s, "reward": s / 10} for s in range(1, 4)]}))
    out = tmp_path / "r" / "report.html"
    assert main(["view", str(f), "--metrics", str(metrics), "-o", str(out), "--title", "My <run>"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    page = out.read_text()
    assert (
        "<title>My &lt;run&gt;</title>" in page
        and "print(1)" in page
        and '"label": "reward (trainer_state.json)"' in page
    )


def test_view_rejects_a_file_that_is_not_trajectories(tmp_path, capsys):
    f = tmp_path / "x.jsonl"
    f.write_text('{"prompt_ids": [1]}\n{"oops": 1}\n')
    assert main(["view", str(f)]) == 2
    assert "x.jsonl:2: not a trajectory" in capsys.readouterr().err


def test_train_delegates_to_the_recipe_runner(tmp_path, capsys):
    cfg = tmp_path / "r.yaml"
    cfg.write_text("model: x\n")  # no data or trainer section: a bad recipe
    assert main(["train", str(cfg), "--set", "trainer.max_steps=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("torl train: error: ") and "r.yaml" in err


def _one_line(err: str, prefix: str, message: str) -> None:
    assert err.startswith(prefix) and message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


GOOD_RECIPE = "model: x\ndata: {train: t.jsonl}\ntrainer: {}\n"


@pytest.mark.parametrize(
    "recipe, options, message",
    [
        ("model: x\n", [], "the recipe has no 'data'"),
        ("model: [x\n", [], "not valid YAML"),
        ("- model\n", [], "a recipe is a YAML mapping"),
        (GOOD_RECIPE, ["--set", "model.name=y"], "model is not a section"),
        (GOOD_RECIPE, ["--set", "trainer"], "--set wants key=value"),
        (GOOD_RECIPE, ["--set", "trainer.x=[1"], "--set trainer.x=[1: the value is not valid YAML"),
        ("model: x\ndata: {}\ntrainer: {}\n", [], "no data.train"),
    ],
)
def test_bad_recipes_are_one_line_config_errors(tmp_path, capsys, recipe, options, message):
    cfg = tmp_path / "r.yaml"
    cfg.write_text(recipe)
    assert main(["train", str(cfg), *options]) == 2
    _one_line(capsys.readouterr().err, "torl train: error: ", message)


def test_user_errors_from_each_layer_are_one_line(saved_run, tmp_path, capsys):
    """Any `UserError` (data, eval, report, settings) prints one line; none is looked up by module."""
    from torl.errors import ConfigError, DataError, UserError
    from torl.eval import EvalError
    from torl.view import ReportError

    assert all(issubclass(e, UserError) for e in (ConfigError, DataError, EvalError, ReportError))
    argv, _ = saved_run
    assert main([*argv, "--temperature", "-1"]) == 2  # EvalSettings: ConfigError
    _one_line(capsys.readouterr().err, "torl eval: error: ", "temperature must be >= 0, got -1.0")
    assert main([*argv, "-k", "2"]) == 2  # the results file: EvalError
    _one_line(capsys.readouterr().err, "torl eval: error: ", "holds results made with other settings")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "a", "answer": "1"}\n{oops\n')
    assert main(["eval", "-m", argv[2], "-b", str(bad)]) == 2  # the benchmark file: DataError
    _one_line(capsys.readouterr().err, "torl eval: error: ", "bad.jsonl:2: not valid JSON")
    metrics = tmp_path / "m.json"
    metrics.write_text('{"global_step": 3}')
    assert main(["view", "--metrics", str(metrics), "-o", str(tmp_path / "r.html")]) == 2  # ReportError
    _one_line(capsys.readouterr().err, "torl view: error: ", "m.json: a JSON object without 'log_history'")
    metrics = tmp_path / "m.jsonl"
    metrics.write_text('{"step": 1}\n[2]\n')
    assert main(["view", "--metrics", str(metrics), "-o", str(tmp_path / "r.html")]) == 2  # the JSONL reader
    _one_line(capsys.readouterr().err, "torl view: error: ", "m.jsonl:2: expected a JSON object, got list")


def test_one_error_hierarchy():
    import torl
    import torl.data
    import torl.eval
    from torl import errors

    assert torl.TorlError is errors.TorlError and torl.UserError is errors.UserError
    assert {"TorlError", "UserError"} <= set(torl.__all__)
    assert torl.data.DataError is torl.eval.DataError is errors.DataError  # one DataError
    assert issubclass(errors.UserError, errors.TorlError)
    for e in (errors.DataError, errors.ConfigError):  # they were ValueErrors: `except ValueError` still works
        assert issubclass(e, errors.UserError) and issubclass(e, ValueError)
    assert issubclass(torl.eval.EvalError, RuntimeError)
    assert issubclass(errors.SandboxUnavailableError, RuntimeError)
    code = "import sys, torl; print([m for m in ('torch', 'vllm', 'datasets') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_torl_debug_shows_the_traceback(tmp_path, monkeypatch):
    from torl.errors import DataError

    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    monkeypatch.setenv("TORL_DEBUG", "1")
    with pytest.raises(DataError, match="bad.jsonl:1: not valid JSON"):
        main(["eval", "-m", str(model_dir(tmp_path)), "-b", str(bad)])


@pytest.mark.docker
def test_sandbox_build_keeps_an_existing_image(capsys):
    assert main(["sandbox", "build"]) == 0
    assert "already exists (--force rebuilds it)" in capsys.readouterr().out


def test_sandbox_check_and_bench_on_the_local_backend(capsys):
    assert main(["sandbox", "check", "--backend", "local", "--timeout", "1"]) == 0
    out = capsys.readouterr().out
    assert "backend: LocalSandbox" in out and "sandbox works" in out
    assert "ok   timeout  status=timeout" in out and "ok   error    status=error" in out
    assert main(["sandbox", "bench", "--backend", "local", "--calls", "8", "--concurrency", "2"]) == 0
    assert "8 cells, concurrency 2" in capsys.readouterr().out


def test_sandbox_errors_are_one_line(monkeypatch, capsys):
    import torl.tools

    monkeypatch.setattr(torl.tools, "docker_available", lambda: "no Docker engine: refused")
    assert main(["sandbox", "check", "--backend", "docker"]) == 2
    err = capsys.readouterr().err
    _one_line(err, "torl sandbox: error: ", "the Docker sandbox is unavailable: no Docker engine")


def test_eval_table_compares_other_runs(saved_run, tmp_path, capsys):
    argv, _ = saved_run
    other = tmp_path / "other"
    other.mkdir()
    (other / "results.json").write_text(
        json.dumps({"name": "baseline", "table": {"rows": {"baseline": {"toy": 12.5, "Avg": 12.5}}}})
    )
    assert main([*argv, "--compare", str(other)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("| baseline") and "12.5" in line for line in lines)
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main([*argv, "--compare", str(bad)]) == 2
    assert "bad.json: not a results.json written by `torl eval`" in capsys.readouterr().err
