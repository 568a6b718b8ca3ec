"""Margin positions trade Binance's USDⓈ-M perpetuals, through real ccxt against the fake Binance:
the futures market and its filters, mark prices, mark-price liquidations, every funding settlement
at each symbol's own interval, order-book fills, and one unknown symbol never stopping the others."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from conftest import ledger_rows

CLOSED, INCOMPLETE = 12, 13


def hour(offset: int) -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=offset)


def minute(offset: int) -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=offset)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# the futures market


def test_a_margin_position_trades_the_perpetual_and_says_so(cli, binance):
    cli("init", "--balance", "10000")
    fill = cli.json("open", "BTC/USDT", "--qty", "0.1", "--leverage", "10")
    assert fill["symbol"] == "BTC/USDT" and fill["market"] == "BTC/USDT:USDT"
    assert "USDⓈ-M perpetual" in cli("open", "ETH/USDT", "--qty", "1", "--leverage", "5", "--short").stdout
    spot = cli.json("open", "SOL/USDT", "--qty", "1")
    assert spot["market"] == "SOL/USDT"
    # the futures exchangeInfo is cached like the spot markets: asked for once
    assert binance.count("/fapi/v1/exchangeInfo") == 1


def test_a_pair_with_no_perpetual_is_refused_by_name(cli, binance, ledger_path):
    binance.prices["WBTC/USDT"] = D(40000)
    cli("init", "--balance", "10000")
    cli("open", "WBTC/USDT", "--qty", "0.01")  # spot is listed
    result = cli("open", "WBTC/USDT", "--qty", "0.01", "--leverage", "5", code=4)
    assert "WBTC/USDT has no USDⓈ-M perpetual" in result.stderr and "WBTCUSDT" in result.stderr
    assert len(ledger_rows(ledger_path, "trades")) == 1


def test_the_perpetuals_lot_rules_and_market_order_maximum(cli, binance):
    cli("init", "--balance", "1000000")
    # BTCUSDT perpetual: step 0.001 (0.0005 rounds to nothing), minimum notional 100 USDT
    assert "minimum" in cli("open", "BTC/USDT", "--qty", "0.0005", "--leverage", "20", code=1).stderr
    assert "below" in cli("open", "BTC/USDT", "--qty", "0.002", "--leverage", "20", code=1).stderr  # 80 USDT
    # MARKET_LOT_SIZE: the perpetual takes at most 120 BTC in one market order, spot 128.5
    result = cli("open", "BTC/USDT", "--qty", "121", "--leverage", "2", "--force", code=1)
    assert "market-order maximum" in result.stderr and "120" in result.stderr
    result = cli("open", "BTC/USDT", "--qty", "150", "--force", code=1)
    assert "128.5" in result.stderr


# mark price


def test_margin_positions_are_valued_at_the_mark_spot_at_the_last_price(cli, binance):
    cli("init", "--balance", "10000")
    cli("open", "BTC/USDT", "--qty", "0.01")
    cli("open", "BTC/USDT", "--qty", "0.1", "--leverage", "10")
    binance.prices["BTC/USDT"] = D(39000)
    binance.marks["BTC/USDT"] = D(39100)
    positions = {p["kind"]: p for p in cli.json("value")["valuation"]["positions"]}
    assert D(positions["spot"]["mark"]) == D(39000)
    assert D(positions["margin"]["mark"]) == D(39100) and positions["margin"]["price_source"] == "mark"
    assert D(positions["margin"]["unrealized_pnl"]) == D(-90)  # 0.1 × (39,100 − 40,000)
    # Binance's figures for `value`: margin ratio 15.64 / (400 − 90) and the liquidation price
    assert D(positions["margin"]["margin_ratio_pct"]) == D("5.05")
    assert D(positions["margin"]["liquidation_price"]) == D("36144.57831325")


def test_live_value_makes_at_most_three_requests_with_warm_markets(cli, binance):
    cli("init", "--balance", "10000")
    cli("open", "BTC/USDT", "--qty", "0.01")
    cli("open", "ETH/USDT", "--qty", "1", "--leverage", "5")
    cli("open", "SOL/USDT", "--qty", "10", "--leverage", "3", "--short")
    cli("value")  # markets warm
    before = len(binance.requests)
    cli("value")
    sent = sorted(r.path for r in binance.requests[before:])
    assert sent == ["/api/v3/ticker/24hr", "/fapi/v1/premiumIndex"]  # spot tickers, every mark: nothing per symbol


def test_no_mark_price_falls_back_to_the_last_price_saying_so(cli, binance):
    cli("init", "--balance", "10000")
    cli("open", "BTC/USDT", "--qty", "0.1", "--leverage", "10")
    binance.unmarked.add("BTC/USDT")  # premiumIndex no longer lists it
    binance.prices["BTC/USDT"] = D(39000)
    result = cli("value", "--json")
    assert "no mark price for BTC/USDT:USDT: valued at BTC/USDT's last price" in result.stderr
    [position] = json.loads(result.stdout)["valuation"]["positions"]
    assert D(position["mark"]) == D(39000)


# liquidation on the mark, stops on the last price


def test_a_spot_wick_the_mark_smooths_out_does_not_liquidate(cli, binance):
    cli("init", "--at", (minute(-120)).isoformat())
    at = minute(-60).isoformat()
    cli("open", "BTC/USDT", "--qty", "0.1", "--leverage", "10", "--price", "40000", "--at", at)
    cli("open", "ETH/USDT", "--qty", "1", "--leverage", "10", "--price", "2000", "--at", at)
    # BTC's last price wicked below its liquidation price 36,144.58 while its mark stayed flat;
    # ETH's mark fell through (200 − 2,000) / (0.005 − 1) = 1,809.04522613
    binance.ohlc[("BTC/USDT", "1m", ms(minute(-30)))] = (D(40000), D(40000), D(36000), D(39900))
    binance.mark_ohlc[("ETH/USDT", "1m", ms(minute(-20)))] = (D(2000), D(2000), D(1800), D(1990))
    cli("check", code=CLOSED)
    [trade] = [t for t in cli.json("trades") if t["status"] == "closed"]
    assert trade["symbol"] == "ETH/USDT" and trade["closed_by"] == "liquidation"
    assert D(trade["exit"]) == D("1809.04522613")


def test_a_margin_stop_fires_on_the_last_price(cli, binance):
    cli("init", "--at", (minute(-120)).isoformat())
    cli(
        "open", "BTC/USDT", "--qty", "0.1", "--leverage", "10", "--price", "40000", "--stop-loss", "39000",
        "--at", minute(-60).isoformat(),
    )  # fmt: skip
    binance.ohlc[("BTC/USDT", "1m", ms(minute(-30)))] = (D(40000), D(40000), D(38900), D(39900))
    cli("check", code=CLOSED)
    [trade] = [t for t in cli.json("trades") if t["status"] == "closed"]
    assert trade["closed_by"] == "stop_loss" and D(trade["exit"]) == D(39000)


# funding


def settlements(every: int, since: datetime) -> list[datetime]:
    return [hour(h) for h in range(-12, 1) if hour(h) > since and hour(h).hour % every == 0]


def funding_flows(ledger_path) -> dict[int, list[tuple[str, D]]]:
    flows: dict[int, list[tuple[str, D]]] = {}
    for row in ledger_rows(ledger_path, "cash_flows"):
        if row[2] == "funding":
            flows.setdefault(row[5], []).append((row[4], D(row[3])))
    return flows


def test_every_settlement_at_each_symbols_own_interval_once(cli, binance, ledger_path):
    opened = hour(-9) + timedelta(minutes=30)
    cli("init", "--balance", "10000", "--at", hour(-10).isoformat())
    at = opened.isoformat()
    cli("open", "BTC/USDT", "--qty", "0.1", "--leverage", "5", "--price", "40000", "--at", at)  # 8 h
    cli("open", "SOL/USDT", "--qty", "10", "--leverage", "5", "--price", "100", "--at", at)  # 4 h
    cli("open", "DOGE/USDT", "--qty", "1000", "--leverage", "5", "--price", "0.1", "--at", at)  # 1 h
    cli("check", code=None)
    cli("check", code=None)  # run again: nothing is booked twice
    flows = funding_flows(ledger_path)
    # −s·q·mark·rate with the settlement's mark and rate 0.0001: BTC 0.1 × 40,000, SOL 10 × 100, DOGE 1,000 × 0.1
    for trade_id, every, amount in ((1, 8, D("-0.4")), (2, 4, D("-0.1")), (3, 1, D("-0.01"))):
        expected = settlements(every, opened)
        assert len(flows.get(trade_id, [])) == len(expected), (trade_id, flows.get(trade_id))
        assert {a for _, a in flows.get(trade_id, [])} <= {amount}
    assert len(settlements(1, opened)) == 9


def test_a_symbol_whose_interval_changes_mid_position(cli, binance, ledger_path):
    opened = hour(-11) + timedelta(minutes=30)
    binance.funding_changes["BTC/USDT"] = [(ms(hour(-4)), 1)]  # capped: moved from 8 h to 1 h
    cli("init", "--balance", "10000", "--at", hour(-12).isoformat())
    cli("open", "BTC/USDT", "--qty", "0.1", "--leverage", "5", "--price", "40000", "--at", opened.isoformat())
    cli("check", code=None)
    booked = sorted(at for at, _ in funding_flows(ledger_path)[1])
    before = [t for t in settlements(8, opened) if t < hour(-4)]
    after = [t for t in settlements(1, opened) if t >= hour(-4)]
    assert len(booked) == len(before) + len(after) == len(set(booked))


def test_a_no_perpetual_symbol_in_one_portfolio_does_not_stop_anothers_stop(cli, binance, ledger_path):
    binance.prices["WBTC/USDT"] = D(40000)
    cli("init", "imported", "--balance", "10000", "--at", minute(-120).isoformat())
    # an imported margin position on a pair Binance has no perpetual for (opened before the futures
    # markets were known, offline)
    cli("open", "WBTC/USDT", "--qty", "0.1", "--leverage", "5", "--price", "40000", "-p", "imported", "--offline")
    cli("init", "trader", "--balance", "10000", "--at", minute(-120).isoformat())
    cli(
        "open", "BTC/USDT", "--qty", "0.1", "--price", "40000", "--stop-loss", "39000", "-p", "trader",
        "--at", minute(-60).isoformat(),
    )  # fmt: skip
    binance.ohlc[("BTC/USDT", "1m", ms(minute(-30)))] = (D(40000), D(40000), D(38900), D(39900))
    result = cli("check", code=INCOMPLETE)
    assert "WBTC/USDT" in result.stderr and "incomplete" in result.stderr
    [trade] = [t for t in cli.json("trades", "-p", "trader") if t["status"] == "closed"]
    assert trade["closed_by"] == "stop_loss"


# one unknown symbol never stops the others


def test_value_prices_a_symbol_binance_does_not_list_at_its_last_fill_and_names_it(cli, binance):
    cli("init", "--balance", "10000")
    cli("open", "XYZ/USDT", "--qty", "10", "--price", "5", "--offline")  # delisted since, never priced live
    # open: the new trade is booked; XYZ is weighed at its last fill, and the command says so (exit 13)
    opened = cli("open", "BTC/USDT", "--qty", "0.01", code=INCOMPLETE)
    assert "Opened trade 2" in opened.stdout
    assert "XYZ/USDT is not listed on Binance: valued at its last fill price" in opened.stderr
    result = cli("value", "--json", code=INCOMPLETE)
    assert "XYZ/USDT is not listed on Binance: valued at its last fill price" in result.stderr
    positions = {p["symbol"]: p for p in json.loads(result.stdout)["valuation"]["positions"]}
    assert positions["XYZ/USDT"]["price_source"] == "last fill" and positions["XYZ/USDT"]["mark"] == "5.00000000"
    assert positions["BTC/USDT"]["price_source"] == "binance"


def test_an_unlisted_symbol_with_a_cached_price_is_valued_at_it_with_a_warning(cli, binance, monkeypatch):
    binance.prices["WBTC/USDT"] = D(40000)
    cli("init", "--balance", "10000")
    cli("open", "WBTC/USDT", "--qty", "0.01")
    cli("open", "BTC/USDT", "--qty", "0.01")
    cli("value")  # its price is cached
    import fake_binance

    monkeypatch.delitem(fake_binance.MARKETS, "WBTC/USDT")  # delisted
    monkeypatch.setenv("PORTFOLIO_PRICES__MARKETS_TTL_HOURS", "0.000001")  # the markets are asked again
    binance.prices["WBTC/USDT"] = D(1)
    result = cli("value", "--json", code=INCOMPLETE)
    assert "WBTC/USDT is not listed on Binance: using its cached price" in result.stderr
    positions = {p["symbol"]: p for p in json.loads(result.stdout)["valuation"]["positions"]}
    assert D(positions["WBTC/USDT"]["mark"]) == D(40000) and D(positions["BTC/USDT"]["mark"]) == D(40000)


# order-book fills


def book(*levels: tuple[str, str]) -> list[tuple[D, D]]:
    return [(D(p), D(q)) for p, q in levels]


def test_a_small_order_fills_at_the_best_level(cli, binance):
    binance.books[("BTC/USDT", "futures")] = ([], book(("40001.0", "0.5"), ("40010.0", "1"), ("40100.0", "2")))
    cli("init", "--balance", "10000")
    fill = cli.json("open", "BTC/USDT", "--qty", "0.1", "--leverage", "10")
    assert D(fill["price"]) == D("40001")
    assert D(fill["moved_pct"]) == D("0.0025")  # (40,001 − 40,000) / 40,000 from the mark
    assert "1 level" in fill["fill_note"]


def test_a_large_order_walks_the_book_for_its_volume_weighted_price(cli, binance):
    binance.books[("BTC/USDT", "futures")] = ([], book(("40000.0", "0.5"), ("40010.0", "1"), ("40100.0", "2")))
    cli("init", "--balance", "100000")
    fill = cli.json("open", "BTC/USDT", "--qty", "2", "--leverage", "10")
    # (0.5 × 40,000 + 1 × 40,010 + 0.5 × 40,100) / 2
    assert D(fill["price"]) == D("40030")
    assert "3 level" in fill["fill_note"]


def test_an_order_beyond_the_cap_is_refused(cli, binance, ledger_path):
    # 5 % above 40,000 is 42,000: the level at 43,000 is out of reach
    binance.books[("BTC/USDT", "futures")] = ([], book(("40000.0", "0.5"), ("41000.0", "1"), ("43000.0", "10")))
    cli("init", "--balance", "100000")
    result = cli("open", "BTC/USDT", "--qty", "2", "--leverage", "10", code=1)
    assert "holds only 1.5 within 5 %" in result.stderr
    assert ledger_rows(ledger_path, "trades") == []


def test_a_sell_walks_the_bids(cli, binance):
    binance.books[("ETH/USDT", "futures")] = (book(("1999.00", "1"), ("1990.00", "5")), [])
    cli("init", "--balance", "100000")
    fill = cli.json("open", "ETH/USDT", "--qty", "3", "--leverage", "5", "--short")
    assert D(fill["price"]) == D("1993")  # (1 × 1,999 + 2 × 1,990) / 3


def test_book_unavailable_falls_back_to_the_last_price_and_says_so(cli, binance, monkeypatch):
    monkeypatch.setenv("PORTFOLIO_TRADING__SLIPPAGE_BPS", "5")
    binance.books_down.add(("BTC/USDT", "futures"))
    cli("init", "--balance", "10000")
    result = cli("open", "BTC/USDT", "--qty", "0.1", "--leverage", "10", "--json")
    assert "order book for BTC/USDT:USDT unavailable" in result.stderr
    fill = json.loads(result.stdout)
    assert D(fill["price"]) == D("40020")  # the perpetual's last price 40,000 + 5 bps
    assert "last price" in fill["fill_note"]


def test_a_spot_order_walks_the_spot_book(cli, binance):
    binance.books[("ETH/USDT", "spot")] = ([], book(("2000.10", "1"), ("2000.50", "1")))
    cli("init", "--balance", "10000")
    assert D(cli.json("open", "ETH/USDT", "--qty", "1.5")["price"]) == D("2000.23333333")


# fees


def test_fee_rates_by_tier_maker_and_bnb():
    from portfolio_cli.config import Fees

    fees = Fees()
    assert fees.rate(margin=True) == D("0.0005") and fees.rate(margin=True, maker=True) == D("0.0002")
    vip3 = Fees(vip_tier=3, bnb_discount=True)
    assert vip3.rate(margin=True) == D("0.000288")  # VIP 3 taker 0.032 % less 10 % for BNB
    assert vip3.rate(margin=True, maker=True) == D("0.000108")  # 0.012 % less 10 %
    assert vip3.rate(margin=False) == D("0.00075")  # spot 0.1 % less 25 %; the tier is USDⓈ-M's


def test_a_maker_fill_is_charged_the_maker_fee(cli, binance, monkeypatch):
    cli("init", "--balance", "10000")
    fill = cli.json("open", "BTC/USDT", "--qty", "0.1", "--leverage", "10", "--price", "40000", "--maker")
    assert D(fill["fee"]) == D("0.8")  # 4,000 × 0.02 %
    assert "--maker needs --price" in cli("open", "BTC/USDT", "--qty", "0.1", "--maker", code=2).stderr
    monkeypatch.setenv("PORTFOLIO_FEES__BNB_DISCOUNT", "true")
    assert D(cli.json("open", "ETH/USDT", "--qty", "1")["fee"]) == D("1.5")  # 2,000 × 0.1 % × 0.75


def test_more_settlements_than_one_page_of_funding_history_are_all_booked(cli, binance, ledger_path):
    """1,100 hourly settlements: Binance answers at most 1,000 per request, so the history is paged."""
    opened = hour(-1100) + timedelta(minutes=30)
    cli("init", "--balance", "10000", "--at", hour(-1101).isoformat())
    cli("open", "DOGE/USDT", "--qty", "1000", "--leverage", "5", "--price", "0.1", "--at", opened.isoformat())
    cli("check", code=None)
    assert len(funding_flows(ledger_path)[1]) == 1100
    assert binance.count("/fapi/v1/fundingRate") == 2


def test_snapshot_all_takes_every_portfolio_but_the_one_with_an_unlisted_symbol(cli, binance):
    cli("init", "old", "--balance", "10000")
    cli("open", "XYZ/USDT", "--qty", "10", "--price", "5", "-p", "old", "--offline")  # delisted, never priced
    cli("init", "new", "--balance", "10000")
    cli("open", "BTC/USDT", "--qty", "0.01", "-p", "new")
    result = cli("snapshot", "--all", "--json", code=None)
    assert result.exit_code != 0 and "XYZ/USDT" in result.stderr
    taken = {p["portfolio"]: p for p in json.loads(result.stdout)["portfolios"]}
    assert taken["new"]["today"] is not None and taken["old"]["today"] is None
