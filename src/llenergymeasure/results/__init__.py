"""Reading results back: list, show, compare and export runs and studies.

``load(path)`` returns the runs of a study or run folder as a pandas DataFrame (pandas
is imported only when it is called).
"""

from llenergymeasure.results.export import load

__all__ = ["load"]
