"""The pre-trade checks that refuse a trade before anything is written: the exchange's rules for the
market (``engine.market``) and the trader's risk limits."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from portfolio_cli import formatting as fmt
from portfolio_cli.engine.accounting import Lot
from portfolio_cli.engine.market import MarketRules, PriceBand
from portfolio_cli.engine.symbols import base_of, quote_of
from portfolio_cli.money import HUNDRED, ZERO, pct_of, round_down_to_step


def price_band_refusal(
    price: Decimal, reference: Decimal, band: PriceBand, buy: bool, symbol: str, what: str
) -> Refusal | None:
    """A ``price`` outside the band around ``reference`` (described by ``what``: the last price, the
    mark, the candle then) is off the market: Binance would reject the order."""
    low, high = band.limits(reference, buy)
    if low <= price <= high:
        return None
    side = "buy" if buy else "sell"
    return Refusal(
        "price band",
        f"a {side} of {symbol} at {price.normalize():f} is outside Binance's {band.source} band around {what} "
        f"{reference.normalize():f}: {low.normalize():f} to {high.normalize():f}; --off-market records it anyway",
    )


@dataclass(frozen=True)
class Conformed:
    """A quantity put to the market's lot step."""

    qty: Decimal
    rounded_from: Decimal | None  # the asked quantity when it was rounded down to the step


@dataclass(frozen=True)
class Refusal:
    """A rule a trade breaks. A ``solvency`` rule spends money the account does not have (free margin):
    ``--force`` never overrides it; every other rule is the trader's preference, which it does."""

    rule: str
    message: str
    config_key: str | None = None
    solvency: bool = False

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
            f"{fmt.qty(qty)} {rules.symbol} is below the minimum of {fmt.qty(rules.min_qty or rules.amount_step)}",
        )
    if rules.max_market_qty and conformed > rules.max_market_qty:
        return Refusal(
            "exchange market-order maximum",
            f"{conformed} {rules.symbol} is above the largest market order Binance takes, "
            f"{rules.max_market_qty.normalize():f} (MARKET_LOT_SIZE)",
        )
    notional = conformed * price
    quote = quote_of(rules.symbol)
    if rules.min_notional is not None and notional < rules.min_notional:
        return Refusal(
            "exchange minimum notional",
            f"{fmt.qty(conformed)} × {fmt.price(price, rules.price_step)} = {fmt.qty(notional)} {quote} is below "
            f"{rules.symbol}'s minimum of {fmt.qty(rules.min_notional)} {quote}",
        )
    return Conformed(conformed, qty if conformed != qty else None)


@dataclass(frozen=True)
class Exposure:
    """An open position as the risk rules see it, in USDT."""

    symbol: str
    asset: str  # the base currency: BTC for BTC/USDT and for BTC/ETH alike
    committed: Decimal  # margin held (spot: cost)
    risk: Decimal  # qty·|entry − stop| with a stop, else what is committed


def exposure(
    symbol: str, qty: Decimal, price: Decimal, price_usdt: Decimal, committed: Decimal, stop: Decimal | None
) -> Exposure:
    """A position's risk: ``qty·|entry − stop|`` converted to USDT when it has a stop, else its margin."""
    risk = qty * abs(price - stop) * price_usdt / price if stop is not None else committed
    return Exposure(symbol, base_of(symbol), committed, risk)


def lot_exposure(lot: Lot) -> Exposure:
    t = lot.trade
    return exposure(t.symbol, lot.open_qty, t.price, t.price_usdt, lot.margin, t.stop_loss)


@dataclass(frozen=True)
class TradeCheck:
    """A proposed opening trade and the portfolio before it, all in USDT."""

    new: Exposure
    spot: bool
    notional: Decimal
    fee: Decimal
    leverage: int
    equity: Decimal
    free_margin: Decimal
    margin_equity: Decimal
    margin_used: Decimal
    positions: tuple[Exposure, ...]
    correlated_assets: frozenset[str] | None = None  # the new asset's group; None when unknown


