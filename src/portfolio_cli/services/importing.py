"""``portfolio import``: the project's own trades export, CSV or JSON, into a portfolio, all or nothing.

The export holds the portfolio's records: fills (open, close), margin changes (margin added or
removed, mode switches) and the cash flows that are not a fill's (deposits, withdrawals, funding).
Every record is checked first; a file with any bad record imports nothing and names each bad line.
A trade already in the portfolio (same symbol, side, kind, margin, quantity, prices, fee and time),
a close, margin change or cash flow already booked are skipped, so importing a file twice does not
duplicate anything. Each fill is booked as the trading commands book it: the trade or close, its fee
and its realized PnL. A portfolio that does not exist yet is created, at the file's first record
(its starting deposit), so export → import gives the same portfolio.
"""

from __future__ import annotations

import csv
import json
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal, overload

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
from portfolio_cli.errors import InvalidInput, NotFound, PortfolioError
from portfolio_cli.export import Record, read_csv
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
_BRACKETS = re.compile(r"[\[\]{}]")


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


def import_trades(
    session: Session,
    path: Path,
    name: str,
    progress: Callable[[str, int, int], None] | None = None,
    allow_unknown: bool = False,
) -> ImportResult:
    """All of ``path``'s records or none. ``progress`` is told (what, done, total) while they are read;
    ``allow_unknown`` takes symbols the markets list does not know (or without checking, when there is
    no markets list: an offline restore)."""
    records = _read(path)
    now = session.clock()
    opens: dict[int, Trade] = {}  # by the file's trade id
    closes: list[tuple[int, Close]] = []
    closed: dict[int, Decimal] = {}
    margins: list[tuple[int, MarginChange]] = []
    flows: list[tuple[int | None, CashFlow]] = []
    errors = []
    for done, (where, record) in enumerate(records):
        if progress and done % 500 == 0:
            progress(f"checking {path.name}", done, len(records))
        try:
            kind = record.get("record")
            if kind == "open":
                file_id, trade = _trade(record)
                if file_id in opens:
                    raise _BadRecord(f"trade {file_id} is opened twice")
                if trade.opened_at > now:
                    raise _BadRecord(f"trade {file_id} opens in the future ({trade.opened_at:%Y-%m-%d %H:%M} UTC)")
                opens[file_id] = trade
            elif kind == "close":
                file_id, close = _close(record, opens)
                if close.closed_at > now:
                    raise _BadRecord(f"trade {file_id} closes in the future ({close.closed_at:%Y-%m-%d %H:%M} UTC)")
                closed[file_id] = closed.get(file_id, ZERO) + close.qty
                if closed[file_id] > opens[file_id].qty:
                    raise _BadRecord(f"closes of trade {file_id} add up to more than its {opens[file_id].qty}")
                closes.append((file_id, close))
            elif kind == "margin":
                margins.append(_margin(record, opens))
            elif kind in FLOW_RECORDS:
                flows.append(_flow(record, FlowKind(kind), opens))
            else:
                raise _BadRecord(f"record must be one of {', '.join(RECORDS)}, got {kind!r}")
        except _BadRecord as exc:
            errors.append(f"{where}: {exc}")
    if not allow_unknown:
        errors += _unknown_symbols(session, {trade.symbol for trade in opens.values()})
    if errors:
        shown = "; ".join(errors[:SHOWN_ERRORS])
        more = f"; and {len(errors) - SHOWN_ERRORS} more" if len(errors) > SHOWN_ERRORS else ""
        raise InvalidInput(f"{path.name}: {len(errors)} bad record(s), nothing imported: {shown}{more}")

    ledger = session.ledger
    if ledger.find_portfolio(name) is None and not records:
        raise InvalidInput(f"{path.name} holds no records to create portfolio {name!r} from")
    added = present = closes_added = closes_present = 0
    stale: set[date] = set()
    with ledger.transaction(session.command, session.clock()):
        portfolio = ledger.find_portfolio(name) or ledger.create_portfolio(
            name, _first_moment(opens, closes, margins, flows)
        )
        held = records_of(ledger, portfolio)
        known = {_fingerprint(t): t.id for t in held.trades}
        booked = {(c.trade_id, c.closed_at, c.qty, c.price, c.fee) for c in held.closes}
        ids: dict[int, int] = {}
        new = [file_id for file_id, trade in opens.items() if _fingerprint(trade) not in known]
        # The file's trade ids are kept where none is taken (a restore into another ledger round-trips
        # exactly); otherwise the ledger numbers them.
        keep_ids = bool(new) and not ledger.trade_ids_taken(new)
        for file_id, trade in sorted(opens.items()):
            if _fingerprint(trade) in known:
                ids[file_id] = known[_fingerprint(trade)]
                present += 1
                continue
            entry = open_entry(replace(trade, id=file_id if keep_ids else 0), keep_id=keep_ids)
            booked_open = ledger.book(portfolio, booking([entry]))
            (ids[file_id],) = booked_open.ids
            stale.update(booked_open.stale_days)
            added += 1
        qty_of = {t.id: t.qty for t in held.trades} | {ids[f]: t.qty for f, t in opens.items()}
        closed_qty: dict[int, Decimal] = {}
        for c in held.closes:
            closed_qty[c.trade_id] = closed_qty.get(c.trade_id, ZERO) + c.qty
        for file_id, close in closes:
            trade_id = ids[file_id]
            if (trade_id, close.closed_at, close.qty, close.price, close.fee) in booked:
                closes_present += 1
                continue
            closed_qty[trade_id] = closed_qty.get(trade_id, ZERO) + close.qty
            if closed_qty[trade_id] > qty_of[trade_id]:  # the ledger closed some of it differently
                raise InvalidInput(
                    f"{path.name}: closes of trade {file_id} would close more than its {qty_of[trade_id]} "
                    f"together with the closes trade {trade_id} already has; nothing imported"
                )
            stale.update(ledger.book(portfolio, booking([close_entry(replace(close, trade_id=trade_id))])).stale_days)
            closes_added += 1
        changed = {(m.trade_id, m.at, m.amount, m.mode) for m in held.margin_changes}
        margins_added = 0
        for file_id, change in margins:
            change = replace(change, trade_id=ids[file_id])
            if (change.trade_id, change.at, change.amount, change.mode) not in changed:
                stale.update(ledger.book(portfolio, booking([margin_entry(change)])).stale_days)
                margins_added += 1
        moved = {(f.kind, f.at, f.amount, f.trade_id) for f in held.flows}
        flows_added = 0
        for flow_trade, flow in flows:
            owner = ids[flow_trade] if flow_trade is not None else None
            if (flow.kind, flow.at, flow.amount, owner) not in moved:
                entry = Entry(CashFlow(0, flow.kind, flow.amount, flow.at, owner, flow.note))
                stale.update(ledger.book(portfolio, booking([entry])).stale_days)
                flows_added += 1
        details = {"file": path.name, "trades": added, "closes": closes_added}
        ledger.audit("import", portfolio.id, details | {"margin_changes": margins_added, "cash_flows": flows_added})
    rebuild_stale(session, name, tuple(sorted(stale)))
    return ImportResult(
        name,
        added,
        closes_added,
        present,
        closes_present,
        margins_added,
        flows_added,
        len(margins) - margins_added,
        len(flows) - flows_added,
    )


