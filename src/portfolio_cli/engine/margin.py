"""Margin, liquidation and stress (DESIGN §3).

For a margin position with side s (+1 long, −1 short), open quantity q, entry e, mark m (USDT),
margin ``Mi`` (IM = q·e/L, plus margin added while isolated) and maintenance rate mmr:

- maintenance margin ``MM = q·m·mmr``
- isolated: liquidated when ``Mi + u ≤ MM`` with ``u = s·q·(m − e)``, so
  long ``m_liq = (q·e − Mi) / (q·(1 − mmr))``, short ``m_liq = (q·e + Mi) / (q·(1 + mmr))``;
  with ``Mi = IM`` these are ``e·(1 − 1/L)/(1 − mmr)`` and ``e·(1 + 1/L)/(1 + mmr)``; a long whose
  margin covers its cost (1×) is never liquidated. Liquidation loses exactly ``Mi``: the close at
  ``m_liq`` books ``s·q·(m_liq − e)`` and what is left of the margin is the liquidation fee.
- cross: the account's margin level ``Em / M × 100`` is what counts. Below 200 % it warns, below
  150 % it alerts, below 110 % the most losing cross position is closed at the mark with a
  liquidation fee of ``q·m·mmr``, repeatedly until the level recovers. A cross position's
  liquidation price is an estimate: the mark at which the level reaches 110 % with every other
  price fixed, ``m = mark + (1.1·M − Em) / (s·q)``.
- distance to liquidation ``|m − m_liq| / m × 100``.
- funding every 8 hours (00, 08, 16 UTC) on margin positions open at that moment: ``−s·q·m·rate``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from enum import StrEnum

from portfolio_cli.engine.accounting import Lot
from portfolio_cli.engine.records import CashFlow, FlowKind, Kind, MarginMode, Side
from portfolio_cli.engine.triggers import first_trigger
from portfolio_cli.engine.valuation import Mark, PositionValue, Valuation, value_portfolio
from portfolio_cli.money import HUNDRED, ONE, ZERO, pct_of, q8

WARNING_LEVEL_PCT = Decimal(200)
ALERT_LEVEL_PCT = Decimal(150)
CRITICAL_LEVEL_PCT = Decimal(110)
STRESS_MOVES_PCT = (-30, -20, -10, 10, 20, 30)


class MarginState(StrEnum):
    NONE = "n/a"  # no margin in use
    OK = "ok"
    WARNING = "warning"
    ALERT = "liquidation risk"
    CRITICAL = "critical"


def margin_state(level_pct: Decimal | None) -> MarginState:
    """ok at 200 % and above; warning below 200 %; liquidation risk below 150 %; critical below 110 %."""
    if level_pct is None:
        return MarginState.NONE
    if level_pct < CRITICAL_LEVEL_PCT:
        return MarginState.CRITICAL
    if level_pct < ALERT_LEVEL_PCT:
        return MarginState.ALERT
    if level_pct < WARNING_LEVEL_PCT:
        return MarginState.WARNING
    return MarginState.OK


def isolated_liquidation_price(
    side: Side, qty: Decimal, entry: Decimal, margin: Decimal, mmr: Decimal
) -> Decimal | None:
    """The mark at which ``margin + u = MM``; None for a long that cannot be liquidated."""
    cost = qty * entry
    if side is Side.LONG:
        price = (cost - margin) / (qty * (ONE - mmr))
        return q8(price) if price > 0 else None
    return q8((cost + margin) / (qty * (ONE + mmr)))


def cross_liquidation_price(
    side: Side, qty: Decimal, mark: Decimal, margin_equity: Decimal, margin_used: Decimal
) -> Decimal | None:
    """Estimated mark at which the account's margin level reaches 110 %, other prices fixed."""
    if margin_used <= 0:
        return None
    price = mark + (CRITICAL_LEVEL_PCT / HUNDRED * margin_used - margin_equity) / (side.sign * qty)
    return q8(price) if price > 0 else None


FUNDING_INTERVAL = timedelta(hours=8)  # Binance pays funding at 00:00, 08:00 and 16:00 UTC


