"""What the use cases share: input checks, the portfolio's lots and its valuation."""

from __future__ import annotations

import re
from collections.abc import Set
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from portfolio_cli.config import Settings
from portfolio_cli.engine.accounting import Lot, build_lots
from portfolio_cli.engine.brackets import Brackets, BracketTable
from portfolio_cli.engine.history import RecordsSweep, records_at
from portfolio_cli.engine.records import CashFlow, Close, Kind, MarginChange, MarginMode, Portfolio, Side, Trade
from portfolio_cli.engine.symbols import BASE_CURRENCY, normalize_symbol, quote_of, spot_of
from portfolio_cli.engine.timeline import Records, free_margin_conflict, later_needs
from portfolio_cli.engine.valuation import Valuation, price_key, value_portfolio
from portfolio_cli.errors import InvalidInput, NotFound, PriceUnavailable, RuleRefused
from portfolio_cli.ledger import Ledger
from portfolio_cli.money import q8
from portfolio_cli.prices.book import LAST_FILL
from portfolio_cli.session import Session
from portfolio_cli.text import MAX_TEXT, hidden_character

MIN_BALANCE, MAX_BALANCE = Decimal(100), Decimal(1_000_000)
MAX_LEVERAGE = 125
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # the whole name: fullmatch, never "$"


