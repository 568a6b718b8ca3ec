"""Rebalancing against target weights: the plan of spot trades that brings every asset inside its band.

- An asset's weight is its net exposure (spot value plus margin longs less margin shorts, at the mark)
  over equity; cash (USDT) is the free margin over equity. Weights and bands are percentages.
- An asset outside ``target ± band`` is traded back to just inside its band (``target ± 0.9 · band``):
  proportional fees make the least trading the cheapest, and the 10 % margin absorbs fees, slippage
  and lot rounding. Then, if cash would end outside its own band, the excess (or the shortfall) is
  **spread**: first over the assets below (above) their targets in proportion to their gaps, so none
  passes its target while another is still short of it (the least drift a top-up can leave), then, if
  cash is left, over every asset in proportion to its room up to its inner band edge.
- ``to-target`` mode: once anything is outside its band, every targeted asset is traded to its
  target itself (not to the band edge) and cash aimed at its own target; the spread is the same.
- Wash sales (``avoid_wash_sales``): an asset whose spot lot was sold at a net loss within the last
  ``WASH_SALE_DAYS`` (30) days is not bought, so the loss is never bought back inside the window the
  US wash-sale rule (IRC §1091) looks at after a sale; the plan names the asset, the sale and the first
  day it may be bought again, and its share of a top-up goes to the others.
- Only spot is traded, through each asset's USDT pair; margin positions count in the weights but are
  never traded. In buy-only mode nothing is sold: new cash goes to the assets below their bands.
- Each quantity is rounded to the pair's amount step (sells up, buys down, so a trade never lands
  short of the band by a fraction of a step), then checked against the exchange's minimums and, for
  buys, every risk rule in order, sells first so their cash is there. A trade that fails is dropped
  and its asset listed with the reason; so is every asset still outside its band after the plan.
- Drift is ``Σ |weight − target|`` over every asset and cash; efficiency is drift after ÷ drift before
  (0 is perfect, n/a when nothing drifted).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal

from portfolio_cli.engine.accounting import Lot, fee_for, fill_price
from portfolio_cli.engine.market import MarketRules
from portfolio_cli.engine.metrics import Undefined
from portfolio_cli.engine.records import Kind
from portfolio_cli.engine.rules import Conformed, Exposure, RiskLimits, TradeCheck, check_open, conform_qty
from portfolio_cli.engine.symbols import base_of
from portfolio_cli.money import HUNDRED, ZERO, q8

CASH = "USDT"
INSIDE = Decimal("0.9")  # aim this far into the band, as a fraction of it
LEDGER_STEP = Decimal("0.00000001")  # the step when the exchange's is unknown: the ledger's 8 places
WASH_SALE_DAYS = 30


def loss_sales(lots: Iterable[Lot], now: datetime, days: int = WASH_SALE_DAYS) -> dict[str, str]:
    """Each asset sold from a spot lot at a net loss within the ``days`` before ``now``, with why it
    may not be bought yet: the latest such sale and the first day after the window. A close's net PnL
    is its realized PnL less its fee and its share of the entry fee (by quantity)."""
    latest: dict[str, datetime] = {}
    since = now - timedelta(days=days)
    for lot in lots:
        t = lot.trade
        if t.kind is not Kind.SPOT:
            continue
        for c in lot.closes:
            net = c.realized_pnl - c.fee - t.fee * c.qty / t.qty
            if since < c.closed_at <= now and net < 0:
                asset = base_of(t.symbol)
                latest[asset] = max(latest.get(asset, c.closed_at), c.closed_at)
    return {
        asset: (
            f"wash sale avoided: sold at a loss on {at:%Y-%m-%d}, not bought back within {days} days "
            f"(from {(at + timedelta(days=days + 1)):%Y-%m-%d})"
        )
        for asset, at in latest.items()
    }


@dataclass(frozen=True)
class Holding:
    """One asset as the planner sees it (prices in USDT)."""

    asset: str
    price: Decimal  # the mark of ASSET/USDT
    exposure: Decimal  # net position value, spot and margin
    spot_qty: Decimal  # what a sell may take
    rules: MarketRules | None  # of ASSET/USDT; None when unknown (offline)
    lots: tuple[tuple[Decimal, Exposure], ...] = ()  # its spot lots, oldest first: open quantity, exposure


@dataclass(frozen=True)
class RebalanceTargets:
    pct_by_asset: Mapping[str, Decimal]  # percent of equity by asset, CASH for cash; they sum to 100
    band: Decimal  # percentage points either side
    buy_only: bool = False
    to_target: bool = False  # trade every asset to its target, not to the band edge


@dataclass(frozen=True)
class Account:
    equity: Decimal
    cash: Decimal  # free margin
    margin_equity: Decimal
    margin_used: Decimal
    positions: tuple[Exposure, ...]


@dataclass(frozen=True)
class PlannedTrade:
    asset: str
    symbol: str
    buy: bool
    qty: Decimal
    price: Decimal  # the fill: the mark moved by slippage
    mark: Decimal
    fee: Decimal

    @property
    def notional(self) -> Decimal:
        return q8(self.qty * self.price)

    @property
    def slippage(self) -> Decimal:
        return q8(self.qty * abs(self.price - self.mark))


@dataclass(frozen=True)
class Weight:
    asset: str
    target: Decimal | None  # None: held but not targeted (cash always is)
    weight_pct: Decimal
    band: Decimal

    @property
    def drift(self) -> Decimal:
        return self.weight_pct - (self.target or ZERO)

    @property
    def outside(self) -> bool:
        return abs(self.drift) > self.band


@dataclass(frozen=True)
class Skipped:
    asset: str
    reason: str


@dataclass(frozen=True)
class Plan:
    trades: tuple[PlannedTrade, ...]  # sells, then buys
    skipped: tuple[Skipped, ...]
    before: tuple[Weight, ...]
    after: tuple[Weight, ...]
    equity_after: Decimal
    cash_after: Decimal

    @property
    def fees(self) -> Decimal:
        return sum((t.fee for t in self.trades), ZERO)

    @property
    def slippage(self) -> Decimal:
        return sum((t.slippage for t in self.trades), ZERO)

    @property
    def turnover(self) -> Decimal:
        return sum((t.notional for t in self.trades), ZERO)

    @property
    def drift_before(self) -> Decimal:
        return total_drift(self.before)

    @property
    def drift_after(self) -> Decimal:
        return total_drift(self.after)

    @property
    def efficiency(self) -> float | Undefined:
        if not self.drift_before:
            return Undefined("nothing had drifted")
        return float(self.drift_after / self.drift_before)


def total_drift(weights: tuple[Weight, ...]) -> Decimal:
    return sum((abs(w.drift) for w in weights), ZERO)


def weights_of(
    equity: Decimal, cash: Decimal, exposures: Mapping[str, Decimal], targets: RebalanceTargets | None
) -> tuple[Weight, ...]:
    """Each targeted or held asset's weight, then cash, in percent of ``equity``."""
    named = dict(targets.pct_by_asset) if targets else {}
    band = targets.band if targets else ZERO
    assets = sorted((set(named) | {a for a, v in exposures.items() if v}) - {CASH})
    rows = [
        Weight(a, named.get(a, ZERO if targets else None), _pct(exposures.get(a, ZERO), equity), band) for a in assets
    ]
    rows.append(Weight(CASH, named.get(CASH, ZERO if targets else None), _pct(cash, equity), band))
    return tuple(rows)


