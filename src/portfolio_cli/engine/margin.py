"""Margin, liquidation and stress: Binance's USDⓈ-M rules, with this tool's account rules on top.

For a margin position with side s (+1 long, −1 short), open quantity q, entry e, mark m (USDT), and
the maintenance rate ``mmr`` and amount ``cum`` of its bracket (engine/brackets.py):

**Binance's rules** (Binance FAQ "How to Calculate Liquidation Price of USDⓈ-M Futures Contracts",
one-way mode; "Margin Ratio" in "Leverage and Margin of USDⓈ-M Futures"):

- maintenance margin ``MM = q·m·mmr − cum``, the bracket of the notional ``q·m``
- liquidation price ``LP = (WB − TMM1 + UPNL1 + cum − s·q·e) / (q·mmr − s·q)``, with ``mmr`` and
  ``cum`` of the bracket the notional *at the liquidation price* ``q·LP`` falls in (Binance: "if the
  position at the liquidation price and at the opening price are of different levels, substitute
  the level at the liquidation price")
  - isolated: ``WB`` = the position's margin (IM plus margin added), ``TMM1 = UPNL1 = 0``
  - cross: ``WB`` = the cross wallet balance, ``TMM1``/``UPNL1`` = MM and unrealized PnL of every
    other cross position at its mark
  - a long with ``LP ≤ 0`` cannot be liquidated (None)
- margin ratio = ``MM / margin balance × 100``; isolated: ``MM / (margin + u)``; cross:
  ``Σ MM / (cross wallet + Σ u)`` over cross positions. Binance liquidates at 100 %.
- an isolated liquidation settles at LP and loses exactly the position's margin (what is left of it is
  the clearance fee); a cross liquidation closes the cross positions at the mark and charges the
  clearance fee ``q·m·liquidation_fee_rate`` (the symbol's ``liquidationFee``, e.g. 1.25 % for BTCUSDT),
  never more than what is left of the cross margin balance.

**The account rules** (this tool's, configurable, each can be switched off): margin level
``Em / M × 100`` (margin equity over margin used) below 200 % warns, below 150 % alerts, below
110 % closes the most losing cross position at the mark (a margin call by rule, with the taker fee).

Distance to liquidation ``|m − LP| / m × 100``.
Funding: ``−s·q·mark·rate`` at each of the symbol's settlement times (Binance's funding history).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from enum import StrEnum

from portfolio_cli.engine.accounting import Lot
from portfolio_cli.engine.brackets import Brackets, BracketTable
from portfolio_cli.engine.futures import is_liquidated, liquidation_price, margin_ratio_pct  # noqa: F401 (re-exported)
from portfolio_cli.engine.records import CashFlow, FlowKind, Kind, MarginMode, Side
from portfolio_cli.engine.symbols import spot_of
from portfolio_cli.engine.triggers import first_trigger
from portfolio_cli.engine.valuation import Mark, PositionValue, Valuation, value_portfolio
from portfolio_cli.money import HUNDRED, ONE, ZERO, pct_of, q8

STRESS_MOVES_PCT = (-30, -20, -10, 10, 20, 30)
LIQUIDATION_RATIO_PCT = HUNDRED  # Binance liquidates when the margin ratio reaches 100 %
DEFAULT_CLEARANCE_FEE_RATE = Decimal("0.0125")  # BTCUSDT's liquidationFee in Binance's futures exchangeInfo


@dataclass(frozen=True)
class AccountRules:
    """This tool's protective margin-level rules; None switches a rule off."""

    warning_pct: Decimal | None = Decimal(200)
    alert_pct: Decimal | None = Decimal(150)
    margin_call_pct: Decimal | None = Decimal(110)


DEFAULT_ACCOUNT_RULES = AccountRules()


class MarginState(StrEnum):
    NONE = "n/a"  # no margin in use
    OK = "ok"
    WARNING = "warning"
    ALERT = "liquidation risk"
    CRITICAL = "critical"


def margin_state(level_pct: Decimal | None, rules: AccountRules = DEFAULT_ACCOUNT_RULES) -> MarginState:
    """By the account rules: critical below the margin-call level (110 %), liquidation risk below the
    alert level (150 %), warning below the warning level (200 %), else ok. A rule switched off never
    gives its state."""
    if level_pct is None:
        return MarginState.NONE
    for threshold, state in (
        (rules.margin_call_pct, MarginState.CRITICAL),
        (rules.alert_pct, MarginState.ALERT),
        (rules.warning_pct, MarginState.WARNING),
    ):
        if threshold is not None and level_pct < threshold:
            return state
    return MarginState.OK


def isolated_liquidation_price(
    side: Side, qty: Decimal, entry: Decimal, margin: Decimal, table: BracketTable
) -> Decimal | None:
    """Binance's formula with ``WB`` = the isolated margin and no other positions."""
    return liquidation_price(side, qty, entry, table, margin)


FUNDING_INTERVAL = timedelta(hours=8)  # the standard interval, used when Binance's times cannot be had


