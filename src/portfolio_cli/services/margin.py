"""Margin use cases: the margin report with its stress table, isolated margin changes, mode switches,
and position sizing from risk."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from portfolio_cli import formatting as fmt
from portfolio_cli.engine.booking import booking, margin_entry
from portfolio_cli.engine.margin import AccountMargin, StressRow, assess_margin, isolated_liquidation_price, stress_test
from portfolio_cli.engine.records import Kind, MarginChange, MarginMode, Side
from portfolio_cli.engine.rules import lot_exposure
from portfolio_cli.engine.symbols import BASE_CURRENCY, base_of, quote_of
from portfolio_cli.engine.triggers import first_trigger
from portfolio_cli.engine.valuation import mark_of
from portfolio_cli.errors import InvalidInput, NotFound, RuleRefused
from portfolio_cli.money import HUNDRED, ZERO, q8, round_down_to_step
from portfolio_cli.services.common import (
    MAX_LEVERAGE,
    brackets_of,
    check_places,
    lots_of,
    marks_for,
    parse_symbol,
    valuation_of,
)
from portfolio_cli.services.risk import betas_to_btc
from portfolio_cli.session import Session

FREE_MARGIN_BUFFER = Decimal("0.95")  # size leaves 5 % of free margin untouched


@dataclass(frozen=True)
class MarginReport:
    portfolio: str
    as_of: datetime
    account: AccountMargin
    stress: tuple[StressRow, ...]
    betas: dict[str, float]  # beta to BTC per symbol; symbols missing here moved 1:1


def margin_report(session: Session, name: str) -> MarginReport:
    settings = session.settings.for_portfolio(name)
    portfolio = session.ledger.portfolio(name)
    lots = lots_of(session, portfolio)
    marks, lots = marks_for(session, lots)
    open_symbols = {lot.trade.symbol for lot in lots if lot.is_open}
    valuation = valuation_of(session, portfolio, marks, lots=lots)
    betas = betas_to_btc(session, open_symbols, settings.risk.correlation_days) if open_symbols else {}
    brackets = brackets_of(settings)
    rules = settings.margin_rules.rules()
    stress = stress_test(
        session.ledger.cash_flows(portfolio),
        lots,
        marks,
        brackets,
        betas,
        rules=rules,
        clearance_rate=lambda symbol: settings.trading.liquidation_fee_rate,
    )
    account = assess_margin(valuation, brackets, rules)
    return MarginReport(name, session.clock(), account, tuple(stress), betas)


@dataclass(frozen=True)
class MarginUpdate:
    portfolio: str
    trade_id: int
    symbol: str
    mode: MarginMode
    margin: Decimal
    added_margin: Decimal
    liquidation_price: Decimal | None
    free_margin: Decimal


def change_isolated_margin(session: Session, name: str, trade_id: int, amount: Decimal) -> MarginUpdate:
    """Add (``amount`` > 0) or remove (< 0) isolated margin. Adding needs free margin; only margin
    added before can be removed, so a position never holds less than its initial margin."""
    check_places(abs(amount), "amount")
    portfolio = session.ledger.portfolio(name)
    _margin_lot(session, portfolio, trade_id)  # unknown, closed or spot: refused before any request
    marks, _ = marks_for(session, lots_of(session, portfolio))
    with session.ledger.transaction(session.command, session.clock()):
        lot = _margin_lot(session, portfolio, trade_id)
        if lot.margin_mode is not MarginMode.ISOLATED:
            raise RuleRefused(f"trade {trade_id} is in cross margin: switch it with 'portfolio margin-mode' first")
        valuation = valuation_of(session, portfolio, marks, live=False)
        if amount > valuation.free_margin:
            raise RuleRefused(
                f"refused by free margin: adding {fmt.money(amount)} USDT needs free margin, "
                f"only {fmt.money(valuation.free_margin)} USDT is free"
            )
        if -amount > lot.added_margin:
            raise RuleRefused(
                f"only the {fmt.money(lot.added_margin)} USDT added to trade {trade_id} can be removed; "
                f"its initial margin ({fmt.money(lot.initial_margin)} USDT) stays"
            )
        session.ledger.book(portfolio, booking([margin_entry(MarginChange(0, trade_id, session.clock(), amount))]))
    return _update(session, portfolio, name, trade_id, marks)


def switch_margin_mode(session: Session, name: str, trade_id: int, mode: MarginMode) -> MarginUpdate:
    """Move a margin position between isolated and cross. To cross: its added margin is released.
    To isolated: refused when the mark is already past the isolated liquidation price."""
    portfolio = session.ledger.portfolio(name)
    marks, _ = marks_for(session, lots_of(session, portfolio))
    settings = session.settings.for_portfolio(name)
    with session.ledger.transaction(session.command, session.clock()):
        lot = _margin_lot(session, portfolio, trade_id)
        if lot.margin_mode is mode:
            raise InvalidInput(f"trade {trade_id} is already in {mode} margin")
        if mode is MarginMode.ISOLATED:
            t = lot.trade
            liq = isolated_liquidation_price(
                t.side, lot.open_qty, t.price_usdt, lot.initial_margin, brackets_of(settings)(t.symbol)
            )
            mark = mark_of(t.symbol, t.kind, marks).price_usdt
            if first_trigger(t.side, mark, mark, mark, liquidation=liq) is not None:
                raise RuleRefused(
                    f"trade {trade_id} would be liquidated at once in isolated margin: mark {fmt.price(mark)} USDT, "
                    f"isolated liquidation price {fmt.price(liq)} USDT"
                )
        released = -lot.added_margin if mode is MarginMode.CROSS else ZERO
        change = MarginChange(0, trade_id, session.clock(), released, mode)
        session.ledger.book(portfolio, booking([margin_entry(change)]))
    return _update(session, portfolio, name, trade_id, marks)


def _margin_lot(session: Session, portfolio, trade_id: int):
    match = [lot for lot in lots_of(session, portfolio) if lot.trade.id == trade_id]
    if not match:
        raise NotFound(f"no trade {trade_id} in this portfolio")
    lot = match[0]
    if not lot.is_open:
        raise NotFound(f"trade {trade_id} is closed")
    if lot.trade.kind is not Kind.MARGIN:
        raise InvalidInput(f"trade {trade_id} is a spot position: it has no margin to change")
    return lot


def _update(session: Session, portfolio, name: str, trade_id: int, marks) -> MarginUpdate:
    valuation = valuation_of(session, portfolio, marks, live=False)
    settings = session.settings.for_portfolio(name)
    account = assess_margin(valuation, brackets_of(settings), settings.margin_rules.rules())
    row = next(p for p in account.positions if p.trade_id == trade_id)
    lot = next(lot for lot in lots_of(session, portfolio) if lot.trade.id == trade_id)
    return MarginUpdate(
        name, trade_id, row.symbol, row.mode, row.margin, lot.added_margin, row.liquidation_price, account.free_margin
    )


@dataclass(frozen=True)
class SizeCap:
    name: str
    qty: Decimal
    detail: str


@dataclass(frozen=True)
class PositionSize:
    symbol: str
    side: Side
    kind: Kind
    leverage: int
    entry: Decimal
    stop: Decimal
    risk_pct: Decimal
    equity: Decimal
    qty: Decimal
    notional: Decimal
    margin: Decimal
    risk: Decimal  # USDT lost if the stop is hit (before fees)
    bound_by: str
    caps: tuple[SizeCap, ...]


def size_position(
    session: Session,
    name: str,
    symbol_text: str,
    stop: Decimal,
    entry: Decimal | None = None,
    risk_pct: Decimal | None = None,
    leverage: int = 1,
    short: bool = False,
) -> PositionSize:
    """Quantity = equity × risk % ÷ |entry − stop|, then capped by free margin (keeping a 5 % buffer),
    the cash reserve, the per-asset allocation limit and the total-risk limit, and rounded down to
    the lot step. The result names the cap that bound it."""
    symbol = parse_symbol(symbol_text)
    if not 1 <= leverage <= MAX_LEVERAGE:
        raise InvalidInput(f"leverage must be between 1 and {MAX_LEVERAGE}, got {leverage}")
    kind = Kind.MARGIN if short or leverage > 1 else Kind.SPOT
    if kind is Kind.MARGIN and quote_of(symbol) != BASE_CURRENCY:
        raise InvalidInput(f"margin positions are USDT-margined perpetuals: use a /USDT pair, not {symbol}")
    settings = session.settings.for_portfolio(name)
    risk = settings.risk
    risk_pct = risk.risk_per_trade_pct if risk_pct is None else risk_pct
    if not ZERO < risk_pct <= HUNDRED:
        raise InvalidInput(f"--risk must be above 0 and at most 100 (% of equity), got {risk_pct}")
    portfolio = session.ledger.portfolio(name)
    lots = lots_of(session, portfolio)
    book = session.prices
    marks = book.marks({lot.trade.symbol for lot in lots if lot.is_open} | {symbol})
    entry = marks[symbol].price if entry is None else entry
    side = Side.SHORT if short else Side.LONG
    if stop == entry:
        raise InvalidInput(f"--stop {stop} equals the entry: the risk per unit would be zero")
    if (stop > entry) if side is Side.LONG else (stop < entry):
        where = "below" if side is Side.LONG else "above"
        raise InvalidInput(f"--stop {stop} must be {where} the entry {entry} for a {side} position")

    valuation = valuation_of(session, portfolio, marks, lots=lots)
    equity = valuation.equity
    rate = marks[symbol].price_usdt / marks[symbol].price
    entry_usdt = entry * rate
    unit_risk = abs(entry - stop) * rate
    unit_margin = entry_usdt / leverage
    fee_rate = settings.fees.rate(kind is Kind.MARGIN)
    held = [lot_exposure(lot) for lot in lots if lot.is_open]
    asset = base_of(symbol)
    room_asset = equity * risk.max_position_pct / HUNDRED - sum((e.committed for e in held if e.asset == asset), ZERO)
    room_risk = equity * risk.max_total_risk_pct / HUNDRED - sum((e.risk for e in held), ZERO)
    reserve = equity * risk.cash_reserve_pct / HUNDRED
    unit_cost = unit_margin + entry_usdt * fee_rate

    def cap(room: Decimal, per_unit: Decimal) -> Decimal:
        return max(room, ZERO) / per_unit

    caps = (
        SizeCap("risk", equity * risk_pct / HUNDRED / unit_risk, f"{risk_pct}% of equity at risk to the stop"),
        SizeCap(
            "free margin",
            cap(valuation.free_margin * FREE_MARGIN_BUFFER, unit_cost),
            "95% of free margin for margin and fee",
        ),
        SizeCap("cash reserve", cap(valuation.free_margin - reserve, unit_cost), f"{risk.cash_reserve_pct}% kept free"),
        SizeCap("allocation", cap(room_asset, unit_margin), f"{risk.max_position_pct}% of equity per asset"),
        SizeCap("total risk", cap(room_risk, unit_risk), f"{risk.max_total_risk_pct}% of equity at risk in total"),
    )
    binding = min(caps, key=lambda c: c.qty)
    qty = binding.qty
    rules = book.rules(symbol)
    if rules is not None and rules.amount_step:
        qty = round_down_to_step(qty, rules.amount_step)
    qty = q8(qty).normalize() if q8(qty) > 0 else ZERO
    if rules is not None and rules.min_qty and qty < rules.min_qty:
        qty = ZERO
    return PositionSize(
        symbol=symbol,
        side=side,
        kind=kind,
        leverage=leverage,
        entry=entry,
        stop=stop,
        risk_pct=risk_pct,
        equity=equity,
        qty=qty,
        notional=q8(qty * entry_usdt),
        margin=q8(qty * unit_margin),
        risk=q8(qty * unit_risk),
        bound_by=binding.name,
        caps=tuple(SizeCap(c.name, q8(c.qty), c.detail) for c in caps),
    )
