"""Where the trader stands: equity, margin and a row per open position (DESIGN §3).

For a lot with side s (+1 long, −1 short), open quantity q, entry e and mark m (both in USDT):

- notional ``q·m``; position value ``s·q·m``; unrealized PnL ``u = s·q·(m − e)``
- unrealized PnL % = ``u / IM × 100`` (return on the margin committed; spot IM is ``q·e``)
- wallet ``W`` = deposits − withdrawals + realized PnL − fees − liquidation fees + funding
- a margin position's margin is ``IM = q·e / L``, plus any margin added to it while isolated
- equity ``E = W + Σu``; spot holdings ``H = Σ q·m`` over spot lots; margin used ``M`` = Σ margin over
  margin lots; free margin (cash available) ``F = E − H − M``; margin equity ``Em = E − H``
- margin level ``Em / M × 100``, undefined when ``M = 0`` (the account rules')
- maintenance margin ``MM = q·m·mmr − cum`` from the symbol's bracket of ``q·m`` (engine/brackets.py);
  allocation ``|s·q·m| / E × 100`` (undefined when ``E ≤ 0``)
- Binance's cross account: cross wallet ``Wc = W − Σ spot cost − Σ isolated margin``; cross margin
  balance ``Wc + Σ u`` over cross positions; cross margin ratio ``Σ MM / balance × 100`` over them;
  an isolated position's margin ratio ``MM / (margin + u) × 100``; liquidation prices by Binance's
  formula (engine/futures.py)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from portfolio_cli.engine.accounting import Lot, flow_total, wallet_balance
from portfolio_cli.engine.brackets import Brackets
from portfolio_cli.engine.futures import liquidation_price, margin_ratio_pct
from portfolio_cli.engine.records import CashFlow, FlowKind, Kind, MarginMode, Side
from portfolio_cli.engine.symbols import perpetual_of
from portfolio_cli.money import ZERO, pct_of, q8


@dataclass(frozen=True)
class Mark:
    """The price a position is valued at: in its quote currency and converted to USDT."""

    symbol: str
    price: Decimal
    price_usdt: Decimal
    at: datetime
    source: str  # binance, cache, last fill, override, file, demo, candle
    stale: bool = False
    change_24h_pct: Decimal | None = None


@dataclass(frozen=True)
class PositionValue:
    """One open position (or several trades of a symbol, aggregated) valued at its mark."""

    trade_id: int | None  # None for a row aggregated over several trades
    symbol: str
    side: Side
    kind: Kind
    leverage: Decimal
    qty: Decimal
    entry: Decimal  # in the quote currency, weighted by quantity
    entry_usdt: Decimal
    mark: Decimal
    mark_usdt: Decimal
    notional: Decimal
    value: Decimal
    unrealized_pnl: Decimal
    unrealized_pnl_pct: Decimal | None
    initial_margin: Decimal
    margin: Decimal  # IM plus added isolated margin
    margin_mode: MarginMode | None
    maintenance_margin: Decimal
    allocation_pct: Decimal | None
    price_at: datetime
    price_source: str
    trade_ids: tuple[int, ...]
    margin_ratio_pct: Decimal | None = None  # Binance's: isolated its own, cross the cross account's
    liquidation_price: Decimal | None = None  # Binance's formula; None: spot, or cannot be liquidated
    price_stale: bool = False  # the exchange could not be reached: an older price stands in
    change_24h_pct: Decimal | None = None  # the market's 24-hour change, with a live price


@dataclass(frozen=True)
class Valuation:
    """A portfolio valued at its marks: equity, wallet, margin and every open position."""

    equity: Decimal
    wallet_balance: Decimal
    free_margin: Decimal
    spot_holdings: Decimal
    margin_used: Decimal
    margin_equity: Decimal
    margin_level_pct: Decimal | None
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    fees: Decimal
    liquidation_fees: Decimal
    funding: Decimal
    deposits: Decimal
    withdrawals: Decimal
    positions: tuple[PositionValue, ...]
    maintenance_margin: Decimal = ZERO
    cross_wallet_balance: Decimal = ZERO
    cross_margin_balance: Decimal = ZERO
    cross_maintenance_margin: Decimal = ZERO
    cross_margin_ratio_pct: Decimal | None = None  # None without cross positions
    reserved_margin: Decimal = ZERO  # held by open orders (engine/orders.py), out of free margin


def value_portfolio(
    flows: Iterable[CashFlow],
    lots: Sequence[Lot],
    marks: Mapping[str, Mark],
    brackets: Brackets,
    aggregate: bool = False,
    reserved: Decimal = ZERO,
) -> Valuation:
    """Value the open lots at ``marks``. ``aggregate`` folds lots of one symbol, side and kind into
    one row with a quantity-weighted entry; leverage is then ``Σ q·e / Σ IM``. ``reserved`` is the
    margin open orders hold: free margin is ``E − H − M − reserved``."""
    flows = list(flows)
    open_lots = [lot for lot in lots if lot.is_open]
    wallet = wallet_balance(flows)
    groups: dict[tuple, list[Lot]] = {}
    for lot in open_lots:
        t = lot.trade
        key = (t.symbol, t.side, t.kind) if aggregate else (t.id,)
        groups.setdefault(key, []).append(lot)

    marked = [(group, mark_of(group[0].trade.symbol, group[0].trade.kind, marks)) for group in groups.values()]
    unrealized = sum((_unrealized(group, mark) for group, mark in marked), ZERO)
    equity = wallet + unrealized
    rows = [_row(group, mark, brackets, aggregate, equity) for group, mark in marked]
    spot = sum((r.notional for r in rows if r.kind is Kind.SPOT), ZERO)
    margin_used = sum((r.margin for r in rows if r.kind is Kind.MARGIN), ZERO)
    margin_equity = equity - spot
    spot_cost = sum((lot.open_qty * lot.trade.price_usdt for lot in open_lots if lot.trade.kind is Kind.SPOT), ZERO)
    isolated = [r for r in rows if r.kind is Kind.MARGIN and r.margin_mode is not MarginMode.CROSS]
    cross = [r for r in rows if r.kind is Kind.MARGIN and r.margin_mode is MarginMode.CROSS]
    cross_wallet = wallet - spot_cost - sum((r.margin for r in isolated), ZERO)
    cross_mm = sum((r.maintenance_margin for r in cross), ZERO)
    cross_upnl = sum((r.unrealized_pnl for r in cross), ZERO)
    cross_balance = cross_wallet + cross_upnl
    cross_ratio = margin_ratio_pct(cross_mm, cross_balance) if cross else None
    rows = [_binance_figures(r, brackets, cross_wallet, cross_mm, cross_upnl, cross_ratio) for r in rows]
    positions = tuple(sorted(rows, key=lambda r: (r.symbol, r.trade_ids)))
    return Valuation(
        equity=q8(equity),
        wallet_balance=q8(wallet),
        free_margin=q8(equity - spot - margin_used - reserved),
        spot_holdings=q8(spot),
        margin_used=q8(margin_used),
        margin_equity=q8(margin_equity),
        margin_level_pct=pct_of(margin_equity, margin_used),
        unrealized_pnl=q8(unrealized),
        realized_pnl=q8(flow_total(flows, FlowKind.REALIZED_PNL)),
        fees=q8(-flow_total(flows, FlowKind.FEE)),
        liquidation_fees=q8(-flow_total(flows, FlowKind.LIQUIDATION_FEE)),
        funding=q8(flow_total(flows, FlowKind.FUNDING)),
        deposits=q8(flow_total(flows, FlowKind.DEPOSIT)),
        withdrawals=q8(-flow_total(flows, FlowKind.WITHDRAWAL)),
        positions=positions,
        maintenance_margin=q8(sum((r.maintenance_margin for r in rows), ZERO)),
        cross_wallet_balance=q8(cross_wallet),
        cross_margin_balance=q8(cross_balance),
        cross_maintenance_margin=q8(cross_mm),
        cross_margin_ratio_pct=cross_ratio,
        reserved_margin=q8(reserved),
    )


def _binance_figures(
    row: PositionValue,
    brackets: Brackets,
    cross_wallet: Decimal,
    cross_mm: Decimal,
    cross_upnl: Decimal,
    cross_ratio: Decimal | None,
) -> PositionValue:
    """The row's margin ratio and liquidation price by Binance's formulas."""
    if row.kind is not Kind.MARGIN or row.margin_mode is None:
        return row
    table = brackets(row.symbol)
    if row.margin_mode is MarginMode.CROSS:
        others_mm, others_upnl = cross_mm - row.maintenance_margin, cross_upnl - row.unrealized_pnl
        liq = liquidation_price(row.side, row.qty, row.entry_usdt, table, cross_wallet, others_mm, others_upnl)
        return replace(row, margin_ratio_pct=cross_ratio, liquidation_price=liq)
    liq = liquidation_price(row.side, row.qty, row.entry_usdt, table, row.margin)
    ratio = margin_ratio_pct(row.maintenance_margin, row.margin + row.unrealized_pnl)
    return replace(row, margin_ratio_pct=ratio, liquidation_price=liq)


def price_key(symbol: str, kind: Kind) -> str:
    """What a position is valued at: a spot position at its pair (``BTC/USDT``), a margin position at
    its USDⓈ-M perpetual's mark (``BTC/USDT:USDT``)."""
    return perpetual_of(symbol) if kind is Kind.MARGIN else symbol


