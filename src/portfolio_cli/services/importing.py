"""``portfolio import``: the project's own trades export, CSV or JSON, into a portfolio, all or nothing.

The export holds the portfolio's records: fills (open, close), margin changes (margin added or
removed, mode switches) and the cash flows that are not a fill's (deposits, withdrawals, funding).
Every record is checked; a file with any bad record imports nothing and names the bad lines.
A trade already in the portfolio (same symbol, side, kind, margin, quantity, prices, fee and time),
a close, margin change or cash flow already booked are skipped, so importing a file twice does not
duplicate anything. Each fill is booked as the trading commands book it: the trade or close, its fee
and its realized PnL. A portfolio that does not exist yet is created, at the file's first record
(its starting deposit), so export → import gives the same portfolio.

The file is streamed: read, checked and booked ``CHUNK_RECORDS`` records at a time inside the one
transaction, which is rolled back at the end if any record was bad. Memory holds a chunk and, per
trade of the file, its id in the ledger (and the quantity closed so far, for closed ones); the
trades a close refers to are read back from the ledger. So 1,000,000 trades restore in bounded
memory (``bench/run.py import``). A chunk booked in bulk takes its fills in the export's own form
(``_plain_open``, ``_plain_close``: the same checks, every value already the ledger's text) straight
to the ledger's rows, without building the records and entries it would only encode again; any other
form goes the general way, which names what is wrong.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import itertools
import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple, overload

from portfolio_cli.engine.accounting import realized_pnl
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
from portfolio_cli.errors import InvalidInput, PortfolioError
from portfolio_cli.export import Record
from portfolio_cli.ledger import codec
from portfolio_cli.ledger.booking import BULK_ENTRIES, BulkRows
from portfolio_cli.money import ABSURD, ZERO, D, q8
from portfolio_cli.services.common import MAX_LEVERAGE, parse_symbol, records_of
from portfolio_cli.services.exports import TRADE_COLUMNS
from portfolio_cli.services.snapshots import rebuild_stale
from portfolio_cli.session import Session
from portfolio_cli.text import MAX_TEXT, hidden_character

SHOWN_ERRORS = 5
EARLIEST = datetime(2009, 1, 3, tzinfo=UTC)
MAX_FILE_BYTES = 2 << 30
MAX_JSON_DEPTH = 64  # an export nests 3 deep
MAX_JSON_VALUE = 16 << 20  # characters of one record (or header value): an export's are a few hundred
CHUNK_RECORDS = 5_000  # records read, checked and booked together
# A file of at least DEFER_INDEXES records, and of more than the ledger's cash flows, builds the
# record tables' indexes once at the end (``Ledger.indexes_deferred``): a sort of all their rows costs
# about a third of adding each new row to them. The records are counted low, at their longest.
DEFER_INDEXES = 20_000
LONGEST_RECORD = 200  # characters of an export's longer records, fills with notes
LARGE_CACHE_MIB = 48  # SQLite's page cache for such a file (``Ledger.page_cache``): within the memory bound
RECORD_TABLES = ("trades", "closes", "margin_changes", "cash_flows")
_READ = 1 << 20  # characters read at a time
_BRACKETS = re.compile(r"[\[\]{}]")
_NOT_SPACE = re.compile(r"[^ \t\n\r]")  # JSON's whitespace
_PLAIN = re.compile(r"-?(?:0|[1-9][0-9]{0,14})(?:\.[0-9]{1,8})?")  # below ABSURD (10^15), at most 8 places
# The export's own amounts, which are the ledger's text already (``codec.is_money``): exactly 8 places.
_AMOUNT_FORM = r"(?:0|[1-9][0-9]{0,14})\.[0-9]{8}"  # _PLAIN's, not negative
_POSITIVE_FORM = r"(?:0\.(?!0{8})[0-9]{8}|[1-9][0-9]{0,14}\.[0-9]{8})"  # _AMOUNT_FORM's, above zero
_SIGNED_FORM = r"(?!-0\.0{8}\0)-?(?:0|[1-9][0-9]{0,14})\.[0-9]{8}"  # _PLAIN's, but a negative zero (see _plain_close)
_AMOUNT = re.compile(_AMOUNT_FORM)
_ZERO_AMOUNT = "0.00000000"
# A fill's amounts and time, joined by NULs (which none of them can hold): one match checks them all.
_OPEN_VALUES = re.compile("\0".join((*[_POSITIVE_FORM] * 3, _AMOUNT_FORM, codec.TIMESTAMP_FORM)))
_CLOSE_VALUES = re.compile("\0".join((*[_POSITIVE_FORM] * 3, _AMOUNT_FORM, _SIGNED_FORM, codec.TIMESTAMP_FORM)))


@dataclass(frozen=True)
class ImportResult:
    portfolio: str
    trades_added: int
    closes_added: int
    trades_present: int  # already in the portfolio: skipped
    closes_present: int
    margin_changes_added: int = 0
    cash_flows_added: int = 0  # deposits, withdrawals and funding
    margin_changes_present: int = 0
    cash_flows_present: int = 0


class _BadRecord(ValueError):
    pass


class _IdsTaken(Exception):
    """A trade id of the file is already a trade's in the ledger: the ledger numbers them instead."""