def _pct(value: Decimal, equity: Decimal) -> Decimal:
    return value / equity * HUNDRED if equity > 0 else ZERO


def plan_rebalance(
    account: Account,
    holdings: Mapping[str, Holding],
    targets: RebalanceTargets,
    fee_rate: Decimal,
    slippage_bps: Decimal,
    limits: RiskLimits,
    groups: Mapping[str, frozenset[str]] | None = None,
    no_buys: Mapping[str, str] | None = None,
) -> Plan:
    """The plan (see the module's notes). ``holdings`` must hold every targeted asset, held or not;
    ``no_buys`` names the assets that may not be bought, with why (wash sales, see ``loss_sales``)."""
    equity = account.equity
    exposures = {a: h.exposure for a, h in holdings.items()}
    before = weights_of(equity, account.cash, exposures, targets)
    reasons: dict[str, str] = {}
    trades: list[PlannedTrade] = []
    dropped: set[str] = set()  # assets whose trade the exchange or a risk rule refused
    if equity <= 0:
        reasons[CASH] = "equity is not positive: nothing can be weighed"
    while equity > 0:  # again without the assets whose trade was dropped, so cash goes elsewhere
        frozen = set(dropped)
        wanted = _to_inner_edges(before, holdings, targets, equity, reasons, frozen, no_buys or {})
        _balance_cash(wanted, before, holdings, targets, account.cash, equity, reasons, frozen, no_buys or {})
        trades = _conform(wanted, holdings, fee_rate, slippage_bps, reasons)
        trades = _within_rules(trades, account, holdings, limits, groups or {}, reasons)
        dropped = frozen | {a for a, change in wanted.items() if change and a not in {t.asset for t in trades}}
        if dropped == frozen:
            break
    after_exposure = dict(exposures)
    cash, equity_after = account.cash, equity
    for t in trades:
        sign = 1 if t.buy else -1
        after_exposure[t.asset] = after_exposure.get(t.asset, ZERO) + sign * t.qty * t.mark
        cash += -sign * t.notional - t.fee
        equity_after -= t.fee + t.slippage
    after = weights_of(equity_after, cash, after_exposure, targets)
    skipped = tuple(
        Skipped(w.asset, reasons.get(w.asset) or _left_outside(w))
        for w in after
        if w.outside or w.asset in reasons  # a dropped trade keeps its reason even if it ends inside
    )
    return Plan(tuple(trades), skipped, before, after, equity_after, cash)


