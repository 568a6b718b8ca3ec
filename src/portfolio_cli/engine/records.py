"""The ledger's records as the engine sees them: small immutable values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from portfolio_cli.choices import Kind, MarginMode, Side  # the command line's choices too


class FlowKind(StrEnum):
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    FEE = "fee"
    REALIZED_PNL = "realized_pnl"
    FUNDING = "funding"
    LIQUIDATION_FEE = "liquidation_fee"


class CloseReason(StrEnum):
    MANUAL = "manual"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    LIQUIDATION = "liquidation"  # Binance's: isolated LP touched, or the cross margin ratio reached 100 %
    MARGIN_CALL = "margin_call"  # the account rule: the most losing cross position, below margin_call_pct
    TRAILING_STOP = "trailing_stop"  # the trailing stop, the best price since it was set less its percentage

    @property
    def forced_out(self) -> bool:
        """Closed by the margin rules (liquidation or margin call): its fee is a liquidation fee."""
        return self in (CloseReason.LIQUIDATION, CloseReason.MARGIN_CALL)


@dataclass(frozen=True)
class Portfolio:
    """A named portfolio and the moment it was created (its first possible record)."""

    id: int
    name: str
    created_at: datetime


@dataclass(frozen=True)
class CashFlow:
    """A signed movement of the wallet balance, in USDT."""

    id: int
    kind: FlowKind
    amount: Decimal
    at: datetime
    trade_id: int | None = None
    note: str | None = None


@dataclass(frozen=True)
class Trade:
    """One opening fill. ``price`` is in the pair's quote currency; ``price_usdt`` converts it."""

    id: int
    symbol: str
    side: Side
    kind: Kind
    margin_mode: MarginMode | None
    leverage: int
    qty: Decimal
    price: Decimal
    price_usdt: Decimal
    fee: Decimal
    opened_at: datetime
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    strategy: str | None = None
    note: str | None = None
    forced: bool = False  # opened with --force over the risk rules
    trailing_pct: Decimal | None = None  # a trailing stop from the fill price, in percent


@dataclass(frozen=True)
class Amendment:
    """A change of a trade's exit levels, in force from ``at``. A level left None is unchanged; one
    named in ``removed`` (``stop_loss``, ``take_profit``, ``trailing_stop``) is taken off. A trailing
    stop set here follows the best price from ``reference``, the price at ``at``."""

    id: int
    trade_id: int
    at: datetime
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    trailing_pct: Decimal | None = None
    reference: Decimal | None = None
    removed: tuple[str, ...] = ()
    note: str | None = None


class OrderType(StrEnum):
    LIMIT = "limit"
    STOP_ENTRY = "stop_entry"


class OrderStatus(StrEnum):
    OPEN = "open"
    FILLED = "filled"
    CANCELLED = "cancelled"  # by the trader, or refused by a risk rule at the fill
    EXPIRED = "expired"


@dataclass(frozen=True)
class Order:
    """A pending order to open a position: a limit at ``price`` or a stop-entry triggered at it.
    ``reserved`` is the margin it holds while open (spot: its cost), in USDT."""

    id: int
    symbol: str
    side: Side
    kind: Kind
    margin_mode: MarginMode | None
    leverage: int
    order_type: OrderType
    price: Decimal
    qty: Decimal
    reserved: Decimal
    placed_at: datetime
    expires_at: datetime | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    trailing_pct: Decimal | None = None
    strategy: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class OrderEnd:
    """An order's end, in force from ``at``: filled (as ``trade_id``), cancelled (``reason``) or expired."""

    id: int
    order_id: int
    at: datetime
    status: OrderStatus
    trade_id: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Close:
    """A (partial) close of one trade. ``realized_pnl`` is gross, in USDT."""

    id: int
    trade_id: int
    qty: Decimal
    price: Decimal
    price_usdt: Decimal
    fee: Decimal
    realized_pnl: Decimal
    closed_at: datetime
    note: str | None = None
    reason: CloseReason = CloseReason.MANUAL


