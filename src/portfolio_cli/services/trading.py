"""Trading: open and close positions, list trades, value the portfolio."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from decimal import Decimal

from portfolio_cli import formatting as fmt
from portfolio_cli.engine.accounting import Lot, fee_for, fill_price, initial_margin
from portfolio_cli.engine.booking import booking, close_entry, close_lots, open_entry
from portfolio_cli.engine.fills import BookTooThin, walk_book
from portfolio_cli.engine.market import MarketRules
from portfolio_cli.engine.records import Close, FlowKind, Kind, MarginMode, Side, Trade
from portfolio_cli.engine.rules import (
    Conformed,
    Refusal,
    TradeCheck,
    Verdict,
    conform_qty,
    exposure,
    judge_open,
    lot_exposure,
    price_band_refusal,
)
from portfolio_cli.engine.symbols import base_of, perpetual_of, spot_of
from portfolio_cli.engine.timeline import Records, close_conflict
from portfolio_cli.engine.valuation import Mark, Valuation, value_portfolio
from portfolio_cli.errors import InvalidInput, NotFound, PriceUnavailable, RuleRefused
from portfolio_cli.money import HUNDRED, ZERO, q8, round_down_to_step
from portfolio_cli.services.common import (
    brackets_of,
    check_bracket_leverage,
    check_places,
    check_position_request,
    check_stops,
    check_text,
    later_conflicts,
    lots_of,
    marks_for,
    moment_or_now,
    parse_symbol,
    timeline_of,
    valuation_of,
)
from portfolio_cli.services.snapshots import rebuild_stale
from portfolio_cli.session import Session


@dataclass(frozen=True)
class OpenRequest:
    symbol: str
    qty: Decimal | None = None
    notional: Decimal | None = None
    short: bool = False
    leverage: int = 1
    margin_mode: MarginMode | None = None
    price: Decimal | None = None
    at: datetime | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    strategy: str | None = None
    note: str | None = None
    force: bool = False
    maker: bool = False  # a --price fill that rested on the book: the maker fee
    trailing_pct: Decimal | None = None  # a trailing stop from the fill price
    off_market: bool = False  # take a --price outside Binance's price band (recorded)
    price_band: bool = True  # hold --price to Binance's price band (False: an order's stop-entry trigger)


@dataclass(frozen=True)
class Fill:
    trade_id: int
    portfolio: str
    symbol: str
    side: Side
    kind: Kind
    margin_mode: MarginMode | None
    leverage: int
    qty: Decimal
    price: Decimal
    price_usdt: Decimal
    notional: Decimal
    fee: Decimal
    margin: Decimal
    at: datetime
    rounded_from: Decimal | None
    overridden_rules: tuple[str, ...]
    liquidation_price: Decimal | None = None  # a margin position's, right after the fill
    price_tick: Decimal | None = None  # the market's tick, when its rules are known
    market: str = ""  # the market it traded: BTC/USDT, or the perpetual BTC/USDT:USDT
    fill_note: str | None = None  # how the fill was had: the book walked, or the fallback
    moved_pct: Decimal | None = None  # the fill's distance from the last price (the mark for a perpetual)


@dataclass(frozen=True)
class RuleVerdict:
    rule: str
    passed: bool
    figures: str
    config_key: str | None
    solvency: bool  # --force cannot override it


@dataclass(frozen=True)
class WhatIf:
    """What ``open --dry-run`` would book and the portfolio after it; nothing is written."""

    portfolio: str
    symbol: str
    market: str
    side: Side
    kind: Kind
    margin_mode: MarginMode | None
    leverage: int
    qty: Decimal
    price: Decimal
    price_usdt: Decimal
    notional: Decimal
    fee: Decimal
    margin: Decimal
    at: datetime
    fill_note: str | None
    moved_pct: Decimal | None
    liquidation_price: Decimal | None
    equity_before: Decimal
    free_margin_before: Decimal
    margin_level_before_pct: Decimal | None
    equity_after: Decimal
    free_margin_after: Decimal
    margin_level_after_pct: Decimal | None
    allocation_after_pct: Decimal | None  # the new position's |value| / equity × 100
    rules: tuple[RuleVerdict, ...]
    would_book: bool  # every rule passes, or --force overrides the ones that fail (never solvency)
    refused_by: tuple[str, ...]  # the rules that refuse it (with --force: only solvency)
    overridden_rules: tuple[str, ...]  # what --force would override (recorded)
    rounded_from: Decimal | None = None
    off_market: str | None = None
    price_tick: Decimal | None = None


def _what_if(
    name: str,
    trade: Trade,
    new_id: int,
    market: str,
    notional: Decimal,
    margin: Decimal,
    rounded_from: Decimal | None,
    fill_note: str | None,
    moved_pct: Decimal | None,
    before: Valuation,
    after: Valuation,
    brackets,
    verdicts: tuple[Verdict, ...],
    force: bool,
    off_market: str | None,
    tick: Decimal | None,
) -> WhatIf:
    from portfolio_cli.engine.margin import assess_margin

    liquidation = None
    if trade.kind is Kind.MARGIN:
        rows = assess_margin(after, brackets).positions
        liquidation = next((p.liquidation_price for p in rows if p.trade_id == new_id), None)
    position = next((p for p in after.positions if p.trade_id == new_id), None)
    failed = [v for v in verdicts if not v.passed]
    binding = [v.rule for v in failed if v.solvency]
    refused_by = tuple(binding if force else [v.rule for v in failed])
    return WhatIf(
        name,
        trade.symbol,
        market,
        trade.side,
        trade.kind,
        trade.margin_mode,
        trade.leverage,
        trade.qty,
        trade.price,
        trade.price_usdt,
        notional,
        trade.fee,
        margin,
        trade.opened_at,
        fill_note,
        moved_pct,
        liquidation,
        before.equity,
        before.free_margin,
        before.margin_level_pct,
        after.equity,
        after.free_margin,
        after.margin_level_pct,
        position.allocation_pct if position is not None else None,
        tuple(RuleVerdict(v.rule, v.passed, v.figures, v.config_key, v.solvency) for v in verdicts),
        not refused_by,
        refused_by,
        tuple(v.rule for v in failed) if force and not binding else (),
        rounded_from,
        off_market,
        tick,
    )


def open_trade(session: Session, name: str, req: OpenRequest) -> Fill:
    """Open a position: priced, checked against every rule, booked in one transaction."""
    fill = _open(session, name, req, dry_run=False)
    assert isinstance(fill, Fill)
    return fill


def preview_open(session: Session, name: str, req: OpenRequest) -> WhatIf:
    """What ``open_trade`` would do with ``req``, priced and checked the same way, booking nothing."""
    what_if = _open(session, name, req, dry_run=True)
    assert isinstance(what_if, WhatIf)
    return what_if


def _open(session: Session, name: str, req: OpenRequest, dry_run: bool) -> Fill | WhatIf:
    prices = {"--price": req.price, "--stop-loss": req.stop_loss, "--take-profit": req.take_profit}
    symbol, kind, side = check_position_request(
        req.symbol, req.qty, req.notional, req.short, req.leverage, req.margin_mode, prices, req.strategy,
        req.note, req.trailing_pct,
    )  # fmt: skip
    settings = session.settings.for_portfolio(name)
    ledger = session.ledger
    portfolio = ledger.portfolio(name)
    at = moment_or_now(session, req.at, portfolio.created_at, "the portfolio was created", name)
    book = session.prices
    backdated = req.at is not None

    market = perpetual_of(symbol) if kind is Kind.MARGIN else symbol
    # A margin position trades the pair's USDⓈ-M perpetual: none on Binance is a refusal (exit 4).
    rules = book.futures_rules(symbol) if kind is Kind.MARGIN else None
    # the band a --price is held to (Binance's PERCENT_PRICE), around the market before the override;
    # an order's stop-entry trigger is not held to it (Binance checks a stop only once it triggers)
    banded = req.price is not None and req.price_band
    around = band_reference(session, symbol, market, at if backdated else None) if banded else None
    if req.price is not None and not backdated:
        book.override(symbol, req.price)
    version = ledger.records_version(portfolio)
    history = timeline_of(ledger, portfolio)
    # Today's marks of what is held and traded (they are cached for the commands that follow). A backdated
    # fill is priced at its moment, so its own market's mark today is only had where it can be.
    marks, _ = marks_for(session, lots_of(session, portfolio), extra=set() if backdated else {symbol, market})
    today = {**marks, **book.marks_found({symbol, market})[0]} if backdated else marks
    if kind is Kind.SPOT:
        rules = book.rules(symbol)
    rate = book.usdt_rate_at(symbol, at if backdated else None)
    fill_note, moved_pct = None, None
    if req.price is not None:
        reference = req.price
    elif backdated:
        reference = fill_price(book.price_at(symbol, at).price, side is Side.LONG, settings.trading.slippage_bps)
    else:
        reference = marks[market].price  # the pair's last price; a perpetual's mark
    held_then: set[str] = set()
    if backdated:  # the state at that moment: the positions open then, at the prices then
        held_then = history.open_symbols_at(at)
        priced = held_then - {symbol} if req.price is not None else held_then
        marks = book.marks_at(priced, at) if priced else {}

    if req.qty is not None:
        qty = req.qty
    elif req.notional is not None:
        qty = req.notional / q8(reference * rate)
    else:
        raise InvalidInput("give the quantity (--qty) or the notional (--notional)")
    rounded_from = None
    if rules is None:
        session.warn(f"trading rules for {market} unknown (offline, or Binance unreachable): lot step and exchange limits not checked")
        qty = q8(qty) if req.qty is None else qty
    else:
        if req.price is not None or backdated:  # a recorded fill, not a market order: no market-order cap
            rules = replace(rules, max_market_qty=None)
        conformed = conform_qty(qty, reference, rules)
        if not isinstance(conformed, Conformed):
            raise RuleRefused(str(conformed))
        qty, rounded_from = conformed.qty, conformed.rounded_from
        if rounded_from is not None and req.qty is not None:
            step = fmt.qty(rules.amount_step) if rules.amount_step else "unknown"
            session.warn(f"quantity {fmt.qty(rounded_from)} rounded down to {fmt.qty(qty)} (lot step {step})")
    off_market = None
    if req.price is not None and banded:
        off_market = check_band(session, req.price, around, rules, side is Side.LONG, market, req.off_market)
    if req.price is not None or backdated:
        fill = reference
    else:
        require_fresh(session, market, marks[market])
        fill, fill_note, moved_pct = market_fill(session, settings, market, qty, side is Side.LONG, reference)
    fill_usdt = q8(fill * rate)
    if backdated and symbol in held_then and symbol not in marks:  # --price: the symbol's price then
        marks[symbol] = Mark(symbol, fill, fill_usdt, at, "override")
    check_stops(side, fill, req.stop_loss, req.take_profit)
    if q8(qty) != qty or qty <= 0:
        raise InvalidInput(f"quantity {qty} does not fit the ledger's 8 decimal places")

    brackets = brackets_of(settings)
    if kind is Kind.MARGIN:
        check_bracket_leverage(brackets(symbol), symbol, q8(qty * fill_usdt), req.leverage)
    if req.maker and req.price is None:
        raise InvalidInput("--maker needs --price: a market order is always a taker")
    rate_fee = settings.fees.rate(kind is Kind.MARGIN, req.maker)
    fee = fee_for(qty, fill_usdt, rate_fee)
    margin = q8(initial_margin(kind, qty, fill_usdt, req.leverage))
    margin_mode = (req.margin_mode or MarginMode(settings.trading.margin_mode)) if kind is Kind.MARGIN else None
    from portfolio_cli.services.risk import correlated_assets  # daily-return statistics: opening only

    risk = settings.risk
    held_assets = {base_of(s) for s in history.open_symbols_at(at)}
    group = correlated_assets(session, base_of(symbol), held_assets, risk.correlation_days, risk.correlation_threshold)
    new = exposure(symbol, qty, fill, fill_usdt, margin, req.stop_loss)
    trade = Trade(
        id=0,
        symbol=symbol,
        side=side,
        kind=kind,
        margin_mode=margin_mode,
        leverage=req.leverage,
        qty=qty,
        price=fill,
        price_usdt=fill_usdt,
        fee=fee,
        opened_at=at,
        stop_loss=req.stop_loss,
        take_profit=req.take_profit,
        strategy=req.strategy,
        note=req.note,
        trailing_pct=req.trailing_pct,
    )
    after = history.plus(trades=[trade], flows=open_entry(trade).flows)
    later = later_conflicts(session, history, after, at, brackets) if backdated else None

    def judge() -> tuple[Valuation, list[Verdict]]:
        """The portfolio before the trade (at its moment, backdated) and every rule's verdict on it."""
        if backdated:
            lots, flows = history.at(at)
            lots = [lot for lot in lots if lot.is_open]
            valuation = value_portfolio(flows, lots, marks, brackets, reserved=history.reserved_at(at))
        else:
            lots = lots_of(session, portfolio)
            # a held symbol Binance does not list and nothing cached prices is left out (named, exit 13)
            lots = [
                lot
                for lot in lots
                if not lot.is_open or {lot.trade.symbol, perpetual_of(lot.trade.symbol)} & set(marks)
            ]
            valuation = valuation_of(session, portfolio, marks, lots=lots, live=False)
        check = TradeCheck(
            new=new,
            spot=kind is Kind.SPOT,
            notional=q8(qty * fill_usdt),
            fee=fee,
            leverage=req.leverage,
            equity=valuation.equity,
            free_margin=valuation.free_margin,
            margin_equity=valuation.margin_equity,
            margin_used=valuation.margin_used,
            positions=tuple(lot_exposure(lot) for lot in lots if lot.is_open),
            correlated_assets=group,
        )
        return valuation, judge_open(check, risk.limits())

    if dry_run:
        if later is not None:
            raise RuleRefused(f"refused: a trade opened at {at:%Y-%m-%d %H:%M} UTC breaks a later record: {later}")
        before, verdicts = judge()
        marks_after = dict(marks if backdated else today)
        for key in (symbol, market):
            marks_after.setdefault(key, Mark(key, fill, fill_usdt, at, "fill"))
        lots_after, flows_after = after.at(at)
        open_after = [lot for lot in lots_after if lot.is_open]
        reserved_after = after.reserved_at(at)
        valuation_after = value_portfolio(flows_after, open_after, marks_after, brackets, reserved=reserved_after)
        new_id = max(t.id for t in after.trades)
        session.discard_fetched()  # a dry run leaves the ledger byte for byte as it was: nothing is cached
        return _what_if(
            name, trade, new_id, market, q8(qty * fill_usdt), margin, rounded_from, fill_note, moved_pct,
            before, valuation_after, brackets, tuple(verdicts), req.force, off_market,
            rules.price_step if rules is not None else None,
        )  # fmt: skip

    with ledger.transaction(session.command, session.clock()):
        if backdated and ledger.records_version(portfolio) != version:
            raise RuleRefused("the portfolio changed while the trade was priced; run the command again")
        if later is not None:
            raise RuleRefused(f"refused: a trade opened at {at:%Y-%m-%d %H:%M} UTC breaks a later record: {later}")
        _, verdicts = judge()
        refusals = [v.refusal for v in verdicts if v.refusal is not None]
        refuse_unless_forced(refusals, req.force)
        trade = replace(trade, forced=bool(refusals))
        entry = replace(open_entry(trade, [str(r) for r in refusals]), off_market=off_market)
        booked = ledger.book(portfolio, booking([entry]))
        (trade_id,) = booked.ids
    rebuild_stale(session, name, booked.stale_days)
    liquidation = _liquidation_price(session, portfolio, trade_id, today) if kind is Kind.MARGIN else None
    return Fill(
        trade_id,
        name,
        symbol,
        side,
        kind,
        margin_mode,
        req.leverage,
        qty,
        fill,
        fill_usdt,
        q8(qty * fill_usdt),
        fee,
        margin,
        at,
        rounded_from,
        tuple(r.rule for r in refusals),
        liquidation,
        rules.price_step if rules is not None else None,
        market,
        fill_note,
        moved_pct,
    )


