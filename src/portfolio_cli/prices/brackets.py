"""Where each symbol's leverage brackets come from, first match wins:

1. ``[[trading.brackets."BTC/USDT"]]`` in the config (per symbol);
2. ``trading.maintenance_margin_rates`` (a flat rate for one symbol: one bracket, no maintenance amount);
3. ``trading.brackets_file``: Binance's ``/fapi/v1/leverageBracket`` answer saved by the trader
   (Binance serves it only with an API key, which this tool never asks for);
4. the bundled snapshot (``brackets.json``, dated in its ``as_of``);
5. the flat ``trading.maintenance_margin_rate`` for a symbol none of these know.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from portfolio_cli.config import Trading
from portfolio_cli.engine.brackets import Brackets, BracketTable, build_table, flat_table, parse_leverage_brackets
from portfolio_cli.engine.symbols import base_of, quote_of
from portfolio_cli.errors import ConfigInvalid


@lru_cache(maxsize=1)
def bundled_snapshot() -> tuple[str, dict[str, BracketTable]]:
    """(as-of date, tables by Binance market id) of the snapshot shipped with the tool."""
    payload = json.loads(files("portfolio_cli.prices").joinpath("brackets.json").read_text(encoding="utf-8"))
    as_of = payload["as_of"]
    return as_of, parse_leverage_brackets(payload, f"Binance snapshot {as_of}")


@lru_cache(maxsize=4)
def _file_tables(path: Path, mtime_ns: int) -> dict[str, BracketTable]:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigInvalid(f"cannot read trading.brackets_file {path}: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError):
        raise ConfigInvalid(f"trading.brackets_file {path} is not JSON") from None
    try:
        return parse_leverage_brackets(payload, f"file {path.name}")
    except ValueError as exc:
        raise ConfigInvalid(f"trading.brackets_file {path}: {exc}") from None


def file_tables(path: Path) -> dict[str, BracketTable]:
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        raise ConfigInvalid(f"trading.brackets_file not found: {path}") from None
    return _file_tables(path, mtime)


def market_id(symbol: str) -> str:
    """Binance's id of the perpetual of ``symbol``: ``BTC/USDT`` → ``BTCUSDT``."""
    return base_of(symbol) + quote_of(symbol)


def bracket_source(trading: Trading) -> Brackets:
    """The lookup a valuation uses: symbol → its bracket table."""
    snapshot = dict(bundled_snapshot()[1])
    if trading.brackets_file is not None:
        snapshot.update(file_tables(trading.brackets_file))
    configured = {}
    for symbol, rows in trading.brackets.items():
        floors = [0, *(row.cap for row in rows[:-1])]
        raw = [
            {"notionalFloor": floor, "notionalCap": row.cap, "initialLeverage": row.max_leverage,
             "maintMarginRatio": row.mmr, "cum": row.cum}
            for floor, row in zip(floors, rows, strict=True)
        ]
        try:
            configured[symbol] = build_table(symbol, raw, "config")
        except ValueError as exc:
            raise ConfigInvalid(f"invalid config: trading.brackets.{symbol}: {exc}") from None
    cache: dict[str, BracketTable] = {}

    def lookup(symbol: str) -> BracketTable:
        if symbol not in cache:
            if symbol in configured:
                table = configured[symbol]
            elif symbol in trading.maintenance_margin_rates:
                table = flat_table(symbol, trading.maintenance_margin_rates[symbol], source="config flat rate")
            elif market_id(symbol) in snapshot:
                table = snapshot[market_id(symbol)]
            else:
                table = flat_table(symbol, trading.maintenance_margin_rate, source="flat rate (no bracket data)")
            cache[symbol] = table
        return cache[symbol]

    return lookup
