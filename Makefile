# Quick start: `make run` (set up, then run the default config) and `make test` (set up, then test).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# `make run`: the climb demonstration (a bench of two arms from one seed model, ~5 minutes on 2
# cores); `make run CONFIG=configs/...yaml` runs that run config instead.
ifdef CONFIG
RUN := run $(CONFIG)
else
RUN := bench configs/arith/climb-demo.yaml
endif
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup run test test-slow test-browser lint format bench clean

$(BIN)/selfplay: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch==2.13.0 is pinned in pyproject.toml: pip takes the CPU wheel on a machine that has it.
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

setup: $(BIN)/selfplay

run: setup
	$(BIN)/selfplay $(RUN)

test: setup
	$(BIN)/python -m pytest -q

# The slow suite includes a bench on a local two-node Ray cluster and runs logged to wandb
# (offline) and trackio, so it installs those extras.
test-slow: setup
	$(BIN)/python -m pip install -q -e '.[test,ray,wandb,trackio]'
	$(BIN)/python -m pytest -q -m slow

# Needs Debian's chromium (`apt-get install chromium`); .ci/run installs it.
test-browser: setup
	$(BIN)/python -m pip install -q -e '.[test,browser]'
	$(BIN)/python -m pytest -q -m browser

lint: setup
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

format: setup
	$(BIN)/ruff format src tests scripts
	$(BIN)/ruff check --fix src tests scripts

bench: setup
	$(BIN)/python scripts/cpu_bench.py --out benchmarks/results/cpu_bench.json
	$(BIN)/python scripts/verifier_bench.py --out benchmarks/results/verifier_bench.json

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
