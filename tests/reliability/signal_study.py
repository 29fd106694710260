"""A two-run study for the signal trials, run as its own process, announcing every phase.

``python signal_study.py RESULTS [STUDY_DIR]`` runs (or resumes) a study of two
fake-engine configs whose every phase lasts long enough to be hit: the child's start-up
(the fork server's), a 1.5 s baseline (the scripted sampler reads a whole device, so a
baseline is taken), a window of about 1-2 s, and a 1.5 s thermal gap between the runs.
Each event is a line on stdout, flushed. SIGTERM stops it as Ctrl-C does, as under
``llem run``; the exit code is the study's (0, 130, ...).
"""

from __future__ import annotations

import functools
import signal
import sys
from pathlib import Path
from types import FrameType

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "study"))

import child_targets  # noqa: E402
from study_helpers import make_plan  # noqa: E402

from llenergymeasure.config.models import ExperimentConfig  # noqa: E402
from llenergymeasure.study import NullStudyReporter, RunEvent, run_isolated, run_study  # noqa: E402

GAP_S = 1.5
BASELINE_S = 1.5


def config(batch_size: int) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {
            "engine": "fake",
            "fake": {"token_latency_ms": 250, "batch_size": batch_size},
            "task": {"dataset": {"n_prompts": 2}, "max_output_tokens": 4},
            "measurement": {
                "warmup": {"enabled": False},
                "baseline": {"strategy": "fresh", "duration_s": BASELINE_S},
            },
        }
    )


class Announce(NullStudyReporter):
    def run_started(self, label: str, index: int, cycle: int) -> None:
        print(f"started {index}/c{cycle}", flush=True)

    def progress(self, index: int, cycle: int, event: RunEvent) -> None:
        if event.kind == "phase":
            print(f"phase {index}/c{cycle} {event.text}", flush=True)

    def waiting(self, seconds: float, reason: str) -> None:
        print(f"waiting {reason}", flush=True)

    def note(self, message: str) -> None:
        print(f"note {message}", flush=True)


def main(results: Path, resume: Path | None) -> int:
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    plan = make_plan([config(1), config(2)], experiment_gap_s=GAP_S, cycle_gap_s=GAP_S)
    try:
        outcome = run_study(
            plan,
            results_root=results,
            resume_dir=resume,
            reporter=Announce(),
            run_one=functools.partial(run_isolated, target=child_targets.fake_energy),
        )
    except KeyboardInterrupt:  # a signal held until the study's files were whole
        print("interrupted after the study closed", flush=True)
        return 130
    print(f"study {outcome.study_dir}", flush=True)
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None))
