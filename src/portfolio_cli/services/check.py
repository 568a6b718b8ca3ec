"""``portfolio check``: book what happened since the last check, as it would have happened.

For each portfolio: candles since the last check (1-minute when that is under 1,000 minutes ago,
else hourly) are fetched first, outside the ledger's lock: last-price candles for stops and
take-profits (Binance's default trigger), mark-price candles of the perpetual for a margin
position's liquidation, and each perpetual's funding settlements as Binance reports them (1 h, 4 h
or 8 h, whatever its interval was at the time). Then, in one transaction, they are replayed in time
order: funding is paid at the settlement's mark × rate, stops, take-profits and isolated
liquidations are booked at the time and price the candle shows (engine/triggers.py), and the cross
account is tested at each candle's worst marks (Binance's liquidation, then the account rule's
margin call). The current prices close the replay. A portfolio that cannot be checked (a symbol with
no price anywhere) is named and skipped, the others are checked (exit 13). Funding is booked once per trade and moment (the ledger enforces it), so running ``check``
again books nothing twice. When candles are missing, the check is recorded as reaching only the
first missing one, so the next check replays from there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from portfolio_cli import formatting as fmt
from portfolio_cli.engine.accounting import Lot, fee_for, realized_pnl
from portfolio_cli.engine.booking import CheckMark, Entry, booking, close_entry, funding_entry, open_entry
from portfolio_cli.engine.margin import (
    MarginState,
    cross_clearance_fees,
    cross_liquidated,
    funding_payment,
    funding_times,
    isolated_liquidation_price,
    liquidation_settlement,
    margin_state,
    most_losing_cross,
)
from portfolio_cli.engine.records import (
    Candle,
    CashFlow,
    Close,
    CloseReason,
    FlowKind,
    Kind,
    MarginMode,
    Order,
    OrderEnd,
    OrderStatus,
    Portfolio,
    Side,
    Trade,
)
from portfolio_cli.engine.symbols import conversion_pair, perpetual_of, symbols_to_price
from portfolio_cli.engine.orders import OrderFill, candle_fill, reservation, reserved_at
from portfolio_cli.engine.rules import TradeCheck, check_open, exposure, lot_exposure
from portfolio_cli.engine.stops import Stops, best_since, follow, stop_trigger, stops_at
from portfolio_cli.engine.triggers import Trigger, adverse_price, first_trigger
from portfolio_cli.engine.valuation import Mark, mark_of, value_portfolio
from portfolio_cli.errors import ExitCode, NotFound, PriceUnavailable
from portfolio_cli.money import ONE, ZERO, q8
from portfolio_cli.prices import TIMEFRAMES, FundingRate, floor_time
from portfolio_cli.services.common import brackets_of, lots_of
from portfolio_cli.services.snapshots import rebuild_stale
from portfolio_cli.session import Session

MINUTE_CANDLES_UP_TO = timedelta(minutes=1000)  # one request per symbol


CLOSE_EVENTS = {r.value for r in CloseReason if r is not CloseReason.MANUAL}


@dataclass(frozen=True)
class CheckEvent:
    portfolio: str
    at: datetime
    kind: str  # stop_loss, take_profit, trailing_stop, liquidation, margin_call, funding, order_filled,
    # order_cancelled (expired, or refused at the fill), warning, alert, critical, gap
    message: str
    trade_id: int | None = None
    symbol: str | None = None
    price: Decimal | None = None
    amount: Decimal | None = None  # net PnL of a close, or a funding payment


@dataclass(frozen=True)
class PortfolioCheck:
    portfolio: str
    since: datetime
    through: datetime
    timeframe: str | None
    margin_level_pct: Decimal | None
    state: MarginState
    events: tuple[CheckEvent, ...]


@dataclass(frozen=True)
class CheckResult:
    checked_at: datetime
    outcome: ExitCode  # check's exit code: the most serious thing that happened
    portfolios: tuple[PortfolioCheck, ...]


def run_check(
    session: Session, names: list[str] | None = None, progress: Callable[[str, int, int], None] | None = None
) -> CheckResult:
    """Replay every portfolio's candles and funding since its last check. ``progress`` is told
    (what, done, total) as each symbol's candles come in (a bar on a terminal)."""
    ledger = session.ledger
    portfolios = [ledger.portfolio(n) for n in names] if names else ledger.portfolios()
    now = session.clock()
    checks = []
    for portfolio in portfolios:
        try:
            checks.append(_check(session, portfolio, now, progress))
        except (NotFound, PriceUnavailable) as exc:  # this portfolio alone: the others are still checked
            message = f"portfolio {portfolio.name} was not checked: {exc}"
            session.left_out(message)
            event = CheckEvent(portfolio.name, now, "incomplete", message)
            checks.append(PortfolioCheck(portfolio.name, now, now, None, None, MarginState.NONE, (event,)))
    return CheckResult(now, _outcome(tuple(checks)), tuple(checks))


