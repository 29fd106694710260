"""The options of ``llem run``: one typer alias each, so that the command's signature is a list."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llenergymeasure.experiment.options import DEFAULT_LOCK_TIMEOUT_S

ConfigArg = Annotated[
    Path | None,
    typer.Argument(metavar="[CONFIG]", help="experiment YAML/JSON file", show_default=False),
]
ModelOpt = Annotated[
    str | None, typer.Option("--model", "-m", help="alias, local folder, .gguf, or cached HF id")
]
EngineOpt = Annotated[
    str | None, typer.Option("--engine", "-e", help="transformers (default), vllm or tensorrt")
]
DatasetOpt = Annotated[
    str | None, typer.Option("--dataset", "-d", help="builtin, a .jsonl path, or synthetic")
]
PromptsOpt = Annotated[int | None, typer.Option("-n", "--n-prompts", help="number of prompts")]
BatchOpt = Annotated[int | None, typer.Option("--batch-size", "-b", help="requests per batch")]
DtypeOpt = Annotated[str | None, typer.Option("--dtype", help="float32, float16 or bfloat16")]
MaxTokensOpt = Annotated[int | None, typer.Option("--max-output-tokens", help="max new tokens")]
EnergyOpt = Annotated[
    str | None, typer.Option("--energy", help="energy sampler: auto, estimate, none, …")
]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="results folder (default: results/)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the result as JSON on stdout")]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="validate and print the plan; run nothing")
]
CyclesOpt = Annotated[int | None, typer.Option("--cycles", help="study: cycles per config")]
OrderOpt = Annotated[
    str | None,
    typer.Option("--order", help="study: sequential, interleave, shuffle, reverse, latin_square"),
]
NoGapsOpt = Annotated[bool, typer.Option("--no-gaps", help="study: no thermal gaps")]
ResumeOpt = Annotated[
    str | None,
    typer.Option(
        "--resume", help="study: finish the latest study of this file, or the study folder given"
    ),
]
ExecutorOpt = Annotated[
    str | None,
    typer.Option("--executor", help="study: local (one run at a time here) or ray (one per GPU)"),
]
AddressOpt = Annotated[
    str | None,
    typer.Option("--address", help="study: the Ray cluster to join (auto, ray://head:10001)"),
]
FailFastOpt = Annotated[
    bool, typer.Option("--fail-fast", help="study: stop after the first failed run")
]
TimeoutOpt = Annotated[
    str | None,
    typer.Option(
        "--timeout",
        metavar="DURATION",
        help="study: wall-clock budget (30s, 45m, 8h): start no run that cannot end in it; "
        "exit 124 when it runs out (--resume continues)",
    ),
]
MaxFailuresOpt = Annotated[
    int | None,
    typer.Option(
        "--max-consecutive-failures",
        metavar="N",
        help="study: failed runs in a row before the circuit breaker pauses, probes, aborts",
    ),
]
WideOpt = Annotated[bool, typer.Option("--wide", help="study tables: names in full")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no progress on stderr")]
ReportOpt = Annotated[
    bool,
    typer.Option(
        "--report", help="also write report.html (tables and plots) into the results folder"
    ),
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="tracebacks on errors")]
StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="refuse, rather than warn, when another process uses a GPU in scope or the "
        "model does not fit its free memory",
    ),
]
LockTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--lock-timeout",
        help="seconds to wait for a device another llem run is measuring "
        f"(default {DEFAULT_LOCK_TIMEOUT_S:g})",
        show_default=False,
    ),
]
NoLockOpt = Annotated[
    bool,
    typer.Option("--no-lock", help="do not lock the measured devices (figures may be corrupted)"),
]