def _left_outside(w: Weight) -> str:
    return (
        f"ends at {w.weight_pct:.2f} % against {w.target or ZERO:.2f} ± {w.band} %: the fees, the lot steps and the "
        "other trades leave no trade that brings it inside"
    )


def _to_inner_edges(
    before: tuple[Weight, ...],
    holdings: Mapping[str, Holding],
    targets: RebalanceTargets,
    equity: Decimal,
    reasons: dict[str, str],
    frozen: set[str],
    no_buys: Mapping[str, str],
) -> dict[str, Decimal]:
    """USDT to buy (+) or sell (−) of each asset outside its band, to just inside it."""
    wanted: dict[str, Decimal] = {}
    triggered = any(w.outside for w in before)
    for w in before:
        if w.asset == CASH or w.asset in frozen:
            continue
        target = w.target or ZERO
        if targets.to_target and triggered and w.target is not None and w.drift:
            edge = target
        elif w.outside:
            edge = target + INSIDE * w.band if w.drift > 0 else max(ZERO, target - INSIDE * w.band)
        else:
            continue
        change = (edge - w.weight_pct) / HUNDRED * equity
        if change > 0 and w.asset in no_buys:
            reasons[w.asset] = no_buys[w.asset]
            continue
        if change < 0:
            if targets.buy_only:
                reasons[w.asset] = "above its band, and buy-only mode sells nothing"
                continue
            change = max(change, -_spot_value(holdings, w.asset, reasons, change))
        wanted[w.asset] = change
    return wanted


def _spot_value(holdings: Mapping[str, Holding], asset: str, reasons: dict[str, str], change: Decimal) -> Decimal:
    held = holdings.get(asset)
    value = held.spot_qty * held.price if held else ZERO
    if -change > value:
        reasons[asset] = (
            f"needs {-change:,.2f} USDT sold but only {value:,.2f} USDT of it is spot: margin positions are "
            "not rebalanced"
        )
    return value


