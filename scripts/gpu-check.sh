#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU, measure for real and assert what the
# simulated NVML can only stand in for. Exits non-zero on the first failed assertion.
# About 5 minutes on an H200 with no network.
#
#   On the offline device machine (../shared/device/README.md), from the checkout's root:
#     . .device/setup.sh && bash scripts/gpu-check.sh
#   On a GPU machine with .venv (a CUDA torch) and models of your own:
#     MODEL=/path/to/model LLEM=.venv/bin/llem PY=.venv/bin/python bash scripts/gpu-check.sh
#
# Steps: the host; `llem doctor`; one run of >= 10 s on CUDA (warm-up through a 30 s
# thermal floor); a 2 x 2 study (batch size x output length) in isolated children. Then, for
# every run: accelerators filled in environment.json (driver and CUDA too); the NVML counter
# is the headline method; the counter and integrated instant power agree within 2 %; the
# baseline was taken with the engine loaded (above the no-context idle); no throttling
# warning from the power cap alone. Output and result folders go to $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
MODEL=${MODEL:-/tmp/models/m135}
if [ -z "${LLEM:-}" ]; then
  if command -v llem >/dev/null; then LLEM=llem; else LLEM=.venv/bin/llem; fi
fi
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
mkdir -p "$OUT"
say() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -e "$MODEL" ] || fail "no model at $MODEL: run '. .device/setup.sh' (random-weight models) or set MODEL"

say "host"
nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit,persistence_mode --format=csv \
  || fail "nvidia-smi failed"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.version.cuda)"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || fail "torch sees no CUDA GPU"

say "llem doctor"
timeout 120 "$LLEM" doctor
timeout 120 "$LLEM" doctor --json > "$OUT/doctor.json"
"$PY" - "$OUT/doctor.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["gpus"], f"doctor lists no GPU: {d['gpu_reason']}"
assert d["energy_samplers"]["nvml"]["available"], d["energy_samplers"]["nvml"]["reason"]
print(f"doctor: {len(d['gpus'])} GPU(s), driver {d['driver_version']}, CUDA {d['cuda_version']}")
PY

say "one run on CUDA (>= 10 s window, busy thermal floor)"
cat > "$OUT/experiment.yaml" <<YAML
task: {model: $MODEL, dataset: {n_prompts: 16}, max_output_tokens: 64, max_input_tokens: 128}
transformers: {batch_size: 4, dtype: bfloat16, sampling: {min_new_tokens: 64}}
measurement:
  min_window_s: 10
  warmup: {n_warmup: 2, thermal_floor_s: 30}
  baseline: {duration_s: 10, spot_check_s: 5, strategy: fresh}
YAML
timeout 240 "$LLEM" run "$OUT/experiment.yaml" --output "$OUT/run" --json > "$OUT/run.json" \
  || fail "llem run failed (see above)"

say "a 2 x 2 study on CUDA (isolated children)"
cat > "$OUT/study.yaml" <<YAML
study_name: gpu-check
task: {model: $MODEL, dataset: {n_prompts: 16}, max_input_tokens: 128}
transformers: {dtype: bfloat16, sampling: {min_new_tokens: 32}}
measurement:
  min_window_s: 10
  warmup: {enabled: false}   # the single run above exercises the thermal floor
  baseline: {duration_s: 5, spot_check_s: 5, strategy: fresh}
sweep: {transformers.batch_size: [4, 16], task.max_output_tokens: [32, 64]}
study_execution: {n_cycles: 1, experiment_gap_s: 0, cycle_gap_s: 0}
YAML
timeout 300 "$LLEM" run "$OUT/study.yaml" --output "$OUT/study" || fail "the study failed"

say "assertions"
"$PY" - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
folders = sorted(out.glob("run/*/001_c1_*")) + sorted(out.glob("study/*/0*_c1_*"))
assert len(folders) == 5, f"expected 5 result folders, found {len(folders)}: {folders}"
failures = []
for folder in folders:
    r = json.loads((folder / "result.json").read_text())
    env = json.loads((folder / "environment.json").read_text())
    e, name = r["energy"], folder.name
    def check(ok, what):
        if not ok:
            failures.append(f"{name}: {what}")
    acc = [a for a in env["accelerators"] if a.get("in_scope")]
    check(acc and all(a.get(k) is not None for a in acc for k in (
        "name", "uuid", "memory_total_mib", "power_limit_w", "default_power_limit_w",
        "persistence_mode", "compute_capability")), f"accelerators not filled: {env['accelerators']}")
    check(env["driver_version"] and env["cuda_version"], "no driver or CUDA version")
    gpus = [d for d in e["domains"] if d["domain"].startswith("gpu:")]
    check(gpus and all(d["method"] == "counter" for d in gpus), f"GPU domains not counter: {gpus}")
    check(e["method"] == "counter" and e["confidence"] == "high",
          f"headline {e['method']}, {e['confidence']} (estimated domains must stand apart)")
    window_s = r["window"]["duration_s"]
    check(window_s >= 10, f"window {window_s:.2f} s under min_window_s")
    for d in gpus:
        check(d["power_source"] == "instant", f"{d['domain']} power is {d['power_source']}")
        check(d["gap_pct"] is not None and abs(d["gap_pct"]) <= 2.0,
              f"{d['domain']} counter vs instant-integrated gap {d['gap_pct']} %")
    b, bare = e["baseline"], e["idle_no_context"]
    check(b is not None and b["state"].startswith("engine loaded"), f"baseline: {b}")
    if b is not None and bare is not None:
        check(b["power_w"] > bare["power_w"], f"baseline {b['power_w']:.1f} W not above the "
              f"no-context idle {bare['power_w']:.1f} W: taken without the context?")
    codes = {w["code"] for w in r["warnings"]}
    for t in r["thermal"]:
        check("sw_power_cap" not in t["reasons"], f"power cap counted as throttling: {t}")
        check("throttling" not in codes or t["reasons"], "throttling warning with no reason")
    print(f"{name}: window {window_s:.1f} s x {r['window']['n_passes']} passes; "
          f"{e['total_j']:.1f} J ({e['method']}); " + "; ".join(
              f"{d['domain']} gap {d['gap_pct']:+.2f} % ({d['power_source']})" for d in gpus)
          + f"; baseline {b['power_w']:.1f} W" + (f" vs no-context {bare['power_w']:.1f} W" if bare else "")
          + "; " + "; ".join(f"{t['device']} power-capped {t['power_capped_s']} s "
                             f"({t['reason_sources']}), throttled {t['throttled_s']} s"
                             for t in r["thermal"])
          + f"; estimated apart: {(e['estimated'] or {}).get('total_j')} J; warnings {sorted(codes)}")
if failures:
    print("\n".join(["FAILED:", *failures]), file=sys.stderr)
    sys.exit(1)
print(f"all {len(folders)} runs pass")
PY
echo "gpu-check: OK ($OUT)"
