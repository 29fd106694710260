"""What ``llem results list`` says about a set as a whole: its models, engines and energy."""

from __future__ import annotations

from dataclasses import dataclass

from llenergymeasure.errors import ResultError
from llenergymeasure.results.collection import ResultSet
from llenergymeasure.results.views import read_header

__all__ = ["Listing", "describe"]


@dataclass(frozen=True)
class Listing:
    """One line of ``llem results list``: a set and what its completed runs hold."""

    results: ResultSet
    models: tuple[str, ...]
    engines: tuple[str, ...]
    total_energy_j: float | None
    n_energy_unknown: int
    n_unreadable: int


def describe(results: ResultSet) -> Listing:
    """Models, engines and total energy of the completed runs (from their headers)."""
    models: dict[str, None] = {}
    engines: dict[str, None] = {}
    energies: list[float] = []
    unknown = unreadable = 0
    for entry in results.completed:
        assert entry.folder is not None  # completed entries have one
        try:
            header = read_header(entry.folder)
        except ResultError:
            unreadable += 1
            continue
        models.setdefault(header.model.name, None)
        engines.setdefault(header.engine, None)
        if header.energy.total_j is None:
            unknown += 1
        else:
            energies.append(header.energy.total_j)
    return Listing(
        results=results,
        models=tuple(models),
        engines=tuple(engines),
        total_energy_j=sum(energies) if energies else None,
        n_energy_unknown=unknown,
        n_unreadable=unreadable,
    )