def _outcome(checks: tuple[PortfolioCheck, ...]) -> ExitCode:
    kinds = {e.kind for c in checks for e in c.events}
    states = {c.state for c in checks}
    if "gap" in kinds:
        return ExitCode.INCOMPLETE  # committed, but a window was checked at the current price only (wins, for cron)
    if kinds & CLOSE_EVENTS:
        return ExitCode.POSITION_CLOSED
    if states & {MarginState.ALERT, MarginState.CRITICAL}:
        return ExitCode.MARGIN_ALERT
    if MarginState.WARNING in states:
        return ExitCode.MARGIN_WARNING
    return ExitCode.OK


@dataclass
class _Market:
    """What was fetched for one portfolio before taking the ledger's lock."""

    timeframe: str
    candles: dict[tuple[str, datetime], Candle]
    marks: dict[str, Mark]
    # Binance's funding settlements by symbol; symbols in ``fallback`` pay the configured rate every 8 h.
    rates: dict[str, dict[datetime, FundingRate]]
    fallback: set[str] = field(default_factory=set)
    incomplete: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    first_gap: datetime | None = None  # the next check starts here, so a missed candle is replayed
    clearance: dict[str, Decimal] = field(default_factory=dict)  # each perpetual's liquidationFee
    # A trailing stop set before the window: its best price up to the window, keyed (trade, set at).
    trailed: dict[tuple[int, datetime], Decimal] = field(default_factory=dict)
    seen: set[int] = field(default_factory=set)  # the open trades the prices were fetched for


def _check(
    session: Session, portfolio: Portfolio, now: datetime, progress: Callable[[str, int, int], None] | None = None
) -> PortfolioCheck:
    ledger = session.ledger
    lots = lots_of(session, portfolio)
    last = ledger.last_check(portfolio)
    live = [lot for lot in lots if lot.is_open]
    ends = {e.order_id for e in ledger.order_ends(portfolio)}
    pending = [o for o in ledger.orders(portfolio) if o.id not in ends]
    starts = [lot.trade.opened_at for lot in live] + [o.placed_at for o in pending]
    since = last if last is not None else min(starts, default=now)
    # Margin lots closed since the last check may still owe funding for a moment before their close.
    funded = [lot for lot in lots if lot.trade.kind is Kind.MARGIN and (lot.is_open or _closed_at(lot) > since)]
    market = _fetch(session, live, funded, since, now, progress, pending)
    market.trailed = _trailed_before(session, live, ledger.amendments(portfolio), since)
    market.seen = {lot.trade.id for lot in live}
    replay = _Replay(session, portfolio, market, now)
    with ledger.transaction(session.command, now):
        replay.run(since)
        # a trade opened meanwhile by another command is replayed by the next check, from its open
        unseen = [lot.trade.opened_at for lot in replay.lots if lot.trade.id in replay.unseen]
        through = min([now, market.first_gap or now, *unseen])
        current = ledger.last_check(portfolio)
        if current is not None and current != last and current < through:
            through = current  # a backdated record rewound it meanwhile: the next check replays from there
        ledger.book(portfolio, booking([Entry(CheckMark(through, len(replay.events)))]))
    rebuild_stale(session, portfolio.name, tuple(sorted(replay.stale)))
    return PortfolioCheck(
        portfolio.name,
        since,
        now,
        market.timeframe if live or pending else None,
        replay.level,
        margin_state(replay.level, replay.rules),
        tuple(replay.events),
    )


def first_of(side: Side, stop: Trigger | None, liquidation: Trigger | None) -> Trigger | None:
    """The trigger that acts first when a stop (on last price) and a liquidation (on the mark) both
    fire in one candle: one the market gapped through first (liquidation before a stop), else the
    nearer level from the open — and a liquidation before a take-profit (the cautious reading)."""
    if stop is None or liquidation is None:
        return stop or liquidation
    if liquidation.gapped or stop.reason is CloseReason.TAKE_PROFIT:
        return liquidation
    if stop.gapped:
        return stop
    stop_first = stop.price >= liquidation.price if side is Side.LONG else stop.price <= liquidation.price
    return stop if stop_first else liquidation


