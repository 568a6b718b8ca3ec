"""Import streams its file: read in blocks, checked and booked in chunks inside one transaction.
Here blocks and chunks are made tiny, so that every record, JSON value and reference between records
falls across a boundary somewhere; the result must be exactly what the export held. And the bulk
path of ``Ledger.book`` (what a chunk is written with) writes the rows one-by-one booking writes."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal as D
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ledger_rows
from portfolio_cli.engine.booking import Entry, booking, close_entry, margin_entry, open_entry
from portfolio_cli.engine.records import (
    CashFlow,
    Close,
    CloseReason,
    FlowKind,
    Kind,
    MarginChange,
    MarginMode,
    Side,
    Trade,
)
from portfolio_cli.ledger import booking as ledger_booking
from portfolio_cli.ledger import open_ledger
from portfolio_cli.services import importing

T0 = datetime(2026, 1, 5, tzinfo=UTC)
RECORD_TABLES = ("trades", "closes", "cash_flows", "margin_changes")
# The quick CSV split against csv.reader (long mode: 2,000 texts).
CSV_EXAMPLES = 2000 if os.environ.get("PORTFOLIO_LONG_TESTS") == "1" else 300


@pytest.fixture
def tiny_blocks(monkeypatch):
    monkeypatch.setattr(importing, "_READ", 97)  # characters read at a time: values split everywhere
    monkeypatch.setattr(importing, "CHUNK_RECORDS", 2)  # most closes refer to a trade of an earlier chunk


def a_ledger_with_every_kind_of_record(cli) -> None:
    from test_check import hour, iso

    cli("init", "--balance", "5000", "--at", iso(hour(-30)))
    cli("open", "BTC/USDT", "--qty", "0.1", "--leverage", "10", "--price", "40000", "--at", iso(hour(-20)))
    cli("open", "ETH/USDT", "--qty", "1", "--leverage", "5", "--short", "--price", "2000", "--at", iso(hour(-20)))
    cli("open", "SOL/USDT", "--qty", "3", "--price", "100", "--note", 'a "quoted" note, with a comma')
    cli("check")  # the funding of the 20 hours
    cli("add-margin", "1", "100")
    cli("remove-margin", "1", "30")
    cli("margin-mode", "2", "--cross")
    cli("close", "3", "--qty", "1", "--price", "SOL/USDT=101")
    cli("close", "3", "--price", "SOL/USDT=99")
    cli("deposit", "500")
    cli("withdraw", "200")


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_an_import_read_in_tiny_blocks_and_chunks_restores_the_export_exactly(
    cli, binance, tmp_path, tiny_blocks, fmt
):
    a_ledger_with_every_kind_of_record(cli)
    exported = tmp_path / f"all.{fmt}"
    cli("export", "trades", "--format", fmt, "-o", str(exported))
    fresh = ["--db", str(tmp_path / "copy.db")]
    result = cli.json("import", str(exported), "-p", "main", *fresh)
    assert (result["trades_added"], result["closes_added"], result["margin_changes_added"]) == (3, 2, 3)
    again = cli("export", "trades", "--format", fmt, *fresh).stdout
    if fmt == "json":
        assert json.loads(again)["records"] == json.loads(exported.read_text())["records"]
    else:
        assert again == exported.read_text()
    assert cli.json("verify", *fresh)["ok"] is True
    twice = cli.json("import", str(exported), "-p", "main", *fresh)  # every record present, in every chunk
    assert (twice["trades_added"], twice["closes_added"], twice["cash_flows_added"]) == (0, 0, 0)
    assert (twice["trades_present"], twice["closes_present"]) == (3, 2)


def test_a_json_export_whose_kind_comes_after_its_records_is_read_and_checked(cli, binance, tmp_path, ledger_path):
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.01", "--price", "40000")
    payload = json.loads(cli("export", "trades", "--format", "json").stdout)
    reordered = tmp_path / "reordered.json"
    reordered.write_text(json.dumps({"records": payload["records"], **payload}))  # "records" first
    assert cli.json("import", str(reordered), "-p", "copy")["trades_added"] == 1
    before = [ledger_rows(ledger_path, table) for table in RECORD_TABLES]
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"records": payload["records"], **payload, "kind": "cashflows"}))
    assert "not a trades export" in cli("import", str(wrong), "-p", "other", code=2).stderr
    assert [ledger_rows(ledger_path, table) for table in RECORD_TABLES] == before  # its records were rolled back
    names = sqlite3.connect(ledger_path).execute("select name from portfolios order by id").fetchall()
    assert names == [("main",), ("copy",)]


def test_trade_ids_taken_only_in_a_later_chunk_are_numbered_by_the_ledger_throughout(
    cli, binance, tmp_path, monkeypatch
):
    """The file's ids are kept only if none is taken; the taken one here is read in the last chunk,
    after earlier chunks were booked with their own ids: those are numbered again, with their closes."""
    cli("init")
    for n in range(4):
        cli("open", "BTC/USDT", "--qty", "0.01", "--price", str(40000 + n))
    cli("close", "1", "--price", "BTC/USDT=41000")
    exported = tmp_path / "trades.csv"
    cli("export", "trades", "-o", str(exported))
    lines = exported.read_text().splitlines()
    only_the_last = tmp_path / "last.csv"
    only_the_last.write_text("\n".join([lines[0], lines[1], lines[5]]) + "\n")  # header, deposit, trade 4
    other = ["--db", str(tmp_path / "other.db")]
    cli("import", str(only_the_last), "-p", "first", *other)  # takes id 4 in the other ledger
    monkeypatch.setattr(importing, "CHUNK_RECORDS", 2)
    result = cli.json("import", str(exported), "-p", "copy", *other)
    assert (result["trades_added"], result["closes_added"]) == (4, 1)
    copied = cli.json("trades", "-p", "copy", *other)
    assert [t["id"] for t in copied] == [5, 6, 7, 8]  # all after the ledger's 4, in the file's order
    assert [t["status"] for t in copied] == ["closed", "open", "open", "open"]  # the close went with trade 1's copy
    assert cli.json("verify", *other)["ok"] is True


def trade(trade_id: int, kind: Kind = Kind.SPOT) -> Trade:
    margin = kind is Kind.MARGIN
    mode, leverage = (MarginMode.ISOLATED, 5) if margin else (None, 1)
    return Trade(trade_id, "BTC/USDT", Side.LONG, kind, mode, leverage, D("0.01"), D(40000), D(40000), D("0.4"), T0)


def entries() -> list[Entry]:
    """116 entries: kept ids 1000–1049 (1049 a margin trade), 20 the ledger numbers, 40 closes, a
    margin change and 5 deposits."""
    kept = [open_entry(trade(1000 + n, Kind.MARGIN if n == 49 else Kind.SPOT), keep_id=True) for n in range(50)]
    numbered = [open_entry(trade(0)) for _ in range(20)]
    at = T0 + timedelta(hours=1)
    closes = [
        close_entry(Close(0, 1000 + n, D("0.01"), D(40100), D(40100), D("0.401"), D(1), at, None, CloseReason.MANUAL))
        for n in range(40)
    ]
    margin = [margin_entry(MarginChange(0, 1049, at, D(25), None))]
    deposits = [Entry(CashFlow(0, FlowKind.DEPOSIT, D(100 + n), at, None, f"deposit {n}")) for n in range(5)]
    return kept + numbered + closes + margin + deposits


def test_the_bulk_path_of_book_writes_the_rows_booking_one_by_one_writes(tmp_path: Path):
    books = []
    for name, together in (("one-by-one", False), ("bulk", True)):
        ledger = open_ledger(tmp_path / f"{name}.db")
        with ledger.transaction("test", T0):
            portfolio = ledger.create_portfolio("main", T0)
            ledger.add_cash_flow(portfolio, FlowKind.DEPOSIT, D(1_000_000), T0)
            if together:
                assert len(entries()) >= ledger_booking.BULK_ENTRIES
                booked = ledger.book(portfolio, booking(entries()))
            else:
                ids = [ledger.book(portfolio, booking([entry])).ids for entry in entries()]
        books.append(ledger)
    one, bulk = books
    assert booked.ids == tuple(i for (i,) in ids)
    for table in RECORD_TABLES:
        rows = f"select * from {table} order by id"
        assert bulk.conn.execute(rows).fetchall() == one.conn.execute(rows).fetchall(), table
    # The report's per-trade totals: summed at once by the bulk path (its triggers off meanwhile, and
    # back after), kept row by row by the triggers one by one.
    totals = "select * from trade_totals order by trade_id"
    assert bulk.conn.execute(totals).fetchall() == one.conn.execute(totals).fetchall()
    triggers = "select name, sql from sqlite_master where type = 'trigger' order by name"
    assert bulk.conn.execute(triggers).fetchall() == one.conn.execute(triggers).fetchall()
    audited = {r["action"]: json.loads(r["details"]) for r in bulk.audit_entries()}
    assert audited["open trades"] == {"table": "trades", "ids": [[1000, 1069]]}
    assert audited["record cash flows"]["ids"] == [[2, 2 + 50 + 20 + 80 + 5 - 1]]  # entry fees, closes' two, deposits


def a_varied_export(path: Path, trades: int) -> None:
    """A trades export (CSV) of ``trades`` trades of every kind: spot and margin (isolated, cross,
    long and short, leverage), stops, strategies, notes (formula-like ones quoted as the export
    quotes them), partial and full closes with real PnL and every reason, margin changes, funding,
    deposits and withdrawals, ETH/BTC priced in BTC; and some records not in the export's own form
    (fewer places, an offset, padded or zero-padded numbers, a negative zero PnL), read as the
    general path reads them."""
    import csv
    import random

    from portfolio_cli.engine.accounting import realized_pnl
    from portfolio_cli.export import spreadsheet_safe
    from portfolio_cli.ledger import codec
    from portfolio_cli.services.exports import TRADE_COLUMNS

    rnd, m = random.Random(21), lambda x: codec.money(D(x))
    rows: list[dict] = []
    for n in range(1, trades + 1):
        # Some minutes apart: the closes of a file of 400 trades fall on three days.
        at = T0 - timedelta(days=30) + timedelta(minutes=11 * n, microseconds=rnd.choice([0, 123456]))
        symbol = rnd.choice(["BTC/USDT", "ETH/USDT", "ETH/BTC", "SOL/USDT"])
        price = D(rnd.randint(1, 99999)) / 1_000_000 if symbol == "ETH/BTC" else D(rnd.randint(100, 5_000_000)) / 100
        usdt = price * 40000 if symbol == "ETH/BTC" else price
        margin = symbol != "ETH/BTC" and rnd.random() < 0.5
        side = "short" if margin and rnd.random() < 0.5 else "long"
        qty = D(rnd.randint(1, 100_000)) / 10_000
        opened = {
            "record": "open", "trade_id": str(n), "symbol": symbol, "side": side,
            "kind": "margin" if margin else "spot",
            "margin_mode": rnd.choice(["isolated", "cross"]) if margin else None,
            "leverage": str(rnd.randint(1, 20)) if margin else "1", "qty": m(qty), "price": m(price),
            "price_usdt": m(usdt), "fee": m(qty * usdt / 1000), "at": codec.timestamp(at), "forced": rnd.choice("01"),
            "stop_loss": m(usdt * D("0.9")) if rnd.random() < 0.2 else None,
            "take_profit": m(usdt * D("1.1")) if rnd.random() < 0.2 else None,
            "strategy": rnd.choice([None, None, "swing", "=SUM(A1)"]),
            "note": rnd.choice([None, None, 'a "quoted" note, with a comma', "'quoted", "+1 plus", "naïve"]),
        }  # fmt: skip
        if n % 17 == 0:  # the general path's forms
            opened |= {"qty": str(qty.normalize()), "at": at.astimezone(timezone(timedelta(hours=2))).isoformat()}
        if n % 19 == 0:
            opened |= {"leverage": "01" if not margin else opened["leverage"], "fee": " " + opened["fee"]}
        rows.append(opened)
        if margin and rnd.random() < 0.3:
            rows.append({"record": "margin", "trade_id": str(n), "symbol": symbol, "side": side, "kind": "margin",
                         "at": codec.timestamp(at + timedelta(seconds=5)), "amount": rnd.choice(["12.50000000", "-3"]),
                         "margin_mode": rnd.choice([None, "cross"])})  # fmt: skip
        if margin and rnd.random() < 0.3:
            rows.append({"record": "funding", "trade_id": str(n), "symbol": symbol, "side": side, "kind": "margin",
                         "at": codec.timestamp(at + timedelta(seconds=8)),
                         "amount": m(D(rnd.randint(-500, 500)) / 1000), "note": "funding"})  # fmt: skip
        left = qty
        for k in range(rnd.choice([0, 0, 1, 2])):
            part = left if k == 1 or rnd.random() < 0.5 else (left / 2).quantize(D("0.00000001"))
            left -= part
            exit_usdt = usdt * D(rnd.choice(["0.95", "1.02", "1"]))
            pnl = m(realized_pnl(Side(side), part, D(opened["price_usdt"]), D(m(exit_usdt))))
            rows.append({
                "record": "close", "trade_id": str(n), "symbol": symbol, "side": side, "kind": opened["kind"],
                "margin_mode": opened["margin_mode"], "leverage": opened["leverage"], "qty": m(part),
                "price": m(exit_usdt / 40000 if symbol == "ETH/BTC" else exit_usdt), "price_usdt": m(exit_usdt),
                "fee": m(part * exit_usdt / 1000), "realized_pnl": "-0.00000000" if pnl == "0.00000000" and k else pnl,
                "reason": rnd.choice(list(CloseReason)).value if margin else "manual",
                "at": codec.timestamp(at + timedelta(seconds=10 + k)), "note": rnd.choice([None, "-minus"]),
            })  # fmt: skip
            if left <= 0:
                break
        if n % 37 == 0:
            rows.append({"record": "deposit", "at": codec.timestamp(at + timedelta(seconds=20)), "amount": "1000"})
        if n % 41 == 0:
            rows.append({"record": "withdrawal", "at": codec.timestamp(at + timedelta(seconds=21)), "amount": "-10.5"})
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(TRADE_COLUMNS)
        writer.writerows([spreadsheet_safe(r.get(c)) for c in TRADE_COLUMNS] for r in rows)


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_fills_in_the_exports_own_form_are_booked_as_the_general_path_books_them(
    cli, tmp_path, monkeypatch, fmt
):
    """An import's fills in the export's own form skip building records only to encode them again:
    the ledger it writes is row for row, audit log included, the one the general path writes."""
    source = tmp_path / "varied.csv"
    a_varied_export(source, 400)
    if fmt == "json":  # the same records as a JSON export
        staged = ["--db", str(tmp_path / "staged.db")]
        cli("import", str(source), "-p", "main", "--allow-unknown", *staged)
        cli("export", "trades", "--format", "json", "-o", str(tmp_path / "varied.json"), *staged)
        source = tmp_path / "varied.json"
    monkeypatch.setattr(importing, "CHUNK_RECORDS", 150)  # several chunks, and closes of earlier chunks' trades
    taken = {"open": 0, "close": 0}
    for name, general in (("plain", False), ("general", True)):
        if general:
            monkeypatch.setattr(importing, "_plain_open", lambda r: None)
            monkeypatch.setattr(importing, "_plain_close", lambda r, opened: None)
        else:
            for kind, plain in (("open", importing._plain_open), ("close", importing._plain_close)):
                def counting(*args, plain=plain, kind=kind):
                    found = plain(*args)
                    taken[kind] += found is not None
                    return found
                monkeypatch.setattr(importing, f"_plain_{kind}", counting)
        db = ["--db", str(tmp_path / f"{name}.db")]
        cli("init", "--balance", "100000", "--at", (T0 - timedelta(days=31)).isoformat(), *db)
        cli("import", str(source), "-p", "main", "--allow-unknown", *db)
        assert cli.json("verify", *db)["ok"] is True
    assert taken["open"] > 300 and taken["close"] > 100  # most went the quick way, not all
    for table in (*RECORD_TABLES, "trade_totals", "portfolios", "audit_log"):
        plain, general = (ledger_rows(tmp_path / f"{name}.db", table) for name in ("plain", "general"))
        if table == "audit_log":  # the moment each command ran differs between the two
            plain, general = ([(row[0], *row[2:]) for row in rows] for rows in (plain, general))
        assert plain == general, table
    assert len(ledger_rows(tmp_path / "plain.db", "trades")) == 400


@settings(max_examples=CSV_EXAMPLES, deadline=None)
@given(st.text(alphabet=["a", "1", ",", '"', "'", "\r", "\n", "\0", " "], max_size=60))
def test_csv_rows_are_the_csv_readers_rows_with_the_lines_they_start_on(text):
    """Lines split at their commas where that is what ``csv.reader`` would do; the reader reads the
    rest. Same rows, same starting lines, same errors."""
    import csv
    import io

    def lines():
        return iter(io.StringIO(text, newline="").readline, "")

    def read(rows) -> tuple[list, str | None]:
        found: list = []
        try:
            for start, row in rows:
                found.append((start, [] if row == [""] else row))  # a blank line: no row, or one empty field
        except csv.Error as exc:
            return found, str(exc)
        return found, None

    def by_the_reader():
        reader, start = csv.reader(lines()), 1
        for row in reader:
            yield start, row
            start = reader.line_num + 1

    split = ((start, row) for start, row, _ in importing._csv_rows(lines()))
    assert read(split) == read(by_the_reader())


def test_a_large_import_builds_its_indexes_at_the_end_and_books_the_same_ledger(cli, tmp_path, monkeypatch):
    """A file larger than the ledger has its record tables' indexes built once, at the end, in its
    transaction: the same rows and the same schema as adding each row to them; and a file with a bad
    record leaves the indexes, like everything else, as they were."""
    from portfolio_cli.ledger.booking import Writes

    source = tmp_path / "varied.csv"
    a_varied_export(source, 400)
    deferring = Writes.indexes_deferred
    deferred: list[tuple[str, ...]] = []

    def spy(self, tables):
        deferred.append(tables)
        return deferring(self, tables)

    monkeypatch.setattr(Writes, "indexes_deferred", spy)
    schema = "select type, name, sql from sqlite_master order by type, name"
    for name, least in (("deferred", 0), ("kept", 10**9)):
        monkeypatch.setattr(importing, "DEFER_INDEXES", least)
        db = ["--db", str(tmp_path / f"{name}.db")]
        cli("init", "--balance", "100000", "--at", (T0 - timedelta(days=31)).isoformat(), *db)
        cli("import", str(source), "-p", "main", "--allow-unknown", *db)
        assert cli.json("verify", *db)["ok"] is True
        assert len(deferred) == 1  # the first import deferred them, the second (at its bound) did not
    for table in (*RECORD_TABLES, "trade_totals", "portfolios", "audit_log"):
        ours, theirs = (ledger_rows(tmp_path / f"{name}.db", table) for name in ("deferred", "kept"))
        if table == "audit_log":
            ours, theirs = ([(row[0], *row[2:]) for row in rows] for rows in (ours, theirs))
        assert ours == theirs, table
    with sqlite3.connect(tmp_path / "deferred.db") as conn, sqlite3.connect(tmp_path / "kept.db") as other:
        assert conn.execute(schema).fetchall() == other.execute(schema).fetchall()
        assert conn.execute("pragma integrity_check").fetchall() == [("ok",)]

    monkeypatch.setattr(importing, "DEFER_INDEXES", 0)
    bad = tmp_path / "bad.csv"
    bad.write_text(source.read_text().replace(",BTC/USDT,", ",BTC/XYZ!,", 1))
    db = ["--db", str(tmp_path / "fresh.db")]
    cli("init", "--balance", "100000", "--at", (T0 - timedelta(days=31)).isoformat(), *db)
    with sqlite3.connect(tmp_path / "fresh.db") as conn:
        before = conn.execute(schema).fetchall()
    result = cli("import", str(bad), "-p", "main", "--allow-unknown", *db, code=2)
    assert "nothing imported" in result.stderr
    assert len(deferred) == 2
    with sqlite3.connect(tmp_path / "fresh.db") as conn:
        assert conn.execute(schema).fetchall() == before
        assert sum(kind == "index" for kind, _, _ in before) > 10
    assert ledger_rows(tmp_path / "fresh.db", "trades") == []


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["plain", "it's", "naïve", "a\0b", "x" * 120, ""]) | st.none(),
            st.sampled_from([0, 1, 2**62, True]) | st.none(),
            st.sampled_from([1, 1.0, "1", None]),
            st.sampled_from(["given", None]),
        ),
        min_size=1,
        max_size=4,
    ).flatmap(lambda rows: st.sampled_from([rows, [rows[0]] * len(rows)]))  # often all rows alike
)
def test_a_bulk_insert_writes_what_binding_every_value_writes(rows):
    """Columns left out of a bulk insert (NULL on every row, and NULL by default: d's NULLs are
    bound) and values written into its statement (the same text or integer on every row) store
    what binding each value stores: the same values, of the same types."""
    schema = "create table t (id integer primary key, a text, b integer, c any, d text default 'dflt') strict"
    conn = sqlite3.connect(":memory:")
    for table in ("bound", "bulk"):
        conn.execute(schema.replace(" t ", f" {table} "))
    names = ("id", "a", "b", "c", "d")
    numbered = [(n, *row) for n, row in enumerate(rows, start=1)]
    conn.executemany("insert into bound values (?, ?, ?, ?, ?)", numbered)
    ledger_booking._insert_rows(conn, "bulk", names, ["?"] * 5, numbered)
    every = "select id, a, typeof(a), b, typeof(b), c, typeof(c), d from {}"
    bound, bulk = (conn.execute(every.format(table)).fetchall() for table in ("bound", "bulk"))
    assert bulk == bound