def band_reference(
    session: Session, symbol: str, market: str, at: datetime | None
) -> tuple[Decimal, str] | None:
    """What a ``--price`` is held against: the market's price now (a pair's last price, a perpetual's
    mark), or the pair's 1-minute candle at a backdated moment; None (warned) when it cannot be had."""
    book = session.prices
    try:
        if at is None:
            mark = book.market_mark(market)
            if mark is not None:
                return mark.price, "the mark" if market != spot_of(market) else "the last price"
        else:
            quote = book.price_at(symbol, at)
            return quote.price, f"the price at {at:%Y-%m-%d %H:%M} UTC"
    except PriceUnavailable:
        pass
    return None


def check_band(
    session: Session,
    price: Decimal,
    reference: tuple[Decimal, str] | None,
    rules: MarketRules | None,
    buy: bool,
    market: str,
    off_market: bool,
) -> str | None:
    """Refuse a ``--price`` outside Binance's PERCENT_PRICE band unless ``--off-market``; then the
    refusal is returned, for the audit log."""
    band = rules.price_band if rules is not None else None
    if band is None:
        return None
    if reference is None:
        session.warn(f"no market price for {market}: --price not checked against Binance's price band")
        return None
    refusal = price_band_refusal(price, reference[0], band, buy, market, reference[1])
    if refusal is None:
        return None
    if not off_market:
        raise RuleRefused(str(refusal))
    session.warn(f"{refusal}: taken with --off-market (recorded)")
    return str(refusal)


