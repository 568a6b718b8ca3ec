"""The report's per-trade totals (``trade_totals``, kept by the ledger in the transaction that writes
the records they total) give the closed-trade statistics, breakdowns, exposure and attribution that a
plain fold of the records gives: checked with hypothesis on random ledgers (partial and over-covering
closes, closes at the same moment, every flow kind, voids of trades, closes and flows, a second
portfolio, and amounts the integers cannot hold, for which the report folds the records). The
migration fills them for a ledger that had none, and `verify` names a trade whose totals differ."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portfolio_cli.engine.accounting import realized_pnl
from portfolio_cli.engine.records import (
    Close,
    CloseReason,
    ClosedTrade,
    FlowKind,
    Kind,
    MarginMode,
    Portfolio,
    Side,
    Trade,
    Void,
    VoidKind,
)
from portfolio_cli.engine.trades import breakdowns_of, held_time, stats_of, total_closed
from portfolio_cli.ledger import Ledger, codec, open_ledger
from portfolio_cli.ledger.migrations import (
    CLOSED_DAY_TRIGGERS,
    CLOSED_SPAN_TRIGGERS,
    FLOW_DAY_TRIGGERS,
    _fill_trade_totals,
    refill_closed_spans,
    refill_flow_days,
    refresh_closed_days,
)
from portfolio_cli.ledger.queries import INEXACT_TOTALS
from portfolio_cli.money import ZERO
from portfolio_cli.services.common import records_of
from portfolio_cli.services.verify import _MAY_BE_INEXACT, _check_totals
from test_report_reads import parts_folded

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SYMBOLS = ("BTC/USDT", "ETH/USDT")
STRATEGIES = ("trend", "", None)
TRADE_FLOWS = (FlowKind.FEE, FlowKind.REALIZED_PNL, FlowKind.FUNDING, FlowKind.LIQUIDATION_FEE)

# A few coarse moments, so that closes and openings share them (ties in closing order), some of them
# days and months apart (the report sums whole days and months from their statistics).
moments = st.one_of(
    st.integers(0, 40).map(lambda n: T0 + timedelta(hours=6 * n)),
    st.integers(0, 12).map(lambda n: T0 + timedelta(days=9 * n)),
)
closes = st.lists(
    st.tuples(st.sampled_from(("whole", "half", "over", "sliver")), moments, st.sampled_from(list(CloseReason))),
    max_size=3,
)
flows = st.lists(
    st.tuples(st.sampled_from(TRADE_FLOWS), st.integers(-(10**9), 10**9), moments), max_size=4
)
trades = st.lists(
    st.fixed_dictionaries(
        {
            "other": st.booleans(),
            "symbol": st.sampled_from(SYMBOLS),
            "strategy": st.sampled_from(STRATEGIES),
            "short": st.booleans(),
            "qty": st.integers(1, 4000).map(lambda n: D(n) / 1000),
            "opened": moments,
            "closes": closes,
            "flows": flows,
            # what is voided: nothing, the trade (with everything of it), its first close, its first flow
            "void": st.sampled_from((None, None, "trade", "close", "flow")),
        }
    ),
    max_size=10,
)
odd_amounts = st.sampled_from((None, "legacy", "large"))
EXAMPLES = int(os.environ.get("TRADE_TOTALS_EXAMPLES", "60"))


def build(path: Path, drawn: list[dict], odd: str | None) -> tuple[Ledger, Portfolio]:
    ledger = open_ledger(path)
    with ledger.transaction("test", T0):
        books = [ledger.create_portfolio(name, T0) for name in ("main", "other")]
        main = books[0]
        ledger.add_cash_flow(main, FlowKind.DEPOSIT, D(10_000), T0)
        voided_at = T0 + timedelta(days=30)
        for n, spec in enumerate(drawn):
            book = books[spec["other"]]
            short = spec["short"]
            trade = Trade(
                0, spec["symbol"], Side.SHORT if short else Side.LONG, Kind.MARGIN if short else Kind.SPOT,
                MarginMode.ISOLATED if short else None, 2 if short else 1, spec["qty"], D(100), D(100), D("0.1"),
                spec["opened"], strategy=spec["strategy"],
            )  # fmt: skip
            trade_id = ledger.add_trade(book, trade, False)
            rows = [("trade", trade_id), ("cash_flow", ledger.add_cash_flow(book, FlowKind.FEE, D("-0.1"), trade.opened_at, trade_id))]
            close_ids, flow_ids = [], []
            left = trade.qty
            for part, at, reason in spec["closes"]:
                qty = {"whole": left, "half": left / 2, "over": left + D("0.001"), "sliver": D("0.001")}[part]
                qty = max(D("0.001"), abs(qty)).quantize(D("0.00000001"))
                at = max(at, trade.opened_at)
                realized = realized_pnl(trade.side, qty, trade.price_usdt, D(101))
                close_ids.append(ledger.add_close(book, Close(0, trade_id, qty, D(101), D(101), D("0.1"), realized, at, None, reason)))
                ledger.add_cash_flow(book, FlowKind.REALIZED_PNL, realized, at, trade_id)
                ledger.add_cash_flow(book, FlowKind.FEE, D("-0.1"), at, trade_id)
                left -= qty
            funded = set()
            for kind, units, at in spec["flows"]:
                at = max(at, trade.opened_at)
                if kind is FlowKind.FUNDING and at in funded:
                    continue  # funding is booked once per settlement
                funded.add(at) if kind is FlowKind.FUNDING else None
                flow_ids.append(ledger.add_cash_flow(book, kind, D(units) / 10**8, at, trade_id))
            if n == 0 and odd == "legacy":  # as once written, before money text was fixed-point
                ledger.conn.execute(
                    "insert into cash_flows (portfolio_id, kind, amount, at, trade_id) values (?, 'fee', '-1E-7', ?, ?)",
                    [book.id, codec.timestamp(trade.opened_at), trade_id],
                )
            elif n == 0 and odd == "large":
                flow_ids.append(ledger.add_cash_flow(book, FlowKind.REALIZED_PNL, D("12345678901.5"), trade.opened_at, trade_id))
            voided: list[tuple[str, int]] = []
            if spec["void"] == "trade":
                every = ledger.conn.execute("select id from cash_flows where trade_id = ?", [trade_id]).fetchall()
                voided = rows[:1] + [("close", c) for c in close_ids] + [("cash_flow", f) for (f,) in every]
            elif spec["void"] == "close" and close_ids:
                voided = [("close", close_ids[0])]
            elif spec["void"] == "flow" and flow_ids:
                voided = [("cash_flow", flow_ids[0])]
            if voided:
                kind = VoidKind.TRADE if voided[0][0] == "trade" else VoidKind.CLOSE
                ledger.add_void(book, Void(0, voided_at, kind, voided[0][1], trade.opened_at, "test", "test", tuple(voided)))
    return ledger, main


def folded(ledger: Ledger, book: Portfolio, since: datetime, until: datetime):
    """The closed trades of ``(since, until]`` and the holding spans, by the definitions, record by
    record: a trade is closed once its closes cover its quantity, at its latest close (of closes at
    one moment, the last booked), and its net PnL is every flow of it but funding."""
    closes = defaultdict(list)
    for close in ledger.closes(book):
        closes[close.trade_id].append(close)
    net: dict[int, D] = {}
    for flow in ledger.cash_flows(book):
        if flow.trade_id is not None and flow.kind is not FlowKind.FUNDING:
            net[flow.trade_id] = net.get(flow.trade_id, ZERO) + flow.amount
    closed, spans = [], []
    for trade in ledger.trades(book):  # in id order: closing ties go by trade id
        mine = closes[trade.id]
        last = max(mine, key=lambda c: (c.closed_at, c.id)) if mine else None
        covered = bool(mine) and sum(c.qty for c in mine) >= trade.qty
        if covered and since < last.closed_at <= until:
            closed.append(
                ClosedTrade(net.get(trade.id, ZERO), trade.opened_at, last.closed_at, trade.strategy, trade.symbol, trade.side.value,
                            last.reason.value)
            )  # fmt: skip
        if trade.opened_at <= until and (last is None or last.closed_at > since):
            spans.append((trade.opened_at, last.closed_at if covered else None))
    return closed, spans


def _key(group) -> tuple:
    return (group.symbol, group.strategy is None, group.strategy or "", group.side, group.exit_reason)


def stored_totals(ledger: Ledger) -> list[tuple]:
    """The rows of ``trade_totals``, with their figures that are no exact integer (a float or NULL:
    the report then folds the records) all alike."""
    cursor = ledger.conn.execute("select * from trade_totals order by trade_id")
    names = [d[0] for d in cursor.description]
    return [
        tuple("inexact" if n in _MAY_BE_INEXACT and v.__class__ is not int else v for n, v in zip(names, row, strict=True))
        for row in cursor.fetchall()
    ]


DERIVED = ("closed_days", "closed_months", "closed_outcomes", "closed_spans", "flow_days", "flow_months")


def stored_days(ledger: Ledger) -> list[list[tuple]]:
    """The rows the ledger derives from the totals and flows for the report (the days' and months'
    statistics, outcomes, closed spans and flows), in order, their sums that are no exact integer
    all alike."""
    found = []
    for table in DERIVED:
        # A day whose flows are all voided keeps a row of zeros, which adds nothing.
        zeros = " where amount != 0 or first_flows != 0" if table.startswith("flow_") else ""
        rows = ledger.conn.execute(f"select * from {table}{zeros}").fetchall()
        found.append(sorted((tuple("inexact" if v.__class__ is float else v for v in row) for row in rows), key=repr))
    return found


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=trades, odd=odd_amounts, since=moments, length=st.integers(0, 60))
def test_the_reports_trade_figures_from_the_totals_equal_the_fold_of_the_records(drawn, odd, since, length):
    with tempfile.TemporaryDirectory() as home:
        ledger, book = build(Path(home) / "ledger.db", drawn, odd)
        windows = [
            (T0 - timedelta(days=1), T0 + timedelta(days=120)),
            (since, since + timedelta(hours=6 * length)),
            (since, since + timedelta(days=length)),
        ]
        for start, end in windows:
            totals, held = ledger.closed_totals(book, start, end)
            want_closed, want_spans = folded(ledger, book, start, end)
            want = total_closed(want_closed)
            assert sorted(map(repr, totals.groups)) == sorted(map(repr, want.groups))
            assert totals.outcomes == want.outcomes
            assert held == held_time(want_spans, start, end)
            assert repr(stats_of(totals)) == repr(stats_of(want))
            assert repr(breakdowns_of(totals.groups)) == repr(breakdowns_of(want.groups))
            single = {t.id for t in ledger.trades(book)[::3]}
            parts = ledger.trade_parts(book, start, end, single)
            got = sorted(((p.strategy, p.symbol, p.side, p.trade_id, p.trades, p.flows) for p in parts), key=str)
            assert got == parts_folded(ledger, book, start, end, single)
        # The totals are what verify folds from the records, and what the migration fills in.
        for portfolio in ledger.portfolios():
            assert _check_totals(portfolio, records_of(ledger, portfolio), ledger.trade_totals(portfolio)) == []
            assert ledger.summaries_differing(portfolio) == []
        kept = stored_totals(ledger), stored_days(ledger)
        assert refilled(ledger) == kept
        ledger.close()


def refilled(ledger: Ledger) -> tuple[list[tuple], list[list[tuple]]]:
    """The totals and the days' rows written afresh from the records, as the migrations write them."""
    with ledger.transaction("test", T0):
        for table in ("trade_totals", *DERIVED):
            ledger.conn.execute(f"delete from {table}")
        for name in CLOSED_DAY_TRIGGERS + CLOSED_SPAN_TRIGGERS + FLOW_DAY_TRIGGERS:  # as the migrations do
            ledger.conn.execute(f"drop trigger {name}")
        _fill_trade_totals(ledger.conn)
        refresh_closed_days(ledger.conn)
        refill_closed_spans(ledger.conn)
        refill_flow_days(ledger.conn)
    return stored_totals(ledger), stored_days(ledger)