def mark_of(symbol: str, kind: Kind, marks: Mapping[str, Mark]) -> Mark:
    """The mark of a position: its perpetual's for a margin position when one is at hand, else its pair's."""
    if kind is Kind.MARGIN and perpetual_of(symbol) in marks:
        return marks[perpetual_of(symbol)]
    return marks[symbol]


def _unrealized(group: list[Lot], mark: Mark) -> Decimal:
    """``s·q·(m − e)`` over the group, at the ledger's 8 places."""
    qty = sum((lot.open_qty for lot in group), ZERO)
    cost_usdt = sum((lot.open_qty * lot.trade.price_usdt for lot in group), ZERO)
    return q8(group[0].trade.side.sign * (qty * mark.price_usdt - cost_usdt))


def _row(
    group: list[Lot], mark: Mark, brackets: Brackets, aggregate: bool, equity: Decimal
) -> PositionValue:
    first = group[0].trade
    qty = sum((lot.open_qty for lot in group), ZERO)
    cost_quote = sum((lot.open_qty * lot.trade.price for lot in group), ZERO)
    cost_usdt = sum((lot.open_qty * lot.trade.price_usdt for lot in group), ZERO)
    im = sum((lot.initial_margin for lot in group), ZERO)
    modes = {lot.margin_mode for lot in group}
    sign = first.side.sign
    notional = qty * mark.price_usdt
    unrealized = sign * (notional - cost_usdt)
    value = q8(sign * notional)
    return PositionValue(
        trade_id=None if aggregate else first.id,
        symbol=first.symbol,
        side=first.side,
        kind=first.kind,
        leverage=(cost_usdt / im).quantize(Decimal("0.01")) if im else Decimal(1),
        qty=qty,
        entry=q8(cost_quote / qty),
        entry_usdt=q8(cost_usdt / qty),
        mark=mark.price,
        mark_usdt=mark.price_usdt,
        notional=q8(notional),
        value=value,
        unrealized_pnl=q8(unrealized),
        unrealized_pnl_pct=pct_of(unrealized, im),
        initial_margin=q8(im),
        margin=q8(sum((lot.margin for lot in group), ZERO)),
        margin_mode=modes.pop() if len(modes) == 1 else None,
        maintenance_margin=q8(brackets(first.symbol).maintenance_margin(notional)) if first.kind is Kind.MARGIN else ZERO,
        allocation_pct=pct_of(abs(value), equity) if equity > 0 else None,
        price_at=mark.at,
        price_source=mark.source,
        trade_ids=tuple(lot.trade.id for lot in group),
        price_stale=mark.stale,
        change_24h_pct=mark.change_24h_pct,
    )


@dataclass(frozen=True)
class Performance:
    """Where the account stands against the money put in, from the records alone (no snapshots):
    total PnL = realized − fees − liquidation fees + funding + unrealized (= equity − net deposits);
    net deposits = deposits − withdrawals; ROI % = total PnL / net deposits × 100 (undefined when
    net deposits ≤ 0)."""

    total_pnl: Decimal
    net_deposits: Decimal
    roi_pct: Decimal | None


def performance_of(v: Valuation) -> Performance:
    total = v.realized_pnl - v.fees - v.liquidation_fees + v.funding + v.unrealized_pnl
    net = v.deposits - v.withdrawals
    return Performance(q8(total), q8(net), pct_of(total, net) if net > 0 else None)


def distance_pct(mark: Decimal, level: Decimal | None) -> Decimal | None:
    """How far ``level`` is from ``mark``, signed, in % of the mark: ``(level − mark) / mark × 100``."""
    return None if level is None or not mark else pct_of(level - mark, mark)