def _closed_at(lot: Lot) -> datetime:
    return max(c.closed_at for c in lot.closes) if lot.closes else lot.trade.opened_at


def _trailed_before(session: Session, live: list[Lot], amendments: list, since: datetime) -> dict:
    """The best price each trailing stop set before ``since`` reached until then, from the candles
    since it was set (the ledger's cache first): the replay goes on from there."""
    trailed = {}
    for lot in live:
        t = lot.trade
        stops = stops_at(t, amendments, since)
        trail_from, reference = stops.trail_from, stops.reference
        if stops.trailing_pct is None or trail_from is None or reference is None or trail_from >= since:
            continue
        timeframe = "1m" if since - trail_from <= MINUTE_CANDLES_UP_TO else "1h"
        series = session.prices.candles(t.symbol, timeframe, trail_from, since)
        trailed[(t.id, trail_from)] = best_since(t.side, reference, series.candles, trail_from)
    return trailed


def _fetch(
    session: Session,
    live: list[Lot],
    funded: list[Lot],
    since: datetime,
    now: datetime,
    progress: Callable[[str, int, int], None] | None = None,
    pending: Sequence[Order] = (),
) -> _Market:
    book = session.prices
    timeframe = "1m" if now - since <= MINUTE_CANDLES_UP_TO else "1h"
    symbols = {lot.trade.symbol for lot in live} | {o.symbol for o in pending}
    margin = {lot.trade.symbol for lot in live if lot.trade.kind is Kind.MARGIN}
    margin |= {o.symbol for o in pending if o.kind is Kind.MARGIN}
    perpetuals = {perpetual_of(s) for s in margin}
    marks = book.marks(symbols | perpetuals) if symbols else {}
    candles: dict[tuple[str, datetime], Candle] = {}
    gaps, first_gap, incomplete = [], None, []
    clearance: dict[str, Decimal] = {}
    for symbol in sorted(margin):
        try:
            rules = book.futures_rules(symbol)  # the futures exchangeInfo, cached: is there a perpetual?
        except NotFound as exc:
            incomplete.append(f"{exc}; it is checked at {symbol}'s last price")
            continue
        if rules is not None and rules.liquidation_fee is not None:
            clearance[symbol] = rules.liquidation_fee
    replayed = [*symbols_to_price(symbols), *sorted(perpetuals)]
    for done, symbol in enumerate(replayed):
        if progress:
            progress(f"{timeframe} candles {symbol}", done, len(replayed))
        try:
            series = book.candles(symbol, timeframe, floor_time(since, timeframe), now)
        except NotFound:
            incomplete.append(
                f"{symbol} is not on Binance's futures side: its liquidation was checked on last-price candles"
            )
            continue
        candles.update({(symbol, c.open_time): c for c in series.candles})
        if series.gaps:
            first_gap = min(first_gap or series.gaps[0], series.gaps[0])
            why = f": {series.failure}" if series.failure else " (offline)" if book.offline else ""
            gaps.append(
                f"no {timeframe} candles for {symbol} from {fmt.moment(series.gaps[0])} to "
                f"{fmt.moment(series.gaps[-1])}{why}; those minutes were checked at the current price only"
            )
    rates: dict[str, dict[datetime, FundingRate]] = {}
    fallback: set[str] = set()
    if funding_times(since, now, TIMEFRAMES["1h"]):  # a settlement can fall on any whole hour
        for symbol in sorted({lot.trade.symbol for lot in funded} | {o.symbol for o in pending if o.kind is Kind.MARGIN}):
            try:
                fetched = book.funding_rates(symbol, since, now)
            except NotFound:
                incomplete.append(f"{symbol} has no USDⓈ-M perpetual on Binance: no funding was booked for it")
                continue
            if fetched is None:
                fallback.add(symbol)
            else:
                rates[symbol] = {t: r for t, r in fetched.items() if since < t <= now}
    for message in incomplete:
        session.left_out(message)
    return _Market(timeframe, candles, marks, rates, fallback, incomplete, gaps, first_gap, clearance)


