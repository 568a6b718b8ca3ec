"""``portfolio amend``: change an open trade's stop-loss, take-profit or trailing stop, from a moment on.

An amendment is a record with its own effective time (now, or ``--at``): ``check`` replays each candle
with the levels in force at it (engine/stops.py). A level is validated as at open, against the price
at that moment (a long's stop below it, its take-profit above; a short's the other way round). A
backdated amendment must come after the trade's last close (a close replayed with the old levels
would no longer follow) and after the last funding booked on it (paid on the position the old levels
left open), and rewinds the check watermark so the next ``check`` replays from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from portfolio_cli.engine.accounting import Lot
from portfolio_cli.engine.booking import Entry, booking
from portfolio_cli.engine.records import Amendment, CashFlow, FlowKind, Portfolio, Side, Trade
from portfolio_cli.engine.stops import STOP_LOSS, TAKE_PROFIT, TRAILING_STOP, Stops, stops_at
from portfolio_cli.errors import InvalidInput, NotFound, RuleRefused
from portfolio_cli.money import HUNDRED, ZERO
from portfolio_cli.services.common import check_places, check_stops, check_text, lots_of, moment_or_now
from portfolio_cli.services.valuation import trailing_level
from portfolio_cli.session import Session


@dataclass(frozen=True)
class AmendRequest:
    trade_id: int
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    trailing_pct: Decimal | None = None
    remove_stop_loss: bool = False
    remove_take_profit: bool = False
    remove_trailing: bool = False
    at: datetime | None = None
    note: str | None = None


@dataclass(frozen=True)
class Levels:
    stop_loss: Decimal | None
    take_profit: Decimal | None
    trailing_pct: Decimal | None
    trailing_stop: Decimal | None  # the trailing level now (from the best price known)


@dataclass(frozen=True)
class AmendResult:
    portfolio: str
    trade_id: int
    symbol: str
    side: Side
    at: datetime
    price: Decimal  # the price the levels were validated against
    before: Levels
    after: Levels


def check_trailing_pct(pct: Decimal, what: str = "--trailing-stop") -> None:
    check_places(pct, what)
    if not ZERO < pct < HUNDRED:
        raise InvalidInput(f"{what} is a percentage above 0 and below 100, got {pct}")


def amend_trade(session: Session, name: str, req: AmendRequest) -> AmendResult:
    if req.stop_loss is not None and req.remove_stop_loss:
        raise InvalidInput("give --stop-loss or --no-stop-loss, not both")
    if req.take_profit is not None and req.remove_take_profit:
        raise InvalidInput("give --take-profit or --no-take-profit, not both")
    if req.trailing_pct is not None and req.remove_trailing:
        raise InvalidInput("give --trailing-stop or --no-trailing-stop, not both")
    given = (req.stop_loss, req.take_profit, req.trailing_pct)
    if all(v is None for v in given) and not (req.remove_stop_loss or req.remove_take_profit or req.remove_trailing):
        raise InvalidInput("nothing to amend: give --stop-loss, --take-profit, --trailing-stop or a --no- option")
    for value, what in ((req.stop_loss, "--stop-loss"), (req.take_profit, "--take-profit")):
        if value is not None:
            check_places(value, what)
            if value <= 0:
                raise InvalidInput(f"{what} must be above 0, got {value}")
    if req.trailing_pct is not None:
        check_trailing_pct(req.trailing_pct)
    check_text(req.note, "--note")
    ledger = session.ledger
    portfolio = ledger.portfolio(name)
    lot = _lot(session, portfolio, req.trade_id)
    t = lot.trade
    at = moment_or_now(session, req.at, t.opened_at, f"trade {t.id} was opened")
    book = session.prices
    price = book.price_at(t.symbol, at).price if req.at is not None else book.marks({t.symbol})[t.symbol].price
    check_stops(t.side, price, req.stop_loss, req.take_profit)
    removed = tuple(
        what
        for what, flag in (
            (STOP_LOSS, req.remove_stop_loss),
            (TAKE_PROFIT, req.remove_take_profit),
            (TRAILING_STOP, req.remove_trailing),
        )
        if flag
    )
    amendment = Amendment(
        0,
        t.id,
        at,
        req.stop_loss,
        req.take_profit,
        req.trailing_pct,
        price if req.trailing_pct is not None else None,
        removed,
        req.note or None,
    )
    with ledger.transaction(session.command, session.clock()):
        lot = _lot(session, portfolio, req.trade_id)  # read again under the lock
        _refuse_conflicts(lot, at)
        _refuse_after_funding(ledger.cash_flows(portfolio), t.id, at)
        amendments = [a for a in ledger.amendments(portfolio) if a.trade_id == t.id]
        if any(a.at == at for a in amendments):
            raise RuleRefused(f"trade {t.id} already has an amendment at {at:%Y-%m-%d %H:%M:%S} UTC")
        before = stops_at(t, amendments, at)
        after = stops_at(t, [*amendments, amendment], at)
        for removed_level in removed:
            if getattr(before, "trailing_pct" if removed_level == TRAILING_STOP else removed_level) is None:
                raise InvalidInput(f"trade {t.id} has no {removed_level.replace('_', '-')} to remove")
        booked = ledger.book(portfolio, booking([Entry(amendment)]))
    from portfolio_cli.services.snapshots import rebuild_stale

    rebuild_stale(session, name, booked.stale_days)
    return AmendResult(
        name,
        t.id,
        t.symbol,
        t.side,
        at,
        price,
        _levels(session, t, before, price),
        _levels(session, t, after, price),
    )


def _lot(session: Session, portfolio: Portfolio, trade_id: int) -> Lot:
    lot = next((lot for lot in lots_of(session, portfolio) if lot.trade.id == trade_id), None)
    if lot is None:
        raise NotFound(f"no trade {trade_id} in portfolio {portfolio.name}")
    return lot


def _refuse_conflicts(lot: Lot, at: datetime) -> None:
    t = lot.trade
    if not lot.is_open:
        raise RuleRefused(f"trade {t.id} is closed: only an open trade's levels can be amended")
    later = [c for c in lot.closes if c.closed_at >= at]
    if later:
        c = later[0]
        raise RuleRefused(
            f"refused: trade {t.id} was partly closed at {c.closed_at:%Y-%m-%d %H:%M} UTC ({c.reason.value}), "
            f"after {at:%Y-%m-%d %H:%M} UTC; amend it from after its last close"
        )


def _refuse_after_funding(flows: list[CashFlow], trade_id: int, at: datetime) -> None:
    """Funding booked after ``at`` was paid on the position as the levels then in force left it open:
    new levels from ``at`` could close it earlier on the next replay, under that funding."""
    funded = [f.at for f in flows if f.kind is FlowKind.FUNDING and f.trade_id == trade_id and f.at > at]
    if funded:
        raise RuleRefused(
            f"refused: funding of trade {trade_id} was booked after {at:%Y-%m-%d %H:%M} UTC (at "
            f"{min(funded):%Y-%m-%d %H:%M} UTC), on the position the levels then in force left open; "
            f"amend it from {max(funded):%Y-%m-%d %H:%M} UTC on"
        )


def _levels(session: Session, trade: Trade, stops: Stops, price: Decimal) -> Levels:
    level = trailing_level(session, trade, stops, price)
    return Levels(stops.stop_loss, stops.take_profit, stops.trailing_pct, level)

