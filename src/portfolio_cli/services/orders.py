"""Pending orders: ``order`` places a limit or stop-entry order, ``orders`` lists them, ``cancel`` ends one.

An open order reserves its margin (spot: its cost), out of free margin, so ``open``, ``withdraw`` and
the next order see it. ``check`` fills orders from candles (engine/orders.py has the rules), runs the
risk rules at the fill moment, and cancels an order they refuse, or one that expires, saying why.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from portfolio_cli import formatting as fmt
from portfolio_cli.engine.booking import Entry, booking
from portfolio_cli.engine.orders import reservation, status_of, wrong_side
from portfolio_cli.engine.records import Kind, MarginMode, Order, OrderEnd, OrderStatus, OrderType, Portfolio, Side
from portfolio_cli.engine.rules import Conformed, conform_qty
from portfolio_cli.engine.symbols import perpetual_of
from portfolio_cli.engine.timeline import free_margin_at
from portfolio_cli.errors import InvalidInput, NotFound, RuleRefused
from portfolio_cli.money import q8
from portfolio_cli.services.common import (
    brackets_of,
    check_bracket_leverage,
    check_position_request,
    check_stops,
    later_conflicts,
    lots_of,
    marks_for,
    moment_or_now,
    timeline_of,
    valuation_of,
)
from portfolio_cli.services.trading import OpenRequest, WhatIf, band_reference, check_band, preview_open
from portfolio_cli.session import Session


@dataclass(frozen=True)
class OrderRequest:
    symbol: str
    limit: Decimal | None = None
    stop_entry: Decimal | None = None
    qty: Decimal | None = None
    notional: Decimal | None = None
    short: bool = False
    leverage: int = 1
    margin_mode: MarginMode | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    trailing_pct: Decimal | None = None
    strategy: str | None = None
    note: str | None = None
    expires: datetime | timedelta | None = None  # a moment, or a time from the placement
    at: datetime | None = None  # placed at a past moment (the next check replays from it)
    off_market: bool = False  # take a limit outside Binance's price band (recorded)


@dataclass(frozen=True)
class OrderRow:
    id: int
    symbol: str
    side: Side
    kind: Kind
    margin_mode: MarginMode | None
    leverage: int
    order_type: OrderType
    price: Decimal
    qty: Decimal
    reserved: Decimal
    placed_at: datetime
    expires_at: datetime | None
    status: OrderStatus
    ended_at: datetime | None = None
    trade_id: int | None = None
    reason: str | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    trailing_pct: Decimal | None = None
    strategy: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class OrderWhatIf:
    """What ``order --dry-run`` would place, and what its fill would do were the market to reach its
    price now: the open what-if at that price (maker fee for a limit, taker for a stop-entry)."""

    order: OrderRow
    free_margin_before: Decimal
    free_margin_after: Decimal  # once the order holds its reservation
    would_place: bool  # the reservation fits in free margin (never overridden)
    at_fill: WhatIf
    off_market: str | None = None


@dataclass(frozen=True)
class _Plan:
    portfolio: Portfolio
    order: Order
    off_market: str | None
    later: str | None  # a later record a backdated order would break
    marks: dict  # what is held, now (or at a backdated placement), fetched before any transaction


def place_order(session: Session, name: str, req: OrderRequest) -> OrderRow:
    plan = _plan(session, name, req)
    order, portfolio, ledger = plan.order, plan.portfolio, session.ledger
    with ledger.transaction(session.command, session.clock()):
        if plan.later is not None:
            raise RuleRefused(f"refused: {_breaks(order, plan.later)}")
        free = _free_margin(session, plan, backdated=req.at is not None)
        if order.reserved > free:
            raise RuleRefused(_no_room(order, free))
        (order_id,) = ledger.book(portfolio, booking([Entry(order, off_market=plan.off_market)])).ids
    return _row(replace(order, id=order_id), {})


def preview_order(session: Session, name: str, req: OrderRequest) -> OrderWhatIf:
    """What ``place_order`` would do with ``req``, checked the same way, booking nothing."""
    plan = _plan(session, name, req)
    order = plan.order
    if plan.later is not None:
        raise RuleRefused(f"dry run: {_breaks(order, plan.later)}; nothing was placed")
    free = _free_margin(session, plan, backdated=req.at is not None)
    at_fill = preview_open(session, name, OpenRequest(
        order.symbol, qty=order.qty, short=order.side is Side.SHORT, leverage=order.leverage,
        margin_mode=order.margin_mode, price=order.price, at=req.at, stop_loss=order.stop_loss,
        take_profit=order.take_profit, strategy=order.strategy, note=order.note,
        maker=order.order_type is OrderType.LIMIT, trailing_pct=order.trailing_pct, off_market=True,
        price_band=False,  # _plan held a limit to the band at placement; at the fill the market is at its price
    ))  # fmt: skip
    session.discard_fetched()  # a dry run leaves the ledger byte for byte as it was
    would_place = order.reserved <= free
    return OrderWhatIf(_row(order, {}), free, q8(free - order.reserved), would_place, at_fill, plan.off_market)


def _free_margin(session: Session, plan: _Plan, backdated: bool) -> Decimal:
    """Free margin now (other orders' reservations out), or at a backdated placement's moment, from
    the records as they are (read again inside the transaction) at the plan's prices."""
    portfolio = plan.portfolio
    if not backdated:
        return valuation_of(session, portfolio, plan.marks, live=False).free_margin
    brackets = brackets_of(session.settings.for_portfolio(portfolio.name))
    return free_margin_at(timeline_of(session.ledger, portfolio), plan.order.placed_at, plan.marks, brackets)


def _breaks(order: Order, later: str) -> str:
    return f"an order placed at {order.placed_at:%Y-%m-%d %H:%M} UTC breaks a later record: {later}"


def _no_room(order: Order, free: Decimal) -> str:
    return (
        f"refused by free margin: the order reserves {fmt.money(order.reserved)} USDT "
        f"({'its cost' if order.kind is Kind.SPOT else 'its margin'}), free margin is {fmt.money(free)} USDT"
    )


def _plan(session: Session, name: str, req: OrderRequest) -> _Plan:
    """The order ``req`` describes, validated as ``order`` places it: its side of the market, Binance's
    lot step, price band and leverage bracket, its reservation."""
    if (req.limit is None) == (req.stop_entry is None):
        raise InvalidInput("give exactly one of --limit and --stop-entry")
    order_type = OrderType.LIMIT if req.limit is not None else OrderType.STOP_ENTRY
    price = req.limit if req.limit is not None else req.stop_entry
    assert price is not None
    given = "--limit" if order_type is OrderType.LIMIT else "--stop-entry"
    prices = {given: price, "--stop-loss": req.stop_loss, "--take-profit": req.take_profit}
    symbol, kind, side = check_position_request(
        req.symbol, req.qty, req.notional, req.short, req.leverage, req.margin_mode, prices, req.strategy,
        req.note, req.trailing_pct,
    )  # fmt: skip
    check_stops(side, price, req.stop_loss, req.take_profit)
    settings = session.settings.for_portfolio(name)
    ledger = session.ledger
    portfolio = ledger.portfolio(name)
    now = moment_or_now(session, req.at, portfolio.created_at, "the portfolio was created", name)
    expires = now + req.expires if isinstance(req.expires, timedelta) else req.expires
    if expires is not None and expires <= now:
        raise InvalidInput(f"--expires {expires:%Y-%m-%d %H:%M} UTC is not after the order is placed")
    book = session.prices
    rules = book.futures_rules(symbol) if kind is Kind.MARGIN else book.rules(symbol)
    marks, _ = marks_for(session, lots_of(session, portfolio), extra={symbol})
    market = book.price_at(symbol, now).price if req.at is not None else marks[symbol].price
    why = wrong_side(side, order_type, price, market)
    if why is not None:
        raise InvalidInput(why)
    off_market = None
    traded = perpetual_of(symbol) if kind is Kind.MARGIN else symbol  # a margin position trades the perpetual
    if order_type is OrderType.LIMIT:  # Binance holds a limit's price to its PERCENT_PRICE band
        around = band_reference(session, symbol, traded, now if req.at is not None else None)
        off_market = check_band(session, price, around, rules, side is Side.LONG, traded, req.off_market)
    rate = book.usdt_rate_at(symbol, None)
    price_usdt = q8(price * rate)
    qty = req.qty if req.qty is not None else q8(req.notional / price_usdt) if req.notional is not None else None
    assert qty is not None
    if rules is None:
        session.warn(
            f"trading rules for {traded} unknown (offline, or Binance unreachable): lot step and exchange limits "
            "not checked"
        )
    else:
        conformed = conform_qty(qty, price, replace(rules, max_market_qty=None))
        if not isinstance(conformed, Conformed):
            raise RuleRefused(str(conformed))
        if conformed.rounded_from is not None and req.qty is not None:
            session.warn(f"quantity {conformed.rounded_from} rounded down to {conformed.qty}")
        qty = conformed.qty
    if q8(qty) != qty or qty <= 0:
        raise InvalidInput(f"quantity {qty} does not fit the ledger's 8 decimal places")
    if kind is Kind.MARGIN:
        check_bracket_leverage(brackets_of(settings)(symbol), symbol, q8(qty * price_usdt), req.leverage)
    margin_mode = (req.margin_mode or MarginMode(settings.trading.margin_mode)) if kind is Kind.MARGIN else None
    reserved = reservation(kind, qty, price_usdt, req.leverage)
    order = Order(
        0, symbol, side, kind, margin_mode, req.leverage, order_type, price, qty, reserved, now, expires,
        req.stop_loss, req.take_profit, req.trailing_pct, req.strategy, req.note,
    )  # fmt: skip
    later = None
    if req.at is not None:  # a backdated order must leave every later record the free margin it needed
        history = timeline_of(ledger, portfolio)
        later = later_conflicts(session, history, history.plus(orders=[order]), now, brackets_of(settings))
        held = history.open_symbols_at(now)
        marks = session.prices.marks_at(held, now) if held else {}
    return _Plan(portfolio, order, off_market, later, marks)


def list_orders(session: Session, name: str, every: bool = False) -> list[OrderRow]:
    """The open orders (every order with ``every``), oldest first."""
    ledger = session.ledger
    portfolio = ledger.portfolio(name)
    ends = {e.order_id: e for e in ledger.order_ends(portfolio)}
    rows = [_row(o, ends) for o in ledger.orders(portfolio)]
    return rows if every else [r for r in rows if r.status is OrderStatus.OPEN]


def cancel_order(session: Session, name: str, order_id: int) -> OrderRow:
    ledger = session.ledger
    portfolio = ledger.portfolio(name)
    now = session.clock()
    with ledger.transaction(session.command, now):
        order = next((o for o in ledger.orders(portfolio) if o.id == order_id), None)
        if order is None:
            raise NotFound(f"no order {order_id} in portfolio {name}")
        ends = {e.order_id: e for e in ledger.order_ends(portfolio)}
        status = status_of(order, ends)
        if status is not OrderStatus.OPEN:
            raise RuleRefused(f"order {order_id} is already {status.value}")
        end = OrderEnd(0, order_id, now, OrderStatus.CANCELLED, None, "cancelled by the trader")
        ledger.book(portfolio, booking([Entry(end)]))
    return _row(order, {order_id: end})


def _row(o: Order, ends: dict[int, OrderEnd]) -> OrderRow:
    end = ends.get(o.id)
    return OrderRow(
        o.id, o.symbol, o.side, o.kind, o.margin_mode, o.leverage, o.order_type, o.price, o.qty, o.reserved,
        o.placed_at, o.expires_at, status_of(o, ends), end.at if end else None, end.trade_id if end else None,
        end.reason if end else None, o.stop_loss, o.take_profit, o.trailing_pct, o.strategy, o.note,
    )  # fmt: skip
