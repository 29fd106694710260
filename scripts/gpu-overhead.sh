#!/usr/bin/env bash
# The GPU overhead matrix: bench/gpu_overhead.py on CUDA for the SmolLM2-135M and -1.7B
# shapes at batch 1, 4 and 16, within one call of the offline GPU machine (about 5 minutes
# on an H200; each case is cut at CASE_TIMEOUT_S). One case (135M, batch 4: the case of
# issue 14's 0.62-0.68) is also profiled with torch.profiler. Exits non-zero when a case
# fails or its llem/bare tokens/s ratio is below 0.97.
#
#   On the offline device machine (../shared/device/README.md), from the checkout's root:
#     . .device/setup.sh && bash scripts/gpu-overhead.sh
#   (--model takes the random-weight folders /tmp/models/m135 and /tmp/models/m1700 that
#   setup.sh writes: the bundled GGUF is not sent there.) Elsewhere, with a CUDA torch:
#     MODELS="/path/a /path/b" PY=.venv/bin/python bash scripts/gpu-overhead.sh
#
# Fewer prompts and tokens than the bench's defaults, so the matrix fits one call: two
# batches per side (n_prompts = 2 x batch size), 32 tokens, 2 reps. Everything goes to $OUT:
# host.txt, one <model>-b<batch>.txt per case, profile-m135-b4/ and summary.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
MODELS=${MODELS:-/tmp/models/m135 /tmp/models/m1700}
BATCHES=${BATCHES:-1 4 16}
TOKENS=${TOKENS:-32}
REPS=${REPS:-2}
CASE_TIMEOUT_S=${CASE_TIMEOUT_S:-110}
PROFILE_CASE=${PROFILE_CASE:-m135-b4}
TARGET=0.97
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
mkdir -p "$OUT"
{
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit,persistence_mode,mig.mode.current \
    --format=csv || echo "nvidia-smi failed"
  "$PY" -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__)"
  uptime
} > "$OUT/host.txt" 2>&1
cat "$OUT/host.txt"

status=0
for model in $MODELS; do
  if [ ! -e "$model" ]; then
    echo "FAIL: no model at $model: run '. .device/setup.sh' or set MODELS" | tee -a "$OUT/summary.txt"
    status=1
    continue
  fi
  for batch in $BATCHES; do
    name="$(basename "$model")-b$batch"
    profile=()
    [ "$name" = "$PROFILE_CASE" ] && profile=(--profile "$OUT/profile-$name")
    echo "== $name"
    timeout "$CASE_TIMEOUT_S" "$PY" bench/gpu_overhead.py --device cuda --model "$model" \
      --batch-size "$batch" --n-prompts $((2 * batch)) --max-output-tokens "$TOKENS" \
      --reps "$REPS" "${profile[@]}" > "$OUT/$name.txt" 2>&1
    rc=$?
    tail -n 12 "$OUT/$name.txt"
    ratio=$(tail -n 1 "$OUT/$name.txt" | awk '{print $NF}')
    if [ "$rc" -ne 0 ] || ! [[ "$ratio" =~ ^[0-9]+\.[0-9]+$ ]]; then
      echo "FAIL: $name: no ratio (exit $rc)" | tee -a "$OUT/summary.txt"
      status=1
    elif awk -v r="$ratio" -v t="$TARGET" 'BEGIN { exit !(r < t) }'; then
      echo "FAIL: $name: llem/bare $ratio < $TARGET" | tee -a "$OUT/summary.txt"
      status=1
    else
      echo "ok: $name: llem/bare $ratio" | tee -a "$OUT/summary.txt"
    fi
  done
done
echo "== summary"
cat "$OUT/summary.txt"
exit "$status"
