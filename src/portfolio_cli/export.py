"""CSV and JSON files of ledger records, written for exports and read back by ``portfolio import``.

- Every value is text: exact decimals as the ledger holds them (never floats), times in UTC ISO-8601.
- CSV: a header of the documented columns and one row per record. Every CSV the tool writes (exports,
  ``report --csv``, ``compare --csv``) goes through ``spreadsheet_safe``: a cell starting with ``=``,
  ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'`` so a spreadsheet shows it instead
  of running it as a formula (a leading ``'`` is doubled, so reading back is exact); a cell that is a
  plain decimal number (``-12.5``, ``1E-8``) is left as it is: numbers stay numbers.
- JSON: ``schema_version``, ``tool_version``, ``kind``, ``portfolio``, ``from``, ``to``,
  ``exported_at``, ``content_sha256`` (SHA-256 of the records as canonical JSON: keys sorted,
  ``,``/``:`` separators, UTF-8) and ``records``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

SCHEMA_VERSION = 1
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_GUARDED = frozenset("".join(FORMULA_START) + "'")  # the first characters a cell may need a ``'`` for
NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")
Record = dict[str, str | None]


@dataclass(frozen=True)
class RecordTable:
    kind: str
    columns: tuple[str, ...]
    numeric: frozenset[str]  # written as they are; every other column is text
    records: list[Record] = field(default_factory=list)
    # The records already in canonical JSON, one string each, when the ledger could build them (JSON only).
    encoded: list[str] | None = None
    # The records as their cells in column order, when the ledger gives them so (CSV only).
    cells: list[tuple[str | None, ...]] | None = None

    @property
    def size(self) -> int:
        for given in (self.encoded, self.cells):
            if given is not None:
                return len(given)
        return len(self.records)


def spreadsheet_safe(cell: str | None) -> str | None:
    """The cell as a spreadsheet should show it: a formula-like start is made inert, a number stays."""
    if not cell or cell[0] not in _GUARDED or NUMBER.fullmatch(cell):  # most cells: one look at the first
        return cell
    return "'" + cell


def write_rows(rows: Iterable[Sequence[str | None]], out: TextIO) -> None:
    """CSV rows, every cell through ``spreadsheet_safe``; None is an empty cell."""
    csv.writer(out, lineterminator="\n").writerows([spreadsheet_safe(cell) for cell in row] for row in rows)


def content_hash(records: Sequence[Any]) -> str:
    """SHA-256 of the records as one canonical JSON array (the recipe docs/exports.md gives)."""
    return _digest([_canonical(record) for record in records])


def _digest(encoded_records: Sequence[str]) -> str:
    # A canonical array is its canonical elements joined by "," inside "[...]".
    return hashlib.sha256(("[" + ",".join(encoded_records) + "]").encode()).hexdigest()


def write_csv(table: RecordTable, out: TextIO) -> None:
    """The header, then each record's cells in the table's column order, as ``write_rows`` writes them
    (one pass over the cells: an export writes millions of them)."""
    columns, safe = table.columns, spreadsheet_safe
    write_rows([columns], out)
    writer = csv.writer(out, lineterminator="\n")
    if table.cells is not None:
        writer.writerows([safe(cell) for cell in row] for row in table.cells)
    else:
        writer.writerows([safe(record.get(c)) for c in columns] for record in table.records)


def write_json(table: RecordTable, meta: dict[str, Any], out: TextIO) -> None:
    """The header fields indented, then one record per line in the canonical encoding the content
    hash is taken over, so each record is encoded once for both."""
    lines = table.encoded if table.encoded is not None else [_canonical(r) for r in table.records]
    header = {"schema_version": SCHEMA_VERSION, **meta, "kind": table.kind, "content_sha256": _digest(lines)}
    out.write("{\n")
    for key, value in header.items():
        out.write(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},\n")
    if not lines:
        out.write('  "records": []\n}\n')
        return
    out.write('  "records": [\n    ' + ",\n    ".join(lines) + "\n  ]\n}\n")


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _canonical(value: Any) -> str:
    return _CANONICAL.encode(value)
