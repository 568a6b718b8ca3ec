"""CSV and JSON files of ledger records, written for exports and read back by ``portfolio import``.

- Every value is text: exact decimals as the ledger holds them (never floats), times in UTC ISO-8601.
- CSV: a header of the documented columns and one row per record. A cell of free text starting
  with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'`` so a spreadsheet
  shows it instead of running it as a formula (a leading ``'`` is doubled, so reading back is exact).
  Numeric columns are never touched: numbers stay numbers.
- JSON: ``schema_version``, ``tool_version``, ``kind``, ``portfolio``, ``from``, ``to``,
  ``exported_at``, ``content_sha256`` (SHA-256 of the records as canonical JSON: keys sorted,
  ``,``/``:`` separators, UTF-8) and ``records``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

SCHEMA_VERSION = 1
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
Record = dict[str, str | None]


@dataclass(frozen=True)
class RecordTable:
    kind: str
    columns: tuple[str, ...]
    numeric: frozenset[str]  # written as they are; every other column is text
    records: list[Record] = field(default_factory=list)


def neutralise(text: str) -> str:
    return "'" + text if text.startswith((*FORMULA_START, "'")) else text


def restore(text: str) -> str:
    return text[1:] if text.startswith("'") else text


def content_hash(records: Sequence[Any]) -> str:
    canonical = json.dumps(records, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def write_csv(table: RecordTable, out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.columns)
    for record in table.records:
        writer.writerow([_cell(record.get(c), c in table.numeric) for c in table.columns])


def _cell(value: str | None, numeric: bool) -> str:
    if value is None:
        return ""
    return value if numeric else neutralise(value)


def write_json(table: RecordTable, meta: dict[str, Any], out: TextIO) -> None:
    payload = {
        "schema_version": SCHEMA_VERSION,
        **meta,
        "kind": table.kind,
        "content_sha256": content_hash(table.records),
        "records": table.records,
    }
    out.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def read_csv(text: str) -> tuple[list[str], list[tuple[int, Record]]]:
    """The header and each record with the line it starts on, free text restored."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    records = []
    start = reader.line_num + 1
    for row in reader:
        if any(row):
            values = [restore(v) if v else None for v in row] + [None] * (len(header) - len(row))
            records.append((start, dict(zip(header, values, strict=False))))
        start = reader.line_num + 1
    return header, records
