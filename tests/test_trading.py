"""The core commands end to end: real CLI, real SQLite file, real ccxt against the fake Binance."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal as D

from conftest import ledger_rows


def test_open_value_close_on_live_prices(cli, binance, ledger_path):
    cli("init", "--balance", "10000")
    fill = cli.json("open", "BTC/USDT", "--qty", "0.1")
    assert fill["trade_id"] == 1
    assert D(fill["price"]) == D("40000")
    assert D(fill["fee"]) == D("4")  # 0.1 × 40000 × 0.001
    assert D(fill["margin"]) == D("4000")

    binance.prices["BTC/USDT"] = D("42000")
    value = cli.json("value")["valuation"]
    assert D(value["unrealized_pnl"]) == D("200")
    assert D(value["wallet_balance"]) == D("9996")
    assert D(value["equity"]) == D("10196")
    assert D(value["spot_holdings"]) == D("4200")
    assert D(value["free_margin"]) == D("5996")
    assert value["margin_level_pct"] is None

    closed = cli.json("close", "1")
    assert D(closed["realized_pnl"]) == D("200")
    assert D(closed["fees"]) == D("8.2")  # entry 4 + exit 0.1 × 42000 × 0.001
    assert D(closed["net_pnl"]) == D("191.8")

    value = cli.json("value")["valuation"]
    assert value["positions"] == []
    assert D(value["equity"]) == D("10191.8")
    assert len(ledger_rows(ledger_path, "trades")) == 1
    assert len(ledger_rows(ledger_path, "closes")) == 1


def test_table_output_shows_fill_and_no_positions(cli, binance):
    cli("init")
    out = cli("open", "ETH/USDT", "--notional", "1000", "--leverage", "5", "--short").stdout
    assert "Opened trade 1: short margin 5x isolated ETH/USDT" in out
    assert "Margin committed" in out and "200.00 USDT" in out
    cli("close", "ETH/USDT")
    assert "No open positions" in cli("value").stdout


def test_one_ticker_request_per_value_and_markets_cached(cli, binance):
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.01")
    cli("open", "ETH/BTC", "--qty", "1")
    cli("open", "SOL/USDT", "--qty", "3")
    before = binance.count("/ticker/24hr")
    cli("value")
    assert binance.count("/ticker/24hr") == before + 1
    assert binance.count("/exchangeInfo") == 1
    asked = binance.requests[-1].query["symbols"][0]
    assert set(eval(asked)) == {"BTCUSDT", "ETHBTC", "SOLUSDT"}  # ETHBTC converts through BTCUSDT


def test_pair_quoted_in_btc_is_valued_in_usdt(cli, binance):
    cli("init")
    fill = cli.json("open", "ETH/BTC", "--qty", "2")
    assert D(fill["price_usdt"]) == D("2000")  # 0.05 BTC × 40000
    assert D(fill["fee"]) == D("4")  # 2 × 2000 × 0.001
    binance.prices["BTC/USDT"] = D("50000")
    binance.prices["ETH/BTC"] = D("0.06")
    position = cli.json("value")["valuation"]["positions"][0]
    assert D(position["mark_usdt"]) == D("3000")
    assert D(position["unrealized_pnl"]) == D("2000")  # 2 × (3000 − 2000)


def test_partial_closes_by_symbol_oldest_first(cli, binance):
    cli("init", "--balance", "20000")
    cli("open", "SOL/USDT", "--qty", "10", "--price", "90")
    cli("open", "SOL/USDT", "--qty", "10", "--price", "110")
    result = cli.json("close", "SOL/USDT", "--qty", "15", "--price", "120")
    assert [(s["trade_id"], D(s["qty"])) for s in result["slices"]] == [(1, D(10)), (2, D(5))]
    assert D(result["realized_pnl"]) == D(10 * 30 + 5 * 10)
    positions = cli.json("positions")
    assert len(positions) == 1 and D(positions[0]["qty"]) == D(5) and D(positions[0]["entry"]) == D(110)
    result = cli.json("close", "SOL/USDT", "--pct", "100", "--price", "100")
    assert D(result["realized_pnl"]) == D(-50)
    assert cli.json("trades", "--status", "open") == []


def test_positions_aggregate_lots_with_weighted_entry(cli, binance):
    cli("init", "--balance", "20000")
    cli("open", "BTC/USDT", "--qty", "0.1", "--price", "30000")
    cli("open", "BTC/USDT", "--qty", "0.3", "--price", "40000")
    [row] = cli.json("positions")
    assert D(row["qty"]) == D("0.4")
    assert D(row["entry"]) == D("37500")  # (0.1×30000 + 0.3×40000) / 0.4
    assert row["trade_ids"] == [1, 2]


def test_quantity_off_the_lot_step_is_rounded_down_and_said(cli, binance):
    cli("init")
    result = cli("open", "BTC/USDT", "--qty", "0.0123456", "--json")
    assert D(__import__("json").loads(result.stdout)["qty"]) == D("0.01234")
    assert "rounded down to 0.01234" in result.stderr


def test_below_exchange_minimum_is_refused(cli, binance, ledger_path):
    cli("init")
    result = cli("open", "DOGE/USDT", "--qty", "0.5", code=1)
    assert "minimum" in result.stderr
    assert ledger_rows(ledger_path, "trades") == []


def test_slippage_moves_market_fills_against_the_trader(cli, binance, monkeypatch):
    monkeypatch.setenv("PORTFOLIO_TRADING__FILLS", "last")  # the last price ± slippage, not the book
    monkeypatch.setenv("PORTFOLIO_TRADING__SLIPPAGE_BPS", "10")
    cli("init")
    assert D(cli.json("open", "BTC/USDT", "--qty", "0.01")["price"]) == D("40040")
    assert D(cli.json("open", "ETH/USDT", "--qty", "1", "--short")["price"]) == D("1998")
    assert D(cli.json("open", "SOL/USDT", "--qty", "1", "--price", "100")["price"]) == D("100")  # a given fill is exact


def test_backdated_open_fills_at_the_historical_candle(cli, binance):
    from datetime import datetime

    cli("init", "--at", "2026-01-01")
    minute = int(datetime(2026, 3, 1, 14, 30, tzinfo=UTC).timestamp() * 1000)
    binance.candles[("BTC/USDT", minute)] = D("35000")
    fill = cli.json("open", "BTC/USDT", "--qty", "0.1", "--at", "2026-03-01T14:30:42")
    assert D(fill["price"]) == D("35000")
    assert fill["at"].startswith("2026-03-01T14:30:42")


def test_trades_filters(cli, binance):
    cli("init", "--balance", "50000")
    cli("open", "BTC/USDT", "--qty", "0.1", "--strategy", "trend")
    cli("open", "ETH/USDT", "--qty", "1", "--strategy", "dca")
    cli("close", "2")
    assert [t["id"] for t in cli.json("trades", "--status", "closed")] == [2]
    assert [t["id"] for t in cli.json("trades", "--strategy", "trend")] == [1]
    assert [t["id"] for t in cli.json("trades", "--symbol", "eth/usdt")] == [2]
    assert cli.json("trades", "--from", "2999-01-01") == []


def test_several_portfolios_are_independent(cli, binance, monkeypatch):
    cli("init", "alpha", "--balance", "1000")
    cli("init", "beta", "--balance", "2000")
    cli("open", "BTC/USDT", "--qty", "0.01", "-p", "alpha")
    monkeypatch.setenv("PORTFOLIO_NAME", "beta")
    assert D(cli.json("value")["valuation"]["equity"]) == D("2000")
    names = {p["name"]: p for p in cli.json("portfolios")}
    assert names["alpha"]["open_trades"] == 1 and names["beta"]["open_trades"] == 0


def test_deposit_and_withdraw(cli, binance):
    cli("init", "--balance", "1000")
    cli("deposit", "500")
    cli("open", "BTC/USDT", "--qty", "0.03")  # 1200 USDT in spot, 1.2 fee
    result = cli("withdraw", "400", code=1)
    assert "free margin" in result.stderr
    moved = cli.json("withdraw", "298.8")
    assert D(moved["free_margin"]) == D("0")
    value = cli.json("value")["valuation"]
    assert D(value["deposits"]) == D("1500") and D(value["withdrawals"]) == D("298.8")


def test_risk_rules_refuse_and_force_is_audited(cli, binance, ledger_path):
    cli("init", "--balance", "1000")
    result = cli("open", "BTC/USDT", "--qty", "0.1", code=1)  # 4000 USDT with 1000 free
    assert "refused by free margin" in result.stderr
    result = cli("open", "BTC/USDT", "--qty", "0.0002", code=1)  # 8 USDT < 10 USDT minimum
    assert "risk.min_notional_usdt" in result.stderr
    cli("open", "BTC/USDT", "--qty", "0.0002", "--force")
    actions = [row[3] for row in ledger_rows(ledger_path, "audit_log")]
    assert "rule override" in actions
    import sqlite3

    with sqlite3.connect(ledger_path) as conn:
        assert conn.execute("select forced from trades").fetchall() == [(1,)]


def test_leverage_short_and_cross_are_recorded(cli, binance):
    cli("init")
    fill = cli.json("open", "ETH/USDT", "--qty", "1", "--leverage", "4", "--cross")
    assert (fill["kind"], fill["margin_mode"], fill["leverage"], D(fill["margin"])) == ("margin", "cross", 4, D(500))
    binance.prices["ETH/USDT"] = D("2100")
    value = cli.json("value")["valuation"]
    assert D(value["margin_used"]) == D(500)
    # E = 10000 − 1 (fee) + 100; Em = E − 0 spot; level = Em / M × 100
    assert D(value["margin_level_pct"]) == D("2019.80")


def test_value_with_price_override_needs_no_network(cli, binance):
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.1")
    before = len(binance.requests)
    value = cli.json("value", "--price", "BTC/USDT=50000")["valuation"]
    assert D(value["unrealized_pnl"]) == D("1000")
    assert len(binance.requests) == before


def test_every_write_is_audited_with_its_command(cli, binance, ledger_path):
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.01", "--note", "first")
    rows = ledger_rows(ledger_path, "audit_log")
    actions = [r[3] for r in rows]
    assert actions == ["create portfolio", "record deposit", "open trade", "record fee"]
    assert all(r[1] for r in rows)  # a time on each


def test_trades_costs_columns_add_up_for_open_partly_closed_and_closed_trades(cli, binance, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    cli("init")
    cli("open", "ETH/USDT", "--qty", "1", "--price", "2000")  # entry fee 1 × 2000 × 0.001 = 2
    cli("close", "1", "--qty", "0.5", "--price", "2020")  # gross 0.5 × 20 = 10, exit fee 1.01
    cli("open", "BTC/USDT", "--qty", "0.01", "--price", "40000")  # entry fee 0.4, still open
    rows = {r["id"]: r for r in cli.json("trades")}
    partial, held = rows[1], rows[2]
    # The closed half carries half the entry fee (1) and the exit fee (1.01): net 10 − 2.01 = 7.99.
    assert (D(partial["closed_fees"]), D(partial["open_fee"]), D(partial["net_pnl"])) == (D("2.01"), D(1), D("7.99"))
    assert (D(held["closed_fees"]), D(held["open_fee"]), D(held["net_pnl"])) == (D(0), D("0.4"), D(0))
    for r in rows.values():
        assert D(r["net_pnl"]) == D(r["realized_pnl"]) - D(r["closed_fees"]) - D(r["liquidation_fees"])
        assert D(r["trading_fees"]) == D(r["closed_fees"]) + D(r["open_fee"])
    out = cli("trades", "--costs").stdout
    line = next(row for row in out.splitlines() if row.strip().startswith("1 "))
    # gross, fees, liq. fee, net, open fee; then funding, net+fund. and "manual"
    assert line.split()[-8:-3] == ["10.00", "2.01", "0.00", "7.99", "1.00"]
    assert "net = gross − fees − liq. fee" in " ".join(out.split())
    assert max(len(row) for row in out.splitlines()) <= 80
