#!/usr/bin/env bash
# GPU smoke check for torl, on a machine with one CUDA GPU and no network. Not part of CI.
#
#   bash scripts/gpu_check.sh [WHEELS_DIR]
#
# WHEELS_DIR (default: scripts/wheels, else the folder of this script) holds the wheels to install offline:
# torch (CUDA), transformers, trl, accelerate, datasets, tokenizers, pydantic, httpx, math-verify and their
# dependencies, and optionally vllm (torl itself runs from this checkout, nothing is built). With
# TORL_GPU_CHECK_PYTHON=/path/to/python an existing environment is used instead and nothing is installed.
#
# It builds the tiny model, then runs two GRPO steps each with the transformers backend in bf16 and, where
# vLLM is installed, the colocated vLLM engine TRL builds and a user's own vllm.LLM (rollout=from_llm).
# Each training check also verifies that the step-2 rollouts came from the trained weights. A pass/fail
# table is printed within 8 minutes (checks that would not fit are reported as SKIP).
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
START=$(date +%s)
DEADLINE=$((START + ${TORL_GPU_CHECK_BUDGET_S:-470}))
WORK=$(mktemp -d "${TMPDIR:-/tmp}/torl-gpu-check.XXXXXX")
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 TRL_EXPERIMENTAL_SILENCE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"

ROWS=()
row() { ROWS+=("$(printf '%-20s %-5s %5ss  %s' "$1" "$2" "$3" "$4")"); }
left() { echo $((DEADLINE - $(date +%s))); }
report() {
  echo
  echo "torl GPU check ($(( $(date +%s) - START ))s; logs in $WORK)"
  printf '%-20s %-5s %6s  %s\n' check result time detail
  printf '%s\n' "${ROWS[@]}"
  ! printf '%s\n' "${ROWS[@]}" | grep -q ' FAIL '
}

# ----- environment -----
PY=${TORL_GPU_CHECK_PYTHON:-}
if [ -z "$PY" ]; then
  WHEELS=${1:-}
  if [ -z "$WHEELS" ]; then
    if [ -d "$HERE/wheels" ]; then WHEELS="$HERE/wheels"; else WHEELS="$HERE"; fi
  fi
  t0=$(date +%s)
  python3 -m venv "$WORK/venv" && PY="$WORK/venv/bin/python"
  # torl itself runs from this checkout (PYTHONPATH): only its dependencies are installed.
  with_vllm=0
  if ls "$WHEELS"/vllm-*.whl >/dev/null 2>&1; then with_vllm=1; fi
  "$PY" - "$REPO/pyproject.toml" "$with_vllm" >"$WORK/requirements.txt" <<'EOF2'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
print("\n".join(project["dependencies"] + (project["optional-dependencies"]["vllm"] if sys.argv[2] == "1" else [])))
EOF2
  if timeout $(( $(left) - 240 )) "$PY" -m pip install -q --no-index --find-links "$WHEELS" \
      -r "$WORK/requirements.txt" >"$WORK/install.log" 2>&1; then
    row install PASS $(( $(date +%s) - t0 )) "from $WHEELS$([ $with_vllm = 1 ] && echo ' (with vllm)')"
  else
    why=$(grep -m1 -E '^ERROR|error:' "$WORK/install.log" || tail -1 "$WORK/install.log")
    row install FAIL $(( $(date +%s) - t0 )) "$why (see $WORK/install.log)"
    report
    exit 1
  fi
fi

cat >"$WORK/check.py" <<'PYEOF'
import json
import math
import os
import sys
import time


def env():
    import torch
    import transformers
    import trl

    ok = torch.cuda.is_available() or os.environ.get("TORL_GPU_CHECK_ALLOW_CPU") == "1"
    assert ok, "torch sees no CUDA device"
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (TORL_GPU_CHECK_ALLOW_CPU)"
    if torch.cuda.is_available():
        assert torch.cuda.is_bf16_supported(), f"{name} has no bf16"
    try:
        import vllm

        v = vllm.__version__
    except ImportError:
        v = "not installed"
    return f"{name}; torch {torch.__version__} (cuda {torch.version.cuda}), transformers " \
           f"{transformers.__version__}, trl {trl.__version__}, vllm {v}"


def tiny(path):
    from torl.testing import build_tiny_model

    build_tiny_model(path)
    return path


def _logprobs(model, prompt_ids, completion_ids):
    import torch

    ids = torch.tensor([list(prompt_ids) + list(completion_ids)], device=model.device)
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt_ids) - 1 : -1].float()
    return logits.log_softmax(-1).gather(1, ids[0, len(prompt_ids) :, None])[:, 0].cpu()


def _gap(model, out):
    import torch

    diffs = []
    for p, c, lp, m in zip(out["prompt_ids"], out["completion_ids"], out["logprobs"], out["env_mask"]):
        keep = torch.tensor(m, dtype=torch.bool)
        diffs.append((torch.tensor(lp, dtype=torch.float32) - _logprobs(model, p, c))[keep].abs())
    return torch.cat(diffs).mean().item()