def import_trades(
    session: Session,
    path: Path,
    name: str,
    progress: Callable[[str, int, int], None] | None = None,
    allow_unknown: bool = False,
) -> ImportResult:
    """All of ``path``'s records or none. ``progress`` is told (what, done, total) while they are read;
    ``allow_unknown`` takes symbols the markets list does not know (or without checking, when there is
    no markets list: an offline restore). The file's trade ids are kept where none is taken (a restore
    into another ledger round-trips exactly); otherwise the ledger numbers them (a second pass)."""
    try:
        importer = _import(session, path, name, progress, allow_unknown, keep_ids=True)
    except _IdsTaken:
        importer = _import(session, path, name, progress, allow_unknown, keep_ids=False)
    rebuild_stale(session, name, tuple(sorted(importer.stale)))
    return importer.result()


def _import(
    session: Session,
    path: Path,
    name: str,
    progress: Callable[[str, int, int], None] | None,
    allow_unknown: bool,
    keep_ids: bool,
) -> _Importer:
    source = _Source(path)
    with source, _collector_paused():
        symbols = _Symbols(session, allow_unknown)  # before the transaction: it may fetch the markets list
        ledger = session.ledger
        with ledger.transaction(session.command, session.clock()):
            importer = _Importer(session, path.name, name, symbols, keep_ids)
            large = source.size // LONGEST_RECORD >= max(DEFER_INDEXES, ledger.largest_id("cash_flows"))
            with contextlib.ExitStack() as large_write:
                if large:  # left in reverse: the indexes built, then the trades' totals summed, then the cache
                    large_write.enter_context(ledger.page_cache(LARGE_CACHE_MIB))
                    large_write.enter_context(ledger.totals_deferred())
                    large_write.enter_context(ledger.indexes_deferred(RECORD_TABLES))
                for chunk in _chunks(source.records()):
                    importer.take(chunk)
                    if progress:
                        progress(f"importing {path.name}", source.done, source.size)
                importer.finish()
    return importer


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a file is imported: it makes millions of short-lived
    containers (a record, its values checked, its rows) that reference counting frees, none in a
    cycle, and the collector would walk each of them again and again (a sixth of the time spent
    reading and checking records)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _chunks(records: Iterable[tuple[str, Record]]) -> Iterator[list[tuple[str, Record]]]:
    iterator = iter(records)
    while chunk := list(itertools.islice(iterator, CHUNK_RECORDS)):
        yield chunk


class _Symbols:
    """The file's symbols checked against the markets list, loaded once before the transaction
    (nothing inside one reaches the network); unchecked with ``allow_unknown``."""

    def __init__(self, session: Session, allow_unknown: bool):
        self.listed: frozenset[str] | None = None
        self.problem: str | None = None  # why the symbols cannot be checked
        self.seen: set[str] = set()
        self.complaints: list[str] = []
        self.count = 0
        self.unchecked = allow_unknown
        if allow_unknown:
            return
        try:
            self.listed = session.prices.pairs()
        except PortfolioError as exc:
            self.problem = f"cannot check the symbols: {exc}; import with --allow-unknown to take them unchecked"
        if self.listed is None and self.problem is None:
            self.problem = (
                "no markets list to check the symbols against (offline or Binance unreachable with none cached, "
                "or the file price source); import with --allow-unknown to take them unchecked"
            )

    def check(self, symbol: str) -> None:
        if self.unchecked or symbol in self.seen:
            return
        self.seen.add(symbol)
        if self.problem is not None:  # said once, for the first symbol
            self.complaints, self.count, self.unchecked = [self.problem], 1, True
        elif self.listed is not None and symbol not in self.listed:
            self.count += 1
            if len(self.complaints) < SHOWN_ERRORS:
                self.complaints.append(
                    f"{symbol} is not a symbol Binance lists (import with --allow-unknown to take it)"
                )


