"""Fills, fees, lots and realized PnL (DESIGN §3).

All money is USDT. A pair quoted in another currency converts its price to USDT at the moment of
the fill through that currency's USDT pair, so PnL is what the trader's USDT account would see.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cached_property

from portfolio_cli.engine.records import CashFlow, Close, FlowKind, Kind, MarginChange, MarginMode, Side, Trade
from portfolio_cli.money import HUNDRED, ONE, ZERO, q8

BPS = Decimal(10_000)


def fill_price(quote: Decimal, buy: bool, slippage_bps: Decimal) -> Decimal:
    """The market fill: the quote moved against the trader by ``slippage_bps``.

    buy: ``quote × (1 + bps/10000)``; sell: ``quote × (1 − bps/10000)``.
    """
    move = slippage_bps / BPS
    return q8(quote * (ONE + move if buy else ONE - move))


def fee_for(qty: Decimal, price_usdt: Decimal, rate: Decimal) -> Decimal:
    """Fee = ``qty × fill price × fee rate``, in USDT."""
    return q8(qty * price_usdt * rate)


def realized_pnl(side: Side, qty: Decimal, entry_usdt: Decimal, exit_usdt: Decimal) -> Decimal:
    """Gross realized PnL of closing ``qty``: ``s·qty·(exit − entry)``."""
    return q8(side.sign * qty * (exit_usdt - entry_usdt))


def initial_margin(kind: Kind, qty: Decimal, entry_usdt: Decimal, leverage: int) -> Decimal:
    """IM = ``q·e / L``; spot is paid in full, ``q·e``."""
    cost = qty * entry_usdt
    return cost if kind is Kind.SPOT else cost / leverage


@dataclass(frozen=True)
class Lot:
    """A trade with what is left of it after its closes, and its margin changes."""

    trade: Trade
    closes: tuple[Close, ...]
    margin_changes: tuple[MarginChange, ...] = ()

    @cached_property  # asked for many times per valuation; a lot never changes
    def open_qty(self) -> Decimal:
        return self.trade.qty - sum((c.qty for c in self.closes), ZERO)

    def open_qty_at(self, moment: datetime) -> Decimal:
        """The quantity still open at ``moment`` (opened at or before it, less closes up to it)."""
        if self.trade.opened_at > moment:
            return ZERO
        return self.trade.qty - sum((c.qty for c in self.closes if c.closed_at <= moment), ZERO)

    @property
    def is_open(self) -> bool:
        return self.open_qty > 0

    @property
    def initial_margin(self) -> Decimal:
        t = self.trade
        return initial_margin(t.kind, self.open_qty, t.price_usdt, t.leverage)

    @property
    def margin_mode(self) -> MarginMode | None:
        modes = [c.mode for c in self.margin_changes if c.mode is not None]
        return modes[-1] if modes else self.trade.margin_mode

    @property
    def added_margin(self) -> Decimal:
        """Isolated margin added beyond IM (a switch to cross releases it). Stays until the lot is
        fully closed: a partial close leaves it with the rest, which only moves liquidation away."""
        return sum((c.amount for c in self.margin_changes), ZERO)

    @property
    def margin(self) -> Decimal:
        """The margin the position holds: IM, plus added margin when isolated."""
        if self.margin_mode is MarginMode.ISOLATED:
            return self.initial_margin + self.added_margin
        return self.initial_margin

    @property
    def realized_pnl(self) -> Decimal:
        return sum((c.realized_pnl for c in self.closes), ZERO)

    @property
    def fees(self) -> Decimal:
        return self.trade.fee + sum((c.fee for c in self.closes), ZERO)

    def entry_fee_share(self, close_qty: Decimal, already_closed: Decimal) -> Decimal:
        """The part of the entry fee that ``close_qty`` carries; the last close takes the remainder,
        so the shares of a fully closed trade add up to its entry fee exactly."""
        fee, qty = self.trade.fee, self.trade.qty
        if already_closed + close_qty >= qty:
            return fee - q8(fee * already_closed / qty)
        return q8(fee * (already_closed + close_qty) / qty) - q8(fee * already_closed / qty)

    def net_pnl(self) -> Decimal:
        """Net realized PnL of the closed part: gross − entry fee share − exit fees."""
        closed = sum((c.qty for c in self.closes), ZERO)
        share = self.entry_fee_share(closed, ZERO) if closed else ZERO
        return self.realized_pnl - share - sum((c.fee for c in self.closes), ZERO)


def build_lots(
    trades: Iterable[Trade], closes: Iterable[Close], margin_changes: Iterable[MarginChange] = ()
) -> list[Lot]:
    """Fold trades, their closes and their margin changes into lots, in trade order."""
    by_trade: dict[int, list[Close]] = {}
    for close in closes:
        by_trade.setdefault(close.trade_id, []).append(close)
    changes: dict[int, list[MarginChange]] = {}
    for change in margin_changes:
        changes.setdefault(change.trade_id, []).append(change)
    return [
        Lot(t, tuple(by_trade.get(t.id, ())), tuple(changes.get(t.id, ()))) for t in sorted(trades, key=lambda t: t.id)
    ]


def wallet_balance(flows: Iterable[CashFlow]) -> Decimal:
    """W = deposits − withdrawals + realized PnL − fees + funding (flows are signed)."""
    return sum((f.amount for f in flows), ZERO)


def flow_total(flows: Iterable[CashFlow], kind: FlowKind) -> Decimal:
    return sum((f.amount for f in flows if f.kind is kind), ZERO)


@dataclass(frozen=True)
class LotToClose:
    """How much of one open lot a close takes."""

    lot: Lot
    qty: Decimal


def allocate_close(lots: Sequence[Lot], qty: Decimal | None = None, pct: Decimal | None = None) -> list[LotToClose]:
    """Split a close over open lots, oldest first.

    ``qty`` closes that many units, ``pct`` that percentage of the open quantity, neither closes all.
    Returns the slices; the caller checks ``qty`` against the open total first.
    """
    total = sum((lot.open_qty for lot in lots), ZERO)
    if pct is not None:
        qty = total * pct / HUNDRED
    remaining = total if qty is None else min(qty, total)
    slices = []
    for lot in sorted(lots, key=lambda lot: (lot.trade.opened_at, lot.trade.id)):
        if remaining <= 0:
            break
        take = min(lot.open_qty, remaining)
        if take > 0:
            slices.append(LotToClose(lot, q8(take)))
            remaining -= take
    return [s for s in slices if s.qty > 0]