def _balance_cash(
    wanted: dict[str, Decimal],
    before: tuple[Weight, ...],
    holdings: Mapping[str, Holding],
    targets: RebalanceTargets,
    cash: Decimal,
    equity: Decimal,
    reasons: dict[str, str],
    frozen: set[str],
    no_buys: Mapping[str, str],
) -> None:
    """Buy (sell) further while cash would stay above (below) its band: the excess spread over the
    assets below (above) their targets in proportion to their gaps, then over every asset in
    proportion to its room to its inner band edge; in buy-only mode, buy less instead of selling."""
    rows = {w.asset: w for w in before}
    cash_row = rows[CASH]
    projected = {
        a: w.weight_pct + wanted.get(a, ZERO) / equity * HUNDRED
        for a, w in rows.items()
        if a != CASH and a not in frozen
    }
    cash_pct = (cash - sum(wanted.values(), ZERO)) / equity * HUNDRED
    reasons.pop(CASH, None)
    target, band = cash_row.target or ZERO, cash_row.band
    to_target = targets.to_target and any(w.outside for w in before)
    aim = ZERO if to_target else INSIDE * band  # where cash is brought back to, off its target
    allowed = ZERO if to_target else band  # how far off its target cash may end

    def usdt(pct: Decimal) -> Decimal:
        return pct / HUNDRED * equity

    def target_of(asset: str) -> Decimal:
        return rows[asset].target or ZERO

    if cash_pct > target + allowed:  # too much cash: buy the assets below their targets first
        excess = usdt(cash_pct - target - aim)
        for stage in ("gaps", "rooms"):
            if stage == "gaps":
                caps = {a: usdt(target_of(a) - projected[a]) for a in projected}
            else:
                caps = {a: usdt(target_of(a) + INSIDE * band - max(projected[a], target_of(a))) for a in projected}
            for asset in no_buys.keys() & caps.keys():
                if caps[asset] > 0 and stage == "gaps":
                    reasons[asset] = no_buys[asset]
                caps[asset] = ZERO
            for asset, take in _spread(excess, caps).items():
                wanted[asset] = wanted.get(asset, ZERO) + take
                projected[asset] += take / equity * HUNDRED
                excess -= take
        if excess > 0:
            reasons[CASH] = f"every asset is at the top of its band: {excess:,.2f} USDT stays in cash"
    elif cash_pct < target - allowed:  # too little cash
        short = usdt(max(ZERO, target - aim) - cash_pct)
        if targets.buy_only:
            buys = {a: v for a, v in wanted.items() if v > 0}
            total = sum(buys.values(), ZERO)
            keep = max(ZERO, (total - short) / total) if total else ZERO
            for asset, value in buys.items():
                wanted[asset] = value * keep
                reasons[asset] = "buy-only mode: there is not enough cash to buy all of it and keep cash in its band"
            return

        def spot_left(asset: str) -> Decimal:
            held = holdings.get(asset)
            return max(ZERO, (held.spot_qty * held.price if held else ZERO) + min(ZERO, wanted.get(asset, ZERO)))

        for stage in ("gaps", "rooms"):
            if stage == "gaps":
                caps = {a: min(usdt(projected[a] - target_of(a)), spot_left(a)) for a in projected}
            else:
                floor = {a: max(ZERO, target_of(a) - INSIDE * band) for a in projected}
                caps = {a: min(usdt(min(projected[a], target_of(a)) - floor[a]), spot_left(a)) for a in projected}
            for asset, take in _spread(short, caps).items():
                wanted[asset] = wanted.get(asset, ZERO) - take
                projected[asset] -= take / equity * HUNDRED
                short -= take
        if short > 0:
            reasons[CASH] = f"nothing more can be sold within the bands: cash stays {short:,.2f} USDT short"