def funding_times(after: datetime, through: datetime) -> list[datetime]:
    """Funding moments in ``(after, through]``."""
    step = int(FUNDING_INTERVAL.total_seconds())
    first = (int(after.timestamp()) // step + 1) * step
    moments, moment = [], datetime.fromtimestamp(first, UTC)
    while moment <= through:
        moments.append(moment)
        moment += FUNDING_INTERVAL
    return moments


def funding_payment(side: Side, qty: Decimal, mark: Decimal, rate: Decimal) -> Decimal:
    """What the position receives (+) or pays (−): ``−s·q·m·rate``. Longs pay a positive rate."""
    return q8(-side.sign * qty * mark * rate)


def liquidation_settlement(
    side: Side, qty: Decimal, entry: Decimal, margin: Decimal, price: Decimal
) -> tuple[Decimal, Decimal]:
    """(gross realized PnL, liquidation fee) of an isolated liquidation at ``price``.

    The fee is what remains of the margin, so the position loses exactly its margin.
    """
    realized = q8(side.sign * qty * (price - entry))
    return realized, max(ZERO, margin + realized)


@dataclass(frozen=True)
class PositionMargin:
    trade_id: int
    symbol: str
    side: Side
    mode: MarginMode
    leverage: Decimal
    qty: Decimal
    entry: Decimal
    mark: Decimal
    margin: Decimal
    maintenance_margin: Decimal
    unrealized_pnl: Decimal
    liquidation_price: Decimal | None
    distance_pct: Decimal | None  # from the mark to the liquidation price


@dataclass(frozen=True)
class AccountMargin:
    equity: Decimal
    margin_equity: Decimal
    margin_used: Decimal
    maintenance_margin: Decimal
    free_margin: Decimal
    margin_level_pct: Decimal | None
    state: MarginState
    positions: tuple[PositionMargin, ...]


def assess_margin(valuation: Valuation, mmr: Callable[[str], Decimal]) -> AccountMargin:
    """Margin figures per margin position (from a per-trade valuation) and for the account."""
    rows = []
    for p in valuation.positions:
        if p.kind is not Kind.MARGIN:
            continue
        mode = p.margin_mode or MarginMode.ISOLATED
        if mode is MarginMode.ISOLATED:
            liq = isolated_liquidation_price(p.side, p.qty, p.entry_usdt, p.margin, mmr(p.symbol))
        else:
            liq = cross_liquidation_price(p.side, p.qty, p.mark_usdt, valuation.margin_equity, valuation.margin_used)
        distance = pct_of(abs(p.mark_usdt - liq), p.mark_usdt) if liq is not None else None
        rows.append(
            PositionMargin(
                trade_id=p.trade_id or 0,
                symbol=p.symbol,
                side=p.side,
                mode=mode,
                leverage=p.leverage,
                qty=p.qty,
                entry=p.entry_usdt,
                mark=p.mark_usdt,
                margin=p.margin,
                maintenance_margin=p.maintenance_margin,
                unrealized_pnl=p.unrealized_pnl,
                liquidation_price=liq,
                distance_pct=distance,
            )
        )
    return AccountMargin(
        equity=valuation.equity,
        margin_equity=valuation.margin_equity,
        margin_used=valuation.margin_used,
        maintenance_margin=sum((r.maintenance_margin for r in rows), ZERO),
        free_margin=valuation.free_margin,
        margin_level_pct=valuation.margin_level_pct,
        state=margin_state(valuation.margin_level_pct),
        positions=tuple(rows),
    )


def most_losing_cross(valuation: Valuation) -> PositionValue | None:
    """The cross position a margin call closes first: the largest unrealized loss."""
    cross = [p for p in valuation.positions if p.kind is Kind.MARGIN and p.margin_mode is MarginMode.CROSS]
    return min(cross, key=lambda p: (p.unrealized_pnl, p.trade_id or 0), default=None)


@dataclass(frozen=True)
class MarginRestore:
    """What alone would bring the margin level back to ``target_pct``: a deposit, or closing part of
    the most losing margin position (``close_qty`` None when closing all of it is not enough)."""

    target_pct: Decimal
    deposit: Decimal
    trade_id: int | None
    symbol: str | None
    close_qty: Decimal | None


def restore_margin_level(
    valuation: Valuation, fee_rate: Decimal, target_pct: Decimal = WARNING_LEVEL_PCT
) -> MarginRestore | None:
    """The remedies for a margin level ``Em / M × 100`` below ``target_pct`` (None when it is not).

    With ``k = target_pct / 100``, the shortfall is ``D = k·M − Em``: depositing ``D`` raises ``Em``
    to ``k·M``. Closing ``c`` of the position with the largest unrealized loss (margin per unit ``μ``,
    mark ``m``, taker fee rate ``f``) moves its PnL from unrealized to realized, leaving ``Em`` less
    the fee ``c·m·f``, and frees ``c·μ`` of margin, so ``c = D / (k·μ − m·f)``. Both round up to the
    ledger's 8 places, so that they reach the target; the quantity is before the exchange's lot step.
    """
    level = valuation.margin_level_pct
    if level is None or level >= target_pct:
        return None
    k = target_pct / HUNDRED
    shortfall = k * valuation.margin_used - valuation.margin_equity
    deposit = _up8(shortfall)
    margin = [p for p in valuation.positions if p.kind is Kind.MARGIN and p.qty > 0]
    worst = min(margin, key=lambda p: (p.unrealized_pnl, p.trade_id or 0), default=None)
    if worst is None:
        return MarginRestore(target_pct, deposit, None, None, None)
    per_unit = k * worst.margin / worst.qty - worst.mark_usdt * fee_rate
    qty = _up8(shortfall / per_unit) if per_unit > 0 else None
    if qty is not None and qty > worst.qty:
        qty = None
    return MarginRestore(target_pct, deposit, worst.trade_id, worst.symbol, qty)


def _up8(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.00000001"), rounding=ROUND_CEILING)


@dataclass(frozen=True)
class StressRow:
    btc_move_pct: int
    equity: Decimal
    margin_level_pct: Decimal | None
    state: MarginState
    liquidated: tuple[int, ...]  # trade ids


def stress_test(
    flows: Sequence[CashFlow],
    lots: Sequence[Lot],
    marks: Mapping[str, Mark],
    mmr: Callable[[str], Decimal],
    betas: Mapping[str, float],
    moves_pct: Sequence[int] = STRESS_MOVES_PCT,
) -> list[StressRow]:
    """Equity and margin level if BTC moved by each of ``moves_pct``, every other asset moving by its
    beta to BTC (1 where unknown); isolated positions past their liquidation price and, below 110 %,
    cross positions most-losing first are liquidated as ``check`` would."""
    open_lots = [lot for lot in lots if lot.is_open]
    result = []
    for move in moves_pct:
        shocked = {}
        for symbol, m in marks.items():
            factor = ONE + Decimal(str(round(betas.get(symbol, 1.0), 6))) * Decimal(move) / HUNDRED
            price = max(m.price_usdt * factor, ZERO)
            shocked[symbol] = replace(m, price=price, price_usdt=price)
        flows_after, lots_after, liquidated = list(flows), list(open_lots), []
        valuation = value_portfolio(flows_after, lots_after, shocked, mmr)
        for p in valuation.positions:
            lot = next(lot for lot in lots_after if lot.trade.id == p.trade_id)
            if p.kind is not Kind.MARGIN or lot.margin_mode is not MarginMode.ISOLATED:
                continue
            liq = isolated_liquidation_price(p.side, p.qty, p.entry_usdt, p.margin, mmr(p.symbol))
            price = p.mark_usdt  # the shocked mark, as a one-price candle: check's own trigger rule
            if liq is not None and first_trigger(p.side, price, price, price, liquidation=liq) is not None:
                realized, fee = liquidation_settlement(p.side, p.qty, p.entry_usdt, p.margin, liq)
                flows_after += _settle(realized - fee)
                lots_after.remove(lot)
                liquidated.append(lot.trade.id)
        valuation = value_portfolio(flows_after, lots_after, shocked, mmr)
        while margin_state(valuation.margin_level_pct) is MarginState.CRITICAL:
            worst = most_losing_cross(valuation)
            if worst is None:
                break
            fee = q8(worst.notional * mmr(worst.symbol))
            flows_after += _settle(worst.unrealized_pnl - fee)
            lots_after = [lot for lot in lots_after if lot.trade.id != worst.trade_id]
            liquidated.append(worst.trade_id or 0)
            valuation = value_portfolio(flows_after, lots_after, shocked, mmr)
        result.append(
            StressRow(
                move,
                valuation.equity,
                valuation.margin_level_pct,
                margin_state(valuation.margin_level_pct),
                tuple(sorted(liquidated)),
            )
        )
    return result


def _settle(amount: Decimal) -> list[CashFlow]:
    """A hypothetical cash flow for a simulated close (never stored)."""
    return [CashFlow(0, FlowKind.REALIZED_PNL, amount, datetime.min.replace(tzinfo=UTC))]