def test_a_day_with_one_very_large_trade_among_small_ones_keeps_exact_sums(tmp_path):
    # Found by the property test above: 4 trades closed in a day, one with a net of 12.3 billion
    # USDT (1.2e18 units). Their sums fit in 64 bits, but the days' triggers judged the day by its
    # largest net times its count (4.9e18) and summed it in floats, where writing the day afresh
    # sums it exactly.
    def spec(closed: bool) -> dict:
        closes = [("whole", T0, CloseReason.MANUAL)] if closed else []
        return {"other": False, "symbol": "BTC/USDT", "strategy": "trend", "short": False, "qty": D("0.001"),
                "opened": T0, "closes": closes, "flows": [], "void": None}  # fmt: skip

    ledger, _ = build(tmp_path / "ledger.db", [spec(n in (0, 1, 8, 9)) for n in range(10)], "large")
    kept = stored_totals(ledger), stored_days(ledger)
    net = ledger.conn.execute("select net from closed_days").fetchone()[0]
    assert net == 1234567890070400000  # exact units, not a float
    assert refilled(ledger) == kept
    ledger.close()


def test_a_plain_ledgers_totals_are_exact_and_read_from_their_index(tmp_path):
    drawn = [
        {"other": False, "symbol": "BTC/USDT", "strategy": "trend", "short": False, "qty": D("0.5"), "opened": T0,
         "closes": [("whole", T0 + timedelta(hours=6), CloseReason.STOP_LOSS)],
         "flows": [(FlowKind.FUNDING, 7_000_000, T0 + timedelta(hours=3))], "void": None},
    ]  # fmt: skip
    ledger, book = build(tmp_path / "ledger.db", drawn, None)
    totals, held = ledger.closed_totals(book, T0 - timedelta(hours=1), T0 + timedelta(days=1))
    # Net PnL: realized 0.5 × (101 − 100) = 0.5 less the entry and exit fees of 0.1 each, funding (0.07)
    # aside; held 6 of the range's 25 hours.
    (group,) = totals.groups
    assert (group.trades, group.wins, repr(group.net), group.exit_reason) == (1, 1, "Decimal('0.30000000')", "stop_loss")
    assert held == timedelta(hours=6) and totals.outcomes == "W"
    plan = " ".join(
        row[3]
        for row in ledger.conn.execute(
            "explain query plan select 1 from trade_totals where portfolio_id = ? and "
            f"{INEXACT_TOTALS} limit 1",
            [book.id],
        )
    )
    assert "trade_totals_inexact" in plan, plan
    ledger.close()


