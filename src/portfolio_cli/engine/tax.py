"""Tax lots: spot disposals matched to acquisitions by FIFO, LIFO or HIFO, as Form 8949 reports them.

- Per asset (the base currency: ``ETH/USDT`` and ``ETH/BTC`` both buy ETH), every spot buy is an
  acquisition and every spot close a disposal, valued in USDT at the fill.
- Cost basis of an acquisition = ``qty × price_usdt + buy fee``; proceeds of a disposal =
  ``qty × price_usdt − sell fee``.
- A disposal takes units from the acquisitions still open at its moment: FIFO oldest first, LIFO
  newest first, HIFO highest cost per unit first (ties: oldest first). The method is applied to the
  whole history, so a year's lots are what earlier years left.
- A disposal split across lots shares its proceeds, and a lot shares its cost, by quantity; the last
  piece takes the remainder, so the rows add up to the fills exactly.
- Units a close takes from its own trade's lot carry the cost its ledger PnL implies (``basis`` =
  proceeds + sell fee − realized PnL + its share of the entry fee), so a trade's gains add up to its
  net PnL in the ledger exactly, with no rounding of its own: the ledger rounds each close's PnL once,
  and recomputing cost and proceeds separately would round twice.
- Long term when disposed of after the first anniversary of the acquisition (held more than one year).
- In the trader's currency: each USDT amount divided by that currency's rate (USDT per unit) on the
  day it happened — an acquisition's cost and buy fee on the day of the buy, a disposal's proceeds and
  sell fee on the day of the sale — each rounded to 8 places; the gain is proceeds − cost − fees.
- Fees as their own column: a row's share of the buy fee and of the sell fee, by quantity.
- Wash sale (informational): a disposal at a loss with another acquisition of the same asset within
  ``WASH_SALE_DAYS`` (30) days before or after it (the US rule, IRC §1091).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from portfolio_cli.choices import Method
from portfolio_cli.money import ZERO, q8


class Term(StrEnum):
    SHORT = "short"
    LONG = "long"


@dataclass(frozen=True)
class Acquisition:
    trade_id: int
    asset: str
    at: datetime
    qty: Decimal
    cost: Decimal  # USDT, buy fee included


@dataclass(frozen=True)
class Disposal:
    close_id: int
    trade_id: int
    asset: str
    at: datetime
    qty: Decimal
    proceeds: Decimal  # USDT, sell fee deducted
    # The cost of these units when they come from the disposal's own trade: proceeds − the close's
    # net PnL in the ledger. None: share the lot's cost by quantity.
    basis: Decimal | None = None


@dataclass(frozen=True)
class TaxLotRow:
    asset: str
    qty: Decimal
    acquired_at: datetime
    disposed_at: datetime
    proceeds: Decimal
    cost_basis: Decimal
    gain: Decimal
    term: Term
    method: Method
    acquired_trade_id: int
    disposed_trade_id: int
    close_id: int


def holding_term(acquired: date, disposed: date) -> Term:
    """Long term when ``disposed`` is after the first anniversary of ``acquired`` (29 February's
    anniversary is 28 February)."""
    try:
        anniversary = acquired.replace(year=acquired.year + 1)
    except ValueError:
        anniversary = acquired.replace(year=acquired.year + 1, day=28)
    return Term.LONG if disposed > anniversary else Term.SHORT


def match_lots(acquisitions: Iterable[Acquisition], disposals: Iterable[Disposal], method: Method) -> list[TaxLotRow]:
    """Every disposal as rows, one per acquisition lot it draws on, in disposal order. A disposal
    larger than what is held is an error in the records (spot cannot go short)."""
    pending = sorted(acquisitions, key=lambda a: (a.at, a.trade_id))
    held: list[list] = []  # [acquisition, qty left, cost left]
    rows: list[TaxLotRow] = []
    for disposal in sorted(disposals, key=lambda d: (d.at, d.close_id)):
        while pending and pending[0].at <= disposal.at:
            a = pending.pop(0)
            held.append([a, a.qty, a.cost])
        lots = [lot for lot in held if lot[0].asset == disposal.asset and lot[1] > 0]
        if method is Method.LIFO:
            lots.sort(key=lambda lot: (lot[0].at, lot[0].trade_id), reverse=True)
        elif method is Method.HIFO:
            lots.sort(key=lambda lot: (-(lot[2] / lot[1]), lot[0].at, lot[0].trade_id))
        remaining, proceeds_left = disposal.qty, disposal.proceeds
        for lot in lots:
            if remaining <= 0:
                break
            acquisition, qty_left, cost_left = lot
            take = min(qty_left, remaining)
            if disposal.basis is not None and acquisition.trade_id == disposal.trade_id:
                cost = disposal.basis if take == disposal.qty else q8(disposal.basis * take / disposal.qty)
            else:
                cost = cost_left if take == qty_left else q8(cost_left * take / qty_left)
            proceeds = proceeds_left if take == remaining else q8(disposal.proceeds * take / disposal.qty)
            lot[1], lot[2] = qty_left - take, cost_left - cost
            remaining -= take
            proceeds_left -= proceeds
            rows.append(
                TaxLotRow(
                    asset=disposal.asset,
                    qty=take,
                    acquired_at=acquisition.at,
                    disposed_at=disposal.at,
                    proceeds=proceeds,
                    cost_basis=cost,
                    gain=proceeds - cost,
                    term=holding_term(acquisition.at.date(), disposal.at.date()),
                    method=method,
                    acquired_trade_id=acquisition.trade_id,
                    disposed_trade_id=disposal.trade_id,
                    close_id=disposal.close_id,
                )
            )
        if remaining > 0:
            raise ValueError(f"close {disposal.close_id} disposes of {remaining} {disposal.asset} more than was held")
    return rows


WASH_SALE_DAYS = 30


def fee_share(fee: Decimal, part: Decimal, whole: Decimal) -> Decimal:
    """A fee's share for ``part`` of ``whole`` units, to 8 places (all of it for the whole)."""
    return fee if part == whole else q8(fee * part / whole)


def in_currency(amount: Decimal, rate: Decimal) -> Decimal:
    """A USDT amount in a currency quoted at ``rate`` USDT per unit, to 8 places."""
    return q8(amount / rate)


def wash_sales(rows: Iterable[TaxLotRow], acquisitions: Iterable[Acquisition], days: int = WASH_SALE_DAYS) -> set[int]:
    """The indexes of the rows that are losses with another acquisition of their asset within ``days``
    days before or after the sale (the acquisition the row's own units came from does not count)."""
    bought: dict[str, list[tuple[datetime, int]]] = {}
    for a in acquisitions:
        bought.setdefault(a.asset, []).append((a.at, a.trade_id))
    window = timedelta(days=days)
    flagged = set()
    for i, row in enumerate(rows):
        if row.gain >= 0:
            continue
        if any(
            abs(at - row.disposed_at) <= window and trade_id != row.acquired_trade_id
            for at, trade_id in bought.get(row.asset, ())
        ):
            flagged.add(i)
    return flagged


def term_totals(rows: Iterable[TaxLotRow]) -> dict[Term, Decimal]:
    totals = dict.fromkeys(Term, ZERO)
    for row in rows:
        totals[row.term] += row.gain
    return totals
