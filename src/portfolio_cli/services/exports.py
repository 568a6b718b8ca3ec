"""Exports: the ledger's records as documented tables, and the yearly tax report.

Columns are part of the interface (docs/exports.md lists them); add new ones at the end only.
"""

from __future__ import annotations

import re
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from portfolio_cli import __version__
from portfolio_cli.choices import ExportKind
from portfolio_cli.engine.accounting import build_lots
from portfolio_cli.engine.history import day_end, day_start
from portfolio_cli.engine.records import Close, FlowKind, Kind, Portfolio, Side, Trade
from portfolio_cli.engine.symbols import base_of
from portfolio_cli.engine.tax import (
    Acquisition,
    Disposal,
    Method,
    TaxLotRow,
    Term,
    fee_share,
    in_currency,
    match_lots,
    term_totals,
    wash_sales,
)
from portfolio_cli.errors import InvalidInput, LedgerFailure, NotFound, PriceUnavailable
from portfolio_cli.export import RecordTable, content_hash
from portfolio_cli.ledger import codec
from portfolio_cli.money import ZERO, q8
from portfolio_cli.services.common import records_of
from portfolio_cli.services.valuation import value
from portfolio_cli.session import Session

KINDS = tuple(ExportKind)

TRADE_COLUMNS = (
    "record",  # open, close, margin, deposit, withdrawal or funding
    "trade_id",
    "at",
    "symbol",
    "side",
    "kind",
    "margin_mode",
    "leverage",
    "qty",
    "price",
    "price_usdt",
    "fee",
    "realized_pnl",
    "reason",
    "stop_loss",
    "take_profit",
    "strategy",
    "note",
    "forced",
    "amount",  # margin added (+) or removed (−), a deposit (+), withdrawal (−) or funding (signed)
)
TRADE_NUMERIC = frozenset(
    {
        "trade_id",
        "leverage",
        "qty",
        "price",
        "price_usdt",
        "fee",
        "realized_pnl",
        "stop_loss",
        "take_profit",
        "forced",
        "amount",
    }
)
CASHFLOW_COLUMNS = ("id", "at", "kind", "amount", "trade_id", "note")
POSITION_COLUMNS = (
    "trade_id",
    "symbol",
    "side",
    "kind",
    "margin_mode",
    "leverage",
    "qty",
    "entry",
    "entry_usdt",
    "mark",
    "mark_usdt",
    "price_at",
    "price_source",
    "value",
    "unrealized_pnl",
    "margin",
)
SNAPSHOT_COLUMNS = (
    "day",
    "taken_at",
    "backfilled",
    "equity",
    "wallet_balance",
    "free_margin",
    "spot_holdings",
    "margin_used",
    "margin_level_pct",
    "unrealized_pnl",
    "realized_pnl",
    "fees",
    "liquidation_fees",
    "funding",
    "deposits",
    "withdrawals",
)
REBALANCE_COLUMNS = (
    "rebalance_id",
    "at",
    "portfolio",
    "strategy",
    "mode",
    "forced",
    "drift_before_pct",
    "drift_after_pct",
    "asset",
    "side",
    "qty",
    "price",
    "notional",
    "fee",
    "trade_ids",  # the buy's trade, or the trades a sale closed (space-separated)
    "close_ids",
)
TAX_COLUMNS = (
    "section",  # disposal, margin, funding or summary
    "description",
    "asset",
    "quantity",
    "date_acquired",
    "date_sold",
    "proceeds",
    "cost_basis",
    "gain_or_loss",
    "term",
    "method",
    "acquired_trade_id",
    "disposed_trade_id",
    "close_id",
    "symbol",
    "side",
    "realized_pnl",
    "fees",
    "funding",
    "net_pnl",
    # Fees as their own column, and every amount in the trader's currency (--currency).
    "cost_usdt",  # before fees
    "fees_usdt",  # the row's share of the buy and the sell fee (margin: entry share and exit fee)
    "proceeds_usdt",  # before fees
    "currency",
    "rate_acquired",  # USDT per unit of the currency, the day of the acquisition
    "rate_sold",  # … of the disposal (margin: the close; funding: n/a, each payment at its day's)
    "cost_in_currency",
    "fees_in_currency",
    "proceeds_in_currency",
    "gain_or_loss_in_currency",  # proceeds − cost − fees, in the currency
    "rate_source",
    "wash_sale",  # "yes": a loss with another buy of the asset within 30 days before or after
)
TAX_NUMERIC = frozenset(
    {
        "cost_usdt",
        "fees_usdt",
        "proceeds_usdt",
        "rate_acquired",
        "rate_sold",
        "cost_in_currency",
        "fees_in_currency",
        "proceeds_in_currency",
        "gain_or_loss_in_currency",
        "quantity",
        "proceeds",
        "cost_basis",
        "gain_or_loss",
        "acquired_trade_id",
        "disposed_trade_id",
        "close_id",
        "realized_pnl",
        "fees",
        "funding",
        "net_pnl",
    }
)


