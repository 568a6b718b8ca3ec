"""Unified ``BASE/QUOTE`` symbols and the USDT conversion they need."""

from __future__ import annotations

import re

BASE_CURRENCY = "USDT"
_SYMBOL = re.compile(r"[A-Z0-9]{1,20}/[A-Z0-9]{1,20}")


# Quote currencies Binance lists pairs in, longest first: ``BTCUSDT`` is BTC/USDT, ``ETHBTC`` ETH/BTC.
_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR")
_JOINED = re.compile(r"^[A-Z0-9]{2,25}$")


def normalize_symbol(text: str) -> str | None:
    """``btc/usdt`` or Binance's own ``BTCUSDT`` -> ``BTC/USDT``; None when the text is not a pair."""
    text = text.strip()
    # ASCII before upper-casing: "ſ".upper() is "S", which would make "ſol/uſdt" SOL/USDT.
    symbol = text.upper() if text.isascii() else ""
    if "/" not in symbol and _JOINED.match(symbol):
        quote = next((q for q in _QUOTES if symbol.endswith(q) and len(symbol) > len(q)), None)
        symbol = f"{symbol[: -len(quote)]}/{quote}" if quote else symbol
    if not _SYMBOL.fullmatch(symbol):
        return None
    base, quote = symbol.split("/")
    return None if base == quote else symbol


PERPETUAL_SETTLE = ":USDT"  # ccxt's unified linear perpetual: BTC/USDT:USDT


def perpetual_of(symbol: str) -> str:
    """The USDⓈ-M perpetual a margin position on ``symbol`` trades: ``BTC/USDT`` → ``BTC/USDT:USDT``."""
    return symbol if is_perpetual(symbol) else symbol + PERPETUAL_SETTLE


def is_perpetual(symbol: str) -> bool:
    return symbol.endswith(PERPETUAL_SETTLE)


def spot_of(symbol: str) -> str:
    """``BTC/USDT:USDT`` → ``BTC/USDT``; a spot symbol is itself."""
    return symbol.removesuffix(PERPETUAL_SETTLE)


def market_id(symbol: str) -> str:
    """Binance's id of a spot pair or its perpetual: ``BTC/USDT`` and ``BTC/USDT:USDT`` → ``BTCUSDT``."""
    return spot_of(symbol).replace("/", "")


def quote_of(symbol: str) -> str:
    return spot_of(symbol).split("/")[1]


def base_of(symbol: str) -> str:
    return symbol.split("/")[0]


def conversion_pair(symbol: str) -> str | None:
    """The pair that converts ``symbol``'s quote currency to USDT, or None if it is quoted in USDT."""
    quote = quote_of(symbol)
    return None if quote == BASE_CURRENCY else f"{quote}/{BASE_CURRENCY}"


def symbols_to_price(symbols: set[str] | list[str]) -> list[str]:
    """The symbols plus the conversion pairs they need, sorted."""
    needed = set(symbols)
    needed.update(pair for symbol in symbols if (pair := conversion_pair(symbol)))
    return sorted(needed)