def _spread(amount: Decimal, caps: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """``amount`` split over the assets in proportion to their ``caps``, none given more than its cap
    (all of them when the caps add up to less). Proportional to the caps themselves: to the gaps to
    target, or to the room left in the band."""
    open_caps = {a: c for a, c in caps.items() if c > 0}
    total = sum(open_caps.values(), ZERO)
    if amount <= 0 or not total:
        return {}
    if amount >= total:
        return open_caps
    return {a: amount * c / total for a, c in open_caps.items()}


def _conform(
    wanted: Mapping[str, Decimal],
    holdings: Mapping[str, Holding],
    fee_rate: Decimal,
    slippage_bps: Decimal,
    reasons: dict[str, str],
) -> list[PlannedTrade]:
    """Quantities on the pair's amount step and above its minimums: sells first, then buys."""
    trades = []
    for asset, change in sorted(wanted.items(), key=lambda item: (item[1] > 0, item[0])):
        if change == 0:
            continue
        held, buy = holdings[asset], change > 0
        symbol = f"{asset}/{CASH}"
        price = fill_price(held.price, buy=buy, slippage_bps=slippage_bps)
        step = held.rules.amount_step if held.rules and held.rules.amount_step else LEDGER_STEP
        qty = _on_step(abs(change) / held.price, step, up=not buy)
        if not buy and qty >= held.spot_qty:
            qty = _on_step(held.spot_qty, step, up=False)
        if qty <= 0:
            reasons[asset] = f"the trade ({abs(change):,.2f} USDT) is smaller than one lot step ({step.normalize()})"
            continue
        if held.rules is not None:
            conformed = conform_qty(qty, price, held.rules)
            if not isinstance(conformed, Conformed):
                reasons[asset] = f"a {abs(change):,.2f} USDT trade is too small for Binance: {conformed.message}"
                continue
        trades.append(PlannedTrade(asset, symbol, buy, qty, price, held.price, fee_for(qty, price, fee_rate)))
    return trades


def _on_step(qty: Decimal, step: Decimal, up: bool) -> Decimal:
    steps = (qty / step).to_integral_value(rounding=ROUND_CEILING if up else ROUND_DOWN)
    return q8(steps * step)


def _within_rules(
    trades: list[PlannedTrade],
    account: Account,
    holdings: Mapping[str, Holding],
    limits: RiskLimits,
    groups: Mapping[str, frozenset[str]],
    reasons: dict[str, str],
) -> list[PlannedTrade]:
    """The sells, then each buy that every risk rule allows, in order, on the state the trades before it
    leave (a refused buy is dropped with the rule's words)."""
    positions = list(account.positions)
    free, equity, margin_equity = account.cash, account.equity, account.margin_equity
    kept = []
    for t in trades:
        if t.buy:
            new = Exposure(t.symbol, t.asset, t.notional, t.notional)  # spot: its cost, no stop
            check = TradeCheck(
                new=new,
                spot=True,
                notional=t.notional,
                fee=t.fee,
                leverage=1,
                equity=equity,
                free_margin=free,
                margin_equity=margin_equity,
                margin_used=account.margin_used,
                positions=tuple(positions),
                correlated_assets=groups.get(t.asset),
            )
            refusals = check_open(check, limits)
            if refusals:
                reasons[t.asset] = "; ".join(str(r) for r in refusals)
                continue
            positions.append(new)
            free -= t.notional + t.fee
            margin_equity -= t.notional + t.fee
        else:
            positions = _after_sale(positions, holdings[t.asset], t.qty)
            free += t.notional - t.fee
            margin_equity += t.notional - t.fee
        equity -= t.fee + t.slippage
        kept.append(t)
    return kept


def _after_sale(positions: list[Exposure], held: Holding, qty: Decimal) -> list[Exposure]:
    """The positions once ``qty`` of the asset's spot lots are sold, in the order of ``held.lots`` (the
    order the sale closes them in)."""
    left = list(positions)
    for _, e in held.lots:
        left.remove(e)
    remaining = qty
    for lot_qty, e in held.lots:
        take = min(lot_qty, remaining)
        remaining -= take
        if take < lot_qty:
            share = (lot_qty - take) / lot_qty
            left.append(replace(e, committed=e.committed * share, risk=e.risk * share))
    return left
