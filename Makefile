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

bench: install
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf work_dirs models metrics plots data/shapes