def test_verify_names_a_trade_whose_report_totals_differ_from_its_records(cli, ledger_path):
    drawn = [
        {"other": False, "symbol": "ETH/USDT", "strategy": None, "short": True, "qty": D("2"), "opened": T0,
         "closes": [("half", T0 + timedelta(hours=6), CloseReason.MANUAL)], "flows": [], "void": None},
    ]  # fmt: skip
    ledger, book = build(ledger_path, drawn, None)
    (trade_id,) = [t.id for t in ledger.trades(book)]
    ledger.close()
    cli("verify")
    with sqlite3.connect(ledger_path) as conn:
        conn.execute("update trade_totals set closed = closed + 1 where trade_id = ?", [trade_id])
    result = cli("verify", code=6)
    assert f"trade {trade_id}" in result.stdout and "closed 100000001" in result.stdout, result.stdout


def test_verify_names_the_reports_day_statistics_when_they_differ_from_the_totals(cli, ledger_path):
    drawn = [
        {"other": False, "symbol": "BTC/USDT", "strategy": "swing", "short": False, "qty": D("1"), "opened": T0,
         "closes": [("whole", T0 + timedelta(days=2), CloseReason.TAKE_PROFIT)], "flows": [], "void": None},
    ]  # fmt: skip
    ledger, _ = build(ledger_path, drawn, None)
    ledger.close()
    cli("verify")
    edits = {
        "closed_days": "update closed_days set wins = wins + 1",
        "closed_months": "update closed_months set net = net - 1",
        "closed_outcomes": "update closed_outcomes set outcomes = 'L'",
        "closed_spans": "update closed_spans set end_us = end_us + 1",
        "flow_days": "update flow_days set amount = amount + 1",
    }
    for table, edit in edits.items():
        with sqlite3.connect(ledger_path) as conn:
            conn.execute("savepoint edit")
            conn.execute(edit)
            conn.execute("release edit")
        result = cli("verify", code=6)
        assert f"the report's {table} at" in result.stdout, result.stdout
        with sqlite3.connect(ledger_path) as conn:  # summed again, as the migrations do
            refresh_closed_days(conn)
            refill_closed_spans(conn)
            refill_flow_days(conn)
        cli("verify")


