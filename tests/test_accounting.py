"""Accounting against hand-computed figures and hypothesis properties (DESIGN §3)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from portfolio_cli.engine.accounting import Lot, allocate_close, build_lots, fee_for, realized_pnl
from portfolio_cli.engine.brackets import flat_table
from portfolio_cli.engine.records import CashFlow, Close, FlowKind, Kind, MarginMode, Side, Trade
from portfolio_cli.engine.valuation import Mark, value_portfolio
from portfolio_cli.money import q8

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MMR = D("0.005")


def trade(spec: str, id: int = 1, fee_rate: D = D(0)) -> Trade:
    """``trade("long 0.5 BTC/USDT @ 30000 x3")`` -> a Trade; ``x1`` long is spot."""
    words = spec.split()
    side, qty, symbol, price = Side(words[0]), D(words[1]), words[2], D(words[4])
    leverage = int(words[5][1:]) if len(words) > 5 else 1
    kind = Kind.MARGIN if leverage > 1 or side is Side.SHORT else Kind.SPOT
    return Trade(
        id,
        symbol,
        side,
        kind,
        MarginMode.ISOLATED if kind is Kind.MARGIN else None,
        leverage,
        qty,
        price,
        price,
        fee_for(qty, price, fee_rate),
        T0,
    )


def mark(symbol: str, price: D) -> Mark:
    return Mark(symbol, price, price, T0, "test")


def flows(*amounts: tuple[FlowKind, D]) -> list[CashFlow]:
    return [CashFlow(i, kind, amount, T0) for i, (kind, amount) in enumerate(amounts, 1)]


def test_hand_computed_mixed_portfolio():
    btc = trade("long 0.5 BTC/USDT @ 30000", 1, D("0.001"))  # spot, fee 15
    eth = trade("short 4 ETH/USDT @ 2000 x5", 2, D("0.0005"))  # margin, fee 4, IM 1600
    cash = flows((FlowKind.DEPOSIT, D(20000)), (FlowKind.FEE, -btc.fee), (FlowKind.FEE, -eth.fee))
    v = value_portfolio(
        cash,
        build_lots([btc, eth], []),
        {"BTC/USDT": mark("BTC/USDT", D(33000)), "ETH/USDT": mark("ETH/USDT", D(2100))},
        lambda s: flat_table(s, MMR),
    )
    assert v.wallet_balance == D("19981")  # 20000 − 15 − 4
    assert v.unrealized_pnl == D("1100")  # 0.5×3000 − 4×100
    assert v.equity == D("21081")
    assert v.spot_holdings == D("16500")
    assert v.margin_used == D("1600")
    assert v.free_margin == D("2981")  # 21081 − 16500 − 1600
    assert v.margin_level_pct == D("286.31")  # (21081 − 16500) / 1600 × 100
    by_symbol = {p.symbol: p for p in v.positions}
    assert by_symbol["ETH/USDT"].value == D("-8400")
    assert by_symbol["ETH/USDT"].maintenance_margin == D("42")  # 4 × 2100 × 0.005
    assert by_symbol["ETH/USDT"].unrealized_pnl_pct == D("-25.00")  # −400 / 1600
    assert by_symbol["BTC/USDT"].allocation_pct == D("78.27")  # 16500 / 21081


def test_partial_closes_split_the_entry_fee_exactly():
    lot = Lot(trade("long 3 SOL/USDT @ 100", fee_rate=D("0.001")), ())  # entry fee 0.3
    shares = [lot.entry_fee_share(D(1), D(0)), lot.entry_fee_share(D(1), D(1)), lot.entry_fee_share(D(1), D(2))]
    assert shares == [D("0.1"), D("0.1"), D("0.1")]
    odd = Lot(trade("long 3 SOL/USDT @ 33.33333333", fee_rate=D("0.001")), ())
    parts = [odd.entry_fee_share(D(1), D(0)), odd.entry_fee_share(D(1), D(1)), odd.entry_fee_share(D(1), D(2))]
    assert sum(parts) == odd.trade.fee


def test_net_pnl_of_a_closed_trade():
    t = trade("short 2 ETH/USDT @ 2000 x2", fee_rate=D("0.0005"))  # entry fee 2
    close = Close(
        1,
        1,
        D(2),
        D(1900),
        D(1900),
        fee_for(D(2), D(1900), D("0.0005")),
        realized_pnl(Side.SHORT, D(2), D(2000), D(1900)),
        T0,
    )
    lot = Lot(t, (close,))
    assert close.realized_pnl == D(200)
    assert lot.net_pnl() == D("196.1")  # 200 − 2 − 1.9


def test_allocate_close_takes_oldest_first():
    lots = build_lots([trade("long 1 BTC/USDT @ 10", 1), trade("long 2 BTC/USDT @ 20", 2)], [])
    slices = allocate_close(lots, qty=D("1.5"))
    assert [(s.lot.trade.id, s.qty) for s in slices] == [(1, D(1)), (2, D("0.5"))]


prices = st.decimals(min_value=D("0.0001"), max_value=D("100000"), places=4)
qtys = st.decimals(min_value=D("0.001"), max_value=D("1000"), places=3)
sides = st.sampled_from([Side.LONG, Side.SHORT])


fee_rates = st.sampled_from([D(0), D("0.001"), D("0.0005"), D("0.00075")])


@given(side=sides, qty=qtys, entry=prices, exit=prices, fee_rate=fee_rates, leverage=st.integers(2, 125))
def test_closing_at_the_mark_costs_exactly_the_exit_fee(side, qty, entry, exit, fee_rate, leverage):
    """Valuation (unrealized PnL at the mark) and booking (realized PnL of the close) are two
    computations of one figure: closing at the mark may change equity by the exit fee and nothing else."""
    t = trade(f"{side} {qty} BTC/USDT @ {entry} x{leverage}", fee_rate=fee_rate)
    marks = {"BTC/USDT": mark("BTC/USDT", exit)}
    opened = [(FlowKind.DEPOSIT, D(10**9)), (FlowKind.FEE, -t.fee)]
    before = value_portfolio(flows(*opened), build_lots([t], []), marks, lambda s: flat_table(s, MMR)).equity

    pnl, fee = realized_pnl(side, qty, t.price_usdt, exit), fee_for(qty, exit, fee_rate)
    close = Close(1, t.id, qty, exit, exit, fee, pnl, T0)
    closed = [*opened, (FlowKind.REALIZED_PNL, pnl), (FlowKind.FEE, -fee)]
    after = value_portfolio(flows(*closed), build_lots([t], [close]), marks, lambda s: flat_table(s, MMR)).equity

    assert after == before - fee


@settings(max_examples=80)
@given(
    qty=qtys,
    price=prices,
    fee_rate=fee_rates,
    cuts=st.lists(st.integers(1, 999), min_size=0, max_size=6, unique=True),
)
def test_entry_fee_shares_of_any_split_add_up_to_the_entry_fee(qty, price, fee_rate, cuts):
    """However a trade is closed in parts, each part carries a non-negative share of the entry fee and
    the shares add up to the entry fee exactly, so the parts' net PnL adds up to the trade's."""
    t = trade(f"long {qty} BTC/USDT @ {price} x2", fee_rate=fee_rate)
    points = sorted({q8(qty * c / 1000) for c in cuts} - {D(0), qty}) + [qty]
    lot, closed, shares, closes = build_lots([t], [])[0], D(0), [], []
    for point in points:
        part = point - closed
        shares.append(lot.entry_fee_share(part, closed))
        closes.append(Close(len(closes) + 1, t.id, part, price, price, D(0), D(0), T0))
        closed = point
    assert all(share >= 0 for share in shares)
    assert sum(shares, D(0)) == t.fee
    assert build_lots([t], closes)[0].net_pnl() == -t.fee


@given(side=sides, qty=qtys, entry=prices, m1=prices, m2=prices)
def test_equity_moves_linearly_with_price(side, qty, entry, m1, m2):
    lots = build_lots([trade(f"{side} {qty} BTC/USDT @ {entry} x3")], [])
    cash = flows((FlowKind.DEPOSIT, D(10000)))

    def equity(price: D) -> D:
        return value_portfolio(cash, lots, {"BTC/USDT": mark("BTC/USDT", price)}, lambda s: flat_table(s, MMR)).equity

    assert equity(m2) - equity(m1) == q8(side.sign * qty * (m2 - m1))
