"""Exchange trading rules and the pre-trade checks that refuse a trade before anything is written."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from portfolio_cli.money import HUNDRED, round_down_to_step


@dataclass(frozen=True)
class MarketRules:
    """Binance's rules for a pair: lot step, minimum quantity, minimum notional (in the quote currency)."""

    symbol: str
    amount_step: Decimal | None
    min_qty: Decimal | None
    min_notional: Decimal | None
    active: bool = True


@dataclass(frozen=True)
class Conformed:
    qty: Decimal
    rounded_from: Decimal | None  # the asked quantity when it was rounded down to the step


@dataclass(frozen=True)
class Refusal:
    rule: str
    message: str
    config_key: str | None = None

    def __str__(self) -> str:
        where = f" (config: {self.config_key})" if self.config_key else ""
        return f"refused by {self.rule}: {self.message}{where}"


def conform_qty(qty: Decimal, price: Decimal, rules: MarketRules) -> Conformed | Refusal:
    """Round ``qty`` down to the lot step and check it against the minimums, as Binance would."""
    if not rules.active:
        return Refusal("market status", f"{rules.symbol} is not trading on Binance")
    conformed = round_down_to_step(qty, rules.amount_step) if rules.amount_step else qty
    conformed = conformed.normalize() if conformed else conformed
    if conformed <= 0 or (rules.min_qty is not None and conformed < rules.min_qty):
        return Refusal(
            "exchange minimum quantity",
            f"{qty} {rules.symbol} is below the minimum of {rules.min_qty or rules.amount_step}",
        )
    notional = conformed * price
    if rules.min_notional is not None and notional < rules.min_notional:
        return Refusal(
            "exchange minimum notional",
            f"{conformed} × {price} = {notional} is below {rules.symbol}'s minimum of {rules.min_notional}",
        )
    return Conformed(conformed, qty if conformed != qty else None)


@dataclass(frozen=True)
class TradeCheck:
    """What the pre-trade rules need to know about a proposed opening trade, all in USDT."""

    notional: Decimal
    margin_required: Decimal
    fee: Decimal
    leverage: int
    equity: Decimal
    free_margin: Decimal
    open_positions: int


@dataclass(frozen=True)
class RiskLimits:
    min_notional_usdt: Decimal
    min_notional_equity_pct: Decimal
    max_open_positions: int
    max_leverage: int


def check_open(check: TradeCheck, limits: RiskLimits) -> list[Refusal]:
    """Every rule the trade breaks; empty when it may go ahead."""
    refusals = []
    if check.leverage > limits.max_leverage:
        refusals.append(
            Refusal("maximum leverage", f"{check.leverage}x is above {limits.max_leverage}x", "risk.max_leverage")
        )
    floor = max(limits.min_notional_usdt, check.equity * limits.min_notional_equity_pct / HUNDRED)
    if check.notional < floor:
        refusals.append(
            Refusal(
                "minimum position size",
                f"notional {check.notional:.2f} USDT is below {floor:.2f} USDT "
                f"(the larger of {limits.min_notional_usdt} USDT and {limits.min_notional_equity_pct}% of equity)",
                "risk.min_notional_usdt / risk.min_notional_equity_pct",
            )
        )
    if check.open_positions >= limits.max_open_positions:
        refusals.append(
            Refusal(
                "maximum open positions",
                f"{check.open_positions} positions are open, the limit is {limits.max_open_positions}",
                "risk.max_open_positions",
            )
        )
    needed = check.margin_required + check.fee
    if needed > check.free_margin:
        refusals.append(
            Refusal(
                "free margin",
                f"the trade needs {needed:.2f} USDT (margin {check.margin_required:.2f} + fee {check.fee:.2f}) "
                f"but only {check.free_margin:.2f} USDT is free",
            )
        )
    return refusals
