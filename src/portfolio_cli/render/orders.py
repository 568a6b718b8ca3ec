"""Amendments and pending orders as rich renderables."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text

from portfolio_cli.formatting import pct, price
from portfolio_cli.services.amend import AmendResult, Levels


def _levels(levels: Levels) -> str:
    parts = [
        f"stop-loss {price(levels.stop_loss) if levels.stop_loss is not None else 'none'}",
        f"take-profit {price(levels.take_profit) if levels.take_profit is not None else 'none'}",
    ]
    if levels.trailing_pct is not None:
        level = f" at {price(levels.trailing_stop)}" if levels.trailing_stop is not None else ""
        parts.append(f"trailing stop {pct(levels.trailing_pct)}%{level}")
    else:
        parts.append("trailing stop none")
    return ", ".join(parts)


def amend_view(result: AmendResult) -> Group:
    head = Text(
        f"Amended trade {result.trade_id} {result.side} {result.symbol} from {result.at:%Y-%m-%d %H:%M} UTC "
        f"(price {price(result.price)})"
    )
    return Group(head, Text(f"  before: {_levels(result.before)}"), Text(f"  after:  {_levels(result.after)}"))