def funding_times(after: datetime, through: datetime, interval: timedelta = FUNDING_INTERVAL) -> list[datetime]:
    """Funding moments in ``(after, through]`` every ``interval`` from 00:00 UTC."""
    step = int(interval.total_seconds())
    first = (int(after.timestamp()) // step + 1) * step
    moments, moment = [], datetime.fromtimestamp(first, UTC)
    while moment <= through:
        moments.append(moment)
        moment += interval
    return moments


def funding_payment(side: Side, qty: Decimal, mark: Decimal, rate: Decimal) -> Decimal:
    """What the position receives (+) or pays (−): ``−s·q·m·rate``. Longs pay a positive rate."""
    return q8(-side.sign * qty * mark * rate)


def liquidation_settlement(
    side: Side, qty: Decimal, entry: Decimal, margin: Decimal, price: Decimal
) -> tuple[Decimal, Decimal]:
    """(gross realized PnL, clearance fee) of an isolated liquidation at ``price``.

    The fee is what remains of the margin, so the position loses exactly its margin.
    """
    realized = q8(side.sign * qty * (price - entry))
    return realized, max(ZERO, margin + realized)


def cross_clearance_fees(
    positions: Sequence[PositionValue], cross_wallet: Decimal, fee_rate: Callable[[str], Decimal]
) -> list[Decimal]:
    """Binance's clearance fee for each liquidated cross position, ``q·m·rate``, taken in order from
    what is left of the cross margin balance (the insurance fund covers the rest)."""
    left = cross_wallet + sum((p.unrealized_pnl for p in positions), ZERO)
    fees = []
    for p in positions:
        fee = min(q8(p.notional * fee_rate(p.symbol)), max(ZERO, left))
        fees.append(fee)
        left -= fee
    return fees


@dataclass(frozen=True)
class PositionMargin:
    """One margin position's maintenance margin, liquidation price and margin ratio at its mark."""

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
    maintenance_rate: Decimal
    maintenance_amount: Decimal
    bracket: int
    max_leverage: int
    unrealized_pnl: Decimal
    margin_ratio_pct: Decimal | None  # isolated: its own; cross: the cross account's
    liquidation_price: Decimal | None
    distance_pct: Decimal | None  # from the mark to the liquidation price


@dataclass(frozen=True)
class AccountMargin:
    """The account's margin figures at the marks: equity, margin used, maintenance, the cross wallet."""

    equity: Decimal
    margin_equity: Decimal
    margin_used: Decimal
    maintenance_margin: Decimal
    free_margin: Decimal
    cross_wallet_balance: Decimal
    cross_margin_balance: Decimal
    cross_maintenance_margin: Decimal
    cross_margin_ratio_pct: Decimal | None  # Binance's; liquidation at 100 %
    margin_level_pct: Decimal | None  # the account rules'
    state: MarginState
    positions: tuple[PositionMargin, ...]


def assess_margin(
    valuation: Valuation, brackets: Brackets, rules: AccountRules = DEFAULT_ACCOUNT_RULES
) -> AccountMargin:
    """Margin figures per margin position (from a per-trade valuation) and for the account."""
    rows = []
    for p in valuation.positions:
        if p.kind is not Kind.MARGIN:
            continue
        bracket = brackets(p.symbol).at(p.notional)
        liq = p.liquidation_price
        rows.append(
            PositionMargin(
                trade_id=p.trade_id or 0,
                symbol=p.symbol,
                side=p.side,
                mode=p.margin_mode or MarginMode.ISOLATED,
                leverage=p.leverage,
                qty=p.qty,
                entry=p.entry_usdt,
                mark=p.mark_usdt,
                margin=p.margin,
                maintenance_margin=p.maintenance_margin,
                maintenance_rate=bracket.mmr,
                maintenance_amount=bracket.cum,
                bracket=bracket.number,
                max_leverage=bracket.max_leverage,
                unrealized_pnl=p.unrealized_pnl,
                margin_ratio_pct=p.margin_ratio_pct,
                liquidation_price=liq,
                distance_pct=pct_of(abs(p.mark_usdt - liq), p.mark_usdt) if liq is not None else None,
            )
        )
    return AccountMargin(
        equity=valuation.equity,
        margin_equity=valuation.margin_equity,
        margin_used=valuation.margin_used,
        maintenance_margin=sum((r.maintenance_margin for r in rows), ZERO),
        free_margin=valuation.free_margin,
        cross_wallet_balance=valuation.cross_wallet_balance,
        cross_margin_balance=valuation.cross_margin_balance,
        cross_maintenance_margin=valuation.cross_maintenance_margin,
        cross_margin_ratio_pct=valuation.cross_margin_ratio_pct,
        margin_level_pct=valuation.margin_level_pct,
        state=margin_state(valuation.margin_level_pct, rules),
        positions=tuple(rows),
    )


def most_losing_cross(valuation: Valuation) -> PositionValue | None:
    """The cross position a margin call closes first: the largest unrealized loss."""
    cross = [p for p in valuation.positions if p.kind is Kind.MARGIN and p.margin_mode is MarginMode.CROSS]
    return min(cross, key=lambda p: (p.unrealized_pnl, p.trade_id or 0), default=None)


def cross_liquidated(valuation: Valuation) -> bool:
    """Binance would liquidate the cross positions: cross MM has reached the cross margin balance."""
    return is_liquidated(valuation.cross_maintenance_margin, valuation.cross_margin_balance)


@dataclass(frozen=True)
class MarginRestore:
    """What alone would bring the margin level back to ``target_pct``: a deposit, or closing part of
    the most losing margin position (``close_qty`` None when closing all of it is not enough)."""

    target_pct: Decimal
    deposit: Decimal
    trade_id: int | None
    symbol: str | None
    close_qty: Decimal | None


def restore_margin_level(valuation: Valuation, fee_rate: Decimal, target_pct: Decimal) -> MarginRestore | None:
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
    """The account after BTC moves by ``btc_move_pct`` (the others with it, by their beta)."""

    btc_move_pct: int
    equity: Decimal
    margin_level_pct: Decimal | None
    state: MarginState
    liquidated: tuple[int, ...]  # trade ids


def stress_test(
    flows: Sequence[CashFlow],
    lots: Sequence[Lot],
    marks: Mapping[str, Mark],
    brackets: Brackets,
    betas: Mapping[str, float],
    moves_pct: Sequence[int] = STRESS_MOVES_PCT,
    rules: AccountRules = DEFAULT_ACCOUNT_RULES,
    clearance_rate: Callable[[str], Decimal] = lambda symbol: DEFAULT_CLEARANCE_FEE_RATE,
) -> list[StressRow]:
    """Equity and margin level if BTC moved by each of ``moves_pct``, every other asset moving by its
    beta to BTC (1 where unknown). As ``check`` would: isolated positions past their liquidation price
    are liquidated, cross positions are liquidated when the cross margin ratio reaches 100 %, and
    below the margin-call level the most losing cross position is closed first."""
    open_lots = [lot for lot in lots if lot.is_open]
    result = []
    for move in moves_pct:
        shocked = {}
        for symbol, m in marks.items():
            factor = ONE + Decimal(str(round(betas.get(spot_of(symbol), 1.0), 6))) * Decimal(move) / HUNDRED
            price = max(m.price_usdt * factor, ZERO)
            shocked[symbol] = replace(m, price=price, price_usdt=price)
        flows_after, lots_after, liquidated = list(flows), list(open_lots), []
        valuation = value_portfolio(flows_after, lots_after, shocked, brackets)
        for p in valuation.positions:
            lot = next(lot for lot in lots_after if lot.trade.id == p.trade_id)
            if p.kind is not Kind.MARGIN or lot.margin_mode is not MarginMode.ISOLATED:
                continue
            liq = p.liquidation_price
            price = p.mark_usdt  # the shocked mark, as a one-price candle: check's own trigger rule
            if liq is not None and first_trigger(p.side, price, price, price, liquidation=liq) is not None:
                realized, fee = liquidation_settlement(p.side, p.qty, p.entry_usdt, p.margin, liq)
                flows_after += _settle(realized - fee)
                lots_after.remove(lot)
                liquidated.append(lot.trade.id)
        valuation = value_portfolio(flows_after, lots_after, shocked, brackets)
        if cross_liquidated(valuation):
            cross = [p for p in valuation.positions if p.kind is Kind.MARGIN and p.margin_mode is MarginMode.CROSS]
            fees = cross_clearance_fees(cross, valuation.cross_wallet_balance, clearance_rate)
            for p, fee in zip(cross, fees, strict=True):
                flows_after += _settle(p.unrealized_pnl - fee)
                lots_after = [lot for lot in lots_after if lot.trade.id != p.trade_id]
                liquidated.append(p.trade_id or 0)
            valuation = value_portfolio(flows_after, lots_after, shocked, brackets)
        while margin_state(valuation.margin_level_pct, rules) is MarginState.CRITICAL:
            worst = most_losing_cross(valuation)
            if worst is None:
                break
            flows_after += _settle(worst.unrealized_pnl)
            lots_after = [lot for lot in lots_after if lot.trade.id != worst.trade_id]
            liquidated.append(worst.trade_id or 0)
            valuation = value_portfolio(flows_after, lots_after, shocked, brackets)
        result.append(
            StressRow(
                move,
                valuation.equity,
                valuation.margin_level_pct,
                margin_state(valuation.margin_level_pct, rules),
                tuple(sorted(liquidated)),
            )
        )
    return result


def _settle(amount: Decimal) -> list[CashFlow]:
    """A hypothetical cash flow for a simulated close (never stored)."""
    return [CashFlow(0, FlowKind.REALIZED_PNL, amount, datetime.min.replace(tzinfo=UTC))]
