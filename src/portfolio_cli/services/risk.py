"""Risk inputs that need market history: correlation groups and betas from daily candles."""

from __future__ import annotations

from datetime import timedelta

from portfolio_cli.engine.stats import beta, closes_by_day, correlated_groups, daily_returns, group_of
from portfolio_cli.engine.symbols import BASE_CURRENCY, base_of
from portfolio_cli.errors import NotFound
from portfolio_cli.session import Session

BENCHMARK = "BTC/USDT"


def usdt_pair(asset: str) -> str:
    return f"{asset}/{BASE_CURRENCY}"


def daily_returns_of(session: Session, symbols: set[str], days: int) -> dict[str, dict]:
    """Daily returns over the last ``days`` days per symbol, from the ledger's candle cache (missing
    days fetched unless offline). A symbol without history, or not listed on Binance, is left out."""
    now = session.clock()
    since = now - timedelta(days=days + 1)
    book = session.prices
    result = {}
    for symbol in sorted(symbols):
        try:
            candles = book.candles(symbol, "1d", since, now).candles
        except NotFound:
            continue
        returns = daily_returns(closes_by_day(candles))
        if returns:
            result[symbol] = returns
    return result


def asset_groups(session: Session, assets: set[str], days: int, threshold: float) -> tuple[list[set[str]], list[str]]:
    """The assets joined by daily-return correlation above ``threshold`` (every asset in some group,
    alone or not), and the assets with no daily history (left out)."""
    returns = daily_returns_of(session, {usdt_pair(a) for a in assets}, days)
    by_asset = {base_of(symbol): r for symbol, r in returns.items()}
    return correlated_groups(by_asset, threshold), sorted(assets - set(by_asset))


def correlated_assets(session: Session, asset: str, others: set[str], days: int, threshold: float):
    """The new asset's correlation group among the assets already held, or None when the history
    needed is missing (the rule is then skipped with a warning)."""
    others = others - {asset, BASE_CURRENCY}
    if not others or asset == BASE_CURRENCY:
        return frozenset({asset})
    pairs = {usdt_pair(a): a for a in others | {asset}}
    returns = daily_returns_of(session, set(pairs), days)
    missing = sorted(a for p, a in pairs.items() if p not in returns)
    if missing:
        session.warn(f"correlation rule not checked: no daily history for {', '.join(missing)}")
        return None
    groups = correlated_groups({pairs[p]: r for p, r in returns.items()}, threshold)
    return frozenset(group_of(asset, groups))


def betas_to_btc(session: Session, symbols: set[str], days: int) -> dict[str, float]:
    """Each symbol's beta to BTC from daily candles, by the symbol's base asset against USDT.
    Unknown ones are left out (the caller uses 1)."""
    pairs = {symbol: usdt_pair(base_of(symbol)) for symbol in symbols}
    returns = daily_returns_of(session, set(pairs.values()) | {BENCHMARK}, days)
    benchmark = returns.get(BENCHMARK)
    if benchmark is None:
        return {}
    betas = {}
    for symbol, pair in pairs.items():
        if pair == BENCHMARK:
            betas[symbol] = 1.0
        elif pair in returns and (b := beta(returns[pair], benchmark)) is not None:
            betas[symbol] = b
    return betas
