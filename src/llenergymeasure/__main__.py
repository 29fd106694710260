"""``python -m llenergymeasure`` runs the ``llem`` command."""

from llenergymeasure.cli.app import run

run()