@dataclass(frozen=True)
class MarginChange:
    """Isolated margin added (+) or removed (−), or a switch of margin mode (``mode`` set).

    A switch to cross releases the margin added so far, as a negative ``amount`` on the same record.
    """

    id: int
    trade_id: int
    at: datetime
    amount: Decimal
    mode: MarginMode | None = None


class VoidKind(StrEnum):
    """What a void can reverse (``portfolio void KIND:ID``)."""

    TRADE = "trade"  # an opening fill, with its entry fee
    CLOSE = "close"  # a closing fill, with its realized PnL and fee
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    MARGIN_CHANGE = "margin_change"  # margin added or removed, or a mode switch
    AMENDMENT = "amendment"  # a change of a trade's exit levels


@dataclass(frozen=True)
class Void:
    """A mistaken record reversed as if it had never been booked: itself a record, in force from when
    it was entered (``at``). ``rows`` are what it takes out of every fold: the voided record and the
    cash flows booked with it, each as (``trade``, ``close``, ``cash_flow``, ``margin_change`` or
    ``amendment``, id). ``record_at`` is the voided record's own effective time: the derived state
    from it on is rebuilt, as after a record dated then."""

    id: int
    at: datetime
    record: VoidKind
    record_id: int
    record_at: datetime
    reason: str
    summary: str  # what was voided, in words
    rows: tuple[tuple[str, int], ...] = ()
    cash: Decimal = Decimal(0)  # the wallet moves the voided record booked (undone by the void)


@dataclass(frozen=True)
class Candle:
    """One exchange candle (prices in the pair's quote currency); ``timeframe`` as ccxt names it."""

    symbol: str
    timeframe: str
    open_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal


@dataclass(frozen=True)
class SnapshotPosition:
    """One open lot as a snapshot valued it, with the price used and that price's time."""

    trade_id: int
    symbol: str
    side: Side
    kind: Kind
    qty: Decimal
    entry_usdt: Decimal
    mark: Decimal
    mark_usdt: Decimal
    price_at: datetime
    price_source: str
    value: Decimal
    unrealized_pnl: Decimal
    margin: Decimal


@dataclass(frozen=True)
class Snapshot:
    """A portfolio's state on one UTC day, valued at ``taken_at``. ``backfilled`` days were rebuilt
    afterwards from the ledger and the exchange's daily candles rather than taken on the day."""

    portfolio_id: int
    day: date
    taken_at: datetime
    backfilled: bool
    equity: Decimal
    wallet_balance: Decimal
    free_margin: Decimal
    spot_holdings: Decimal
    margin_used: Decimal
    margin_level_pct: Decimal | None
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    fees: Decimal
    liquidation_fees: Decimal
    funding: Decimal
    deposits: Decimal
    withdrawals: Decimal
    positions: tuple[SnapshotPosition, ...] = ()


class ClosedTrade(NamedTuple):  # a tuple: a report builds 100,000 of them
    net_pnl: Decimal  # gross − entry fee − exit fees
    opened_at: datetime
    closed_at: datetime
    strategy: str | None = None
    symbol: str = ""
    side: str = "long"
    exit_reason: str = "manual"  # the reason of the close that closed it (a CloseReason value)


class TradePart(NamedTuple):
    """Trades sharing a strategy, symbol and side, with their flows within a range (fees, realized PnL,
    funding) summed; ``trade_id`` names the trade when the part is a single open one."""

    strategy: str | None
    symbol: str
    side: str
    trades: int
    flows: Decimal
    trade_id: int | None = None


@dataclass(frozen=True)
class RebalanceEvent:
    """An executed rebalance: its weights before and after (percent by asset, USDT for cash) and the
    trades it booked."""

    id: int
    portfolio_id: int
    at: datetime
    strategy: str
    mode: str
    forced: bool  # run inside the minimum interval with --force
    drift_before: Decimal
    drift_after: Decimal
    fees: Decimal
    before: tuple[tuple[str, Decimal | None, Decimal], ...]  # asset, target, weight
    after: tuple[tuple[str, Decimal | None, Decimal], ...]
    trades: tuple[dict, ...]  # asset, side, qty, price, fee, trade_id or close_ids (as text)