def require_fresh(session: Session, market: str, mark: Mark) -> None:
    """A market order fills only at a fresh quote: one older than ``prices.max_fill_age_seconds`` (a
    cached quote when Binance cannot be reached) is never filled against (exit 5)."""
    age = session.prices.quote_age(market, mark)
    limit = session.settings.prices.max_fill_age_seconds
    if age is not None and age.total_seconds() > limit:
        raise PriceUnavailable(
            f"no fresh price for {market}: the last quote is {_age(age)} old (from {mark.at:%Y-%m-%d %H:%M:%S} UTC), "
            f"older than prices.max_fill_age_seconds = {limit}; a market order never fills at a stale quote "
            "(retry when Binance answers, or record a fill with --price)"
        )


def _age(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def refuse_unless_forced(refusals: list[Refusal], force: bool) -> None:
    """Refuse a trade that breaks a rule: a solvency rule always, a risk rule (a preference) unless
    ``--force`` overrides it."""
    binding = [r for r in refusals if r.solvency]
    if binding:
        shown = binding if force else refusals
        raise RuleRefused("; ".join(str(r) for r in shown) + "; --force cannot spend money the account does not have")
    if refusals and not force:
        raise RuleRefused("; ".join(str(r) for r in refusals) + "; --force overrides")


def _liquidation_price(session: Session, portfolio, trade_id: int, marks: dict) -> Decimal | None:
    """The new position's liquidation price, as the margin report gives it, at the marks just used."""
    from portfolio_cli.engine.margin import assess_margin

    valuation = valuation_of(session, portfolio, marks, live=False)
    margin = assess_margin(valuation, brackets_of(session.settings.for_portfolio(portfolio.name)))
    return next((p.liquidation_price for p in margin.positions if p.trade_id == trade_id), None)


def market_fill(
    session: Session, settings, market: str, qty: Decimal, buy: bool, reference: Decimal
) -> tuple[Decimal, str, Decimal | None]:
    """A market order's fill: Binance's book walked for its VWAP (one depth request), capped at
    ``trading.book_cap_pct`` from the reference; when the book cannot be had, the last price moved
    against the trader by ``trading.slippage_bps``, saying so."""
    trading = settings.trading
    book = session.prices
    if trading.fills == "book" and not book.overridden(market):  # an overridden price is the market
        order_book, why = book.order_book(market)
        if order_book is not None:
            walked = walk_book(order_book.asks if buy else order_book.bids, qty, reference, buy, trading.book_cap_pct)
            if isinstance(walked, BookTooThin):
                raise RuleRefused(f"refused by the order book: {qty.normalize():f} {market}: {walked}")
            what = "mark" if market != spot_of(market) else "last price"
            note = (
                f"order book, {walked.levels} level(s), {walked.moved_pct.normalize():f} % from the {what} {reference}"
            )
            return walked.price, note, walked.moved_pct
        last = book.perpetual_last(market) if market != spot_of(market) else None
        reference = last.price if last is not None else reference
        session.warn(
            f"order book for {market} unavailable ({why}): filled at the last price {reference} "
            f"± {trading.slippage_bps.normalize():f} bps"
        )
    price = fill_price(reference, buy=buy, slippage_bps=trading.slippage_bps)
    return price, f"last price {reference} ± {trading.slippage_bps.normalize():f} bps", None


@dataclass(frozen=True)
class ClosedSlice:
    trade_id: int
    symbol: str
    side: Side
    qty: Decimal
    entry: Decimal
    exit: Decimal
    exit_usdt: Decimal
    realized_pnl: Decimal
    entry_fee: Decimal
    exit_fee: Decimal
    net_pnl: Decimal
    remaining_qty: Decimal
    close_id: int = 0  # the close's id once booked (0: a dry run)


@dataclass(frozen=True)
class CloseResult:
    portfolio: str
    at: datetime
    slices: tuple[ClosedSlice, ...]
    realized_pnl: Decimal
    fees: Decimal
    net_pnl: Decimal


def close_trades(
    session: Session,
    name: str,
    target: str,
    qty: Decimal | None = None,
    pct: Decimal | None = None,
    price: Decimal | None = None,
    at: datetime | None = None,
    note: str | None = None,
    side: Side | None = None,
    kind: Kind | None = None,
    maker: bool = False,
    off_market: bool = False,
    dry_run: bool = False,
) -> CloseResult:
    """Close a trade, or a symbol's open trades (of one side and kind) oldest first, in whole or in part.
    A backdated close takes the lots as they stood at its moment."""
    if qty is not None and pct is not None:
        raise InvalidInput("give at most one of --qty and --pct")
    if pct is not None and not ZERO < pct <= HUNDRED:
        raise InvalidInput(f"--pct must be above 0 and at most 100, got {pct}")
    for value, what in ((qty, "--qty"), (price, "--price")):
        if value is not None:
            check_places(value, what)
    check_text(note, "--note")
    ledger = session.ledger
    portfolio = ledger.portfolio(name)
    history, version = timeline_of(ledger, portfolio), ledger.records_version(portfolio)
    if at is None:
        lots = _targetlots_of(lots_of(session, portfolio), target, side, kind)
        moment = moment_or_now(session, at, max(lot.trade.opened_at for lot in lots), "the trade was opened")
    else:
        by_id = target.isascii() and target.isdigit() and len(target) <= 18
        same = (lambda t: t.id == int(target)) if by_id else (lambda t: t.symbol == parse_symbol(target))
        opened = [t.opened_at for t in history.trades if same(t)]
        if opened:
            moment = moment_or_now(session, at, min(opened), "the trade was opened")
        else:
            moment = moment_or_now(session, at, portfolio.created_at, "the portfolio was created", name)
        lots = _targetlots_of(history.at(moment)[0], target, side, kind)
    plan = _close_plan(session, name, lots, qty, pct, price, moment, at is not None, maker, off_market)
    return _close(session, portfolio, [plan], note, history, version, dry_run)


def close_all(
    session: Session, name: str, at: datetime | None = None, note: str | None = None, dry_run: bool = False
) -> CloseResult:
    """Close every open position (at ``at``: every position open then) at its market price (or
    ``--price SYMBOL=VALUE``), in one transaction."""
    check_text(note, "--note")
    ledger = session.ledger
    portfolio = ledger.portfolio(name)
    history, version = timeline_of(ledger, portfolio), ledger.records_version(portfolio)
    moment = moment_or_now(session, at, portfolio.created_at, "the portfolio was created", name)
    held = history.at(moment)[0] if at is not None else lots_of(session, portfolio)
    groups: dict[tuple, list[Lot]] = {}
    for lot in held:
        if lot.is_open:
            groups.setdefault((lot.trade.symbol, lot.trade.side, lot.trade.kind), []).append(lot)
    if not groups:
        raise NotFound(f"no open positions in {name}" + (f" at {moment:%Y-%m-%d %H:%M} UTC" if at else ""))
    if at is None:
        # one batched request for all of them: the pairs, and the margin positions' perpetuals
        session.prices.marks({perpetual_of(s) if k is Kind.MARGIN else s for s, _, k in groups})
    plans = [
        _close_plan(session, name, lots, None, None, None, moment, at is not None)
        for _, lots in sorted(groups.items())
    ]
    return _close(session, portfolio, plans, note, history, version, dry_run)


@dataclass(frozen=True)
class _ClosePlan:
    lots: list[Lot]
    wanted: Decimal | None  # None: all of it
    open_total: Decimal
    exit_price: Decimal
    exit_usdt: Decimal
    fee_rate: Decimal
    moment: datetime
    backdated: bool
    off_market: str | None = None  # a --price outside the band, taken with --off-market


def _close_plan(
    session: Session,
    name: str,
    lots: list[Lot],
    qty: Decimal | None,
    pct: Decimal | None,
    price: Decimal | None,
    moment: datetime,
    backdated: bool,
    maker: bool = False,
    take_off_market: bool = False,
) -> _ClosePlan:
    """The prices and quantity of a close, fetched before the transaction (no network inside it)."""
    settings = session.settings.for_portfolio(name)
    symbol, side, kind = lots[0].trade.symbol, lots[0].trade.side, lots[0].trade.kind
    open_total = sum((lot.open_qty for lot in lots), ZERO)
    if qty is not None and qty > open_total:
        raise InvalidInput(f"cannot close {fmt.qty(qty)} {symbol}: only {fmt.qty(open_total)} is open")

    book = session.prices
    market = perpetual_of(symbol) if kind is Kind.MARGIN else symbol
    off_market = None
    if price is not None:
        around = band_reference(session, symbol, market, moment if backdated else None)
        rules = book.futures_rules(symbol) if kind is Kind.MARGIN else book.rules(symbol)
        off_market = check_band(session, price, around, rules, side is Side.SHORT, market, take_off_market)
    if price is not None and not backdated:
        book.override(symbol, price)
    wanted = qty if qty is not None else (open_total * pct / HUNDRED if pct is not None else None)
    if price is not None:
        exit_price = price
    elif backdated:
        quote = book.price_at(symbol, moment).price
        exit_price = fill_price(quote, buy=side is Side.SHORT, slippage_bps=settings.trading.slippage_bps)
    else:
        mark = book.marks([market])[market]
        require_fresh(session, market, mark)
        reference = mark.price
        exit_price, _, _ = market_fill(
            session, settings, market, wanted if wanted is not None else open_total, side is Side.SHORT, reference
        )
    exit_usdt = q8(exit_price * book.usdt_rate_at(symbol, moment if backdated else None))

    if wanted is not None and wanted < open_total:
        rules = book.rules(symbol)
        if rules is not None and rules.amount_step:
            stepped = round_down_to_step(wanted, rules.amount_step)
            if stepped != wanted:
                session.warn(
                    f"quantity {fmt.qty(wanted)} rounded down to {fmt.qty(stepped)} "
                    f"(lot step {fmt.qty(rules.amount_step)})"
                )
            wanted = stepped
        if q8(wanted) <= 0:
            raise InvalidInput(f"the quantity to close rounds to 0 {symbol}")
    if maker and price is None:
        raise InvalidInput("--maker needs --price: a market order is always a taker")
    fee_rate = settings.fees.rate(kind is Kind.MARGIN, maker)
    return _ClosePlan(lots, wanted, open_total, exit_price, exit_usdt, fee_rate, moment, backdated, off_market)


@dataclass(frozen=True)
class CloseWhatIf(CloseResult):
    """What ``close --dry-run`` would book and the portfolio after it; nothing is written."""

    equity_before: Decimal = ZERO
    free_margin_before: Decimal = ZERO
    margin_level_before_pct: Decimal | None = None
    equity_after: Decimal = ZERO
    free_margin_after: Decimal = ZERO
    margin_level_after_pct: Decimal | None = None


def _close_what_if(
    session: Session, portfolio, history: Records, parts: list[tuple[_ClosePlan, Lot, Close]], moment: datetime
) -> CloseWhatIf:
    closes = [close for _, _, close in parts]
    after = history.plus(closes=closes, flows=[f for c in closes for f in close_entry(c).flows])
    brackets = brackets_of(session.settings.for_portfolio(portfolio.name))
    lots_before, flows_before = history.at(moment)
    if parts[0][0].backdated:
        held = history.open_symbols_at(moment)
        marks = session.prices.marks_at(held, moment) if held else {}
    else:
        marks, _ = marks_for(session, lots_before)
    before = value_portfolio(flows_before, [lot for lot in lots_before if lot.is_open], marks, brackets)
    lots_after, flows_after = after.at(moment)
    valued = value_portfolio(flows_after, [lot for lot in lots_after if lot.is_open], marks, brackets)
    result = _close_result(portfolio.name, moment, parts)
    session.discard_fetched()  # a dry run leaves the ledger byte for byte as it was: nothing is cached
    return CloseWhatIf(
        **{f.name: getattr(result, f.name) for f in fields(CloseResult)},
        equity_before=before.equity,
        free_margin_before=before.free_margin,
        margin_level_before_pct=before.margin_level_pct,
        equity_after=valued.equity,
        free_margin_after=valued.free_margin,
        margin_level_after_pct=valued.margin_level_pct,
    )


def _close(
    session: Session,
    portfolio,
    plans: list[_ClosePlan],
    note: str | None,
    history,
    version,
    dry_run: bool = False,
) -> CloseResult:
    """Book ``plans`` in one transaction. A backdated close is refused if it breaks a later record; a
    close now, if the position changed since it was planned."""
    ledger = session.ledger
    moment = max(plan.moment for plan in plans)
    backdated = plans[0].backdated

    def parts_of(plan: _ClosePlan, lots: list[Lot]) -> list[tuple[_ClosePlan, Lot, Close]]:
        closes = close_lots(lots, plan.wanted, plan.exit_price, plan.exit_usdt, plan.fee_rate, plan.moment, note)
        return [(plan, lot, close) for lot, close in closes]

    later = None
    if backdated:
        parts = [part for plan in plans for part in parts_of(plan, plan.lots)]
        closes = [close for _, _, close in parts]
        conflicts = (close_conflict(history, c.trade_id, c.qty, c.closed_at) for c in closes)
        after = history.plus(closes=closes, flows=[f for c in closes for f in close_entry(c).flows])
        brackets = brackets_of(session.settings.for_portfolio(portfolio.name))
        later = next((c for c in conflicts if c), None) or later_conflicts(session, history, after, moment, brackets)

    if dry_run:
        if later is not None:
            raise RuleRefused(f"refused: a close at {moment:%Y-%m-%d %H:%M} UTC breaks a later record: {later}")
        if not backdated:
            parts = [part for plan in plans for part in parts_of(plan, plan.lots)]
        return _close_what_if(session, portfolio, history, parts, moment)

    with ledger.transaction(session.command, session.clock()):
        if backdated:
            if ledger.records_version(portfolio) != version:
                raise RuleRefused("the portfolio changed while the close was priced; run the command again")
            if later is not None:
                raise RuleRefused(f"refused: a close at {moment:%Y-%m-%d %H:%M} UTC breaks a later record: {later}")
        else:
            fresh = {lot.trade.id: lot for lot in lots_of(session, portfolio)}
            parts = []
            for plan in plans:
                current = [fresh[lot.trade.id] for lot in plan.lots if fresh[lot.trade.id].is_open]
                if sum((lot.open_qty for lot in current), ZERO) != plan.open_total:
                    raise RuleRefused("the position changed while closing; run the command again")
                parts += parts_of(plan, current)
        entries = (replace(close_entry(close), off_market=plan.off_market) for plan, _, close in parts)
        booked = ledger.book(portfolio, booking(entries))
    rebuild_stale(session, portfolio.name, booked.stale_days)
    return _close_result(portfolio.name, moment, parts, booked.ids)


def _close_result(
    name: str, moment: datetime, parts: list[tuple[_ClosePlan, Lot, Close]], ids: tuple[int, ...] = ()
) -> CloseResult:
    slices = []
    for n, (plan, lot, close) in enumerate(parts):
        entry_fee = lot.entry_fee_share(close.qty, lot.trade.qty - lot.open_qty)
        slices.append(
            ClosedSlice(
                lot.trade.id,
                lot.trade.symbol,
                lot.trade.side,
                close.qty,
                lot.trade.price,
                plan.exit_price,
                plan.exit_usdt,
                close.realized_pnl,
                entry_fee,
                close.fee,
                close.realized_pnl - entry_fee - close.fee,
                lot.open_qty - close.qty,
                ids[n] if n < len(ids) else 0,
            )
        )
    return CloseResult(
        name,
        moment,
        tuple(slices),
        sum((s.realized_pnl for s in slices), ZERO),
        sum((s.entry_fee + s.exit_fee for s in slices), ZERO),
        sum((s.net_pnl for s in slices), ZERO),
    )


def _targetlots_of(lots: list[Lot], target: str, side: Side | None = None, kind: Kind | None = None) -> list[Lot]:
    if target.isascii() and target.isdigit() and len(target) <= 18:  # a trade id: ASCII digits only
        trade_id = int(target)
        match = [lot for lot in lots if lot.trade.id == trade_id]
        if not match:
            raise NotFound(f"no trade {trade_id} in this portfolio")
        if not match[0].is_open:
            raise NotFound(f"trade {trade_id} is already closed")
        return match
    symbol = parse_symbol(target)
    match = [lot for lot in lots if lot.trade.symbol == symbol and lot.is_open]
    if not match:
        raise NotFound(f"no open trade in {symbol}")
    match = [lot for lot in match if side in (None, lot.trade.side) and kind in (None, lot.trade.kind)]
    if not match:
        wanted = " ".join(str(x) for x in (side, kind) if x is not None)
        raise NotFound(f"no open {wanted} trade in {symbol}")
    if len({lot.trade.side for lot in match}) > 1 or len({lot.trade.kind for lot in match}) > 1:
        held = ", ".join(f"{lot.trade.id} ({lot.trade.side} {lot.trade.kind})" for lot in match)
        raise InvalidInput(
            f"{symbol} has open trades of different sides or kinds ({held}): "
            "choose with --side long|short and --spot/--margin, or close by trade id"
        )
    return match


@dataclass(frozen=True)
class TradeRow:
    id: int
    symbol: str
    side: Side
    kind: Kind
    margin_mode: MarginMode | None
    leverage: int
    status: str  # open, partial, closed
    qty: Decimal
    open_qty: Decimal
    entry: Decimal
    exit: Decimal | None  # quantity-weighted over the closes
    opened_at: datetime
    closed_at: datetime | None
    realized_pnl: Decimal
    fees: Decimal  # trading fees plus liquidation fees
    net_pnl: Decimal  # realized PnL − fees (DESIGN §3); funding is shown on its own
    stop_loss: Decimal | None
    take_profit: Decimal | None
    strategy: str | None
    note: str | None
    trading_fees: Decimal = ZERO  # every trading fee: the whole entry fee and the exit fees
    liquidation_fees: Decimal = ZERO
    funding: Decimal = ZERO  # received (+) or paid (−)
    closed_by: str | None = None  # why the last close happened: manual, stop_loss, liquidation, ...
    # net_pnl = realized_pnl − closed_fees − liquidation_fees, exactly; trading_fees = closed_fees + open_fee
    closed_fees: Decimal = ZERO  # trading fees of the closed part: its entry-fee share and the exit fees
    open_fee: Decimal = ZERO  # the entry-fee share of the part still open (in net PnL once it closes)


def list_trades(
    session: Session,
    name: str,
    status: str = "all",
    symbol: str | None = None,
    strategy: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[TradeRow]:
    wanted_symbol = parse_symbol(symbol) if symbol else None
    portfolio = session.ledger.portfolio(name)
    funding: dict[int, Decimal] = {}
    for flow in session.ledger.cash_flows(portfolio):
        if flow.kind is FlowKind.FUNDING and flow.trade_id is not None:
            funding[flow.trade_id] = funding.get(flow.trade_id, ZERO) + flow.amount
    rows = []
    for lot in lots_of(session, portfolio):
        t = lot.trade
        row_status = "closed" if not lot.is_open else "partial" if lot.closes else "open"
        if status == "open" and row_status == "closed" or status == "closed" and row_status != "closed":
            continue
        if wanted_symbol and t.symbol != wanted_symbol or strategy and t.strategy != strategy:
            continue
        if since and t.opened_at < since or until and t.opened_at >= until:
            continue
        closed_qty = t.qty - lot.open_qty
        exit_avg = q8(sum((c.qty * c.price for c in lot.closes), ZERO) / closed_qty) if closed_qty else None
        liquidation_fees = sum((c.fee for c in lot.closes if c.reason.forced_out), ZERO)
        closed_share = lot.entry_fee_share(closed_qty, ZERO) if closed_qty else ZERO
        rows.append(
            TradeRow(
                t.id,
                t.symbol,
                t.side,
                t.kind,
                lot.margin_mode,
                t.leverage,
                row_status,
                t.qty,
                lot.open_qty,
                t.price,
                exit_avg,
                t.opened_at,
                lot.closes[-1].closed_at if lot.closes else None,
                lot.realized_pnl,
                lot.fees,
                lot.net_pnl(),
                t.stop_loss,
                t.take_profit,
                t.strategy,
                t.note,
                lot.fees - liquidation_fees,
                liquidation_fees,
                funding.get(t.id, ZERO),
                lot.closes[-1].reason.value if lot.closes else None,
                lot.fees - liquidation_fees - (t.fee - closed_share),
                t.fee - closed_share,
            )
        )
    return rows