class _Importer:
    """The import's state inside its transaction: what the portfolio held before, each file trade's
    id in the ledger, what was added, and the bad records."""

    def __init__(self, session: Session, file: str, name: str, symbols: _Symbols, keep_ids: bool):
        self.ledger, self.file, self.name, self.symbols, self.keep_ids = session.ledger, file, name, symbols, keep_ids
        self.now = session.clock()
        self.portfolio = self.ledger.find_portfolio(name)
        self.existed = self.portfolio is not None
        self.earliest: datetime | None = None
        self.next_id = self.ledger.conn.execute("select coalesce(max(id), 0) + 1 from trades").fetchone()[0]
        self.ids: dict[int, int] = {}  # the file's trade id -> the ledger's
        self.present: set[int] = set()  # file trades already in the portfolio
        self.closed: dict[int, Decimal] = {}  # by file trade id: what the file's closes of it add up to
        self.known: dict[tuple, int] = {}
        self.booked: set[tuple] = set()
        self.closed_before: dict[int, Decimal] = {}  # by ledger trade id, for trades already there
        self.changed: set[tuple] = set()
        self.moved: set[tuple] = set()
        if self.portfolio is not None:  # what it holds already: skipped when the file has it too
            held = records_of(self.ledger, self.portfolio)
            self.known = {_fingerprint(t): t.id for t in held.trades}
            self.booked = {(c.trade_id, c.closed_at, c.qty, c.price, c.fee) for c in held.closes}
            for c in held.closes:
                self.closed_before[c.trade_id] = self.closed_before.get(c.trade_id, ZERO) + c.qty
            self.changed = {(m.trade_id, m.at, m.amount, m.mode) for m in held.margin_changes}
            self.moved = {(f.kind, f.at, f.amount, f.trade_id) for f in held.flows}
        self.records = 0
        self.added = self.trades_present = self.closes_added = self.closes_present = 0
        self.margins_added = self.margins_present = self.flows_added = self.flows_present = 0
        self.errors: list[str] = []
        self.error_count = 0
        self.stale: set[date] = set()

    def take(self, chunk: list[tuple[str, Record]]) -> None:
        """Check a chunk of records in order and book the good ones (all rolled back at the end if
        any was bad, so that every bad record is found and named)."""
        self.records += len(chunk)
        referred = set()
        for _, record in chunk:  # the trades of earlier chunks these records refer to, read back at once
            text = record.get("trade_id")
            if record.get("record") == "open" or not (isinstance(text, str) and text.isascii() and text.isdigit()):
                continue
            if (ledger_id := self.ids.get(int(text))) is not None:
                referred.add(ledger_id)
        earlier = self.ledger.trades_by_id(sorted(referred)) if referred else {}
        here: dict[int, _Held] = {}  # this chunk's trades, by file id, with their ledger ids

        def opened(file_id: int) -> _Held | None:
            if file_id in here:
                return here[file_id]
            ledger_id = self.ids.get(file_id)
            return earlier.get(ledger_id) if ledger_id is not None else None

        # A chunk that ``Ledger.book`` would write in bulk (nothing in it can be present already) is
        # gathered as the rows themselves: fills in the export's own form go there without a record.
        rows = self.ledger.bulk_rows() if not self.known and len(chunk) >= BULK_ENTRIES else None
        entries: list[Entry] = []
        add: Callable[[Entry], object] = rows.entry if rows is not None else entries.append
        new_ids: list[int] = []
        for where, record in chunk:
            try:
                kind = record.get("record")
                if kind == "open":
                    self._open(record, here, add, new_ids, rows)
                elif kind == "close":
                    self._close(record, opened, add, rows)
                elif kind == "margin":
                    self._margin(record, opened, add)
                elif kind in FLOW_RECORDS:
                    self._flow(record, FlowKind(kind), opened, add)
                else:
                    raise _BadRecord(f"record must be one of {', '.join(RECORDS)}, got {kind!r}")
            except _BadRecord as exc:
                self.error_count += 1
                if len(self.errors) < SHOWN_ERRORS:
                    self.errors.append(f"{where}: {exc}")
        if self.keep_ids and new_ids and self.ledger.trade_ids_taken(new_ids):
            raise _IdsTaken
        if entries or rows:
            if self.portfolio is None:
                assert self.earliest is not None
                self.portfolio = self.ledger.create_portfolio(self.name, self.earliest)
            if rows is not None:
                self.stale.update(self.ledger.book_bulk(self.portfolio, rows).stale_days)
            else:
                self.stale.update(self.ledger.book(self.portfolio, booking(entries)).stale_days)

    def _seen_at(self, moment: datetime) -> None:
        if self.earliest is None or moment < self.earliest:
            self.earliest = moment

    def _open(
        self,
        record: Record,
        here: dict[int, _Held],
        add: Callable[[Entry], object],
        new_ids: list[int],
        rows: BulkRows | None,
    ) -> None:
        plain = _plain_open(record) if rows is not None else None
        if plain is not None:
            file_id, at, side, kind, fields = plain
            symbol = fields[0]
        else:
            file_id, trade = _trade(record)
            at, symbol = trade.opened_at, trade.symbol
        if file_id in self.ids:
            raise _BadRecord(f"trade {file_id} is opened twice")
        if at > self.now:
            raise _BadRecord(f"trade {file_id} opens in the future ({at:%Y-%m-%d %H:%M} UTC)")
        self.symbols.check(symbol)
        self._seen_at(at)
        ledger_id = self.known.get(_fingerprint(trade)) if plain is None and self.known else None
        if ledger_id is not None:
            self.present.add(file_id)
            self.trades_present += 1
        elif self.keep_ids:
            ledger_id = file_id
            new_ids.append(file_id)
        else:
            ledger_id, self.next_id = self.next_id, self.next_id + 1
        self.ids[file_id] = ledger_id
        if plain is not None:
            assert rows is not None
            rows.open_fill(ledger_id, at, fields)
            here[file_id] = _Opened(ledger_id, symbol, side, kind, fields[5], fields[7], at)
            self.added += 1
            return
        if trade.id != ledger_id:
            trade = replace(trade, id=ledger_id)
        if file_id not in self.present:
            add(open_entry(trade, keep_id=True))
            self.added += 1
        here[file_id] = trade

    def _close(
        self,
        record: Record,
        opened: Callable[[int], _Held | None],
        add: Callable[[Entry], object],
        rows: BulkRows | None,
    ) -> None:
        plain = _plain_close(record, opened) if rows is not None else None
        if plain is not None:
            file_id, trade, at, qty, values, reason = plain
        else:
            file_id, trade, close = _close(record, opened)
            at, qty = close.closed_at, close.qty
        if at > self.now:
            raise _BadRecord(f"trade {file_id} closes in the future ({at:%Y-%m-%d %H:%M} UTC)")
        closed = self.closed.get(file_id, ZERO) + qty
        if closed > trade.qty:
            raise _BadRecord(f"closes of trade {file_id} add up to more than its {trade.qty}")
        self.closed[file_id] = closed
        self._seen_at(at)
        if plain is not None:  # a new portfolio's: nothing of it is there already
            assert rows is not None
            rows.close_fill(at, values, reason.forced_out)
            self.closes_added += 1
            return
        if file_id in self.present:  # a trade the portfolio had: its closes may be there, or others
            if (trade.id, close.closed_at, close.qty, close.price, close.fee) in self.booked:
                self.closes_present += 1
                return
            before = self.closed_before.get(trade.id, ZERO) + close.qty
            if before > trade.qty:
                raise _BadRecord(
                    f"closes of trade {file_id} would close more than its {trade.qty} together with the "
                    f"closes trade {trade.id} already has"
                )
            self.closed_before[trade.id] = before
        add(close_entry(close))  # of the trade's id in the ledger
        self.closes_added += 1

    def _margin(self, record: Record, opened: Callable[[int], _Held | None], add: Callable[[Entry], object]) -> None:
        trade, change = _margin(record, opened)
        self._seen_at(change.at)
        if (trade.id, change.at, change.amount, change.mode) in self.changed:
            self.margins_present += 1
            return
        add(margin_entry(replace(change, trade_id=trade.id)))
        self.margins_added += 1

    def _flow(
        self, record: Record, kind: FlowKind, opened: Callable[[int], _Held | None], add: Callable[[Entry], object]
    ) -> None:
        trade, flow = _flow(record, kind, opened)
        self._seen_at(flow.at)
        owner = trade.id if trade is not None else None
        if (flow.kind, flow.at, flow.amount, owner) in self.moved:
            self.flows_present += 1
            return
        add(Entry(CashFlow(0, flow.kind, flow.amount, flow.at, owner, flow.note)))
        self.flows_added += 1

    def finish(self) -> None:
        """Refuse the whole file if any record was bad (the caller's transaction rolls back), else
        date a portfolio it created at its earliest record and log the import."""
        count = self.error_count + self.symbols.count
        if count:
            errors = (self.errors + self.symbols.complaints)[:SHOWN_ERRORS]
            more = f"; and {count - len(errors)} more" if count > len(errors) else ""
            raise InvalidInput(f"{self.file}: {count} bad record(s), nothing imported: {'; '.join(errors)}{more}")
        if self.portfolio is None:
            raise InvalidInput(f"{self.file} holds no records to create portfolio {self.name!r} from")
        if not self.existed and self.earliest is not None and self.earliest < self.portfolio.created_at:
            self.portfolio = self.ledger.date_creation(self.portfolio, self.earliest)
        details = {"file": self.file, "trades": self.added, "closes": self.closes_added}
        details |= {"margin_changes": self.margins_added, "cash_flows": self.flows_added}
        self.ledger.audit("import", self.portfolio.id, details)

    def result(self) -> ImportResult:
        return ImportResult(
            self.name,
            self.added,
            self.closes_added,
            self.trades_present,
            self.closes_present,
            self.margins_added,
            self.flows_added,
            self.margins_present,
            self.flows_present,
        )


