"""Tables that fit the terminal (80 columns when output is not one): long names are cut
in the middle, where they differ least (a study's name and the time it started stay
readable: ``sweep-batch…T101500Z``); ``--wide`` and ``--json`` show them whole."""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

__all__ = ["WIDE_COLUMNS", "Cell", "add_rows", "middle", "output_console", "width_of"]

# --wide: as wide as the content needs (lines longer than the terminal wrap there).
WIDE_COLUMNS = 10_000
# A name is never cut below this many characters, however narrow the terminal.
_MIN_LABEL = 12
Cell = str | Text
# Other columns longer than this (an error message) wrap rather than squeeze the name.
_WRAPS_AT = 30


def middle(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters by an ellipsis in the middle."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    head = width // 2
    tail = width - 1 - head
    return text[:head] + "…" + (text[-tail:] if tail else "")


def output_console(*, wide: bool, stderr: bool = False) -> Console:
    """A console for tables: the terminal's width (80 when not a terminal), or ``--wide``."""
    if wide:
        return Console(stderr=stderr, highlight=False, width=WIDE_COLUMNS)
    return Console(stderr=stderr, highlight=False)


def width_of(console: Console, wide: bool) -> int | None:
    """The width tables must fit, or None to show names whole."""
    return None if wide else console.width


def add_rows(
    table: Table, rows: Sequence[Sequence[Cell]], *, label: int, width: int | None
) -> None:
    """Add ``rows`` to ``table`` (plain strings are escaped, Text kept as is).

    The ``label`` column never wraps: with ``width``, its text is cut in the middle so
    that the table fits that many columns; with None it is whole.
    """
    table.columns[label].no_wrap = True
    limit = None if width is None else _label_width(table, rows, label, width)
    for row in rows:
        cells: list[Cell] = []
        for i, cell in enumerate(row):
            if i == label and limit is not None:
                cell = _cut(cell, limit)
            cells.append(escape(cell) if isinstance(cell, str) else cell)
        table.add_row(*cells)


def _cut(cell: Cell, limit: int) -> Cell:
    if isinstance(cell, Text):
        return Text(middle(cell.plain, limit), style=cell.style)
    return "\n".join(middle(line, limit) for line in cell.split("\n"))


def _label_width(table: Table, rows: Sequence[Sequence[Cell]], label: int, width: int) -> int:
    """What is left for the label column once the others have their widest line."""
    others = 0
    for i, column in enumerate(table.columns):
        if i == label:
            continue
        header = column.header if isinstance(column.header, str | Text) else ""
        longest = max([_longest(header), *(_longest(row[i]) for row in rows if i < len(row))])
        others += min(longest, _WRAPS_AT)
    # rich's default box: a border before each column and after the last, one space of
    # padding on each side of every cell.
    overhead = 3 * len(table.columns) + 1
    return max(_MIN_LABEL, width - others - overhead)


def _longest(cell: Cell) -> int:
    text = cell.plain if isinstance(cell, Text) else cell
    return max((cell_len(line) for line in text.split("\n")), default=0)