@dataclass(frozen=True)
class Export:
    table: RecordTable
    meta: dict[str, Any]


def _text(value: Decimal | int | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return codec.money(value)
    return str(value)


def _in_range(moment: datetime, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or moment >= since) and (until is None or moment < until)


def export(
    session: Session,
    kind: str,
    name: str,
    since: datetime | None = None,
    until: datetime | None = None,
    at: datetime | None = None,
    year: int | None = None,
    method: str = "fifo",
    as_json: bool = False,
    currency: str = "USDT",
) -> Export:
    """One kind of record of one portfolio: ``since`` included, ``until`` excluded."""
    if kind not in KINDS:
        raise InvalidInput(f"cannot export {kind!r}: choose one of {', '.join(KINDS)}")
    if since and until and since >= until:
        raise InvalidInput(f"--from {since:%Y-%m-%d %H:%M} is not before --to {until:%Y-%m-%d %H:%M}")
    if kind != "positions" and at is not None:
        raise InvalidInput("--at applies to the positions export only (use --from and --to)")
    if kind == "positions" and (since or until):
        raise InvalidInput("positions are a state at one moment: use --at, not --from/--to")
    if kind == "tax":
        if year is None:
            raise InvalidInput("the tax export needs --year YYYY")
        if since or until:
            raise InvalidInput("the tax export covers a calendar year: use --year, not --from/--to")
        this_year = session.clock().year
        if not 2009 <= year <= this_year:  # no trade before Bitcoin; no tax year that has not begun
            raise InvalidInput(f"--year must be 2009 to {this_year}, got {year}")
        since, until = datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
    elif year is not None:
        raise InvalidInput("--year applies to the tax export only")
    currency = currency.upper()
    if kind != "tax" and currency != "USDT":
        raise InvalidInput("--currency applies to the tax export only")
    if not CURRENCY.fullmatch(currency):
        raise InvalidInput(f"--currency must be a currency code such as EUR, GBP or USD, got {currency!r}")
    portfolio = session.ledger.portfolio(name)
    if kind == "trades":
        table = trades_table(session, portfolio, since, until, as_json, as_csv=not as_json)
    elif kind == "cashflows":
        table = cashflows_table(session, portfolio, since, until)
    elif kind == "positions":
        table = positions_table(session, name, at)
    elif kind == "snapshots":
        table = snapshots_table(session, portfolio, since, until)
    elif kind == "rebalances":
        table = rebalances_table(session, portfolio, since, until)
    else:
        assert year is not None  # the tax export refused a missing --year above
        table = tax_table(session, portfolio, year, _method(method), currency)
    meta: dict[str, str | int | None] = {
        "tool_version": __version__,
        "portfolio": name,
        "from": codec.timestamp(since) if since else None,
        "to": codec.timestamp(until) if until else None,
        "exported_at": codec.timestamp(session.clock()),
    }
    if kind == "tax":
        meta |= {"year": year, "method": _method(method).value} | _tax_settings(table)
    if kind == "positions":
        meta |= {"at": codec.timestamp(at or session.clock())}
    return Export(table, meta)


CURRENCY = re.compile(r"[A-Z]{3,5}")


def _tax_settings(table: RecordTable) -> dict[str, str | int | None]:
    """The settings rows of a tax table, for the JSON header."""
    rows = [r for r in table.records if r["section"] == "settings"]
    pairs = (str(r["description"]).split(": ", 1) for r in rows)
    return {key: text for key, text in pairs if key not in ("method", "year")}


def _method(text: str) -> Method:
    try:
        return Method(text.lower())
    except ValueError:
        raise InvalidInput(f"--method must be fifo, lifo or hifo, got {text!r}") from None


def trades_table(
    session: Session,
    portfolio: Portfolio,
    since: datetime | None,
    until: datetime | None,
    as_json: bool = False,
    as_csv: bool = False,
) -> RecordTable:
    """One record per fill: a trade's opening fill, then each of its closes, in time order. For JSON
    the ledger builds each record's canonical encoding itself when it can, for CSV it gives each
    record's cells in column order (100,000 trades in time)."""
    if session.ledger.fill_columns() != TRADE_COLUMNS:
        raise RuntimeError("the ledger's fills and the export's trade columns disagree")
    if as_csv:
        cells = session.ledger.fill_cells(portfolio, since, until)
        return RecordTable("trades", TRADE_COLUMNS, TRADE_NUMERIC, cells=cells)
    encoded = session.ledger.fill_json(portfolio, since, until) if as_json else None
    if encoded is not None:
        return RecordTable("trades", TRADE_COLUMNS, TRADE_NUMERIC, encoded=encoded)
    return RecordTable("trades", TRADE_COLUMNS, TRADE_NUMERIC, session.ledger.fill_rows(portfolio, since, until))


def cashflows_table(
    session: Session, portfolio: Portfolio, since: datetime | None, until: datetime | None
) -> RecordTable:
    rows = [
        {
            "id": str(f.id),
            "at": codec.timestamp(f.at),
            "kind": f.kind.value,
            "amount": _text(f.amount),
            "trade_id": _text(f.trade_id),
            "note": f.note,
        }
        for f in session.ledger.cash_flows(portfolio)
        if _in_range(f.at, since, until)
    ]
    rows.sort(key=lambda r: (r["at"], int(r["id"] or 0)))
    return RecordTable("cashflows", CASHFLOW_COLUMNS, frozenset({"id", "amount", "trade_id"}), rows)


def positions_table(session: Session, name: str, at: datetime | None) -> RecordTable:
    valuation = value(session, name, at=at).valuation
    rows = [
        {
            "trade_id": _text(p.trade_id),
            "symbol": p.symbol,
            "side": p.side.value,
            "kind": p.kind.value,
            "margin_mode": p.margin_mode.value if p.margin_mode else None,
            "leverage": _text(p.leverage),
            "qty": _text(p.qty),
            "entry": _text(p.entry),
            "entry_usdt": _text(p.entry_usdt),
            "mark": _text(p.mark),
            "mark_usdt": _text(p.mark_usdt),
            "price_at": codec.timestamp(p.price_at),
            "price_source": p.price_source,
            "value": _text(p.value),
            "unrealized_pnl": _text(p.unrealized_pnl),
            "margin": _text(p.margin),
        }
        for p in valuation.positions
    ]
    numeric = frozenset(POSITION_COLUMNS) - {"symbol", "side", "kind", "margin_mode", "price_at", "price_source"}
    return RecordTable("positions", POSITION_COLUMNS, numeric, rows)


def snapshots_table(
    session: Session, portfolio: Portfolio, since: datetime | None, until: datetime | None
) -> RecordTable:
    rows = []
    for s in session.ledger.snapshots(portfolio):
        if not _in_range(s.taken_at, since, until):
            continue
        rows.append(
            {
                "day": s.day.isoformat(),
                "taken_at": codec.timestamp(s.taken_at),
                "backfilled": "1" if s.backfilled else "0",
                **{c: _text(getattr(s, c)) for c in SNAPSHOT_COLUMNS[3:]},
            }
        )
    numeric = frozenset(SNAPSHOT_COLUMNS) - {"day", "taken_at"}
    return RecordTable("snapshots", SNAPSHOT_COLUMNS, numeric, rows)


def rebalances_table(
    session: Session, portfolio: Portfolio, since: datetime | None, until: datetime | None
) -> RecordTable:
    """One record per trade an executed rebalance booked."""
    closes = {c.id: c.trade_id for c in session.ledger.closes(portfolio)}
    rows = []
    for event in session.ledger.rebalances(portfolio):
        if not _in_range(event.at, since, until):
            continue
        for t in event.trades:
            qty, price = Decimal(t["qty"]), Decimal(t["price"])
            close_ids = t.get("close_ids", [])
            trade_ids = [t["trade_id"]] if "trade_id" in t else [closes[c] for c in close_ids]
            rows.append(
                {
                    "rebalance_id": str(event.id),
                    "at": codec.timestamp(event.at),
                    "portfolio": portfolio.name,
                    "strategy": event.strategy,
                    "mode": event.mode,
                    "forced": "1" if event.forced else "0",
                    "drift_before_pct": _text(event.drift_before),
                    "drift_after_pct": _text(event.drift_after),
                    "asset": t["asset"],
                    "side": t["side"],
                    "qty": _text(qty),
                    "price": _text(price),
                    "notional": _text(qty * price),
                    "fee": _text(Decimal(t["fee"])),
                    "trade_ids": " ".join(map(str, trade_ids)),
                    "close_ids": " ".join(map(str, close_ids)) or None,
                }
            )
    text = {"at", "portfolio", "strategy", "mode", "asset", "side", "trade_ids", "close_ids"}
    return RecordTable("rebalances", REBALANCE_COLUMNS, frozenset(REBALANCE_COLUMNS) - text, rows)


def fiat_rates(session: Session, currency: str, days: set[date]) -> tuple[dict[date, Decimal], str]:
    """The rate of ``currency`` (USDT per unit) on each of ``days``, and where it comes from: 1 for
    USDT; 1 for USD, by the stated assumption that 1 USDT is 1 USD; else the close of Binance's daily
    candle of ``CURRENCY/USDT`` that day (the ledger's candle cache first; today's is the latest price).
    A day without a rate refuses the export (exit 5) rather than guess."""
    if currency == "USDT":
        return dict.fromkeys(days, Decimal(1)), "none: amounts in USDT"
    if currency == "USD":
        return dict.fromkeys(days, Decimal(1)), "USD taken at par with USDT (assumption: 1 USDT = 1 USD)"
    pair = f"{currency}/USDT"
    if not days:
        return {}, f"Binance {pair} daily close"
    first, last = min(days), max(days)
    try:
        series = session.prices.candles(pair, "1d", day_start(first), day_end(last))
    except NotFound:
        raise InvalidInput(f"--currency {currency}: Binance lists no {pair} pair to take its rate from") from None
    rates = {c.open_time.date(): c.close for c in series.candles}
    today = session.clock().date()
    if today in days and today not in rates:
        with suppress(PriceUnavailable):
            rates[today] = session.prices.marks([pair])[pair].price
    missing = sorted(d for d in days if d not in rates or rates[d] <= 0)
    if missing:
        where = "offline and not cached" if session.offline else "not available from Binance"
        more = f" and {len(missing) - 1} more day(s)" if len(missing) > 1 else ""
        raise PriceUnavailable(
            f"no {pair} daily rate for {missing[0]}{more} ({where}): the tax export in {currency} needs the rate "
            "of every day with an acquisition, a disposal or a payment; run it once online to cache them"
        )
    return rates, f"Binance {pair} daily close (USDT per {currency}) of each day"


def tax_table(
    session: Session, portfolio: Portfolio, year: int, method: Method, currency: str = "USDT"
) -> RecordTable:
    """Spot disposals matched to lots, then margin PnL and funding (not lot disposals), then totals,
    then the settings; amounts also in ``currency`` at each day's rate (see ``fiat_rates``)."""
    records = records_of(session.ledger, portfolio)
    spot = {t.id: t for t in records.trades if t.kind is Kind.SPOT and t.side is Side.LONG}
    entry_shares: dict[int, Decimal] = {}  # each close's share of its trade's entry fee, as the ledger has it
    spot_closes = [c for c in records.closes if c.trade_id in spot]
    for lot in build_lots(list(spot.values()), spot_closes):
        closed = ZERO
        for c in lot.closes:
            entry_shares[c.id] = lot.entry_fee_share(c.qty, closed)
            closed += c.qty
    acquisitions = [
        Acquisition(t.id, base_of(t.symbol), t.opened_at, t.qty, cost=q8(t.qty * t.price_usdt) + t.fee)
        for t in spot.values()
    ]
    disposals = [
        Disposal(
            c.id,
            c.trade_id,
            base_of(spot[c.trade_id].symbol),
            c.closed_at,
            c.qty,
            q8(c.qty * c.price_usdt) - c.fee,
            basis=q8(c.qty * c.price_usdt) - c.realized_pnl + entry_shares[c.id],
        )
        for c in records.closes
        if c.trade_id in spot
    ]
    try:
        matched = match_lots(acquisitions, disposals, method)
    except ValueError as exc:
        raise LedgerFailure(f"the ledger's spot records do not add up: {exc}") from None
    in_year = [r for r in matched if r.disposed_at.year == year]
    closes = {c.id: c for c in records.closes}
    margin_lots = [lot for lot in build_lots(records.trades, records.closes) if lot.trade.kind is Kind.MARGIN]
    funding_flows = [f for f in records.flows if f.kind is FlowKind.FUNDING and f.at.year == year and f.trade_id]
    days = {r.acquired_at.date() for r in in_year} | {r.disposed_at.date() for r in in_year}
    days |= {c.closed_at.date() for lot in margin_lots for c in lot.closes if c.closed_at.year == year}
    days |= {f.at.date() for f in funding_flows}
    rates, source = fiat_rates(session, currency, days)
    flagged = wash_sales(in_year, acquisitions)
    rows: list[dict[str, str | None]] = [
        {
            "section": "disposal",
            "description": f"{_qty(r.qty)} {r.asset}",
            "asset": r.asset,
            "quantity": _text(r.qty),
            "date_acquired": r.acquired_at.date().isoformat(),
            "date_sold": r.disposed_at.date().isoformat(),
            "proceeds": _text(r.proceeds),
            "cost_basis": _text(r.cost_basis),
            "gain_or_loss": _text(r.gain),
            "term": r.term.value,
            "method": method.value,
            "acquired_trade_id": str(r.acquired_trade_id),
            "disposed_trade_id": str(r.disposed_trade_id),
            "close_id": str(r.close_id),
            **_in_currency(r, spot[r.acquired_trade_id], closes[r.close_id], rates, currency, source),
            "wash_sale": "yes" if i in flagged else None,
        }
        for i, r in enumerate(in_year)
    ]
    margin_net = margin_net_in_currency = ZERO
    for lot in margin_lots:
        t = lot.trade
        closed = ZERO
        for c in lot.closes:
            fees = lot.entry_fee_share(c.qty, closed) + c.fee
            closed += c.qty
            if c.closed_at.year != year:
                continue
            net = c.realized_pnl - fees
            margin_net += net
            rate = rates[c.closed_at.date()]
            net_in_currency = in_currency(c.realized_pnl, rate) - in_currency(fees, rate)
            margin_net_in_currency += net_in_currency
            what = "liquidation" if c.reason.forced_out else "close"
            rows.append(
                {
                    "section": "margin",
                    "description": f"{what} of trade {t.id}: {_qty(c.qty)} {t.symbol}",
                    "quantity": _text(c.qty),
                    "date_sold": c.closed_at.date().isoformat(),
                    "disposed_trade_id": str(t.id),
                    "close_id": str(c.id),
                    "symbol": t.symbol,
                    "side": t.side.value,
                    "realized_pnl": _text(c.realized_pnl),
                    "fees": _text(fees),
                    "net_pnl": _text(net),
                    "fees_usdt": _text(fees),
                    "currency": currency,
                    "rate_sold": _text(rate),
                    "fees_in_currency": _text(in_currency(fees, rate)),
                    "gain_or_loss_in_currency": _text(net_in_currency),
                    "rate_source": source,
                }
            )
    funding_by_trade: dict[int, Decimal] = {}
    funding_in_currency: dict[int, Decimal] = {}
    for f in funding_flows:
        assert f.trade_id is not None  # kept above
        funding_by_trade[f.trade_id] = funding_by_trade.get(f.trade_id, ZERO) + f.amount
        converted = in_currency(f.amount, rates[f.at.date()])
        funding_in_currency[f.trade_id] = funding_in_currency.get(f.trade_id, ZERO) + converted
    trades = {t.id: t for t in records.trades}
    for trade_id, amount in sorted(funding_by_trade.items()):
        t = trades[trade_id]
        rows.append(
            {
                "section": "funding",
                "description": f"funding of trade {trade_id} in {year}",
                "disposed_trade_id": str(trade_id),
                "symbol": t.symbol,
                "side": t.side.value,
                "funding": _text(amount),
                "currency": currency,
                "gain_or_loss_in_currency": _text(funding_in_currency[trade_id]),
                "rate_source": source,
            }
        )
    totals = term_totals(in_year)
    funding = sum(funding_by_trade.values(), ZERO)
    in_terms = dict.fromkeys(Term, ZERO)
    for r, row in zip(in_year, rows, strict=False):
        in_terms[r.term] += Decimal(str(row["gain_or_loss_in_currency"]))
    funding_total_in_currency = sum(funding_in_currency.values(), ZERO)
    summary = [
        ("short-term gain or loss", "gain_or_loss", totals[Term.SHORT], in_terms[Term.SHORT]),
        ("long-term gain or loss", "gain_or_loss", totals[Term.LONG], in_terms[Term.LONG]),
        ("margin net PnL", "net_pnl", margin_net, margin_net_in_currency),
        ("funding", "funding", funding, funding_total_in_currency),
        (
            "total",
            "net_pnl",
            totals[Term.SHORT] + totals[Term.LONG] + margin_net + funding,
            in_terms[Term.SHORT] + in_terms[Term.LONG] + margin_net_in_currency + funding_total_in_currency,
        ),
    ]
    rows += [
        {
            "section": "summary",
            "description": label,
            "method": method.value,
            column: _text(amount),
            "currency": currency,
            "gain_or_loss_in_currency": _text(converted),
            "rate_source": source,
        }
        for label, column, amount, converted in summary
    ]
    settings = {
        "method": method.value,
        "currency": currency,
        "rate_source": source,
        "year": str(year),
        "tool_version": __version__,
        "ledger_sha256": content_hash(trades_table(session, portfolio, None, None).records),
    }
    rows += [{"section": "settings", "description": f"{key}: {text}"} for key, text in settings.items()]
    table_rows = [{column: row.get(column) for column in TAX_COLUMNS} for row in rows]
    return RecordTable("tax", TAX_COLUMNS, TAX_NUMERIC, table_rows)


def _in_currency(
    r: TaxLotRow, bought: Trade, sold: Close, rates: dict[date, Decimal], currency: str, source: str
) -> dict[str, str | None]:
    """A disposal row's cost, fees and proceeds before fees, in USDT and in ``currency``: the cost and
    the buy fee at the acquisition day's rate, the proceeds and the sell fee at the sale day's."""
    buy_fee = fee_share(bought.fee, r.qty, bought.qty)
    sell_fee = fee_share(sold.fee, r.qty, sold.qty)
    cost, proceeds = r.cost_basis - buy_fee, r.proceeds + sell_fee
    bought_at, sold_at = rates[r.acquired_at.date()], rates[r.disposed_at.date()]
    cost_in, proceeds_in = in_currency(cost, bought_at), in_currency(proceeds, sold_at)
    fees_in = in_currency(buy_fee, bought_at) + in_currency(sell_fee, sold_at)
    return {
        "cost_usdt": _text(cost),
        "fees_usdt": _text(buy_fee + sell_fee),
        "proceeds_usdt": _text(proceeds),
        "currency": currency,
        "rate_acquired": _text(bought_at),
        "rate_sold": _text(sold_at),
        "cost_in_currency": _text(cost_in),
        "fees_in_currency": _text(fees_in),
        "proceeds_in_currency": _text(proceeds_in),
        "gain_or_loss_in_currency": _text(proceeds_in - cost_in - fees_in),
        "rate_source": source,
    }


def _qty(value: Decimal) -> str:
    return f"{value.normalize():f}"