def test_a_first_release_ledgers_short_money_texts_sum_to_their_value(tmp_path):
    # The first release wrote "-2.1" and "100", not fixed-point text: trade 2's net PnL is its
    # realized 100 less its entry fee 2.0 and exit fee 2.1 = 95.9, in the totals and in the fold
    # (which once read "-2.1" as −21 units: 0.00000059).
    from test_migrations import first_release_ledger

    path = tmp_path / "old.db"
    first_release_ledger(path)
    ledger = open_ledger(path)
    book = ledger.portfolio("main")
    window = (T0, T0 + timedelta(days=10))
    closed, _ = ledger.closed_and_held(book, *window)
    assert [t.net_pnl for t in closed] == [D("95.9")]
    totals, _ = ledger.closed_totals(book, *window)
    assert [g.net for g in totals.groups] == [D("95.9")]
    ledger.close()


# The last: beyond 10 digits, more than the quick fold takes (and more than 64-bit units hold).
amounts = st.sampled_from(("-0.1", "7", "-9999999999", "-123456789012.5"))
bulk_trades = st.lists(
    st.fixed_dictionaries(
        {
            "qty": st.sampled_from(("0.5", "2", "123456789012")),  # the last: more than 64-bit units hold
            "opened": moments,
            "strategy": st.sampled_from(STRATEGIES),
            "closes": st.lists(st.tuples(st.sampled_from(("0.25", "0.5", "9999999999.5")), moments), max_size=3),
            "flows": st.lists(st.tuples(st.sampled_from(TRADE_FLOWS), amounts, moments), max_size=3),
            "odd": st.sampled_from((None, None, "short text", "1E-7", "no such day")),
            "later": st.booleans(),  # its closes and flows booked by a later bulk booking
        }
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=bulk_trades, deferred=st.booleans())
def test_the_totals_a_bulk_booking_folds_itself_are_the_ones_summed_from_the_ledger(drawn, deferred):
    """``fold_totals`` writes the totals of the trades a bulk booking opens from its own rows; summed
    again from the ledger's records by ``TOTALS_SQL`` they are the same, row for row, and so are the
    days' and months' statistics written from them (closes days and months apart). Trades closed
    by a later booking, amounts beyond the quick fold's 10 digits, ties in closing time and texts
    not in the ledger's own form (left to SQL) included; deferred to the end (as an import does) or not."""
    from portfolio_cli.ledger.booking import TOTALS_COLUMNS

    with tempfile.TemporaryDirectory() as home:
        ledger = open_ledger(Path(home) / "ledger.db")
        with ledger.transaction("test", T0):
            book = ledger.create_portfolio("main", T0)
            with ledger.totals_deferred() if deferred else contextlib.nullcontext():
                first, later = ledger.bulk_rows(), []
                for n, spec in enumerate(drawn, start=1):
                    at = codec.timestamp(spec["opened"])
                    first.trades.append((n, "BTC/USDT", "long", "spot", None, 1, codec.money(D(spec["qty"])),
                                         "100.00000000", "100.00000000", "0.10000000", at, None, None,
                                         spec["strategy"] or None, None, 0, None))  # fmt: skip
                    rows: list[tuple] = []
                    for qty, moment in spec["closes"]:
                        stamp = codec.timestamp(max(moment, spec["opened"]))
                        rows.append(("close", (n, codec.money(D(qty)), "101.00000000", "101.00000000",
                                               "0.10000000", "1.00000000", stamp, None, "manual")))  # fmt: skip
                        rows.append(("flow", ("realized_pnl", "1.00000000", stamp, n, None)))
                    funded = set()
                    for kind, amount, moment in spec["flows"]:
                        stamp = codec.timestamp(max(moment, spec["opened"]))
                        if kind is FlowKind.FUNDING and stamp in funded:
                            continue  # funding is booked once per settlement
                        funded.add(stamp)
                        rows.append(("flow", (kind.value, codec.money(D(amount)), stamp, n, None)))
                    if spec["odd"] == "short text":  # as the first release wrote money
                        rows.append(("flow", ("fee", "-2.1", at, n, None)))
                    elif spec["odd"] == "1E-7":
                        rows.append(("flow", ("fee", "-1E-7", at, n, None)))
                    elif spec["odd"] == "no such day" and rows and rows[0][0] == "close":
                        close = rows[0][1]
                        rows[0] = ("close", (*close[:6], "2026-02-30T00:00:00.000000+00:00", *close[7:]))
                    if spec["later"]:
                        later.append(rows)
                    else:
                        for table, row in rows:
                            (first.closes if table == "close" else first.cash_flows).append(row)
                ledger.book_bulk(book, first)
                if later:
                    second = ledger.bulk_rows()
                    for rows in later:
                        for table, row in rows:
                            (second.closes if table == "close" else second.cash_flows).append(row)
                    ledger.book_bulk(book, second)
            everything = "select * from trade_totals order by trade_id"
            folded = ledger.conn.execute(everything).fetchall()
            folded_days = stored_days(ledger)
            ledger._total_trades({t.id for t in ledger.trades(book)})
            summed = ledger.conn.execute(everything).fetchall()
            for table in ("closed_days", "closed_months", "closed_outcomes"):  # every day, from the totals
                ledger.conn.execute(f"delete from {table}")
            refresh_closed_days(ledger.conn)
            summed_days = stored_days(ledger)
        assert [dict(zip(TOTALS_COLUMNS, row, strict=True)) for row in folded] == [
            dict(zip(TOTALS_COLUMNS, row, strict=True)) for row in summed
        ]
        assert folded_days == summed_days
        assert len(summed) == len(drawn)
        triggers = "select count(*) from sqlite_master where type = 'trigger' and name like 'trade_totals_%'"
        assert ledger.conn.execute(triggers).fetchone()[0] == 10  # all back
        ledger.close()


def test_a_bulk_bookings_column_is_checked_at_once_only_when_every_value_is_in_the_ledgers_form():
    from portfolio_cli.ledger.booking import _UNIT_LINES, _all_match

    assert _all_match(_UNIT_LINES, ["1.00000000", "-0.04000000", "9999999999.99999999"])
    assert not _all_match(_UNIT_LINES, ["1.00000000", "2.1"])  # then each is checked alone
    assert not _all_match(_UNIT_LINES, ["1.00000000\n2.00000000"])  # one value of two lines
    assert not _all_match(_UNIT_LINES, ["12345678901.00000000"])  # 11 digits: more than the fold takes