FLOW_RECORDS = ("deposit", "withdrawal", "funding")
RECORDS = ("open", "close", "margin", *FLOW_RECORDS)


def _first_moment(opens, closes, margins, flows) -> datetime:
    """When a portfolio created by the import begins: its first record (the starting deposit)."""
    moments = [t.opened_at for t in opens.values()] + [c.closed_at for _, c in closes]
    return min(moments + [m.at for _, m in margins] + [f.at for _, f in flows])


def _margin(r: Record, opens: dict[int, Trade]) -> tuple[int, MarginChange]:
    """Margin added (+) or removed (−) on an isolated position, or a switch of its mode."""
    file_id = _opened(r, opens, "changes the margin of")
    if opens[file_id].kind is not Kind.MARGIN:
        raise _BadRecord(f"trade {file_id} is spot: it has no margin to change")
    mode = _choice(r, "margin_mode", MarginMode) if _value(r, "margin_mode") else None
    return file_id, MarginChange(0, 0, _moment(r), _number(r, "amount", signed=True), mode)


def _flow(r: Record, kind: FlowKind, opens: dict[int, Trade]) -> tuple[int | None, CashFlow]:
    """A deposit (+), a withdrawal (−) or a trade's funding (signed)."""
    file_id = _opened(r, opens, "pays funding on") if kind is FlowKind.FUNDING else None
    if kind is not FlowKind.FUNDING and _value(r, "trade_id"):
        raise _BadRecord(f"a {kind.value} belongs to no trade")
    amount = _number(r, "amount", signed=True)
    if kind is FlowKind.DEPOSIT and amount <= 0 or kind is FlowKind.WITHDRAWAL and amount >= 0:
        raise _BadRecord(f"a {kind.value}'s amount is {'positive' if kind is FlowKind.DEPOSIT else 'negative'}")
    return file_id, CashFlow(0, kind, amount, _moment(r), None, _free_text(r, "note"))


def _opened(r: Record, opens: dict[int, Trade], what: str) -> int:
    file_id = _integer(r, "trade_id", 1, None)
    if file_id not in opens:
        raise _BadRecord(f"{what} trade {file_id}, which the file does not open before it")
    if _moment(r) < opens[file_id].opened_at:
        raise _BadRecord(f"{what} trade {file_id} before it was opened")
    return file_id


