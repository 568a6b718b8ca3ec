"""Voiding a mistaken record: end to end through the CLI, on a real ledger file, against the fake
Binance (flat prices: BTC/USDT 40,000, SOL/USDT 100, unless a test says otherwise)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

from conftest import ledger_rows

RECORD_TABLES = ("trades", "closes", "cash_flows", "margin_changes", "amendments", "voids", "voided_rows", "checks")


def day(offset: int, hour: int = 0) -> str:
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight + timedelta(days=offset, hours=hour)).isoformat()


def equity_by_day(cli) -> dict[str, D]:
    return {row["day"]: D(row["equity"]) for row in cli.json("history")["rows"]}


def records(path: Path) -> dict[str, list[tuple]]:
    return {table: ledger_rows(path, table) for table in RECORD_TABLES}


def digest(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute("pragma wal_checkpoint(truncate)")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_void_of_a_trade_rebuilds_the_snapshots_from_its_day_and_verify_passes(cli, binance, ledger_path):
    cli("init", "--at", day(-5))
    opened = cli.json("open", "BTC/USDT", "--qty", "0.01", "--price", "40000", "--at", day(-3, 12))
    cli("check")  # the watermark is now: the void rewinds it to the trade's moment
    cli("snapshot")
    before = equity_by_day(cli)
    # spot at 40,000, flat: equity is 10,000 less the entry fee 0.01 × 40,000 × 0.001 = 0.40 from day −3 on
    assert before[day(-4)[:10]] == D(10000) and before[day(-3)[:10]] == D("9999.60")

    voided = cli.json("void", str(opened["trade_id"]), "--reason", "entered in the wrong portfolio")
    assert voided["record"] == f"trade:{opened['trade_id']}" and voided["void_id"] == 1
    assert voided["undone"] == [f"trade {opened['trade_id']}", "cash flow 2"]  # the trade and its entry fee
    assert D(voided["cash_undone"]) == D("-0.4") and D(voided["wallet_after"]) == D(10000)
    assert voided["stale_days"] == [day(d)[:10] for d in range(-3, 1)]  # from the trade's day to today
    assert datetime.fromisoformat(voided["rewound_to"]) == datetime.fromisoformat(day(-3, 12))

    after = equity_by_day(cli)
    assert set(after) == set(before) and all(equity == D(10000) for equity in after.values())
    assert cli("trades").stdout.strip() == "No trades"
    value = cli.json("value", "--offline")
    assert D(value["valuation"]["wallet_balance"]) == D(10000) and value["valuation"]["positions"] == []
    cli("verify")  # exit 0: every snapshot rebuilt, the cash reconciles
    assert cli.json("trades", "--voided")[0]["reason"] == "entered in the wrong portfolio"


def test_void_of_a_deposit_rebuilds_the_history_and_cash_reconciles(cli, binance, ledger_path):
    cli("init", "--at", day(-5))
    deposit = cli.json("deposit", "1000", "--at", day(-3, 12))
    cli("snapshot")
    before = equity_by_day(cli)
    assert before[day(-4)[:10]] == D(10000) and before[day(-3)[:10]] == D(11000)

    shown = cli("void", f"deposit:{deposit['id']}", "--reason", "bank transfer bounced").stdout
    assert f"Voided (void 1) deposit {deposit['id']} of main: deposit of 1000 USDT" in shown
    assert "snapshots rebuilt:" in shown

    assert all(equity == D(10000) for equity in equity_by_day(cli).values())
    flows = json.loads(cli("export", "cashflows", "--format", "json").stdout)
    assert [f["kind"] for f in flows["records"]] == ["deposit"]  # the starting balance alone
    cli("verify")
    assert all(D(f["amount"]) != D(1000) for f in cli.json("report")["cash_flows"])


def test_a_mistaken_price_taken_off_market_is_voided_and_the_wallet_is_back_to_the_last_unit(cli, binance, ledger_path):
    cli("init")
    cli("open", "SOL/USDT", "--qty", "5")  # a real trade before the typo: 500 USDT, fee 0.5
    wallet = D(cli.json("value", "--offline")["valuation"]["wallet_balance"])
    # 4,000 typed for 40,000: far outside Binance's band, taken with --off-market (recorded)
    typo = cli.json("open", "BTC/USDT", "--qty", "0.1", "--price", "4000", "--off-market")
    assert D(cli.json("value")["valuation"]["equity"]) > wallet + 3000  # a 3,600 USDT "gain" out of thin air

    cli("void", f"trade:{typo['trade_id']}", "--reason", "price typo: 4000 for 40000")
    value = cli.json("value")["valuation"]
    assert D(value["wallet_balance"]) == wallet == D("9999.5")  # 10,000 − the SOL fee, to the last unit
    assert [p["symbol"] for p in value["positions"]] == ["SOL/USDT"]
    cli("verify")
    # the audit trail keeps both: the off-market fill and its void
    actions = [row[3] for row in ledger_rows(ledger_path, "audit_log")]
    assert "off-market price" in actions and actions[-1] == "void trade"


def test_a_trade_with_a_close_is_refused_naming_the_close_and_nothing_changes(cli, binance, ledger_path):
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.01")
    closed = cli.json("close", "1", "--qty", "0.004")
    close_id = closed["slices"][0]["close_id"]
    assert close_id == 1
    untouched = records(ledger_path)
    refused = cli("void", "1", "--reason", "mistake", code=1)
    assert refused.stderr.strip() == f"error: refused: trade 1 is closed by close {close_id}: void the close first"
    assert records(ledger_path) == untouched


def test_void_of_a_close_reopens_the_position(cli, binance, ledger_path):
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.01")  # fee 0.40
    binance.prices["BTC/USDT"] = D(41000)
    cli("close", "1")  # realized +10, fee 0.41
    assert cli.json("trades")[0]["status"] == "closed"
    year = str(datetime.now(UTC).year)

    def disposals() -> list[dict]:
        tax = json.loads(cli("export", "tax", "--year", year, "--format", "json").stdout)
        return [r for r in tax["records"] if r["section"] == "disposal"]

    assert len(disposals()) == 1

    voided = cli.json("void", "close:1", "--reason", "meant to close the ETH trade")
    assert voided["undone"] == ["close 1", "cash flow 3", "cash flow 4"]  # the close, its PnL and its fee
    assert D(voided["cash_undone"]) == D("9.59")  # +10 realized − 0.41 fee
    [trade] = cli.json("trades")
    assert (trade["status"], D(trade["open_qty"]), trade["exit"]) == ("open", D("0.01"), None)
    value = cli.json("value")["valuation"]
    assert D(value["wallet_balance"]) == D("9999.60")
    assert D(value["positions"][0]["unrealized_pnl"]) == D(10)  # 0.01 × (41,000 − 40,000), open again
    assert disposals() == []  # nothing was sold, for the tax export either
    cli("verify")
    # the close is gone, so the trade itself can now be voided
    cli("void", "1", "--reason", "the whole trade was a mistake")
    assert cli("trades").stdout.strip() == "No trades"
    cli("verify")


def test_voiding_twice_is_refused_and_an_unknown_record_is_not_found(cli, binance, ledger_path):
    cli("init")
    deposit = cli.json("deposit", "500")
    cli("void", f"deposit:{deposit['id']}", "--reason", "typo")
    again = cli("void", f"deposit:{deposit['id']}", "--reason", "typo", code=1)
    assert f"error: deposit {deposit['id']} is already voided (void 1," in again.stderr
    assert "no trade 99 in portfolio main" in cli("void", "99", "--reason", "x", code=4).stderr
    assert "no close 3 in portfolio main" in cli("void", "close:3", "--reason", "x", code=4).stderr
    # the starting balance is a deposit, not a withdrawal
    assert "no withdrawal 1 in portfolio main" in cli("void", "withdrawal:1", "--reason", "x", code=4).stderr
    assert "not a record" in cli("void", "fee:1", "--reason", "x", code=2).stderr
    assert "--reason" in cli("void", "deposit:1", code=2).stderr


def test_a_deposit_a_later_trade_needed_is_refused_naming_that_trade(cli, binance, ledger_path):
    cli("init", "--balance", "1000", "--at", day(-5))
    deposit = cli.json("deposit", "5000", "--at", day(-3))
    cli("open", "BTC/USDT", "--qty", "0.1", "--price", "40000", "--at", day(-2))  # 4,000: needs the deposit
    untouched = records(ledger_path)
    refused = cli("void", f"deposit:{deposit['id']}", "--reason", "x", code=1)
    assert "breaks a later record: it would leave trade 1 (BTC/USDT, opened" in refused.stderr
    assert "without the free margin it needed" in refused.stderr
    assert records(ledger_path) == untouched


def test_dry_run_shows_what_would_be_undone_and_leaves_the_ledger_byte_for_byte(cli, binance, ledger_path):
    cli("init", "--at", day(-2))
    cli("deposit", "700", "--at", day(-1))
    cli("snapshot")
    before = digest(ledger_path)
    shown = cli("void", "deposit:2", "--reason", "typo", "--dry-run").stdout
    assert "Would void deposit 2 of main: deposit of 700 USDT" in shown
    assert "wallet 10,700.00 → 10,000.00 USDT" in shown and "snapshots would be rebuilt" in shown
    assert cli.json("void", "deposit:2", "--reason", "typo", "--dry-run")["void_id"] is None
    assert digest(ledger_path) == before


def test_trades_voided_lists_what_when_and_why(cli, binance, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    cli("init")
    cli("open", "SOL/USDT", "--qty", "2")
    cli("deposit", "300")
    cli("void", "deposit:3", "--reason", "duplicate")
    cli("void", "1", "--reason", "wrong symbol")
    rows = cli.json("trades", "--voided")
    assert [(r["void_id"], r["record"], r["reason"]) for r in rows] == [
        (1, "deposit:3", "duplicate"),
        (2, "trade:1", "wrong symbol"),
    ]
    assert rows[1]["summary"].startswith("open of 2 SOL/USDT long spot at 100 (")
    table = cli("trades", "--voided").stdout
    assert "Voided records" in table and "trade:1" in table and "wrong symbol" in table and "open of 2" in table
    assert all(len(line) <= 80 for line in table.splitlines())
    assert cli("trades").stdout.strip() == "No trades"
    assert "--voided lists every voided record" in cli("trades", "--voided", "--costs", code=2).stderr


def test_export_and_import_of_a_ledger_with_a_void_reproduce_the_portfolio(cli, binance, ledger_path, tmp_path):
    cli("init", "--at", day(-4))
    cli("open", "BTC/USDT", "--qty", "0.01", "--price", "40000", "--at", day(-3))
    cli("open", "SOL/USDT", "--qty", "3", "--price", "100", "--at", day(-3, 6))
    cli("close", "2", "--price", "101", "--at", day(-2))
    cli("deposit", "250", "--at", day(-2, 6))
    cli("void", "close:1", "--reason", "closed the wrong trade")
    cli("void", "1", "--reason", "never bought")
    cli("snapshot")
    exported = tmp_path / "trades.json"
    cli("export", "trades", "--format", "json", "-o", str(exported))
    copy = tmp_path / "copy.db"
    cli("import", str(exported), "--db", str(copy))
    cli("snapshot", "--db", str(copy))
    cli("verify", "--db", str(copy))

    def state(*db: str):
        value = cli.json("value", "--offline", *db)["valuation"]
        positions = [(p["symbol"], p["qty"], p["entry"]) for p in value["positions"]]
        return value["wallet_balance"], positions, equity_by_day_of(cli, *db)

    assert state() == state("--db", str(copy))
    # live records only: the voided ones are not in the export, and the copy has no void
    assert cli.json("trades", "--voided", "--db", str(copy)) == []
    assert [t["symbol"] for t in cli.json("trades", "--db", str(copy))] == ["SOL/USDT"]


def equity_by_day_of(cli, *db: str) -> dict[str, D]:
    return {row["day"]: D(row["equity"]) for row in cli.json("history", *db)["rows"]}


def minute(offset: int) -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=offset)


def test_a_voided_amendment_is_replayed_without_it_so_the_stop_it_removed_acts(cli, binance):
    """The stop at 39,000 was removed at −50 min; a candle at −40 min dips to 38,000. Voided, the
    removal never happened: the watermark rewinds to it and the next check closes at the stop."""
    start = minute(0)
    at = lambda offset: (start + timedelta(minutes=offset)).isoformat()  # noqa: E731 (one clock for the test)
    cli("init", "--at", at(-120))
    cli("open", "BTC/USDT", "--qty", "0.1", "--price", "40000", "--at", at(-60), "--stop-loss", "39000")
    cli("amend", "1", "--no-stop-loss", "--at", at(-50))
    dip = int((start + timedelta(minutes=-40)).timestamp() * 1000)
    binance.ohlc[("BTC/USDT", "1m", dip)] = (D(40000), D(40000), D(38000), D(40000))
    cli("check")  # nothing to close: the stop was removed
    refused = cli("void", "1", "--reason", "x", code=1)
    assert "trade 1 is amended by amendment 1: void it first" in refused.stderr

    voided = cli.json("void", "amendment:1", "--reason", "removed the stop by mistake")
    assert voided["summary"].startswith("amendment of trade 1: no stop-loss (")
    assert datetime.fromisoformat(voided["rewound_to"]) == start + timedelta(minutes=-50)
    cli("check", code=12)  # a position was closed: by its stop, on the candle at −40 min
    [trade] = cli.json("trades")
    assert (trade["status"], trade["closed_by"], D(trade["exit"])) == ("closed", "stop_loss", D(39000))
    # now the close that followed from the restored stop stands in the way of the trade's void
    assert "trade 1 is closed by close 1: void the close first" in cli("void", "1", "--reason", "x", code=1).stderr
    cli("verify")


def test_a_voided_margin_change_gives_the_margin_back_to_free_margin(cli, binance):
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.1", "--leverage", "4", "--isolated")  # 4,000 notional: 1,000 margin
    before = cli.json("value")["valuation"]
    cli("add-margin", "1", "250")
    assert D(cli.json("value")["valuation"]["free_margin"]) == D(before["free_margin"]) - 250
    assert "trade 1 has margin change 1: void it first" in cli("void", "1", "--reason", "x", code=1).stderr
    voided = cli.json("void", "margin:1", "--reason", "meant 25")
    assert voided["summary"].startswith("250 USDT of margin added to trade 1 (")
    assert D(cli.json("value")["valuation"]["free_margin"]) == D(before["free_margin"])
    cli("verify")
    cli("void", "1", "--reason", "the whole trade was a mistake")  # nothing of it is left: it goes too
    assert D(cli.json("value")["valuation"]["wallet_balance"]) == D(10000)


def test_verify_finds_a_void_that_takes_out_a_row_of_another_portfolio(cli, binance, ledger_path):
    cli("init")
    cli("init", "other")
    cli("deposit", "100", "-p", "other")  # cash flow 3, of "other"
    cli("deposit", "200")
    cli("void", "deposit:4", "--reason", "typo")
    cli("verify")
    with sqlite3.connect(ledger_path) as conn:  # edited by hand: the void now names other's deposit
        conn.execute("update voided_rows set row_id = 3 where tbl = 'cash_flows'")
    found = cli("verify", code=6)
    assert "void 1" in found.stdout and "takes out cash_flows row 3, no record of this portfolio" in found.stdout
