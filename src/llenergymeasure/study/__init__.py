"""MANY experiments: sweep plans run in isolated subprocesses, with a manifest and resume."""

from llenergymeasure.study.events import RunEvent
from llenergymeasure.study.isolation import RunLimits, RunOutcome, run_isolated
from llenergymeasure.study.manifest import Manifest, ManifestEntry, remaining
from llenergymeasure.study.models import StudyPlanLike, StudyResult
from llenergymeasure.study.reporter import NullStudyReporter, StudyReporter
from llenergymeasure.study.run import EXIT_TIMED_OUT, StudyOutcome, run_study
from llenergymeasure.study.status import StudyStatusReport, study_status

__all__ = [
    "EXIT_TIMED_OUT",
    "Manifest",
    "ManifestEntry",
    "NullStudyReporter",
    "RunEvent",
    "RunLimits",
    "RunOutcome",
    "StudyOutcome",
    "StudyPlanLike",
    "StudyReporter",
    "StudyResult",
    "StudyStatusReport",
    "remaining",
    "run_isolated",
    "run_study",
    "study_status",
]
