#!/usr/bin/env bash
# On a machine with an NVIDIA GPU (an H100 or H200, say): exercise the real NVML and CUDA
# paths and print a compact report, in a few minutes.
#   1. what torch and NVML see, and `llem doctor`
#   2. the tests marked `gpu`
#   3. a short real `llem run` on CUDA, then the NVML counter against integrated power
# It needs a CUDA build of torch and nvidia-ml-py in .venv:
#   make .venv/.installed TORCH_SPEC=torch && .venv/bin/pip install nvidia-ml-py
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=${OUT:-$(mktemp -d)}

echo "== host"
nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit,persistence_mode --format=csv || true
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.version.cuda)"

echo "== llem doctor"
.venv/bin/llem doctor

echo "== gpu tests"
.venv/bin/pytest -m gpu -q -p no:cacheprovider tests

echo "== llem run on CUDA"
.venv/bin/llem run --model smollm2-135m -n 40 --batch-size 8 --max-output-tokens 128 \
  --dtype bfloat16 --output "$OUT" --json > "$OUT/result.json"

echo "== NVML counter vs integrated power"
$PY - "$OUT/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
e = r["energy"]
print(f"window {r['window']['duration_s']:.2f} s, {r['tokens']['n_output_tokens']} output tokens, "
      f"{r['throughput']['output_tokens_per_s']:.1f} tok/s")
print(f"energy {e['total_j']} J ({e['method']}, {e['sampler']}), adjusted {e['adjusted_j']} J")
for name, d in (e["details"].get("nvml") or e["details"]).get("devices", {}).items():
    print(f"  {name}: counter {d.get('counter_j')} J, integrated {d.get('integrated_j')} J, "
          f"gap {d.get('gap_pct')} %, {d.get('n_power_samples')} power samples")
for t in r["thermal"]:
    print(f"  {t['device']}: max {t['max_temperature_c']} C, throttled {t['throttled_s']} s {t['reasons']}")
print("warnings:", [w["code"] for w in r["warnings"]])
PY
