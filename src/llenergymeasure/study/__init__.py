"""MANY experiments: sweep plans run in isolated subprocesses, with a manifest and resume."""

from llenergymeasure.study.isolation import RunOutcome, run_isolated
from llenergymeasure.study.manifest import Manifest, ManifestEntry, remaining
from llenergymeasure.study.models import StudyPlanLike, StudyResult
from llenergymeasure.study.reporter import NullStudyReporter, StudyReporter
from llenergymeasure.study.run import StudyOutcome, run_study

__all__ = [
    "Manifest",
    "ManifestEntry",
    "NullStudyReporter",
    "RunOutcome",
    "StudyOutcome",
    "StudyPlanLike",
    "StudyReporter",
    "StudyResult",
    "remaining",
    "run_isolated",
    "run_study",
]