def parse_symbol(text: str) -> str:
    symbol = normalize_symbol(text)
    if symbol is None:
        raise InvalidInput(f"not a symbol: {text!r} (expected BASE/QUOTE, e.g. BTC/USDT)")
    return symbol


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidInput(f"invalid portfolio name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return name


def moment_or_now(
    session: Session, at: datetime | None, not_before: datetime, what: str, created: str | None = None
) -> datetime:
    """``at``, or now when it is None; refused in the future or before ``not_before``. ``created`` names
    the portfolio when ``not_before`` is its creation, so the refusal says how to move that back."""
    now = session.clock()
    if at is None:
        return now
    if at > now:
        raise InvalidInput(f"--at {at:%Y-%m-%d %H:%M} UTC is in the future")
    if at < not_before:
        hint = f"; to record it, date the portfolio earlier first: portfolio init {created} --at {at:%Y-%m-%dT%H:%M}"
        raise InvalidInput(
            f"--at {at:%Y-%m-%d %H:%M} UTC is before {what} ({not_before:%Y-%m-%d %H:%M} UTC)"
            + (hint if created else "")
        )
    return at


def lots_of(session: Session, portfolio: Portfolio) -> list[Lot]:
    ledger = session.ledger
    return build_lots(ledger.trades(portfolio), ledger.closes(portfolio), ledger.margin_changes(portfolio))


@dataclass(frozen=True)
class PortfolioRecords:
    """Everything the ledger records of one portfolio, read once."""

    portfolio: Portfolio
    trades: list[Trade]
    closes: list[Close]
    margin_changes: list[MarginChange]
    flows: list[CashFlow]

    def at(self, moment: datetime) -> tuple[list[Lot], list[CashFlow]]:
        return records_at(moment, self.trades, self.closes, self.margin_changes, self.flows)

    def sweep(self) -> RecordsSweep:
        """``at`` for moments in increasing order, each record folded in once (see ``RecordsSweep``)."""
        return RecordsSweep(self.trades, self.closes, self.margin_changes, self.flows)


def records_of(ledger: Ledger, portfolio: Portfolio) -> PortfolioRecords:
    return PortfolioRecords(
        portfolio,
        ledger.trades(portfolio),
        ledger.closes(portfolio),
        ledger.margin_changes(portfolio),
        ledger.cash_flows(portfolio),
    )


def timeline_of(ledger: Ledger, portfolio: Portfolio) -> Records:
    return Records(
        tuple(ledger.trades(portfolio)),
        tuple(ledger.closes(portfolio)),
        tuple(ledger.margin_changes(portfolio)),
        tuple(ledger.cash_flows(portfolio)),
        tuple(ledger.orders(portfolio)),
        tuple(ledger.order_ends(portfolio)),
    )


def later_conflicts(
    session: Session, before: Records, after: Records, at: datetime, brackets: Brackets
) -> str | None:
    """Why the records in ``after`` but not ``before`` (dated ``at``) would break a record booked after
    them, or None. Each later record is valued at its own moment's prices, fetched here (before any
    transaction): candles from the cache or the exchange."""
    needs = later_needs(before, at)
    marks_at = {}
    for need in needs:
        symbols = after.open_symbols_at(need.at)
        marks_at[need.at] = session.prices.marks_at(symbols, need.at) if symbols else {}
    return free_margin_conflict(before, after, needs, marks_at, brackets)


def open_symbols(session: Session, portfolio: Portfolio) -> set[str]:
    return {lot.trade.symbol for lot in lots_of(session, portfolio) if lot.is_open}


def price_keys(lots: list[Lot]) -> set[str]:
    """What the open lots are valued at: spot pairs, and margin positions' perpetuals (mark price)."""
    return {price_key(lot.trade.symbol, lot.trade.kind) for lot in lots if lot.is_open}


def marks_for(session: Session, lots: list[Lot], extra: Set[str] = frozenset()) -> tuple[dict, list[Lot]]:
    """Marks for the open lots (and ``extra`` symbols) in one batch, and the lots that can be valued.

    A symbol Binance does not list is handled alone: valued at its cached price (or its last fill), or
    its positions left out; either way it is named and the command exits 13 (committed, but incomplete). No price for a
    listed symbol is still an error (exit 5)."""
    book = session.prices
    keys = price_keys(lots) | set(extra)
    marks, missing, reason = book.marks_found(keys)
    unlisted = [s for s in missing if spot_of(s) in book.unlisted]
    other = [s for s in missing if s not in unlisted]
    wanted_unlisted = sorted({spot_of(s) for s in unlisted} & set(extra))
    if wanted_unlisted:
        raise NotFound(f"unknown symbol {', '.join(wanted_unlisted)} on Binance")
    if other:
        raise PriceUnavailable(f"no price for {', '.join(sorted(other))}{reason}; pass --price SYMBOL=VALUE")
    left = {spot_of(s) for s in unlisted}
    for symbol in sorted(left):
        session.left_out(f"{symbol} is not listed on Binance and has no known price: its positions are left out")
    held = {lot.trade.symbol for lot in lots if lot.is_open}
    for symbol in sorted((book.unlisted & held) - left):
        source = marks[symbol].source if symbol in marks else "cache"
        how = "its last fill price" if source == LAST_FILL else "its last cached price"
        session.left_out(f"{symbol} is not listed on Binance: valued at {how}")
    return marks, [lot for lot in lots if not (lot.is_open and lot.trade.symbol in left)]


def valuation_of(
    session: Session,
    portfolio: Portfolio,
    marks: dict,
    lots: list[Lot] | None = None,
    aggregate: bool = False,
    live: bool = True,
) -> Valuation:
    lots = lots_of(session, portfolio) if lots is None else lots
    symbols = {
        key
        for lot in lots
        if lot.is_open and (key := price_key(lot.trade.symbol, lot.trade.kind)) not in marks
        and lot.trade.symbol not in marks
    }
    if symbols:
        # A concurrent command opened a symbol we have no mark for yet.
        marks = {**marks, **session.prices.marks(symbols, live=live)}
    settings = session.settings.for_portfolio(portfolio.name)
    reserved = reserved_now(session, portfolio)
    return value_portfolio(
        session.ledger.cash_flows(portfolio), lots, marks, brackets_of(settings), aggregate, reserved
    )


def reserved_now(session: Session, portfolio: Portfolio) -> Decimal:
    """The margin the portfolio's open orders hold now (engine/orders.py)."""
    from portfolio_cli.engine.orders import reserved_at

    ledger = session.ledger
    orders = ledger.orders(portfolio)
    return reserved_at(orders, ledger.order_ends(portfolio), session.clock()) if orders else Decimal(0)


def check_bracket_leverage(table: BracketTable, symbol: str, notional: Decimal, leverage: int) -> None:
    """Binance refuses a leverage above the maximum of the bracket the notional falls in."""
    bracket = table.at(notional)
    if leverage > bracket.max_leverage:
        raise RuleRefused(
            f"refused by leverage bracket: {symbol} at {notional} USDT notional is in bracket {bracket.number} "
            f"(up to {bracket.cap.normalize():f} USDT), whose maximum leverage is {bracket.max_leverage}x, "
            f"not {leverage}x ({table.source})"
        )


def brackets_of(settings: Settings) -> Brackets:
    """The leverage brackets these settings use (prices/brackets.py says where each comes from)."""
    from portfolio_cli.prices.brackets import bracket_source

    return bracket_source(settings.trading)


def check_text(value: str | None, what: str) -> str | None:
    """Free text for the ledger: at most MAX_TEXT characters, nothing a terminal would act on."""
    if value is None:
        return None
    if len(value) > MAX_TEXT:
        raise InvalidInput(f"{what} is longer than {MAX_TEXT} characters")
    hidden = hidden_character(value)
    if hidden is not None:
        raise InvalidInput(f"{what} contains a control or invisible character ({hidden})")
    return value or None


def check_places(value: Decimal, what: str) -> None:
    if q8(value) != value:
        raise InvalidInput(f"{what} has more than 8 decimal places: {value}")


def check_position_request(
    symbol_text: str,
    qty: Decimal | None,
    notional: Decimal | None,
    short: bool,
    leverage: int,
    margin_mode: MarginMode | None,
    prices: dict[str, Decimal | None],
    strategy: str | None,
    note: str | None,
    trailing_pct: Decimal | None,
) -> tuple[str, Kind, Side]:
    """What ``open`` and ``order`` both ask of a position: one size, a leverage Binance offers, a margin
    position on a USDT pair, prices to 8 places, clean text. Returns its symbol, kind and side."""
    symbol = parse_symbol(symbol_text)
    if (qty is None) == (notional is None):
        raise InvalidInput("give exactly one of --qty and --notional")
    if not 1 <= leverage <= MAX_LEVERAGE:
        raise InvalidInput(f"leverage must be between 1 and {MAX_LEVERAGE}, got {leverage}")
    kind = Kind.MARGIN if short or leverage > 1 else Kind.SPOT
    if kind is Kind.MARGIN and quote_of(symbol) != BASE_CURRENCY:
        raise InvalidInput(f"margin positions are USDT-margined perpetuals: use a /USDT pair, not {symbol}")
    if kind is Kind.SPOT and margin_mode is not None:
        raise InvalidInput("--isolated/--cross apply to margin positions (--leverage above 1 or --short)")
    for what, value in {"--qty": qty, "--notional": notional, **prices}.items():
        if value is not None:
            check_places(value, what)
    check_text(strategy, "--strategy")
    check_text(note, "--note")
    if trailing_pct is not None:
        from portfolio_cli.services.amend import check_trailing_pct

        check_trailing_pct(trailing_pct)
    return symbol, kind, Side.SHORT if short else Side.LONG


def check_stops(side: Side, fill: Decimal, stop: Decimal | None, take: Decimal | None) -> None:
    below, above = ("below", "above") if side is Side.LONG else ("above", "below")
    if stop is not None and (stop >= fill if side is Side.LONG else stop <= fill):
        raise InvalidInput(f"--stop-loss {stop} must be {below} the fill price {fill} for a {side} position")
    if take is not None and (take <= fill if side is Side.LONG else take >= fill):
        raise InvalidInput(f"--take-profit {take} must be {above} the fill price {fill} for a {side} position")
