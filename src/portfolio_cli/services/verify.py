"""Rebuild every derived figure from the ledger's records and report any difference.

What is checked: SQLite's integrity and foreign keys; every close's realized PnL against its fill
prices; each trade's cash flows (realized PnL and fees) against its trade and closes; no lot closed
beyond its quantity; that every row a void takes out is a record of the void's portfolio; and every
stored snapshot, recomputed from the records up to its moment at the prices it recorded; and each
trade's totals that the report reads (``trade_totals``), folded again from its records. The records
are the live ones (a voided record is in no figure). The ledger is only read.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from portfolio_cli.engine.accounting import realized_pnl
from portfolio_cli.engine.brackets import Brackets
from portfolio_cli.engine.history import RecordsSweep, marks_of, snapshot_of
from portfolio_cli.engine.records import CashFlow, Close, FlowKind, Portfolio, Snapshot, Trade
from portfolio_cli.engine.valuation import value_portfolio
from portfolio_cli.formatting import exact
from portfolio_cli.ledger import codec
from portfolio_cli.money import ZERO
from portfolio_cli.services.common import PortfolioRecords, brackets_of, records_of
from portfolio_cli.session import Session


@dataclass(frozen=True)
class Difference:
    portfolio: str | None
    record: str  # e.g. "close 12", "trade 7", "snapshot 2026-03-01"
    detail: str


@dataclass(frozen=True)
class VerifyReport:
    integrity: str
    portfolios: int
    trades: int
    closes: int
    cash_flows: int
    snapshots: int
    differences: list[Difference]
    ok: bool  # integrity passed and nothing differs


def verify(session: Session) -> VerifyReport:
    ledger = session.ledger
    integrity = "; ".join(row[0] for row in ledger.conn.execute("pragma integrity_check"))
    differences = [
        Difference(None, f"{row[0]} row {row[1]}", f"refers to a missing {row[2]} record")
        for row in ledger.conn.execute("pragma foreign_key_check")
    ]
    counts = dict.fromkeys(("trades", "closes", "cash_flows", "snapshots"), 0)
    portfolios = ledger.portfolios()
    for portfolio in portfolios:
        records = records_of(ledger, portfolio)
        counts["trades"] += len(records.trades)
        counts["closes"] += len(records.closes)
        counts["cash_flows"] += len(records.flows)
        differences += _check_trades(portfolio, records.trades, records.closes, records.flows)
        differences += _check_totals(portfolio, records, ledger.trade_totals(portfolio))
        differences += [
            Difference(portfolio.name, f"the report's {table} at {key}", "differ from the trades' totals and flows")
            for table, key in ledger.summaries_differing(portfolio)
        ]
        differences += [
            Difference(portfolio.name, f"void {void_id}", f"takes out {table} row {row_id}, no record of this portfolio")
            for void_id, table, row_id in ledger.void_strays(portfolio)
        ]
        snapshots = ledger.snapshots(portfolio, positions=True)
        counts["snapshots"] += len(snapshots)
        brackets = brackets_of(session.settings.for_portfolio(portfolio.name))
        sweep = records.sweep()
        for snapshot in sorted(snapshots, key=lambda s: s.taken_at):
            differences += _check_snapshot(portfolio, snapshot, sweep, brackets)
    ok = integrity == "ok" and not differences
    return VerifyReport(integrity, len(portfolios), **counts, differences=differences, ok=ok)


def _check_trades(
    portfolio: Portfolio, trades: list[Trade], closes: list[Close], flows: list[CashFlow]
) -> list[Difference]:
    found = []
    by_trade = {t.id: t for t in trades}
    closed: dict[int, Decimal] = {}
    booked: dict[int, Decimal] = {}
    charged: dict[int, Decimal] = {}
    for close in closes:
        trade = by_trade[close.trade_id]
        expected = realized_pnl(trade.side, close.qty, trade.price_usdt, close.price_usdt)
        if close.realized_pnl != expected:
            found.append(
                Difference(
                    portfolio.name,
                    f"close {close.id}",
                    f"realized PnL {exact(close.realized_pnl)}, its prices give {exact(expected)}",
                )
            )
        closed[close.trade_id] = closed.get(close.trade_id, ZERO) + close.qty
        booked[close.trade_id] = booked.get(close.trade_id, ZERO) + close.realized_pnl
        charged[close.trade_id] = charged.get(close.trade_id, ZERO) + close.fee
    paid: dict[int, Decimal] = {}
    realized: dict[int, Decimal] = {}
    for flow in flows:
        if flow.trade_id is None:
            continue
        if flow.kind in (FlowKind.FEE, FlowKind.LIQUIDATION_FEE):
            paid[flow.trade_id] = paid.get(flow.trade_id, ZERO) - flow.amount
        elif flow.kind is FlowKind.REALIZED_PNL:
            realized[flow.trade_id] = realized.get(flow.trade_id, ZERO) + flow.amount
    for trade in trades:
        name = f"trade {trade.id}"
        if closed.get(trade.id, ZERO) > trade.qty:
            found.append(Difference(portfolio.name, name, f"closed {exact(closed[trade.id])} of {exact(trade.qty)}"))
        fees = trade.fee + charged.get(trade.id, ZERO)
        if paid.get(trade.id, ZERO) != fees:
            paid_fees = exact(paid.get(trade.id, ZERO))
            found.append(Difference(portfolio.name, name, f"fee flows {exact(paid_fees)}, fills {exact(fees)}"))
        if realized.get(trade.id, ZERO) != booked.get(trade.id, ZERO):
            found.append(
                Difference(
                    portfolio.name,
                    name,
                    f"realized PnL flows {exact(realized.get(trade.id, ZERO))}, "
                    f"closes {exact(booked.get(trade.id, ZERO))}",
                )
            )
    return found


TOTALS = ("symbol", "side", "strategy", "opened_at", "opened_us", "qty", "closed", "last_close", "last_close_us",
          "last_close_id", "exit_reason", "net", "net_flows", "funding", "first_flow_at", "last_flow_at")  # fmt: skip
# Figures the ledger may leave as a float or NULL when they are no exact integer: the report then
# folds the records instead, so such a value is no difference.
_MAY_BE_INEXACT = {"opened_us", "qty", "closed", "last_close_us", "net", "funding"}
_MOMENTS = {"opened_at", "last_close", "first_flow_at", "last_flow_at"}
_EPOCH, _MICRO = datetime(1970, 1, 1, tzinfo=UTC), timedelta(microseconds=1)


def _check_totals(portfolio: Portfolio, records: PortfolioRecords, stored: dict[int, tuple]) -> list[Difference]:
    """Each live trade's row of the report's totals against the fold of its live records: every
    trade has one, and no other trade does."""

    def units(value: Decimal) -> int | None:
        scaled = value.scaleb(8)
        return int(scaled) if scaled == scaled.to_integral_value() else None

    def micros(moment: datetime) -> int:
        return (moment - _EPOCH) // _MICRO

    fresh: dict[int, list] = {}
    for t in records.trades:
        opened = codec.timestamp(t.opened_at)
        fresh[t.id] = [t.symbol, t.side.value, t.strategy, opened, micros(t.opened_at), units(t.qty), 0,
                       None, None, None, None, 0, 0, 0, None, None]  # fmt: skip
    latest: dict[int, Close] = {}
    for close in records.closes:
        row = fresh[close.trade_id]
        row[6] = _add(row[6], units(close.qty))
        before = latest.get(close.trade_id)
        if before is None or (close.closed_at, close.id) > (before.closed_at, before.id):
            latest[close.trade_id] = close
            row[7:11] = [codec.timestamp(close.closed_at), micros(close.closed_at), close.id, close.reason.value]
    for flow in records.flows:
        mine = fresh.get(flow.trade_id) if flow.trade_id is not None else None
        if mine is None:
            continue
        which = 13 if flow.kind is FlowKind.FUNDING else 11
        mine[which] = _add(mine[which], units(flow.amount))
        mine[12] += flow.kind is not FlowKind.FUNDING
        at = codec.timestamp(flow.at)
        mine[14] = at if mine[14] is None or at < mine[14] else mine[14]
        mine[15] = at if mine[15] is None or at > mine[15] else mine[15]
    found = []
    for trade_id in sorted(fresh.keys() | stored.keys()):
        name = f"trade {trade_id}"
        if trade_id not in stored:
            found.append(Difference(portfolio.name, name, "has no totals for the report (trade_totals)"))
            continue
        if trade_id not in fresh:
            found.append(Difference(portfolio.name, name, "has totals for the report (trade_totals) but is no live trade"))
            continue
        for field, kept, folded in zip(TOTALS, stored[trade_id], fresh[trade_id], strict=True):
            if field in _MAY_BE_INEXACT and kept.__class__ is not int:
                continue
            if field in _MOMENTS and kept is not None and folded is not None:
                kept, folded = datetime.fromisoformat(kept), datetime.fromisoformat(folded)  # as first written
            if kept != folded:
                found.append(
                    Difference(portfolio.name, name, f"report totals: {field} {kept}, the records give {folded}")
                )
    return found


def _add(total: int | None, part: int | None) -> int | None:
    return None if total is None or part is None else total + part


def _check_snapshot(
    portfolio: Portfolio, snapshot: Snapshot, sweep: RecordsSweep, brackets: Brackets
) -> list[Difference]:
    name = f"snapshot {snapshot.day}"
    lots, flows = sweep.at(snapshot.taken_at)
    marks = marks_of(snapshot)
    unpriced = sorted({lot.trade.symbol for lot in lots if lot.is_open} - set(marks))
    if unpriced:
        return [Difference(portfolio.name, name, f"positions in {', '.join(unpriced)} are missing from it")]
    valuation = value_portfolio(flows, lots, marks, brackets)
    rebuilt = snapshot_of(portfolio.id, snapshot.day, snapshot.taken_at, snapshot.backfilled, valuation)
    found = []
    for f in fields(Snapshot):
        if f.name == "positions":
            continue
        stored, fresh = getattr(snapshot, f.name), getattr(rebuilt, f.name)
        if stored != fresh:
            found.append(Difference(portfolio.name, name, f"{f.name} {exact(stored)}, the records give {exact(fresh)}"))
    stored_rows = {p.trade_id: p for p in snapshot.positions}
    fresh_rows = {p.trade_id: p for p in rebuilt.positions}
    for trade_id in sorted(stored_rows.keys() | fresh_rows.keys()):
        stored_row, fresh_row = stored_rows.get(trade_id), fresh_rows.get(trade_id)
        if stored_row != fresh_row:
            what = "not open then" if fresh_row is None else "missing" if stored_row is None else "differs"
            found.append(Difference(portfolio.name, name, f"position of trade {trade_id} {what}"))
    return found
