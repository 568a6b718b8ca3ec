"""A table that never cuts a figure: at a narrow width it drops its least important columns.

Rich fits a table that is too wide by shrinking columns, and a shrunk cell loses characters
(``65,00…``). A ``FitTable`` keeps every figure whole: its columns take their full width (a column
of free text may fold), and while the table is still wider than the space it is given, the columns
named in ``drop`` (least important first) are left out and named in the caption; ``--json`` always
has them all.

Rich draws each cell through its general machinery (a padding renderable, lines rendered, cropped
and reshaped, every cell measured again for each width it is tried at): over a millisecond a
cell, most of ``value`` on a hundred positions. The tables here are simpler: one line per cell, in
columns that fit. For those, ``FitTable`` lays the rows out itself, with Rich's own text and segment
functions and the same segments Rich would give (a test compares them over every kind of table);
anything else (a cell that folds onto a second line, a column too narrow, section lines, a nested
renderable) is left to Rich.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from rich.table import Column, Table
from rich.text import Text


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
        drawn = _drawn(table, console, options)
        if drawn is None:
            yield from Table.__rich_console__(table, console, options)
        else:
            yield from drawn

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
        measured = _measure_column(table, console, options, column)
        total += measured.maximum if column.no_wrap else measured.minimum
    return total


def _with_columns(table: Table, columns: Iterable[Column]) -> Table:
    narrowed = copy.copy(table)
    narrowed.columns = [replace(c, _index=i, _cells=list(c._cells)) for i, c in enumerate(columns)]
    return narrowed


# What follows mirrors rich.table.Table (its __rich_console__, _measure_column and _render) for the
# simple case, calling the same Text and Segment methods in the same order.


def _texts(table: Table, console: Console, options: ConsoleOptions, column: Column) -> list[str | Text] | None:
    """The column's header (if shown) and cells as Rich turns them into Text, a plain string standing
    for ``Text(string)`` (what ``render_str`` gives for a string with no markup, emoji code or control
    character); None when one is another kind of renderable."""
    cells = [column.header, *column._cells] if table.show_header else column._cells
    texts: list[str | Text] = []
    for cell in cells:
        if isinstance(cell, str):
            if column.highlight or "[" in cell or ":" in cell or not cell.isprintable():
                texts.append(console.render_str(cell, highlight=column.highlight, markup=options.markup))
            else:
                texts.append(cell)
        elif isinstance(cell, Text):
            texts.append(cell)
        else:
            return None
    return texts


def _extent(text: str | Text) -> tuple[int, int]:
    """Text.__rich_measure__: the longest word and the longest line."""
    if isinstance(text, str):  # printable: one line, words split by spaces only
        longest = cell_len(text)
        if " " not in text or not text.strip():
            return longest, longest
        return max(map(cell_len, text.split())), longest
    plain = text.plain
    lines = plain.splitlines()
    longest = max(map(cell_len, lines)) if lines else 0
    words = plain.split()
    return (max(map(cell_len, words)) if words else longest), longest


def _padding(table: Table, column_index: int) -> tuple[int, int]:
    """A cell's left and right padding in this column (Table._get_cells' get_padding)."""
    _, right, _, left = table.padding
    if table.collapse_padding and column_index != 0:
        left = max(0, left - right)
    if not table.pad_edge:
        if column_index == 0:
            left = 0
        if column_index == len(table.columns) - 1:
            right = 0
    return left, right


def _measure_column(
    table: Table, console: Console, options: ConsoleOptions, column: Column, texts: list[str | Text] | None = None
) -> Measurement:
    """Table._measure_column, without building a Padding around every cell."""
    max_width = options.max_width
    left, right = _padding(table, column._index)
    if texts is None and not table.show_footer:
        texts = _texts(table, console, options, column)
    if texts is None or table.show_footer or column.width is not None or max_width - left - right < 1:
        return table._measure_column(console, options, column)
    # Measurement.get of each text (clamped to the width), of its Padding (the padding added, clamped
    # again), then the largest: every step is monotonic and a text's longest word is never longer than
    # its longest line, so clamping the largest gives the same figures.
    minimum = maximum = 0
    if texts:
        lows, highs = zip(*map(_extent, texts), strict=True)
        padded = left + right
        minimum = min(min(max(lows), max_width) + padded, max_width)
        maximum = min(min(max(highs), max_width) + padded, max_width)
    padding_width = table._get_padding_width(column._index)
    measurement = Measurement(minimum if texts else 1, maximum if texts else max_width).with_maximum(max_width)
    return measurement.clamp(
        None if column.min_width is None else column.min_width + padding_width,
        None if column.max_width is None else column.max_width + padding_width,
    )


def _simple(table: Table) -> bool:
    top, _, bottom, _ = table.padding
    return not (
        table.show_footer
        or table.show_lines
        or table.leading
        or table.expand
        or table.min_width is not None
        or top
        or bottom
        or any(row.end_section for row in table.rows)
        or not table.columns
        or not any(table.padding)  # without padding, Rich renders each cell bare
    )


def _drawn(table: Table, console: Console, options: ConsoleOptions) -> list[Segment] | None:
    """Table.__rich_console__'s segments for a table of one-line cells in columns that fit; None
    for any other table."""
    if not _simple(table):
        return None
    max_width = options.max_width if table.width is None else table.width
    extra_width = table._extra_width
    measure_options = options.update_width(max_width - extra_width)
    columns = table.columns
    texts = []
    widths = []
    for column in columns:
        column_texts = _texts(table, console, options, column)
        if column_texts is None or column.width is not None or column.ratio:
            return None
        texts.append(column_texts)
        widths.append(_measure_column(table, console, measure_options, column, column_texts).maximum or 1)
    if sum(widths) > measure_options.max_width:
        return None  # Rich shrinks the columns
    render_options = options.update(width=sum(widths) + extra_width, highlight=table.highlight, height=None)

    rows = _rows(table, console, render_options, widths, texts)
    if rows is None:
        return None
    out: list[Segment] = []
    if table.title:
        out += _annotation(console, render_options, table.title, table.title_style, "table.title", table.title_justify)
    out += rows
    if table.caption:
        out += _annotation(
            console, render_options, table.caption, table.caption_style, "table.caption", table.caption_justify
        )
    return out


def _annotation(
    console: Console, options: ConsoleOptions, text: Any, style: Any, default: str, justify: Any
) -> list[Segment]:
    render_text = (
        console.render_str(text, style=Style.pick_first(style, default), highlight=False)
        if isinstance(text, str)
        else text
    )
    return list(console.render(render_text, options=options.update(justify=justify)))


def _rows(
    table: Table, console: Console, options: ConsoleOptions, widths: list[int], texts: list[list[str | Text]]
) -> list[Segment] | None:
    get_style = console.get_style
    table_style = get_style(table.style or "")
    border_style = table_style + get_style(table.border_style or "")
    box = (
        table.box.substitute(options, safe=table.safe_box if table.safe_box is not None else console.safe_box)
        if table.box
        else None
    )
    if box and not table.show_header:
        box = box.get_plain_headed_box()
    show_edge = table.show_edge
    new_line = Segment.line()
    pad_style = get_style("none")  # a Padding's own style
    columns = table.columns
    header_style = get_style(table.header_style or "")
    cell_styles = [get_style(c.style or "") for c in columns]
    header_styles = [header_style + get_style(c.header_style) for c in columns]
    paddings = [_padding(table, i) for i in range(len(columns))]
    tab_size = console.tab_size

    out: list[Segment] = []
    if box:
        edges = [
            (
                Segment(box.head_left, border_style),
                Segment(box.head_right, border_style),
                Segment(box.head_vertical, border_style),
            ),
            (
                Segment(box.mid_left, border_style),
                Segment(box.mid_right, border_style),
                Segment(box.mid_vertical, border_style),
            ),
            (
                Segment(box.foot_left, border_style),
                Segment(box.foot_right, border_style),
                Segment(box.foot_vertical, border_style),
            ),
        ]
        if show_edge:
            out += [Segment(box.get_top(widths), border_style), new_line]
    count = min(len(column_texts) for column_texts in texts)
    # A plain string in a no-wrap column it fits, justified left, right or centre: one segment, as
    # _cell gives it; the columns where that shortcut holds, and their padding segments.
    quick = [bool(c.no_wrap) and c.justify in ("left", "right", "center") and c.overflow != "ignore" for c in columns]
    pads = [
        (Segment(" " * left, pad_style) if left else None, Segment(" " * right, pad_style) if right else None)
        for left, right in paddings
    ]
    inner = [width - left - right for width, (left, right) in zip(widths, paddings, strict=True)]
    plain_dividers: dict[int, Segment] = {}
    for index in range(count):
        first, last = index == 0, index == count - 1
        header_row = first and table.show_header
        row_style = Style.null() if header_row else get_style(table.get_row_style(console, index - table.show_header))
        line: list[Segment] = []
        edge = 0 if first else (2 if last else 1)
        if box:
            divider = edges[edge][2]
            if not divider.text.strip():  # a blank divider takes the row's background
                if row_style:
                    divider = Segment(divider.text, row_style.background_style + divider.style)
                elif edge in plain_dividers:
                    divider = plain_dividers[edge]
                else:
                    divider = plain_dividers[edge] = Segment(divider.text, row_style.background_style + divider.style)
        for n, column in enumerate(columns):
            style = header_styles[n] if header_row else cell_styles[n]
            if row_style:
                style += row_style
            text = texts[n][index]
            width = inner[n]
            cell: list[Segment] | None
            if quick[n] and isinstance(text, str) and width >= 1 and cell_len(text) <= width:
                cell = [Segment(_justified(text, width, column.justify))]
            else:
                cell = _cell(console, text, width, column, tab_size, pad_style)
                if cell is None:
                    return None
            left_pad, right_pad = pads[n]
            if left_pad:
                cell.insert(0, left_pad)
            if right_pad:
                cell.append(right_pad)
            if style:
                cell = [Segment(text, style + segment_style) for text, segment_style, _ in cell]
            if box and n:
                line.append(divider)
            line += cell
        if box and show_edge:
            left_edge, right_edge, _ = edges[edge]
            line = [left_edge, *line, right_edge]
        out += line
        out.append(new_line)
        if box and header_row:
            out += [Segment(box.get_row(widths, "head", edge=show_edge), border_style), new_line]
    if box and show_edge:
        out += [Segment(box.get_bottom(widths), border_style), new_line]
    return out


def _cell(
    console: Console, text: str | Text, width: int, column: Column, tab_size: int, pad_style: Style
) -> list[Segment] | None:
    """The one line of segments ``text`` renders to in a cell ``width`` wide (inside its padding),
    as Padding and Text.__rich_console__ give it; None when it takes more than one line."""
    if width < 1:
        return None
    style: str | Style
    if isinstance(text, str):
        plain, spans, style, end = text, False, "", "\n"
        justify = column.justify or "default"
        overflow = column.overflow or "fold"
        no_wrap = bool(column.no_wrap)
    else:
        plain, spans, style, end = text.plain, bool(text._spans), text.style, text.end
        justify = text.justify or column.justify or "default"
        overflow = text.overflow or column.overflow or "fold"
        no_wrap = text.no_wrap if text.no_wrap is not None else bool(column.no_wrap)
    if (
        no_wrap
        and not spans
        and justify in ("left", "right", "center")
        and overflow != "ignore"
        and "\n" not in plain
        and "\t" not in plain
        and end in ("", "\n")
        and cell_len(plain) <= width
    ):
        shown = _justified(plain, width, justify)  # Lines.justify on the one line, then Text.render
        if not style:
            return [Segment(shown)]
        return [Segment(shown, console.get_style(style, default=Style.null()))]
    if isinstance(text, str):
        text = Text(text)
    tabs = tab_size if text.tab_size is None else text.tab_size
    lines = text.wrap(console, width, justify=justify, overflow=overflow, tab_size=tabs or 8, no_wrap=no_wrap)
    if len(lines) != 1:
        return None
    segments = [s for s in Text("\n").join(lines).render(console, end=text.end) if s.text != "\n"]
    if any("\n" in s.text for s in segments):
        return None
    return Segment.adjust_line_length(segments, width, style=pad_style, pad=True)


def _justified(plain: str, width: int, justify: str) -> str:
    """One line no wider than ``width`` justified as Lines.justify does it: left pads on the right,
    right and centre strip trailing spaces first."""
    if justify == "left":
        return plain + " " * (width - cell_len(plain))
    stripped = plain.rstrip()
    pad = width - cell_len(stripped)
    shown = " " * (pad if justify == "right" else pad // 2) + stripped
    return shown + " " * (width - cell_len(shown))
