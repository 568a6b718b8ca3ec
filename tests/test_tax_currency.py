"""The tax export in the trader's currency: each row at its days' EUR/USDT rates from Binance's daily
candles (the fake's), fees as their own column, the settings rows, offline refusal, wash-sale flags."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

import fake_binance
from test_exports import tax_ledger
from test_snapshots import ms


@pytest.fixture
def euro(binance, monkeypatch):
    """EUR/USDT listed at 1.25 USDT a euro every day, but 1.20 on 2026-03-01."""
    monkeypatch.setitem(fake_binance.MARKETS, "EUR/USDT", ("EUR", "USDT", "0.10000000", "0.10000000", "5.00000000"))
    monkeypatch.setitem(fake_binance.SPOT_TICKS, "EUR/USDT", "0.00010000")
    binance.prices["EUR/USDT"] = D("1.25")
    rate = D("1.20")
    binance.ohlc[("EUR/USDT", "1d", ms(datetime(2026, 3, 1, tzinfo=UTC)))] = (rate, rate, rate, rate)
    return binance


def tax(cli, *args: str) -> dict:
    return json.loads(cli("export", "tax", "--year", "2026", "--format", "json", *args).stdout)


def test_each_row_is_valued_at_its_days_rate_with_fees_apart(cli, euro):
    tax_ledger(cli)
    payload = tax(cli, "--currency", "eur")
    rows = payload["records"]
    first = next(r for r in rows if r["section"] == "disposal")
    # Lot A, FIFO: 0.1 BTC bought 2025-01-10 at 40,000 (fee 4), sold 2026-03-01 at 60,000 as part of a
    # 0.15 sale whose fee is 9 (its share: 6). In USDT: cost 4,000, fees 10, proceeds 6,000.
    assert (D(first["cost_usdt"]), D(first["fees_usdt"]), D(first["proceeds_usdt"])) == (D(4000), D(10), D(6000))
    assert D(first["cost_usdt"]) + D(first["fees_usdt"]) == D(first["cost_basis"]) + D(6)  # basis holds the buy fee
    # In EUR: the cost and the buy fee at 1.25 (the buy's day), the proceeds and the sell fee at 1.20.
    assert (first["currency"], D(first["rate_acquired"]), D(first["rate_sold"])) == ("EUR", D("1.25"), D("1.2"))
    assert D(first["cost_in_currency"]) == D(3200)  # 4,000 / 1.25
    assert D(first["fees_in_currency"]) == D("3.2") + D(5)  # 4 / 1.25 + 6 / 1.20
    assert D(first["proceeds_in_currency"]) == D(5000)  # 6,000 / 1.20
    assert D(first["gain_or_loss_in_currency"]) == D(5000) - D(3200) - D("8.2")  # 1,791.8
    assert first["rate_source"] == "Binance EUR/USDT daily close (USDT per EUR) of each day"
    # The margin close (2026-04-10, at 1.25): net 98.05 USDT is 78.44 EUR.
    [margin] = [r for r in rows if r["section"] == "margin"]
    assert D(margin["gain_or_loss_in_currency"]) == D(100) / D("1.25") - D("1.95") / D("1.25")
    summary = {r["description"]: r for r in rows if r["section"] == "summary"}
    disposals = [r for r in rows if r["section"] == "disposal"]
    assert D(summary["total"]["gain_or_loss_in_currency"]) == sum(
        (D(r["gain_or_loss_in_currency"]) for r in [*disposals, margin]), D(0)
    )
    assert payload["currency"] == "EUR" and payload["rate_source"].startswith("Binance EUR/USDT")
    pairs = [r["description"].split(": ") for r in rows if r["section"] == "settings"]
    settings = dict(pairs)
    assert settings["method"] == "fifo" and settings["currency"] == "EUR" and settings["year"] == "2026"
    assert len(settings["ledger_sha256"]) == 64 and settings["tool_version"]


def test_usdt_stays_the_default_and_usd_is_taken_at_par_with_the_assumption_stated(cli, binance):
    tax_ledger(cli)
    plain = [r for r in tax(cli)["records"] if r["section"] == "disposal"]
    assert all(r["currency"] == "USDT" and D(r["gain_or_loss_in_currency"]) == D(r["gain_or_loss"]) for r in plain)
    usd = [r for r in tax(cli, "--currency", "USD")["records"] if r["section"] == "disposal"]
    assert all(D(r["gain_or_loss_in_currency"]) == D(r["gain_or_loss"]) for r in usd)
    assert usd[0]["rate_source"] == "USD taken at par with USDT (assumption: 1 USDT = 1 USD)"


def test_offline_without_cached_rates_the_export_refuses_clearly(cli, euro):
    tax_ledger(cli)
    refused = cli("export", "tax", "--year", "2026", "--currency", "EUR", "--offline", code=5).stderr
    assert refused.startswith("error: no EUR/USDT daily rate for 2025-01-10 and 5 more day(s) (offline and not cached)")
    cli("export", "tax", "--year", "2026", "--currency", "EUR")  # online once: the rates are cached
    rows = tax(cli, "--currency", "EUR", "--offline")["records"]
    assert D(next(r for r in rows if r["section"] == "disposal")["proceeds_in_currency"]) == D(5000)


def test_a_currency_binance_does_not_list_is_refused(cli, binance):
    tax_ledger(cli)
    refused = cli("export", "tax", "--year", "2026", "--currency", "XYZ", code=2).stderr
    assert "Binance lists no XYZ/USDT pair" in refused
    malformed = cli("export", "tax", "--year", "2026", "--currency", "E1", code=2).stderr
    assert "--currency must be a currency code" in malformed
    assert "applies to the tax export only" in cli("export", "trades", "--currency", "EUR", code=2).stderr


def test_a_loss_with_a_repurchase_within_30_days_is_flagged(cli, binance):
    cli("init", "--balance", "20000", "--at", "2026-01-01")
    cli("open", "BTC/USDT", "--qty", "0.1", "--price", "50000", "--at", "2026-01-10T12:00")  # trade 1
    cli("close", "1", "--price", "45000", "--at", "2026-02-01T12:00")  # a loss
    cli("open", "BTC/USDT", "--qty", "0.1", "--price", "46000", "--at", "2026-02-20T12:00")  # bought back in 19 days
    cli("close", "2", "--price", "47000", "--at", "2026-05-01T12:00")  # a gain: never flagged
    cli("open", "ETH/USDT", "--qty", "1", "--price", "3000", "--at", "2026-01-10T12:00")
    cli("close", "3", "--price", "2500", "--at", "2026-03-01T12:00")  # a loss, no ETH bought around it
    out = cli("export", "tax", "--year", "2026").stdout
    rows = [r for r in csv.DictReader(io.StringIO(out)) if r["section"] == "disposal"]
    assert [(r["asset"], r["date_sold"], r["wash_sale"]) for r in rows] == [
        ("BTC", "2026-02-01", "yes"),
        ("ETH", "2026-03-01", ""),
        ("BTC", "2026-05-01", ""),
    ]
