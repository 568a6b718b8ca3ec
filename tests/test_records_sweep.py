"""``RecordsSweep`` (engine/history.py), which values every day of a history by folding each record in
once, is ``records_at`` for every moment it is asked, in order or not: the same open lots, built the
same way, the same sums of cash flows by kind, so the same valuation to the last unit. Records come
in any order of id and time (backdated closes and margin changes, a close dated before its trade)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from portfolio_cli.engine.brackets import flat_table
from portfolio_cli.engine.history import RecordsSweep, records_at
from portfolio_cli.engine.records import CashFlow, Close, FlowKind, Kind, MarginChange, MarginMode, Side, Trade
from portfolio_cli.engine.valuation import Mark, value_portfolio

START = datetime(2026, 1, 1, tzinfo=UTC)
SYMBOLS = ("BTC/USDT", "ETH/USDT")
MARKS = {s: Mark(s, D(p), D(p), START, "test") for s, p in (("BTC/USDT", "41000"), ("ETH/USDT", "1990.5"))}
MARKS |= {f"{s}:USDT": Mark(f"{s}:USDT", m.price, m.price_usdt, START, "test") for s, m in MARKS.items()}

hours = st.integers(0, 10 * 24).map(lambda h: START + timedelta(hours=h))
amounts = st.integers(1, 10**6).map(lambda n: D(n).scaleb(-4))


@st.composite
def histories(draw):
    trades = []
    for n in range(1, draw(st.integers(0, 8)) + 1):
        margin = draw(st.booleans())
        trades.append(Trade(
            n, draw(st.sampled_from(SYMBOLS)), draw(st.sampled_from(list(Side))) if margin else Side.LONG,
            Kind.MARGIN if margin else Kind.SPOT, draw(st.sampled_from(list(MarginMode))) if margin else None,
            draw(st.integers(2, 20)) if margin else 1, D(draw(st.integers(1, 8))), D(40000), D(40000), D("0.4"),
            draw(hours),
        ))  # fmt: skip
    ids = st.sampled_from([t.id for t in trades] or [1])
    closes = [
        Close(n, draw(ids), D(draw(st.integers(1, 4))), D(40100), D(40100), D("0.1"), D(draw(st.integers(-99, 99))),
              draw(hours))  # fmt: skip
        for n in range(1, draw(st.integers(0, 10)) + 1)
    ]
    changes = [
        MarginChange(n, draw(ids), draw(hours), draw(amounts), draw(st.sampled_from([None, *MarginMode])))
        for n in range(1, draw(st.integers(0, 4)) + 1)
    ]
    flows = [
        CashFlow(n, draw(st.sampled_from(list(FlowKind))), draw(amounts) * draw(st.sampled_from([1, -1])), draw(hours))
        for n in range(1, draw(st.integers(0, 8)) + 1)
    ]
    # the ledger's order (by id) is not the order in time
    return [draw(st.permutations(records)) for records in (trades, closes, changes, flows)]


def _lots(lots):
    return [(lot.trade, lot.closes, lot.margin_changes) for lot in lots if lot.is_open]


def _sums(flows):
    sums: dict[FlowKind, D] = {}
    for f in flows:
        sums[f.kind] = sums.get(f.kind, D(0)) + f.amount
    return sums


@settings(max_examples=100)
@given(histories(), st.lists(hours, min_size=1, max_size=8), st.booleans())
def test_the_sweep_is_records_at_at_every_moment(history, moments, in_order):
    trades, closes, changes, flows = history
    sweep = RecordsSweep(trades, closes, changes, flows)
    brackets = lambda symbol: flat_table(symbol, D("0.005"))  # noqa: E731
    for moment in sorted(moments) if in_order else moments:
        swept_lots, swept_flows = sweep.at(moment)
        lots, flows_then = records_at(moment, trades, closes, changes, flows)
        assert _lots(swept_lots) == _lots(lots)
        assert all(lot.is_open for lot in swept_lots)
        assert _sums(swept_flows) == _sums(flows_then)
        assert value_portfolio(swept_flows, swept_lots, MARKS, brackets) == value_portfolio(
            flows_then, lots, MARKS, brackets
        )