def _unknown_symbols(session: Session, symbols: set[str]) -> list[str]:
    """A complaint for each symbol the markets list does not know; one if there is no list to ask."""
    unknown = []
    for symbol in sorted(symbols):
        try:
            if session.prices.rules(symbol) is None:
                return [
                    "no markets list to check the symbols against (offline or Binance unreachable with none cached, or the file price source); "
                    "import with --allow-unknown to take them unchecked"
                ]
        except NotFound:
            unknown.append(f"{symbol} is not a symbol Binance lists (import with --allow-unknown to take it)")
        except PortfolioError as exc:
            return [f"cannot check the symbols: {exc}; import with --allow-unknown to take them unchecked"]
    return unknown


def _fingerprint(t: Trade) -> tuple:
    return (t.symbol, t.side, t.kind, t.margin_mode, t.leverage, t.qty, t.price, t.price_usdt, t.fee, t.opened_at)


def _read(path: Path) -> list[tuple[str, Record]]:
    """The file's records, with where each is. Only a regular file of at most MAX_FILE_BYTES is
    read (never a device such as /dev/zero); a UTF-8 byte-order mark is allowed; JSON nesting and
    integers, and CSV fields, are bounded."""
    try:
        found = os.stat(path)
        if not stat.S_ISREG(found.st_mode):
            raise InvalidInput(f"cannot import {path}: not a regular file")
        if found.st_size > MAX_FILE_BYTES:
            raise InvalidInput(f"cannot import {path}: larger than {MAX_FILE_BYTES // 2**20} MiB")
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        if _nesting(text) > MAX_JSON_DEPTH:
            raise InvalidInput(f"{path.name} nests deeper than {MAX_JSON_DEPTH} levels: not a trades export")
        try:
            payload = json.loads(text, parse_int=_json_integer)
        except (ValueError, RecursionError) as exc:
            raise InvalidInput(f"{path.name} is not valid JSON: {str(exc)[:200]}") from None
        if not isinstance(payload, dict) or payload.get("kind") != "trades":
            raise InvalidInput(f"{path.name} is not a trades export (its kind must be 'trades')")
        records = payload.get("records")
        if not isinstance(records, list):
            raise InvalidInput(f"{path.name} has no list of records")
        return [(f"record {n}", r if isinstance(r, dict) else {}) for n, r in enumerate(records, start=1)]
    try:
        header, rows = read_csv(text)
    except csv.Error as exc:
        raise InvalidInput(f"{path.name} is not a readable CSV file: {exc}") from None
    missing = [c for c in TRADE_COLUMNS if c not in header and c != "amount"]  # amount: not in older files
    if missing:
        raise InvalidInput(f"{path.name} is not a trades export: no column {', '.join(missing)}")
    return [(f"line {n}", r) for n, r in rows]


def _nesting(text: str) -> int:
    """How deep the JSON's arrays and objects nest (brackets inside strings are counted too: an
    export's deepest is 3, so that only ever over-counts)."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(text):
        depth += 1 if match.group() in "[{" else -1
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            break
    return deepest


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
    return _integer(r, "trade_id", 1, None), Trade(
        id=0,
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
        stop_loss=_number(r, "stop_loss", optional=True),
        take_profit=_number(r, "take_profit", optional=True),
        strategy=_free_text(r, "strategy"),
        note=_free_text(r, "note"),
        forced=_integer(r, "forced", 0, 1) == 1,
    )


def _close(r: Record, opens: dict[int, Trade]) -> tuple[int, Close]:
    file_id = _integer(r, "trade_id", 1, None)
    trade = opens.get(file_id)
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
    return file_id, Close(0, 0, qty, _number(r, "price"), price_usdt, fee, gross, at, _free_text(r, "note"), reason)


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
    text = _value(r, column)
    if text is None or not (text.isascii() and text.isdigit() and len(text) <= 18) or int(text) < low or (high is not None and int(text) > high):
        bound = f"{low}-{high}" if high is not None else f"{low} or more"
        raise _BadRecord(f"{column} must be a whole number {bound}, got {(text or '')[:40]!r}")
    return int(text)


def _choice(r: Record, column: str, choices):
    text = _value(r, column)
    try:
        return choices(text)
    except ValueError:
        allowed = ", ".join(c.value for c in choices)
        raise _BadRecord(f"{column} must be one of {allowed}, got {(text or '')[:40]!r}") from None


def _symbol(r: Record) -> str:
    text = _value(r, "symbol") or ""
    try:
        return parse_symbol(text)
    except InvalidInput as exc:
        raise _BadRecord(str(exc)) from None


def _moment(r: Record) -> datetime:
    text = _value(r, "at") or ""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _BadRecord(f"at is not an ISO-8601 time: {text[:40]!r}") from None
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
