#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: run the tests marked `gpu` (the CUDA paths), and print what
# torch sees. Uses the project's .venv (make sets it up); the CPU torch build must be replaced by
# a CUDA one on such a machine: TORCH_SPEC=torch make .venv/.installed
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit --format=csv || true
.venv/bin/python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.version.cuda)"
.venv/bin/pytest -m gpu -v -p no:cacheprovider tests
