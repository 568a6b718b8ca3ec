"""A table that never cuts a figure: at a narrow width it drops its least important columns.

Rich fits a table that is too wide by shrinking columns, and a shrunk cell loses characters
(``65,00…``). A ``FitTable`` keeps every figure whole: its columns take their full width (a column
of free text may fold), and while the table is still wider than the space it is given, the columns
named in ``drop`` (least important first) are left out and named in the caption; ``--json`` always
has them all.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Column, Table


class FitTable(Table):
    def __init__(self, *args: Any, drop: Sequence[str] = (), **kwargs: Any) -> None:
        kwargs.setdefault("collapse_padding", True)  # one space of padding between columns, not two
        kwargs.setdefault("pad_edge", False)
        super().__init__(*args, **kwargs)
        self.drop = tuple(drop)

    def add_column(self, header: Any = "", *args: Any, **kwargs: Any) -> None:
        # Cells are never wrapped, so never cut; a column of free text says ``wrap=True`` and folds.
        if kwargs.pop("wrap", False):
            kwargs.setdefault("overflow", "fold")
        else:
            kwargs.setdefault("no_wrap", True)
        super().add_column(header, *args, **kwargs)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        table = self.fitted(console, options)
        yield from Table.__rich_console__(table, console, options)

    def fitted(self, console: Console, options: ConsoleOptions) -> Table:
        """This table, or a copy without the droppable columns that do not fit ``options.max_width``."""
        width = options.max_width if self.width is None else min(self.width, options.max_width)
        dropped: list[str] = []
        table: Table = self
        for header in self.drop:
            if _needed(table, console, options) <= width:
                break
            kept = [c for c in table.columns if _header(c) != header]
            if len(kept) == len(table.columns):
                continue
            dropped.append(header)
            table = _with_columns(self, kept)
        if dropped:
            note = f"not shown at this width: {', '.join(dropped)}"
            table.caption = f"{table.caption}; {note}" if table.caption else note
        return table


def _header(column: Column) -> str:
    header = column.header
    return header.plain if hasattr(header, "plain") else str(header)


def _needed(table: Table, console: Console, options: ConsoleOptions) -> int:
    """The width ``table`` needs with every no-wrap column whole (a wrapping column at its minimum)."""
    total = table._extra_width
    for column in table.columns:
        measured = table._measure_column(console, options, column)
        total += measured.maximum if column.no_wrap else measured.minimum
    return total


def _with_columns(table: Table, columns: Iterable[Column]) -> Table:
    narrowed = copy.copy(table)
    narrowed.columns = [replace(c, _index=i, _cells=list(c._cells)) for i, c in enumerate(columns)]
    return narrowed