FLOW_RECORDS = ("deposit", "withdrawal", "funding")
RECORDS = ("open", "close", "margin", *FLOW_RECORDS)


def _margin(r: Record, opened: Callable[[int], _Held | None]) -> tuple[_Held, MarginChange]:
    """Margin added (+) or removed (−) on an isolated position, or a switch of its mode."""
    trade = _opened(r, opened, "changes the margin of")
    if trade.kind is not Kind.MARGIN:
        raise _BadRecord(f"trade {_integer(r, 'trade_id', 1, None)} is spot: it has no margin to change")
    mode = _choice(r, "margin_mode", MarginMode) if _value(r, "margin_mode") else None
    return trade, MarginChange(0, 0, _moment(r), _number(r, "amount", signed=True), mode)


def _flow(r: Record, kind: FlowKind, opened: Callable[[int], _Held | None]) -> tuple[_Held | None, CashFlow]:
    """A deposit (+), a withdrawal (−) or a trade's funding (signed)."""
    trade = _opened(r, opened, "pays funding on") if kind is FlowKind.FUNDING else None
    if kind is not FlowKind.FUNDING and _value(r, "trade_id"):
        raise _BadRecord(f"a {kind.value} belongs to no trade")
    amount = _number(r, "amount", signed=True)
    if kind is FlowKind.DEPOSIT and amount <= 0 or kind is FlowKind.WITHDRAWAL and amount >= 0:
        raise _BadRecord(f"a {kind.value}'s amount is {'positive' if kind is FlowKind.DEPOSIT else 'negative'}")
    return trade, CashFlow(0, kind, amount, _moment(r), None, _free_text(r, "note"))


def _opened(r: Record, opened: Callable[[int], _Held | None], what: str) -> _Held:
    file_id = _integer(r, "trade_id", 1, None)
    trade = opened(file_id)
    if trade is None:
        raise _BadRecord(f"{what} trade {file_id}, which the file does not open before it")
    if _moment(r) < trade.opened_at:
        raise _BadRecord(f"{what} trade {file_id} before it was opened")
    return trade


