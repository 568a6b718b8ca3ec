"""Pending orders: the engine's fill rules by hand, then placed, listed, filled, expired, cancelled
and refused end to end through the CLI against the fake Binance with scripted candles."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from portfolio_cli.engine.orders import candle_fill, reservation, reserved_at, wrong_side
from portfolio_cli.engine.records import Kind, MarginMode, Order, OrderEnd, OrderStatus, OrderType, Side

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


_started: list[datetime] = []


@pytest.fixture(autouse=True)
def _one_clock_per_test():
    """Every ``minute()`` of a test counts from the minute it started, so a test that crosses a minute
    boundary still scripts and asserts the same candles."""
    _started[:] = [datetime.now(UTC).replace(second=0, microsecond=0)]


def minute(offset: int) -> datetime:
    return _started[0] + timedelta(minutes=offset)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def order(side: Side, order_type: OrderType, price: str, order_id: int = 1, reserved: str = "0") -> Order:
    return Order(order_id, "BTC/USDT", side, Kind.MARGIN, MarginMode.ISOLATED, 2, order_type, D(price), D(1),
                 D(reserved), T0)  # fmt: skip


# engine


@pytest.mark.parametrize(
    ("side", "order_type", "candle", "fill"),
    [
        # a limit buy at 39,000 fills at 39,000 when the low reaches it, however far below it went
        (Side.LONG, OrderType.LIMIT, ("40000", "40100", "39000", "39500"), ("39000", True, False)),
        (Side.LONG, OrderType.LIMIT, ("38000", "38500", "37000", "38000"), ("39000", True, False)),
        (Side.LONG, OrderType.LIMIT, ("40000", "40100", "39001", "39500"), None),
        (Side.SHORT, OrderType.LIMIT, ("38500", "39000", "38000", "38800"), ("39000", True, False)),
        (Side.SHORT, OrderType.LIMIT, ("38500", "38999", "38000", "38800"), None),
        # a stop-entry buy at 39,000 triggers when the high reaches it, at the open when it opened above
        (Side.LONG, OrderType.STOP_ENTRY, ("38500", "39200", "38400", "39100"), ("39000", False, False)),
        (Side.LONG, OrderType.STOP_ENTRY, ("39300", "39500", "39200", "39400"), ("39300", False, True)),
        (Side.LONG, OrderType.STOP_ENTRY, ("38500", "38999", "38400", "38900"), None),
        (Side.SHORT, OrderType.STOP_ENTRY, ("39500", "39600", "38900", "39000"), ("39000", False, False)),
        (Side.SHORT, OrderType.STOP_ENTRY, ("38700", "38800", "38600", "38700"), ("38700", False, True)),
    ],
)
def test_what_a_candle_does_to_an_order(side, order_type, candle, fill):
    got = candle_fill(order(side, order_type, "39000"), *(D(p) for p in candle[:3]))
    if fill is None:
        assert got is None
    else:
        assert (got.price, got.maker, got.gapped) == (D(fill[0]), fill[1], fill[2])


def test_reservations_and_the_side_of_the_market():
    assert reservation(Kind.SPOT, D("0.1"), D(39000), 1) == D(3900)  # its cost
    assert reservation(Kind.MARGIN, D("0.1"), D(39000), 4) == D(975)  # 3900 / 4
    assert wrong_side(Side.LONG, OrderType.LIMIT, D(40000), D(40000)) is not None
    assert wrong_side(Side.LONG, OrderType.LIMIT, D(39999), D(40000)) is None
    assert wrong_side(Side.SHORT, OrderType.LIMIT, D(40001), D(40000)) is None
    assert wrong_side(Side.LONG, OrderType.STOP_ENTRY, D(39000), D(40000)) is not None
    assert wrong_side(Side.SHORT, OrderType.STOP_ENTRY, D(39000), D(40000)) is None
    a, b = order(Side.LONG, OrderType.LIMIT, "1", 1, "100"), order(Side.LONG, OrderType.LIMIT, "1", 2, "50")
    ended = [OrderEnd(1, 1, T0 + timedelta(hours=1), OrderStatus.CANCELLED)]
    assert reserved_at([a, b], ended, T0) == D(150)
    assert reserved_at([a, b], ended, T0 + timedelta(hours=1)) == D(50)
    assert reserved_at([a, b], ended, T0 - timedelta(seconds=1)) == D(0)


# end to end


@pytest.fixture
def btc(binance):
    binance.prices["BTC/USDT"] = D(40000)
    return binance


def flat(fake, first: int, last: int, price: str) -> None:
    for offset in range(first, last + 1):
        fake.ohlc.setdefault(("BTC/USDT", "1m", ms(minute(offset))), (D(price),) * 4)


def test_an_open_order_reserves_its_cost_and_cancel_releases_it(cli, btc, ledger_path):
    cli("init", "--balance", "10000")
    placed = cli.json("order", "BTC/USDT", "--limit", "39000", "--qty", "0.1", "--expires", "24h")
    # spot: its cost, 0.1 × 39,000
    assert (placed["status"], D(placed["reserved"])) == ("open", D(3900))
    value = cli.json("value")["valuation"]
    assert (D(value["free_margin"]), D(value["reserved_margin"])) == (D(6100), D(3900))
    assert "Held by open orders" in cli("value").stdout
    # withdraw and open see the reservation
    refused = cli("withdraw", "6500", code=1)
    assert "refused by free margin" in refused.stderr
    assert "refused by free margin" in cli("order", "BTC/USDT", "--limit", "39000", "--qty", "0.2", code=1).stderr
    [listed] = cli.json("orders")
    assert (listed["id"], listed["order_type"], D(listed["price"])) == (placed["id"], "limit", D(39000))
    assert "limit" in cli("orders").stdout
    cancelled = cli.json("cancel", str(placed["id"]))
    assert (cancelled["status"], cancelled["reason"]) == ("cancelled", "cancelled by the trader")
    assert D(cli.json("value")["valuation"]["free_margin"]) == D(10000)
    assert cli.json("orders") == []
    assert cli("orders").stdout.strip() == "No open orders"
    assert "already cancelled" in cli("cancel", str(placed["id"]), code=1).stderr
    assert cli("cancel", "99", code=4).stderr.startswith("error: no order 99")
    with sqlite3.connect(ledger_path) as conn:
        actions = [a for (a,) in conn.execute("select action from audit_log where action like '%order%'")]
    assert actions == ["place order", "order cancelled"]


def test_bad_orders_are_refused_with_one_line(cli, btc):
    cli("init")
    assert "would fill at once" in cli("order", "BTC/USDT", "--limit", "41000", "--qty", "0.1", code=2).stderr
    assert "trigger at once" in cli("order", "BTC/USDT", "--stop-entry", "39000", "--qty", "0.1", code=2).stderr
    both = cli("order", "BTC/USDT", "--limit", "39000", "--stop-entry", "41000", "--qty", "0.1", code=2)
    assert "exactly one of --limit and --stop-entry" in both.stderr
    stop = cli("order", "BTC/USDT", "--limit", "39000", "--qty", "0.1", "--stop-loss", "39500", code=2)
    assert "--stop-loss 39500 must be below the fill price 39000" in stop.stderr
    assert "not after" in cli("order", "BTC/USDT", "--limit", "39000", "--qty", "0.1", "--expires", "2020-01-01",
                              code=2).stderr  # fmt: skip
    assert cli.json("orders", "--all") == []


def test_a_limit_order_fills_at_its_price_with_the_maker_fee_and_its_stops(cli, btc, ledger_path):
    cli("init", "--at", minute(-120).isoformat())
    placed = cli.json(
        "order", "BTC/USDT", "--limit", "39000", "--qty", "0.1", "--leverage", "2", "--stop-loss", "38000",
        "--trailing-stop", "5", "--strategy", "dip", "--at", minute(-60).isoformat(),
    )  # fmt: skip
    assert D(placed["reserved"]) == D(1950)  # 0.1 × 39,000 / 2
    flat(btc, -59, -31, "40000")
    btc.ohlc[("BTC/USDT", "1m", ms(minute(-30)))] = (D(39500), D(39600), D(38800), D(39200))
    flat(btc, -29, -1, "39200")
    result = cli.json("check")
    [event] = [e for e in result["portfolios"][0]["events"] if e["kind"] == "order_filled"]
    assert datetime.fromisoformat(event["at"]) == minute(-30)
    [trade] = cli.json("trades")
    assert (D(trade["entry"]), D(trade["qty"]), trade["strategy"]) == (D(39000), D("0.1"), "dip")
    # the maker fee: 0.1 × 39,000 × 0.0002
    assert D(trade["fees"]) == D("0.78")
    [ended] = cli.json("orders", "--all")
    assert (ended["status"], ended["trade_id"]) == ("filled", trade["id"])
    assert D(cli.json("value")["valuation"]["reserved_margin"]) == D(0)
    [level] = cli.json("value")["levels"]
    assert D(level["stop_loss"]) == D(38000) and D(level["trailing_pct"]) == D(5)
    with sqlite3.connect(ledger_path) as conn:
        [(details,)] = conn.execute("select details from audit_log where action = 'order filled'").fetchall()
    assert (json.loads(details)["order_id"], json.loads(details)["trade_id"]) == (placed["id"], trade["id"])


def test_a_gapped_stop_entry_short_fills_at_the_open_with_the_taker_fee(cli, btc):
    cli("init", "--at", minute(-120).isoformat())
    cli("order", "BTC/USDT", "--stop-entry", "39000", "--qty", "0.1", "--short", "--leverage", "2",
        "--at", minute(-60).isoformat())  # fmt: skip
    flat(btc, -60, -21, "40000")
    btc.ohlc[("BTC/USDT", "1m", ms(minute(-20)))] = (D(38500), D(38600), D(38000), D(38400))
    flat(btc, -19, -1, "38400")
    btc.prices["BTC/USDT"] = D(38400)
    cli("check")
    [trade] = cli.json("trades")
    assert (trade["side"], D(trade["entry"])) == ("short", D(38500))
    assert D(trade["fees"]) == D("1.925")  # the taker fee: 0.1 × 38,500 × 0.0005


def test_an_order_expires_unfilled(cli, btc):
    cli("init", "--at", minute(-120).isoformat())
    cli("order", "BTC/USDT", "--limit", "39000", "--qty", "0.1", "--at", minute(-60).isoformat(), "--expires", "30m")
    flat(btc, -59, -31, "40000")
    btc.ohlc[("BTC/USDT", "1m", ms(minute(-20)))] = (D(39500), D(39600), D(38000), D(39200))  # after it expired
    result = cli.json("check")
    [event] = [e for e in result["portfolios"][0]["events"] if e["kind"] == "order_cancelled"]
    assert "expired" in event["message"] and datetime.fromisoformat(event["at"]) == minute(-30)
    assert cli.json("trades") == []
    [ended] = cli.json("orders", "--all")
    assert (ended["status"], datetime.fromisoformat(ended["ended_at"])) == ("expired", minute(-30))


def test_an_order_the_risk_rules_refuse_at_the_fill_is_cancelled_with_the_reason(cli, btc, monkeypatch):
    cli("init", "--at", minute(-120).isoformat())
    monkeypatch.setenv("PORTFOLIO_RISK__MAX_POSITION_PCT", "10")
    # 0.1 × 39,000 = 3,900 USDT of BTC is 39 % of a 10,000 equity, above the 10 % per asset
    cli("order", "BTC/USDT", "--limit", "39000", "--qty", "0.1", "--at", minute(-60).isoformat())
    flat(btc, -59, -31, "40000")
    btc.ohlc[("BTC/USDT", "1m", ms(minute(-30)))] = (D(39500), D(39600), D(38800), D(39200))
    result = cli.json("check")
    [event] = [e for e in result["portfolios"][0]["events"] if e["kind"] == "order_cancelled"]
    assert "refused at the fill" in event["message"]
    assert cli.json("trades") == []
    [ended] = cli.json("orders", "--all")
    assert ended["status"] == "cancelled" and "refused at the fill" in ended["reason"]
    assert D(cli.json("value")["valuation"]["free_margin"]) == D(10000)


def test_a_backdated_open_may_not_take_the_margin_a_later_order_reserved(cli, btc):
    """The order placed now needed its 3,900 free; a spot buy of 6,400 an hour ago would leave it 3,606.4."""
    cli("init", "--balance", "10000", "--at", minute(-24 * 60).isoformat())
    placed = cli.json("order", "BTC/USDT", "--limit", "39000", "--qty", "0.1", "--expires", "24h")
    args = ("open", "BTC/USDT", "--qty", "0.16", "--price", "40000", "--at", minute(-60).isoformat())
    refused = cli(*args, code=1)
    assert f"order {placed['id']} (BTC/USDT, placed" in refused.stderr
    assert "without the free margin it needed" in refused.stderr
    assert cli.json("trades") == []
    cli("open", "BTC/USDT", "--qty", "0.15", "--price", "40000", "--at", minute(-60).isoformat())  # leaves 94


def test_free_margin_at_a_moment_holds_back_what_the_orders_open_then_reserve():
    from portfolio_cli.engine.brackets import flat_table
    from portfolio_cli.engine.records import CashFlow, FlowKind
    from portfolio_cli.engine.timeline import Records, free_margin_at

    deposit = CashFlow(1, FlowKind.DEPOSIT, D(10000), T0 - timedelta(days=1), None, None)
    placed = order(Side.LONG, OrderType.LIMIT, "39000", 1, "3900")  # placed at T0
    ended = OrderEnd(1, 1, T0 + timedelta(hours=1), OrderStatus.CANCELLED)
    records = Records(flows=(deposit,), orders=(placed,), order_ends=(ended,))
    def brackets(symbol):
        return flat_table(symbol, D("0.004"))
    assert free_margin_at(records, T0 - timedelta(seconds=1), {}, brackets) == D(10000)
    assert free_margin_at(records, T0, {}, brackets) == D(6100)
    assert free_margin_at(records, T0 + timedelta(hours=1), {}, brackets) == D(10000)


def test_a_limit_outside_the_price_band_is_refused_unless_off_market(cli, btc, ledger_path):
    cli("init", "--balance", "10000")
    # a perpetual's band is 0.95-1.05 of the mark: a 2x long limit at 37,000 is 7.5 % under 40,000
    args = ("order", "BTC/USDT", "--limit", "37000", "--qty", "0.1", "--leverage", "2")
    refused = cli(*args, code=1)
    assert "price band" in refused.stderr and "--off-market" in refused.stderr
    assert cli.json("orders") == []
    placed = cli.json(*args, "--off-market")
    [details] = off_market_audit(ledger_path)
    assert details["order_id"] == placed["id"]
    # a stop-entry's trigger is not held to the band: Binance checks a stop once it triggers
    cli("order", "BTC/USDT", "--stop-entry", "43000", "--qty", "0.01", "--leverage", "2")


def off_market_audit(ledger_path) -> list[dict]:
    with sqlite3.connect(ledger_path) as conn:
        rows = conn.execute("select details from audit_log where action = 'off-market price' order by id").fetchall()
    return [json.loads(d) for (d,) in rows]


def test_an_order_dry_run_places_nothing_and_its_fill_matches_the_check(cli, btc, ledger_path):
    cli("init", "--balance", "10000", "--at", minute(-120).isoformat())
    args = ("order", "BTC/USDT", "--limit", "39000", "--qty", "0.1", "--leverage", "2", "--at", minute(-60).isoformat())
    before = ledger_path.read_bytes()
    preview = cli.json(*args, "--dry-run")
    assert ledger_path.read_bytes() == before
    assert (D(preview["order"]["reserved"]), preview["would_place"]) == (D(1950), True)
    assert (D(preview["free_margin_before"]), D(preview["free_margin_after"])) == (D(10000), D(8050))
    fill = preview["at_fill"]
    assert (D(fill["price"]), D(fill["fee"]), D(fill["margin"])) == (D(39000), D("0.78"), D(1950))  # maker fee
    assert fill["liquidation_price"] is not None
    text = cli(*args, "--dry-run").stdout
    assert "nothing placed" in text and "Reserves 1,950.00 USDT" in text and "maker fee" in text
    placed = cli.json(*args)
    assert D(placed["reserved"]) == D(preview["order"]["reserved"])
    flat(btc, -59, -31, "40000")
    btc.ohlc[("BTC/USDT", "1m", ms(minute(-30)))] = (D(39500), D(39600), D(38800), D(39200))
    flat(btc, -29, -1, "39200")
    cli("check")
    [trade] = cli.json("trades")
    assert (D(trade["entry"]), D(trade["fees"])) == (D(fill["price"]), D(fill["fee"]))
    [position] = cli.json("margin")["account"]["positions"]
    assert D(position["liquidation_price"]) == D(fill["liquidation_price"])


def test_an_order_dry_run_that_would_not_fit_exits_1(cli, btc, ledger_path):
    cli("init", "--balance", "1000")
    before = ledger_path.read_bytes()
    result = cli("order", "BTC/USDT", "--limit", "39000", "--qty", "0.1", "--dry-run", code=1)
    assert "would be refused (free margin)" in result.stdout and "nothing was placed" in result.stderr
    assert ledger_path.read_bytes() == before


def test_a_backdated_order_may_not_take_the_margin_a_later_trade_needed(cli, btc):
    cli("init", "--balance", "10000", "--at", minute(-24 * 60).isoformat())
    cli("open", "BTC/USDT", "--qty", "0.16", "--price", "40000", "--at", minute(-30).isoformat())  # 6,406.4 of cash
    args = ("order", "BTC/USDT", "--limit", "39000", "--qty", "0.1", "--at", minute(-60).isoformat())
    refused = cli(*args, code=1)
    assert "trade 1 (BTC/USDT, opened" in refused.stderr and "without the free margin it needed" in refused.stderr
    assert "an order placed at" in cli(*args, "--dry-run", code=1).stderr  # the dry run says why it would not place
    assert cli.json("orders") == []
    cli("order", "BTC/USDT", "--limit", "39000", "--qty", "0.05", "--at", minute(-60).isoformat())  # 1,950 fits


def test_an_offline_order_dry_run_says_each_warning_once(cli, btc):
    cli("init", "--balance", "10000")
    args = ("order", "BTC/USDT", "--limit", "39000", "--qty", "0.01", "--offline", "--price", "BTC/USDT=40000")
    result = cli(*args, "--dry-run")
    assert result.stderr.count("trading rules for BTC/USDT unknown") == 1, result.stderr
    assert "would be placed" in result.stdout
