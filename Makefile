# Set-up and entry points. Every target works on a fresh clone: it builds .venv first when needed.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# Stages run `python -m ...` from dvc.yaml: the venv's python must come first on PATH.
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: demo test test-fast install lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	# torch first and pinned: the local CPU wheel; unpinned, pip would pull a CUDA build of a newer torch.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	@test -d .git || (git init -q && git add -A && git -c user.name=trainline -c user.email=trainline@localhost commit -qm "initial")
	$(BIN)/dvc repro
	@$(BIN)/trainline report

test: install
	$(BIN)/ruff check engine stages tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest -q

# The unit tests and the fast CLI tests: no dvc pipelines, servers or multi-process runs.
test-fast: install
	$(BIN)/ruff check engine stages tests benchmarks
	$(BIN)/pytest -q -m "not slow and not multiprocess"

lint: install
	$(BIN)/ruff check engine stages tests benchmarks
	$(BIN)/mypy

# The peer frameworks (Lightning, MMEngine) live in a venv of their own that only the peer and checkpoint benchmarks
# use: the project and its tests never need them. Same torch pin as .venv; mmengine pulls opencv-python.
BENCH_VENV := .bench-venv
$(BENCH_VENV)/.installed: pyproject.toml
	$(PY) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --upgrade --quiet pip
	$(BENCH_VENV)/bin/pip install --quiet torch==2.13.0
	$(BENCH_VENV)/bin/pip install --quiet -e . lightning==2.6.6 mmengine==0.10.7 safetensors
	touch $@

bench: install $(BENCH_VENV)/.installed
	$(BIN)/python -m benchmarks.run
	$(BENCH_VENV)/bin/python -m benchmarks.peers
	$(BENCH_VENV)/bin/python -m benchmarks.checkpoint

clean:
	rm -rf work_dirs models metrics plots data/shapes