def _fingerprint(t: Trade) -> tuple:
    return (t.symbol, t.side, t.kind, t.margin_mode, t.leverage, t.qty, t.price, t.price_usdt, t.fee, t.opened_at)


class _Opened(NamedTuple):
    """What the records after an open need of its trade (``_plain_open``): a ``Trade``'s fields."""

    id: int  # in the ledger
    symbol: str
    side: Side
    kind: Kind
    qty_text: str  # the ledger's text: read as a number only if a close refers to it
    price_usdt_text: str
    opened_at: datetime

    @property
    def qty(self) -> Decimal:
        return Decimal(self.qty_text)

    @property
    def price_usdt(self) -> Decimal:
        return Decimal(self.price_usdt_text)


_Held = Trade | _Opened  # a trade the file opened, as later records check against it
_LEVERAGES = {str(n): n for n in range(1, MAX_LEVERAGE + 1)}
_FLAGS = {"0": 0, "1": 1}
_SIDES: dict[object, Side] = {c.value: c for c in Side}
_KINDS: dict[object, Kind] = {c.value: c for c in Kind}
_MODES: dict[object, MarginMode] = {c.value: c for c in MarginMode}
_REASONS: dict[object, CloseReason] = {c.value: c for c in CloseReason}


def _plain_open(r: Record) -> tuple[int, datetime, Side, Kind, tuple] | None:
    """An open record in the export's own form, checked as ``_trade`` checks it, with every value
    already the ledger's text: its file id, time, side, kind and ``trade_fields``. None for any
    other form, which ``_trade`` then checks (and names what is wrong): this only skips the work."""
    v: dict[str, Any] = r  # a JSON record's values may be of any type: each is checked
    try:
        side_text, kind_text = v["side"], v["kind"]
        side, kind = _SIDES[side_text], _KINDS[kind_text]
        leverage, forced, symbol = _LEVERAGES[v["leverage"]], _FLAGS[v["forced"]], _SYMBOLS[v["symbol"]]
        text_id, at = v["trade_id"], v["at"]
        qty, price, price_usdt, fee = v["qty"], v["price"], v["price_usdt"], v["fee"]
        mode_text, stop_loss, take_profit = v.get("margin_mode"), v.get("stop_loss"), v.get("take_profit")
        if kind is Kind.SPOT:
            if side is not Side.LONG or leverage != 1 or mode_text:
                return None
            mode_text = None
        elif mode_text not in _MODES:
            return None
        if not (text_id.__class__ is str and text_id.isascii() and text_id.isdigit() and len(text_id) <= 18):
            return None
        file_id = int(text_id)
        if file_id < 1 or not _OPEN_VALUES.fullmatch("\0".join((qty, price, price_usdt, fee, at))):
            return None  # (a value that is not text cannot be joined: TypeError)
        if stop_loss and not _positive(stop_loss) or take_profit and not _positive(take_profit):
            return None  # (an empty text is no stop: the general path reads it so too)
        moment = datetime.fromisoformat(at)
        strategy, note = v.get("strategy"), v.get("note")
    except (KeyError, TypeError, ValueError):  # a column missing, a value not text, or not in the plain form
        return None
    if moment < EARLIEST or not (_plain_text(strategy) and _plain_text(note)):
        return None
    fields = (symbol, side_text, kind_text, mode_text, leverage, qty, price, price_usdt, fee, at, stop_loss or None,
              take_profit or None, strategy or None, note or None, forced, None)  # fmt: skip
    return file_id, moment, side, kind, fields


def _plain_close(
    r: Record, opened: Callable[[int], _Held | None]
) -> tuple[int, _Held, datetime, Decimal, tuple, CloseReason] | None:
    """A close record in the export's own form, checked as ``_close`` checks it, with every value the
    ledger's text: its trade's file id, the trade, its time, quantity, ``close_values`` and reason.
    None for any other form (``_close`` then checks it)."""
    v: dict[str, Any] = r  # a JSON record's values may be of any type: each is checked
    try:
        text_id, at, reason_text = v["trade_id"], v["at"], v["reason"]
        reason = _REASONS[reason_text]
        qty, price, price_usdt, fee, gross = v["qty"], v["price"], v["price_usdt"], v["fee"], v["realized_pnl"]
        if not (text_id.__class__ is str and text_id.isascii() and text_id.isdigit() and len(text_id) <= 18):
            return None
        file_id = int(text_id)
        trade = opened(file_id) if file_id >= 1 else None
        if trade is None or _SYMBOLS[v["symbol"]] != trade.symbol or v["side"] != trade.side:  # (a StrEnum)
            return None
        # A negative zero PnL is a number _close takes, but not the ledger's text of it: not matched.
        if not _CLOSE_VALUES.fullmatch("\0".join((qty, price, price_usdt, fee, gross, at))):
            return None
        moment = datetime.fromisoformat(at)
        note = v.get("note")
    except (KeyError, TypeError, ValueError):
        return None
    if moment < EARLIEST or moment < trade.opened_at or not _plain_text(note):
        return None
    closed = Decimal(qty)
    if Decimal(gross) != realized_pnl(trade.side, closed, trade.price_usdt, Decimal(price_usdt)):
        return None
    values = (trade.id, qty, price, price_usdt, fee, gross, at, note or None, reason_text)
    return file_id, trade, moment, closed, values, reason