class _Replay:
    """Replays candles and funding moments over the ledger, inside the caller's transaction."""

    def __init__(self, session: Session, portfolio: Portfolio, market: _Market, now: datetime):
        self.session = session
        self.ledger = session.ledger
        self.portfolio = portfolio
        self.market = market
        self.now = now
        self.settings = session.settings.for_portfolio(portfolio.name)
        self.brackets = brackets_of(self.settings)
        self.rules = self.settings.margin_rules.rules()
        self.events: list[CheckEvent] = []
        self.level: Decimal | None = None
        self.stale: set[date] = set()  # days whose snapshots a replayed record made stale
        self.ticks = session.prices.ticks()  # prices in messages are shown to the market's tick
        self.best: dict[tuple[int, datetime], Decimal] = dict(market.trailed)  # each trailing stop's best price
        self.unseen: set[int] = set()

    def _reload(self) -> None:
        self.lots = lots_of(self.session, self.portfolio)
        self.amendments = self.ledger.amendments(self.portfolio)
        self.orders = self.ledger.orders(self.portfolio)
        self.order_ends = {e.order_id: e for e in self.ledger.order_ends(self.portfolio)}
        # trades filled from orders: their fill candle's path after the fill is unknown, so their levels
        # act from the next candle (whichever replay reaches that candle)
        self.from_orders = {e.trade_id for e in self.order_ends.values() if e.trade_id is not None}
        self.flows: list[CashFlow] = self.ledger.cash_flows(self.portfolio)
        self.funded = {(f.trade_id, f.at) for f in self.flows if f.kind is FlowKind.FUNDING}

    def _read_new_flows(self) -> None:
        """Funding changes only cash: read the flows booked since, not the whole ledger again (a
        replay over a thousand settlements would otherwise read the ledger a thousand times)."""
        new = self.ledger.cash_flows(self.portfolio, after_id=self.flows[-1].id if self.flows else 0)
        self.flows.extend(new)
        self.funded.update((f.trade_id, f.at) for f in new if f.kind is FlowKind.FUNDING)

    def _book_entry(self, entry: Entry) -> None:
        self.stale.update(self.ledger.book(self.portfolio, booking([entry])).stale_days)

    def _event(self, at: datetime, kind: str, message: str, **details) -> None:
        self.events.append(CheckEvent(self.portfolio.name, at, kind, message, **details))

    def run(self, since: datetime) -> None:
        """Inside the transaction: the state is read again, so a concurrent command is not lost."""
        self._reload()
        # Booked by another command after the prices were fetched: no candles or fresh quote of its own
        # were had for it, so this check leaves its stops to the next, which replays from its open.
        self.unseen = {lot.trade.id for lot in self.lots if lot.is_open and lot.trade.id not in self.market.seen}
        opened = {lot.trade.symbol for lot in self.lots if lot.is_open} - set(self.market.marks)
        if opened:  # opened by another command since the prices were fetched: its cached quote, if any
            perpetuals = {perpetual_of(lot.trade.symbol) for lot in self.lots
                          if lot.is_open and lot.trade.symbol in opened and lot.trade.kind is Kind.MARGIN}
            found, _, _ = self.session.prices.marks_found(opened | perpetuals, live=False)
            self.market.marks.update(found)
        for gap in self.market.gaps:
            self._event(self.now, "gap", gap)
        for message in self.market.incomplete:
            self._event(self.now, "incomplete", message)
        self.fallback_moments = set(funding_times(since, self.now)) if self.market.fallback else set()
        moments = {t for rates in self.market.rates.values() for t in rates} | self.fallback_moments
        times = sorted({t for (_, t) in self.market.candles} | moments)
        for t in times:
            if t in moments:
                self._fund(t)
            self._fill_orders(t)
            self._candle_triggers(t)
            if self._holds_cross():  # the marks of every position cost more than the rest of the minute
                self._margin_calls(t, self._marks_at(t))
        self._final()

    # funding

    def _fund(self, moment: datetime) -> None:
        """Every margin lot open at ``moment`` whose symbol settles funding then: Binance's rate at the
        settlement's mark price (else the mark-price candle's open, else the current mark), or the
        configured rate every 8 hours when Binance's settlements could not be had."""
        wrote = False
        for lot in self.lots:
            t = lot.trade
            qty = lot.open_qty_at(moment)
            if t.kind is not Kind.MARGIN or qty <= 0 or t.opened_at >= moment or (t.id, moment) in self.funded:
                continue
            if t.symbol in self.market.rates:
                fetched = self.market.rates[t.symbol].get(moment)
                if fetched is None:
                    continue  # not one of this symbol's settlements
                rate, source = fetched.rate, "Binance"
            elif t.symbol in self.market.fallback and moment in self.fallback_moments:
                fetched, rate, source = None, self.settings.trading.funding_rate, "configured"
            else:
                continue
            candle = self.market.candles.get((perpetual_of(t.symbol), moment))
            if fetched and fetched.mark_price:
                mark = fetched.mark_price
            elif candle is not None:
                mark = candle.open
            else:
                current = self.market.marks.get(perpetual_of(t.symbol)) or self.market.marks.get(t.symbol)
                mark = current.price if current is not None else t.price
            amount = funding_payment(t.side, qty, mark, rate)
            note = f"funding rate {fmt.exact(rate)} ({source}) at mark {fmt.price(mark, self.ticks.get(t.symbol))}"
            self._book_entry(funding_entry(t.id, amount, moment, note))
            verb = "received" if amount >= 0 else "paid"
            self._event(
                moment,
                "funding",
                f"trade {t.id} {t.symbol} {verb} {fmt.exact(abs(amount))} USDT funding "
                f"(rate {fmt.exact(rate)}, {source})",
                trade_id=t.id,
                symbol=t.symbol,
                price=mark,
                amount=amount,
            )
            wrote = True
        if wrote:
            self._read_new_flows()

    # pending orders

    def _expire(self, moment: datetime) -> None:
        for order in self.orders:
            if order.id in self.order_ends or order.expires_at is None or order.expires_at > moment:
                continue
            self._end_order(order, order.expires_at, OrderStatus.EXPIRED, None, "expired")
            self._event(
                order.expires_at, "order_cancelled", f"order {order.id} {order.side} {order.symbol} expired",
                symbol=order.symbol, price=order.price,
            )  # fmt: skip

    def _end_order(self, order: Order, at: datetime, status: OrderStatus, trade_id: int | None, reason: str) -> None:
        end = OrderEnd(0, order.id, at, status, trade_id, reason)
        self._book_entry(Entry(end))
        self.order_ends[order.id] = end

    def _fill_orders(self, moment: datetime) -> None:
        """The open orders this candle fills (engine/orders.py), each checked by the risk rules at the
        fill: a refused one is cancelled with the reason; an expired one is cancelled first."""
        self._expire(moment)
        for order in self.orders:
            if order.id in self.order_ends or moment < order.placed_at:
                continue  # ended, or placed during this candle or later: from the next whole candle
            candle = self.market.candles.get((order.symbol, moment))
            if candle is None:
                continue
            fill = candle_fill(order, candle.open, candle.high, candle.low)
            if fill is not None:
                self._fill(order, fill, moment)

    def _fill(self, order: Order, fill: OrderFill, moment: datetime) -> None:
        price_usdt = q8(fill.price * self._rate_at(order.symbol, moment))
        margin = order.kind is Kind.MARGIN
        fee = fee_for(order.qty, price_usdt, self.settings.fees.rate(margin, fill.maker))
        trade = Trade(
            0, order.symbol, order.side, order.kind, order.margin_mode, order.leverage, order.qty, fill.price,
            price_usdt, fee, moment, order.stop_loss, order.take_profit, order.strategy,
            order.note, trailing_pct=order.trailing_pct,
        )  # fmt: skip
        refusals = self._refusals(order, trade)
        how = "gapped through, filled at the open" if fill.gapped else "reached"
        kind = order.order_type.value.replace("_", "-")
        if refusals:
            reason = "refused at the fill: " + "; ".join(refusals)
            self._end_order(order, moment, OrderStatus.CANCELLED, None, reason)
            self._event(
                moment, "order_cancelled", f"{kind} order {order.id} {order.side} {order.symbol} {how} at "
                f"{fmt.price(fill.price)}, cancelled: {reason}", symbol=order.symbol, price=fill.price,
            )  # fmt: skip
            return
        (trade_id,) = self.ledger.book(self.portfolio, booking([open_entry(trade)])).ids
        self._end_order(order, moment, OrderStatus.FILLED, trade_id, f"{kind} {how} at {fill.price}")
        self._event(
            moment, "order_filled", f"{kind} order {order.id} {order.side} {order.symbol} {how}: filled "
            f"{order.qty.normalize():f} at {fmt.price(fill.price)} as trade {trade_id} "
            f"({'maker' if fill.maker else 'taker'} fee {fmt.money(fee)} USDT)",
            trade_id=trade_id, symbol=order.symbol, price=fill.price,
        )  # fmt: skip
        self._reload()

    def _refusals(self, order: Order, trade: Trade) -> list[str]:
        """The risk rules at the fill, against the portfolio then: the order's own reservation is released."""
        marks = self._marks_at(trade.opened_at)
        marks.setdefault(trade.symbol, Mark(trade.symbol, trade.price, trade.price_usdt, trade.opened_at, "candle"))
        open_lots = [lot for lot in self.lots if lot.is_open]
        if not {lot.trade.symbol for lot in open_lots} <= set(marks) | {perpetual_of(s) for s in marks}:
            return []
        reserved = reserved_at(self.orders, list(self.order_ends.values()), trade.opened_at) - order.reserved
        valuation = value_portfolio(self.flows, open_lots, marks, self.brackets, reserved=max(reserved, ZERO))
        committed = reservation(trade.kind, trade.qty, trade.price_usdt, trade.leverage)
        check = TradeCheck(
            new=exposure(trade.symbol, trade.qty, trade.price, trade.price_usdt, committed, trade.stop_loss),
            spot=trade.kind is Kind.SPOT,
            notional=q8(trade.qty * trade.price_usdt),
            fee=trade.fee,
            leverage=trade.leverage,
            equity=valuation.equity,
            free_margin=valuation.free_margin,
            margin_equity=valuation.margin_equity,
            margin_used=valuation.margin_used,
            positions=tuple(lot_exposure(lot) for lot in open_lots),
        )
        return [str(r) for r in check_open(check, self.settings.risk.limits())]

    # stops, take-profits, isolated liquidations

    def _candle_triggers(self, moment: datetime) -> None:
        """Stops and take-profits on the last-price candle; a margin position's liquidation on its
        perpetual's mark-price candle (the last-price one when there is none)."""
        for lot in [lot for lot in self.lots if lot.is_open]:
            t = lot.trade
            if t.id in self.from_orders and t.opened_at == moment:
                continue  # filled by an order during this candle: its levels act from the next one
            last = self._candle(t.symbol, moment, t.opened_at)
            mark = self._candle(perpetual_of(t.symbol), moment, t.opened_at) if t.kind is Kind.MARGIN else None
            mark = mark or last
            stops = stops_at(t, self.amendments, moment)
            best = self._best(t, stops)
            stop = stop_trigger(t.side, last.open, last.high, last.low, stops, best) if last else None
            liq_price = self._liquidation_price(lot)
            liq = first_trigger(t.side, mark.open, mark.high, mark.low, liquidation=liq_price) if mark else None
            trigger = first_of(t.side, stop, liq)
            if trigger is not None:
                self._close(lot, trigger, moment, self._rate_at(t.symbol, moment))
            elif best is not None and last is not None and stops.trail_from is not None:
                if last.open_time >= stops.trail_from:  # the level moves only after the candle is tested
                    self.best[(t.id, stops.trail_from)] = follow(t.side, best, last.high, last.low)

    def _best(self, trade, stops: Stops) -> Decimal | None:
        """The best price of the trailing stop in force so far (its reference when it was just set)."""
        if stops.trailing_pct is None or stops.trail_from is None or stops.reference is None:
            return None
        return self.best.setdefault((trade.id, stops.trail_from), stops.reference)

    def _candle(self, symbol: str, moment: datetime, opened_at: datetime) -> Candle | None:
        candle = self.market.candles.get((symbol, moment))
        return candle if candle is not None and candle.open_time >= opened_at else None  # whole candles only

    def _liquidation_price(self, lot: Lot) -> Decimal | None:
        t = lot.trade
        if t.kind is not Kind.MARGIN or lot.margin_mode is not MarginMode.ISOLATED:
            return None
        return isolated_liquidation_price(t.side, lot.open_qty, t.price_usdt, lot.margin, self.brackets(t.symbol))

    def _rate_at(self, symbol: str, moment: datetime | None) -> Decimal:
        pair = conversion_pair(symbol)
        if pair is None:
            return ONE
        candle = self.market.candles.get((pair, moment)) if moment else None
        return candle.open if candle else self.market.marks[symbol].price_usdt / self.market.marks[symbol].price

    def _close(self, lot: Lot, trigger: Trigger, moment: datetime, rate: Decimal) -> None:
        t = lot.trade
        qty = lot.open_qty
        price_usdt = q8(trigger.price * rate)
        if trigger.reason is CloseReason.LIQUIDATION:
            gross, fee = liquidation_settlement(t.side, qty, t.price_usdt, lot.margin, price_usdt)
        else:
            gross = realized_pnl(t.side, qty, t.price_usdt, price_usdt)
            rate_fee = self.settings.fees.rate(t.kind is Kind.MARGIN)
            fee = fee_for(qty, price_usdt, rate_fee)
        if trigger.reason is CloseReason.LIQUIDATION:  # settled at the liquidation price, even when gapped
            crossed = "the mark opened beyond it" if trigger.gapped else "the mark reached it"
            how = f"Binance isolated liquidation price {fmt.price(trigger.price)}: {crossed}"
        else:
            how = "gapped through, filled at the open" if trigger.gapped else "touched"
        self._book(lot, qty, trigger.price, price_usdt, gross, fee, moment, trigger.reason, how)

    def _book(
        self,
        lot: Lot,
        qty: Decimal,
        price: Decimal,
        price_usdt: Decimal,
        gross: Decimal,
        fee: Decimal,
        moment: datetime,
        reason: CloseReason,
        how: str,
    ) -> None:
        t = lot.trade
        entry_fee = lot.entry_fee_share(qty, t.qty - lot.open_qty)
        note = f"{reason.value.replace('_', ' ')}: {how}"
        close = Close(0, t.id, qty, price, price_usdt, fee, gross, moment, note, reason)
        self._book_entry(close_entry(close))
        net = gross - entry_fee - fee
        self._event(
            moment,
            reason.value,
            f"trade {t.id} {t.side} {t.symbol} closed by {reason.value.replace('_', ' ')} at "
            f"{fmt.price(price, self.ticks.get(t.symbol))} "
            f"({how}), net PnL {fmt.money(net)} USDT",
            trade_id=t.id,
            symbol=t.symbol,
            price=price,
            amount=net,
        )
        self._reload()

    # cross margin

    def _marks_at(self, moment: datetime) -> dict[str, Mark]:
        """Each open position at its worst price in the candle for the side held (else its mark): a
        spot position on its last-price candle, a margin position on its mark-price candle."""
        marks = dict(self.market.marks)
        for lot in self.lots:
            t = lot.trade
            key = perpetual_of(t.symbol) if t.kind is Kind.MARGIN else t.symbol
            candle = self.market.candles.get((key, moment)) or self.market.candles.get((t.symbol, moment))
            if lot.is_open and candle is not None:
                price = adverse_price(t.side, candle.high, candle.low)
                rate = self._rate_at(t.symbol, moment)
                marks[key] = Mark(key, price, q8(price * rate), moment, "candle")
        return marks

    def _holds_cross(self) -> bool:
        return any(lot.is_open and lot.margin_mode is MarginMode.CROSS for lot in self.lots)

    def _margin_calls(self, moment: datetime, marks: dict[str, Mark]) -> None:
        """Binance's cross liquidation first (the cross margin ratio has reached 100 %), then the
        account rule's margin call (margin level below its level: the most losing cross position)."""
        while self._holds_cross():
            open_symbols = {lot.trade.symbol for lot in self.lots if lot.is_open}
            if not open_symbols <= set(marks):
                return
            valuation = value_portfolio(self.flows, self.lots, marks, self.brackets)
            self.level = valuation.margin_level_pct
            if cross_liquidated(valuation):
                self._cross_liquidation(moment, valuation)
                continue
            threshold = self.rules.margin_call_pct
            if self.level is None or threshold is None or self.level >= threshold:
                return
            worst = most_losing_cross(valuation)
            if worst is None:
                return
            lot = next(lot for lot in self.lots if lot.trade.id == worst.trade_id)
            fee = fee_for(worst.qty, worst.mark_usdt, self.settings.fees.rate(True))
            gross = realized_pnl(worst.side, worst.qty, lot.trade.price_usdt, worst.mark_usdt)
            how = (
                f"margin call by rule: margin level {fmt.pct(self.level)} % below margin_rules.margin_call_pct "
                f"{fmt.pct(threshold)} %, the most losing cross position"
            )
            self._book(
                lot,
                worst.qty,
                worst.mark,
                worst.mark_usdt,
                gross,
                fee,
                moment,
                CloseReason.MARGIN_CALL,
                how,
            )

    def _cross_liquidation(self, moment: datetime, valuation) -> None:
        """Binance liquidates the cross positions at the mark, charging its clearance fee."""
        cross = [p for p in valuation.positions if p.kind is Kind.MARGIN and p.margin_mode is MarginMode.CROSS]
        fees = cross_clearance_fees(cross, valuation.cross_wallet_balance, self._clearance_rate)
        how = (
            f"Binance liquidation: cross margin ratio {valuation.cross_margin_ratio_pct or 'beyond'}% reached 100% "
            f"(maintenance {valuation.cross_maintenance_margin} ≥ margin balance {valuation.cross_margin_balance})"
        )
        for p, fee in zip(cross, fees, strict=True):
            lot = next(lot for lot in self.lots if lot.trade.id == p.trade_id)
            gross = realized_pnl(p.side, p.qty, lot.trade.price_usdt, p.mark_usdt)
            self._book(lot, p.qty, p.mark, p.mark_usdt, gross, fee, moment, CloseReason.LIQUIDATION, how)

    def _clearance_rate(self, symbol: str) -> Decimal:
        """The perpetual's liquidationFee from the futures exchangeInfo, else the configured rate."""
        return self.market.clearance.get(symbol, self.settings.trading.liquidation_fee_rate)

    def _too_old(self, lot: Lot, marks: dict[str, Mark]) -> str | None:
        """Why the current quotes may not close ``lot``: one from before the trade was opened, or older
        than ``prices.max_fill_age_seconds`` (a cached quote while Binance fails); None when they may."""
        t = lot.trade
        limit = self.settings.prices.max_fill_age_seconds
        for quote in {marks[t.symbol], mark_of(t.symbol, t.kind, marks)}:
            age = self.session.prices.quote_age(quote.symbol, quote)
            if age is None:  # fetched live by this check, or given by --price
                continue
            if quote.at < t.opened_at:
                return (
                    f"{quote.symbol}'s quote is from {quote.at:%Y-%m-%d %H:%M} UTC, before trade {t.id} was opened: "
                    "its stops are not checked at it"
                )
            if age.total_seconds() > limit:
                return (
                    f"{quote.symbol}'s quote is {int(age.total_seconds())} s old (prices.max_fill_age_seconds = "
                    f"{limit}): trade {t.id}'s stops are not checked at it"
                )
        return None

    def _final(self) -> None:
        """The current prices: the part of the market no complete candle covers yet."""
        self._expire(self.now)
        marks = self.market.marks
        for lot in [lot for lot in self.lots if lot.is_open]:
            t = lot.trade
            if t.symbol not in marks or t.id in self.unseen:
                continue  # opened by another command after this check read the ledger: the next one's
            stale = self._too_old(lot, marks)
            if stale is not None:
                self._event(self.now, "gap", stale)
                continue
            last = marks[t.symbol].price
            mark = mark_of(t.symbol, t.kind, marks).price
            stops = stops_at(t, self.amendments, self.now)
            stop = stop_trigger(t.side, last, last, last, stops, self._best(t, stops))
            liq = first_trigger(t.side, mark, mark, mark, liquidation=self._liquidation_price(lot))
            trigger = first_of(t.side, stop, liq)
            if trigger is not None:
                self._close(lot, trigger, self.now, self._rate_at(t.symbol, None))
        self._margin_calls(self.now, marks)
        unpriced = sorted({lot.trade.symbol for lot in self.lots if lot.is_open} - set(marks))
        if unpriced:
            seen = {lot.trade.symbol for lot in self.lots if lot.is_open and lot.trade.id not in self.unseen}
            if set(unpriced) & seen:
                self._event(self.now, "gap", f"no price yet for {', '.join(unpriced)}")
            self.level = None
        elif any(lot.is_open for lot in self.lots):
            valuation = value_portfolio(self.flows, self.lots, marks, self.brackets)
            self.level = valuation.margin_level_pct
        else:
            self.level = None
        state = margin_state(self.level, self.rules)
        if state in {MarginState.WARNING, MarginState.ALERT, MarginState.CRITICAL}:
            kind = {MarginState.WARNING: "warning", MarginState.ALERT: "alert"}.get(state, "critical")
            lines = {
                MarginState.WARNING: self.rules.warning_pct,
                MarginState.ALERT: self.rules.alert_pct,
                MarginState.CRITICAL: self.rules.margin_call_pct,
            }
            self._event(self.now, kind, f"margin level {fmt.pct(self.level)} %, below the {fmt.pct(lines[state])} % line")