def train(mode, model_path, out):
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM

    from torl.data import torl_prompt
    from torl.trainers import TIRGRPOConfig, TIRGRPOTrainer

    gpu = torch.cuda.is_available()
    extra, rollout = {}, None
    if mode == "vllm-colocate":  # TRL builds the engine; torl drives it
        extra = {"use_vllm": True, "vllm_mode": "colocate", "vllm_gpu_memory_utilization": 0.3,
                 "vllm_max_model_length": 1024}
    elif mode == "vllm-own-llm":  # the user's own LLM, as docs/scaling.md says to build it
        from trl.trainer.utils import ensure_master_addr_port
        from vllm import LLM

        from torl.rollout import TIRRollout

        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
        ensure_master_addr_port()
        llm = LLM(model=model_path, dtype="bfloat16" if gpu else "float32", max_model_len=1024,
                  distributed_executor_backend="external_launcher", gpu_memory_utilization=0.3,
                  enable_prefix_caching=True, logprobs_mode="processed_logprobs", seed=0)
        rollout = TIRRollout.from_llm(llm, max_tool_calls=0, max_new_tokens=48)
        extra = {"use_vllm": True, "vllm_mode": "colocate"}

    def reward(completions, **kw):  # all different: every step moves the weights
        return [float(i) for i in range(len(completions))]

    ds = Dataset.from_dict({"prompt": [torl_prompt("What is 12 * 34 + 5?"), torl_prompt("What is 7 * 8?")] * 2})
    args = TIRGRPOConfig(
        output_dir=out, bf16=gpu, report_to=[], save_strategy="no", logging_steps=1, seed=0,
        per_device_train_batch_size=4, num_generations=4, max_steps=2, learning_rate=1e-2,
        max_completion_length=48, max_tool_calls=0, save_trajectories_steps=0, temperature=1.0,
        model_init_kwargs={"dtype": "bfloat16" if gpu else "float32"}, **extra,
    )
    trainer = TIRGRPOTrainer(model=model_path, reward_funcs=[reward], args=args, train_dataset=ds,
                             rollout=rollout)
    policy = trainer.accelerator.unwrap_model(trainer.model)
    initial = AutoModelForCausalLM.from_pretrained(model_path, dtype=policy.dtype).to(policy.device).eval()
    backend = getattr(trainer.rollout, "backend", None)
    rollout_func, gaps = trainer.rollout_func, []

    def spy(prompts, t):
        result = rollout_func(prompts, t)
        gaps.append((_gap(policy, result), _gap(initial, result)))
        return result

    trainer.rollout_func = spy
    trainer.train()
    trainer.close()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 2 and all(math.isfinite(h["loss"]) for h in logs), logs
    (_, _), (fresh, stale) = gaps
    assert fresh < 0.5 * stale, f"step-2 rollouts are closer to the initial weights: {fresh:.4f} vs {stale:.4f}"
    detail = f"step 2 mean |logprob gap|: trained {fresh:.4f}, initial {stale:.4f}"
    if "sampling/sampling_logp_difference/max" in logs[-1]:
        detail += f"; TRL logp diff max {logs[-1]['sampling/sampling_logp_difference/max']:.3f}"
    if hasattr(backend, "device"):
        detail += f"; driver thread on cuda:{backend.device}"
    return detail


if __name__ == "__main__":
    what = sys.argv[1]
    t0 = time.time()
    try:
        if what == "env":
            detail = env()
        elif what == "tiny":
            detail = tiny(sys.argv[2])
        else:
            detail = train(what, sys.argv[2], sys.argv[3])
        print("RESULT " + json.dumps({"ok": True, "detail": detail}), flush=True)
    except BaseException as e:  # noqa: BLE001 - every failure goes in the table
        print("RESULT " + json.dumps({"ok": False, "detail": f"{type(e).__name__}: {e}"[:300]}), flush=True)
        raise
    os._exit(0)  # engines' background threads must not hold the check past its result
PYEOF

# run NAME NEEDED_S ARGS...: one check in its own process, within the time left.
run() {
  local name=$1 need=$2; shift 2
  local budget=$(( $(left) - 5 ))
  if [ "$budget" -lt "$need" ]; then row "$name" SKIP 0 "not enough time left (${budget}s)"; return 1; fi
  local t0=$(date +%s) log="$WORK/$name.log"
  timeout "$budget" "$PY" "$WORK/check.py" "$@" >"$log" 2>&1
  local rc=$? dt=$(( $(date +%s) - t0 ))
  local res
  res=$(grep '^RESULT ' "$log" | tail -1 | cut -c8-)
  local detail
  detail=$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1] or "{}").get("detail", ""))' "$res" 2>/dev/null)
  if [ $rc -eq 0 ] && echo "$res" | grep -q '"ok": true'; then
    row "$name" PASS "$dt" "$detail"; return 0
  fi
  [ $rc -eq 124 ] && detail="timed out after ${budget}s; $detail"
  row "$name" FAIL "$dt" "${detail:-exit $rc, see $log}"
  return 1
}

TINY="$WORK/tiny"
run env 10 env
if run tiny-model 20 tiny "$TINY"; then
  run transformers-bf16 60 transformers "$TINY" "$WORK/out-hf"
  if "$PY" -c "import vllm" >/dev/null 2>&1; then
    run vllm-colocate-bf16 90 vllm-colocate "$TINY" "$WORK/out-colocate"
    run vllm-own-llm-bf16 90 vllm-own-llm "$TINY" "$WORK/out-own"
  else
    row vllm-colocate-bf16 SKIP 0 "vllm is not installed"
  fi
fi

report