def _positive(text: object) -> bool:
    return isinstance(text, str) and text != _ZERO_AMOUNT and _AMOUNT.fullmatch(text) is not None


def _plain_text(value: object) -> bool:
    """Free text ``_free_text`` takes as it is (or none)."""
    return value is None or (isinstance(value, str) and len(value) <= MAX_TEXT and hidden_character(value) is None)


class _Source:
    """An import file, opened for streaming. Only a regular file of at most MAX_FILE_BYTES is read
    (never a device such as /dev/zero); a UTF-8 byte-order mark is allowed; JSON nesting, values and
    integers, and CSV fields, are bounded."""

    def __init__(self, path: Path):
        self.path = path
        try:
            found = os.stat(path)
            if not stat.S_ISREG(found.st_mode):
                raise InvalidInput(f"cannot import {path}: not a regular file")
            if found.st_size > MAX_FILE_BYTES:
                raise InvalidInput(f"cannot import {path}: larger than {MAX_FILE_BYTES // 2**20} MiB")
            self.size = found.st_size
            self.json = path.suffix.lower() == ".json" or self._starts_with_brace()
            self.handle: IO[str] = path.open(encoding="utf-8-sig", newline="")
        except OSError as exc:
            raise self._unreadable(exc) from None
        self.done = 0  # characters read so far

    def _starts_with_brace(self) -> bool:
        with self.path.open("rb") as raw:
            start = raw.read(3).removeprefix(b"\xef\xbb\xbf")
            while start or (start := raw.read(_READ)):
                first = start.lstrip()
                if first:
                    return first.startswith(b"{")
                start = b""
        return False

    def _unreadable(self, exc: BaseException) -> InvalidInput:
        return InvalidInput(f"cannot read {self.path}: {getattr(exc, 'strerror', None) or exc}")

    def __enter__(self) -> _Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()

    def read(self, size: int = -1) -> str:
        try:
            text = self.handle.read(size)
        except (OSError, UnicodeDecodeError) as exc:
            raise self._unreadable(exc) from None
        self.done += len(text)
        return text

    def lines(self) -> Iterator[str]:
        while True:
            try:
                line = self.handle.readline()
            except (OSError, UnicodeDecodeError) as exc:
                raise self._unreadable(exc) from None
            if not line:
                return
            self.done += len(line)
            yield line

    def records(self) -> Iterator[tuple[str, Record]]:
        return _JsonRecords(self).records() if self.json else _csv_records(self)


def _csv_records(source: _Source) -> Iterator[tuple[str, Record]]:
    """Each record with the line it starts on, free text restored (see ``export.spreadsheet_safe``)."""
    name = source.path.name
    try:
        rows = _csv_rows(source.lines())
        header = next(rows, (0, [], False))[1]
        missing = [c for c in TRADE_COLUMNS if c not in header and c != "amount"]  # amount: not in older files
        if missing:
            raise InvalidInput(f"{name} is not a trades export: no column {', '.join(missing)}")
        for start, row, unquoted in rows:
            if any(row):
                if not unquoted:  # free text restored: the leading ' that spreadsheet_safe adds is dropped
                    row = [v[1:] if v[:1] == "'" else v for v in row]
                # An empty field is an empty text, which every check reads as a missing value (a
                # missing column, of a short row, is missing from the record).
                yield f"line {start}", dict(zip(header, row))
    except csv.Error as exc:
        raise InvalidInput(f"{name} is not a readable CSV file: {exc}") from None


def _csv_rows(lines: Iterator[str]) -> Iterator[tuple[int, list[str], bool]]:
    """The CSV rows of ``lines`` as ``csv.reader`` reads them, each with the line it starts on and
    whether it has no ``'``. A line without a quote, carriage return or NUL, and within the field
    size limit (most lines of an export), is split at its commas, which is what the reader would do
    with it; any other line is read by the reader, with the lines after it that its row spans."""
    limit = csv.field_size_limit()
    read = 0  # lines read so far
    for line in lines:
        start = read + 1
        if '"' in line or "\r" in line or "\0" in line or len(line) > limit:
            reader = csv.reader(itertools.chain((line,), lines))
            row = next(reader, [])
            read += reader.line_num
            yield start, row, False
        else:
            read += 1
            yield start, (line[:-1] if line[-1:] == "\n" else line).split(","), "'" not in line


