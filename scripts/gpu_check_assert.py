"""The assertions of scripts/gpu-check.sh over the result folders it wrote.

    python scripts/gpu_check_assert.py OUT [--min-window-s 10]

``OUT`` holds ``run/*/001_c1_*`` (the single run) and ``study/*/0*_c1_*`` (the 2 x 2
study). Each folder's figures are printed, null-safe, then every failure is listed and the
exit status is 1 if there is any. It reads only result.json and environment.json, so it
runs with the standard library alone, and its tests run it on simulated-H200 results.

The power cap is not asserted here: an LLM run at the check's sizes is not known to reach
an H200's 700 W limit, so "no throttling warning from the power cap alone" would hold
vacuously. The simulated H200 covers that case (tests/experiment/test_h200_run.py, item 6);
the printout shows the power-capped seconds and where they came from.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ACCELERATOR_FIELDS = (
    "name",
    "uuid",
    "memory_total_mib",
    "power_limit_w",
    "default_power_limit_w",
    "persistence_mode",
    "compute_capability",
)
MAX_GAP_PCT = 2.0
N_FOLDERS = 5


def folders(out: Path) -> tuple[list[Path], list[Path]]:
    """The single run's folders and the study's, as gpu-check.sh writes them."""
    return sorted(out.glob("run/*/001_c1_*")), sorted(out.glob("study/*/0*_c1_*"))


def check_folder(folder: Path, *, single: bool, min_window_s: float) -> list[str]:
    """What is wrong with one run's result (empty when nothing is)."""
    r = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    env = json.loads((folder / "environment.json").read_text(encoding="utf-8"))
    e = r["energy"]
    failures: list[str] = []

    def check(ok: object, what: str) -> None:
        if not ok:
            failures.append(f"{folder.name}: {what}")

    acc = [a for a in env.get("accelerators") or [] if a.get("in_scope")]
    filled = all(a.get(k) is not None for a in acc for k in ACCELERATOR_FIELDS)
    check(acc and filled, f"accelerators not filled: {env.get('accelerators')}")
    check(env.get("driver_version") and env.get("cuda_version"), "no driver or CUDA version")
    gpus = [d for d in e["domains"] if d["domain"].startswith("gpu:")]
    check(gpus and all(d["method"] == "counter" for d in gpus), f"GPU domains not counter: {gpus}")
    check(
        e["method"] == "counter" and e["confidence"] == "high",
        f"headline {e['method']}, {e['confidence']} (estimated domains must stand apart)",
    )
    window_s = r["window"]["duration_s"]
    check(window_s >= min_window_s, f"window {window_s:.2f} s under min_window_s")
    for d in gpus:
        check(d.get("power_source") == "instant", f"{d['domain']} power is {d.get('power_source')}")
        gap = d.get("gap_pct")
        check(
            gap is not None and abs(gap) <= MAX_GAP_PCT,
            f"{d['domain']} counter vs instant-integrated gap {gap} %",
        )
    failures += _idle_failures(folder.name, e, single=single)
    codes = {w["code"] for w in r["warnings"]}
    for t in r["thermal"]:
        check("throttling" not in codes or t["reasons"], "throttling warning with no reason")
    return failures


def _idle_failures(name: str, e: dict[str, Any], *, single: bool) -> list[str]:
    """The baseline was taken with the engine loaded, above the no-context idle; the single
    run (fresh cache) must have measured the no-context idle."""
    b, bare = e.get("baseline"), e.get("idle_no_context")
    found = []
    if b is None or not str(b.get("state") or "").startswith("engine loaded"):
        found.append(f"{name}: baseline not taken with the engine loaded: {b}")
    if single and bare is None:
        found.append(f"{name}: no no-context idle ({e.get('idle_no_context_note')})")
    if b is not None and bare is not None and not b["power_w"] > bare["power_w"]:
        found.append(
            f"{name}: baseline {b['power_w']:.1f} W not above the no-context idle "
            f"{bare['power_w']:.1f} W: taken without the context?"
        )
    return found


def _num(value: Any, spec: str = ".1f") -> str:
    """A figure for the printout, or ``null``."""
    return "null" if value is None else format(value, spec)


def summary(folder: Path) -> str:
    """One line of the run's figures; a null figure prints as ``null``."""
    r = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    e = r["energy"]
    gpus = [d for d in e["domains"] if d["domain"].startswith("gpu:")]
    b, bare = e.get("baseline") or {}, e.get("idle_no_context") or {}
    parts = [
        f"window {_num(r['window']['duration_s'])} s x {r['window'].get('n_passes')} passes",
        f"{_num(e.get('total_j'))} J ({e.get('method')})",
        *(
            f"{d['domain']} gap {_num(d.get('gap_pct'), '+.2f')} % ({d.get('power_source')})"
            for d in gpus
        ),
        f"baseline {_num(b.get('power_w'))} W vs no-context {_num(bare.get('power_w'))} W",
        *(
            f"{t['device']} power-capped {_num(t.get('power_capped_s'), '.2f')} s "
            f"({t.get('reason_sources')}), throttled {_num(t.get('throttled_s'), '.2f')} s"
            for t in r["thermal"]
        ),
        f"estimated apart: {_num((e.get('estimated') or {}).get('total_j'))} J",
        f"warnings {sorted(w['code'] for w in r['warnings'])}",
    ]
    return f"{folder.name}: " + "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Check every folder, print each one's figures and every failure; 1 if any failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--min-window-s", type=float, default=10.0)
    args = parser.parse_args(argv)
    single, study = folders(args.out)
    found = [*single, *study]
    failures = []
    if len(single) != 1 or len(found) != N_FOLDERS:
        failures.append(f"expected 1 + 4 result folders, found {len(single)} + {len(study)}")
    for folder in found:
        print(summary(folder))
        is_single = folder in single
        failures += check_folder(folder, single=is_single, min_window_s=args.min_window_s)
    if failures:
        print("\n".join(["FAILED:", *failures]), file=sys.stderr)
        return 1
    print(f"all {len(found)} runs pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