@dataclass(frozen=True)
class RiskLimits:
    """The pre-trade risk rules (config [risk]), as the engine checks them."""

    min_notional_usdt: Decimal
    min_notional_equity_pct: Decimal
    max_position_pct: Decimal
    max_total_risk_pct: Decimal
    max_open_positions: int
    max_positions_per_symbol: int
    min_leverage: int
    max_leverage: int
    min_margin_level_pct: Decimal
    cash_reserve_pct: Decimal
    max_correlated_pct: Decimal


@dataclass(frozen=True)
class Verdict:
    """One rule's verdict on a proposed trade, with its figures (what a dry run shows)."""

    rule: str
    passed: bool
    figures: str  # what the trade gives and what the rule allows
    config_key: str | None = None
    solvency: bool = False
    refusal: Refusal | None = None  # when it fails: the refusal's words


def check_open(check: TradeCheck, limits: RiskLimits) -> list[Refusal]:
    """Every rule the trade breaks; empty when it may go ahead."""
    return [v.refusal for v in judge_open(check, limits) if v.refusal is not None]


def judge_open(check: TradeCheck, limits: RiskLimits) -> list[Verdict]:
    """Every rule's verdict on the trade, in order, passed or not, with its figures."""
    verdicts: list[Verdict] = []
    new, equity = check.new, check.equity
    equity_after = equity - check.fee

    def share(pct: Decimal) -> Decimal:
        return equity * pct / HUNDRED

    def judge(rule: str, passed: bool, figures: str, key: str | None, message: str, solvency: bool = False) -> None:
        refusal = None if passed else Refusal(rule, message, key, solvency)
        verdicts.append(Verdict(rule, passed, figures, key, solvency, refusal))

    judge(
        "leverage bounds",
        limits.min_leverage <= check.leverage <= limits.max_leverage,
        f"{check.leverage}x within {limits.min_leverage}x-{limits.max_leverage}x",
        "risk.min_leverage / risk.max_leverage",
        f"{check.leverage}x is outside {limits.min_leverage}x-{limits.max_leverage}x",
    )
    floor = max(limits.min_notional_usdt, share(limits.min_notional_equity_pct))
    judge(
        "minimum position size",
        check.notional >= floor,
        f"notional {usdt(check.notional)} USDT, at least {usdt(floor)} USDT",
        "risk.min_notional_usdt / risk.min_notional_equity_pct",
        f"notional {usdt(check.notional)} USDT is below {usdt(floor)} USDT "
        f"(the larger of {usdt(limits.min_notional_usdt)} USDT and "
        f"{fmt.pct(limits.min_notional_equity_pct)}% of equity)",
    )
    in_asset = sum((p.committed for p in check.positions if p.asset == new.asset), ZERO) + new.committed
    judge(
        "maximum position size",
        in_asset <= share(limits.max_position_pct),
        f"{usdt(in_asset)} USDT in {new.asset}, at most {usdt(share(limits.max_position_pct))} USDT "
        f"({limits.max_position_pct}% of equity)",
        "risk.max_position_pct",
        f"{usdt(in_asset)} USDT would be committed to {new.asset}, above "
        f"{limits.max_position_pct}% of equity ({usdt(share(limits.max_position_pct))} USDT)",
    )
    total_risk = sum((p.risk for p in check.positions), ZERO) + new.risk
    judge(
        "maximum total risk",
        total_risk <= share(limits.max_total_risk_pct),
        f"total risk {usdt(total_risk)} USDT (this trade {usdt(new.risk)}), at most "
        f"{usdt(share(limits.max_total_risk_pct))} USDT ({limits.max_total_risk_pct}% of equity)",
        "risk.max_total_risk_pct",
        f"total risk would be {usdt(total_risk)} USDT (this trade {usdt(new.risk)}), above "
        f"{limits.max_total_risk_pct}% of equity ({usdt(share(limits.max_total_risk_pct))} USDT); "
        "a stop-loss limits a position's risk",
    )
    judge(
        "maximum open positions",
        len(check.positions) < limits.max_open_positions,
        f"{len(check.positions)} open before it, at most {limits.max_open_positions}",
        "risk.max_open_positions",
        f"{len(check.positions)} positions are open, the limit is {limits.max_open_positions}",
    )
    same_symbol = sum(1 for p in check.positions if p.symbol == new.symbol)
    judge(
        "maximum positions per symbol",
        same_symbol < limits.max_positions_per_symbol,
        f"{same_symbol} {new.symbol} open before it, at most {limits.max_positions_per_symbol}",
        "risk.max_positions_per_symbol",
        f"{same_symbol} {new.symbol} positions are open, the limit is {limits.max_positions_per_symbol}",
    )
    margin_needed = new.committed + check.fee
    judge(
        "free margin",
        margin_needed <= check.free_margin,
        f"needs {usdt(margin_needed)} USDT (margin {usdt(new.committed)} + fee {usdt(check.fee)}), "
        f"{usdt(check.free_margin)} USDT free",
        None,
        f"the trade needs {usdt(margin_needed)} USDT (margin {usdt(new.committed)} + fee "
        f"{usdt(check.fee)}) but only {usdt(check.free_margin)} USDT is free",
        solvency=True,
    )
    reserve = equity_after * limits.cash_reserve_pct / HUNDRED
    free_after = check.free_margin - margin_needed
    judge(
        "cash reserve",
        free_after >= reserve or margin_needed > check.free_margin,
        f"free margin after {usdt(free_after)} USDT, at least {usdt(reserve)} USDT ({limits.cash_reserve_pct}%)",
        "risk.cash_reserve_pct",
        f"free margin would fall to {usdt(free_after)} USDT, below the {limits.cash_reserve_pct}% "
        f"reserve ({usdt(reserve)} USDT)",
    )
    level = margin_level_after(check)
    judge(
        "minimum margin level",
        level is None or level >= limits.min_margin_level_pct,
        f"margin level after {'n/a' if level is None else f'{level:.2f}%'}, at least {limits.min_margin_level_pct}%",
        "risk.min_margin_level_pct",
        f"margin level would be {fmt.pct(level)}%, below {fmt.pct(limits.min_margin_level_pct)}%"
        if level is not None
        else "",
    )
    group = check.correlated_assets
    in_group = ZERO
    if group is not None and len(group) > 1:
        in_group = sum((p.committed for p in check.positions if p.asset in group), ZERO) + new.committed
    judge(
        "correlated exposure",
        in_group <= share(limits.max_correlated_pct),
        (
            f"{usdt(in_group)} USDT in {', '.join(sorted(group))}, "
            f"at most {usdt(share(limits.max_correlated_pct))} USDT"
            if group is not None and len(group) > 1
            else "no correlated asset held" if group is not None else "correlation unknown"
        ),
        "risk.max_correlated_pct",
        f"{usdt(in_group)} USDT would be committed to correlated assets {', '.join(sorted(group or ()))}, "
        f"above {limits.max_correlated_pct}% of equity ({usdt(share(limits.max_correlated_pct))} USDT)",
    )
    return verdicts


def margin_level_after(check: TradeCheck) -> Decimal | None:
    """``Em / M × 100`` once the trade is open: the fee leaves the wallet, a spot buy moves cash into
    holdings (out of margin equity), a margin trade adds its margin to ``M``."""
    margin_equity = check.margin_equity - check.fee - (check.notional if check.spot else ZERO)
    margin_used = check.margin_used + (ZERO if check.spot else check.new.committed)
    return pct_of(margin_equity, margin_used)


def usdt(value: Decimal) -> str:
    """Figures in a refusal: two places, rounded half up."""
    return fmt.money(value)