class _JsonRecords:
    """The records of a JSON trades export, one at a time: the top-level object is walked here and
    each value decoded alone (``raw_decode``), so memory holds a block of the file, not all of it.
    Nesting is counted over every block read before anything in it is decoded."""

    _DECODER = json.JSONDecoder(parse_int=lambda text: _json_integer(text))

    def __init__(self, source: _Source):
        self.source, self.name = source, source.path.name
        self.buf, self.pos, self.eof = "", 0, False
        self.depth = self.deepest = 0

    def _more(self) -> bool:
        """Read another block into the buffer (dropping what is consumed); False at the end."""
        if self.eof:
            return False
        block = self.source.read(_READ)
        if not block:
            self.eof = True
            return False
        # Brackets inside strings count too: an export nests 3 deep, so this only ever over-counts.
        for bracket in _BRACKETS.findall(block):
            self.depth += 1 if bracket in "[{" else -1
            if self.depth > self.deepest:
                self.deepest = self.depth
                if self.deepest > MAX_JSON_DEPTH:
                    raise InvalidInput(f"{self.name} nests deeper than {MAX_JSON_DEPTH} levels: not a trades export")
        self.buf, self.pos = self.buf[self.pos :] + block, 0
        return True

    def _next(self) -> str:
        """The next character that is not whitespace, left unconsumed; "" at the end."""
        while True:
            found = _NOT_SPACE.search(self.buf, self.pos)
            if found:
                self.pos = found.start()
                return self.buf[self.pos]
            self.pos = len(self.buf)
            if not self._more():
                return ""

    def _expect(self, allowed: str) -> str:
        char = self._next()
        if not char or char not in allowed:
            raise self._invalid(f"expected {' or '.join(repr(c) for c in allowed)}")
        self.pos += 1
        return char

    def _value(self) -> object:
        self._next()
        while True:
            try:
                value, end = self._DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:  # perhaps only cut off at the block's end: read on
                if len(self.buf) - self.pos <= MAX_JSON_VALUE and self._more():
                    continue
                if len(self.buf) - self.pos > MAX_JSON_VALUE:
                    raise InvalidInput(f"{self.name} holds a value longer than {MAX_JSON_VALUE >> 20} MiB") from None
                raise self._invalid(exc.msg) from None
            except (ValueError, RecursionError) as exc:
                raise InvalidInput(f"{self.name} is not valid JSON: {str(exc)[:200]}") from None
            if end == len(self.buf) and self._more():  # a number may go on in the next block
                continue
            self.pos = end
            return value

    def _invalid(self, why: str) -> InvalidInput:
        where = self.source.done - len(self.buf) + self.pos
        return InvalidInput(f"{self.name} is not valid JSON: {why} (character {where})")

    def _not_trades(self) -> InvalidInput:
        return InvalidInput(f"{self.name} is not a trades export (its kind must be 'trades')")

    def records(self) -> Iterator[tuple[str, Record]]:
        if self._next() != "{":
            self._value()
            raise self._not_trades()
        self.pos += 1
        kind, listed = None, False
        if self._next() == "}":
            self.pos += 1
        else:
            while True:
                if self._next() != '"':
                    raise self._invalid("expected a property name")
                key = self._value()
                self._expect(":")
                if key == "records":
                    if listed or self._next() != "[":
                        raise InvalidInput(f"{self.name} has no list of records")
                    listed = True
                    self.pos += 1
                    if self._next() == "]":
                        self.pos += 1
                    else:
                        for n in itertools.count(1):
                            record = self._value()
                            yield f"record {n}", record if isinstance(record, dict) else {}
                            if self._expect(",]") == "]":
                                break
                else:
                    value = self._value()
                    if key == "kind":
                        kind = value
                        if kind != "trades":
                            raise self._not_trades()
                if self._expect(",}") == "}":
                    break
        if self._next():
            raise self._invalid("extra data after the export")
        if kind != "trades":
            raise self._not_trades()
        if not listed:
            raise InvalidInput(f"{self.name} has no list of records")


def _json_integer(text: str) -> int:
    if len(text) > 20:  # an id or a flag: no export has a longer integer
        raise ValueError(f"an integer of {len(text)} digits")
    return int(text)


def _trade(r: Record) -> tuple[int, Trade]:
    side, kind = _choice(r, "side", Side), _choice(r, "kind", Kind)
    leverage = _integer(r, "leverage", 1, MAX_LEVERAGE)
    mode = _choice(r, "margin_mode", MarginMode) if kind is Kind.MARGIN else None
    if kind is Kind.SPOT and (side is Side.SHORT or leverage != 1 or r.get("margin_mode")):
        raise _BadRecord("a spot trade is long, at leverage 1, with no margin mode")
    file_id = _integer(r, "trade_id", 1, None)
    return file_id, Trade(
        id=file_id,
        symbol=_symbol(r),
        side=side,
        kind=kind,
        margin_mode=mode,
        leverage=leverage,
        qty=_number(r, "qty"),
        price=_number(r, "price"),
        price_usdt=_number(r, "price_usdt"),
        fee=_number(r, "fee", zero_ok=True),
        opened_at=_moment(r),
        stop_loss=_number(r, "stop_loss", optional=True) if r.get("stop_loss") is not None else None,
        take_profit=_number(r, "take_profit", optional=True) if r.get("take_profit") is not None else None,
        strategy=_free_text(r, "strategy") if r.get("strategy") is not None else None,
        note=_free_text(r, "note") if r.get("note") is not None else None,
        forced=_integer(r, "forced", 0, 1) == 1,
    )


