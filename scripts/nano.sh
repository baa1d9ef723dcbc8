#!/usr/bin/env bash
# The nano ToRL run in one command (`make nano`): set up the environment, then run examples/nano/run.py.
# Extra arguments go to the script (e.g. --steps 10 --out /tmp/nano).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The local sandbox isolates cells with bubblewrap; as root without it, cells would run as an
# unprivileged user that cannot read a Python installed under /root.
if ! command -v bwrap >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
fi
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "${VENV:-.venv}/bin/python" examples/nano/run.py "$@"