def _close(r: Record, opened: Callable[[int], _Held | None]) -> tuple[int, _Held, Close]:
    file_id = _integer(r, "trade_id", 1, None)
    trade = opened(file_id)
    if trade is None:
        raise _BadRecord(f"closes trade {file_id}, which the file does not open before it")
    if _symbol(r) != trade.symbol or r.get("side") != trade.side.value:
        raise _BadRecord(f"symbol and side differ from trade {file_id}'s")
    at = _moment(r)
    if at < trade.opened_at:
        raise _BadRecord(f"closes trade {file_id} before it was opened")
    qty, price_usdt = _number(r, "qty"), _number(r, "price_usdt")
    gross = _number(r, "realized_pnl", zero_ok=True, signed=True)
    expected = realized_pnl(trade.side, qty, trade.price_usdt, price_usdt)
    if gross != expected:
        raise _BadRecord(f"realized_pnl {gross} does not match its prices ({expected})")
    reason = _choice(r, "reason", CloseReason)
    fee = _number(r, "fee", zero_ok=True)
    close = Close(0, trade.id, qty, _number(r, "price"), price_usdt, fee, gross, at, _free_text(r, "note"), reason)
    return file_id, trade, close


def _value(r: Record, column: str) -> str | None:
    value = r.get(column)
    if value is not None and not isinstance(value, str):
        raise _BadRecord(f"{column} must be text, got {type(value).__name__}")
    return value.strip() if value else None


@overload
def _number(
    r: Record, column: str, optional: Literal[False] = False, zero_ok: bool = False, signed: bool = False
) -> Decimal: ...


@overload
def _number(r: Record, column: str, optional: bool, zero_ok: bool = False, signed: bool = False) -> Decimal | None: ...


def _number(
    r: Record, column: str, optional: bool = False, zero_ok: bool = False, signed: bool = False
) -> Decimal | None:
    text = r.get(column)
    if text.__class__ is str and _PLAIN.fullmatch(text):  # the export's own form: the common case, quickly
        number = Decimal(text)
        if (number < 0 and not signed) or (number == 0 and not (zero_ok or signed)):
            raise _BadRecord(f"{column} is out of range: {text[:40]}")
        return number
    text = _value(r, column)
    if text is None:
        if optional:
            return None
        raise _BadRecord(f"{column} is missing")
    try:
        number = D(text)
    except ValueError:
        raise _BadRecord(f"{column} is not a number: {text[:40]!r}") from None
    if abs(number) >= ABSURD or (number < 0 and not signed) or (number == 0 and not (zero_ok or signed)):
        raise _BadRecord(f"{column} is out of range: {text[:40]}")
    if q8(number) != number:  # after the range check: a 30-digit number cannot even be rounded
        raise _BadRecord(f"{column} has more than 8 decimal places: {text[:40]}")
    return number


def _integer(r: Record, column: str, low: int, high: int | None) -> int:
    text = r.get(column)
    if text.__class__ is str and text.isascii() and text.isdigit() and len(text) <= 18:
        number = int(text)
        if number >= low and (high is None or number <= high):
            return number
    text = _value(r, column)
    if text is None or not (text.isascii() and text.isdigit() and len(text) <= 18) or int(text) < low or (high is not None and int(text) > high):
        bound = f"{low}-{high}" if high is not None else f"{low} or more"
        raise _BadRecord(f"{column} must be a whole number {bound}, got {(text or '')[:40]!r}")
    return int(text)


def _choice(r: Record, column: str, choices):
    value = r.get(column)
    if value.__class__ is str and (found := _CHOICES.get((choices, value))) is not None:
        return found
    text = _value(r, column)
    try:
        return choices(text)
    except ValueError:
        allowed = ", ".join(c.value for c in choices)
        raise _BadRecord(f"{column} must be one of {allowed}, got {(text or '')[:40]!r}") from None


_CHOICES = {(choices, c.value): c for choices in (Side, Kind, MarginMode, CloseReason) for c in choices}
_SYMBOLS: dict[str, str] = {}  # symbols as written -> as parsed: a file names a few thousand at most


def _symbol(r: Record) -> str:
    written = r.get("symbol")
    if written.__class__ is str and written in _SYMBOLS:
        return _SYMBOLS[written]
    text = _value(r, "symbol") or ""
    try:
        symbol = parse_symbol(text)
    except InvalidInput as exc:
        raise _BadRecord(str(exc)) from None
    if isinstance(written, str) and len(_SYMBOLS) < 10_000:
        _SYMBOLS[written] = symbol
    return symbol


def _moment(r: Record) -> datetime:
    text = _value(r, "at") or ""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _BadRecord(f"at is not an ISO-8601 time: {text[:40]!r}") from None
    if moment.tzinfo is UTC:  # as exported
        if moment < EARLIEST:
            raise _BadRecord(f"at is before 2009-01-03, when Bitcoin began: {text[:40]!r}")
        return moment
    if moment.tzinfo is None:
        raise _BadRecord(f"at has no UTC offset: {text[:40]!r}")
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise _BadRecord(f"at is out of range: {text[:40]!r}") from None
    if moment < EARLIEST:
        raise _BadRecord(f"at is before 2009-01-03, when Bitcoin began: {text[:40]!r}")
    return moment


def _free_text(r: Record, column: str) -> str | None:
    value = r.get(column)
    if value is not None and not isinstance(value, str):
        raise _BadRecord(f"{column} must be text")
    if value is not None and len(value) > MAX_TEXT:
        raise _BadRecord(f"{column} is longer than {MAX_TEXT} characters")
    hidden = hidden_character(value) if value else None
    if hidden is not None:
        raise _BadRecord(f"{column} contains a control or invisible character ({hidden})")
    return value or None
