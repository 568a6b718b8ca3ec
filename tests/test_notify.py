"""Notifications end to end: the real CLI and ledger, apprise's real ``json://`` destination pointed at
a local webhook (tests/fake_webhook.py), the fake Binance for prices and candles."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

from conftest import ledger_rows
from fake_webhook import Webhook, WebhookServer, closed_port

CLOSED, ALERT, WARNING, NOT_NOTIFIED = 12, 11, 10, 14
SECRET = "s3cr3tT0KEN"


def minute(offset: int) -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=offset)


def day(offset: int) -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=offset)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.fixture
def webhook(monkeypatch) -> Webhook:
    """A webhook configured as the one destination (through the environment), with a short budget."""
    with WebhookServer(Webhook()) as hook:
        monkeypatch.setenv("PORTFOLIO_NOTIFY__URLS", hook.destination(f"hook?token={SECRET}"))
        monkeypatch.setenv("PORTFOLIO_NOTIFY__TIMEOUT_SECONDS", "2")
        yield hook


def outbox(path: Path) -> list[sqlite3.Row]:
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute("select * from notify_outbox order by id").fetchall()


def stop_loss_hit(cli, binance) -> None:
    cli("init", "--at", minute(-120).isoformat())
    cli("open", "BTC/USDT", "--qty", "0.1", "--price", "40000", "--stop-loss", "39000", "--at", minute(-60).isoformat())
    binance.ohlc[("BTC/USDT", "1m", ms(minute(-30)))] = (D(40000), D(40100), D(38900), D(39500))


# what is sent


def test_a_stop_loss_arrives_once_with_its_figures(cli, binance, webhook, ledger_path):
    stop_loss_hit(cli, binance)
    result = cli("check", "--quiet", code=CLOSED)
    assert result.stderr == ""
    [message] = webhook.messages
    assert message["title"] == "portfolio check (main): 1 close"
    body = message["message"]
    # net PnL: 0.1 × (39000 − 40000) − entry fee 4 − exit fee 3.9
    assert "[main] close:" in body and "trade 1 BTC/USDT closed by stop loss at 39,000.00" in body
    assert "net PnL -107.90 USDT" in body
    cli("check", "--quiet")  # nothing new: nothing sent
    assert len(webhook.messages) == 1
    assert [row["settled_at"] is not None for row in outbox(ledger_path)] == [True]


def test_an_isolated_liquidation_arrives_once_with_its_price(cli, binance, webhook):
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    cli("init", "--at", (hour - timedelta(hours=30)).isoformat())
    cli(
        "open",
        "BTC/USDT",
        "--qty",
        "0.1",
        "--leverage",
        "10",
        "--price",
        "40000",
        "--at",
        (hour - timedelta(hours=20)).isoformat(),
    )
    # The mark price (a perpetual's liquidations follow it) dips to 36,000 within the hour.
    binance.mark_ohlc[("BTC/USDT", "1h", ms(hour - timedelta(hours=5)))] = (D(40000), D(40000), D(36000), D(39900))
    cli("check", code=CLOSED)
    [message] = webhook.messages
    assert "1 liquidation" in message["title"]
    # Binance's isolated formula in BTCUSDT's first bracket (mmr 0.4 %): (400 − 4000)/(0.0004 − 0.1);
    # the position loses its margin and entry fee (funding aside)
    assert "closed by liquidation at 36,144.58" in message["message"]
    cli("check")
    assert len(webhook.messages) == 1


def test_a_cross_margin_call_is_sent_as_a_liquidation(cli, binance, webhook):
    cli("init", "--balance", "400")
    cli("open", "BTC/USDT", "--qty", "0.1", "--leverage", "20", "--cross", "--force")
    cli("open", "ETH/USDT", "--qty", "1", "--leverage", "20", "--cross", "--force")
    binance.prices["BTC/USDT"] = D(39000)
    binance.prices["ETH/USDT"] = D(1995)
    cli("check", code=CLOSED)
    [message] = webhook.messages
    assert "closed by margin call at 39,000.00" in message["message"] and "liquidation:" in message["message"]


def test_margin_states_are_sent_on_change_with_the_action_that_restores_200_pct(cli, binance, webhook, ledger_path):
    cli("init", "--balance", "1000")
    cli("open", "BTC/USDT", "--qty", "0.1", "--leverage", "10", "--cross")  # IM 400, fee 2
    cli("check")  # 249.5 %: ok, and nothing was sent before, so nothing to say
    assert webhook.messages == []

    binance.prices["BTC/USDT"] = D(38000)  # Em = 1000 − 2 − 200 = 798 on M = 400: 199.5 %
    cli("check", code=WARNING)
    [warning] = webhook.bodies()
    assert "margin level 199.50 %: warning (was ok)" in warning
    # deposit 2 × 400 − 798 = 2; or close c of the position: c·(2 × 4000 − 38000 × 0.0005) = 2, c = 2 / 7981
    # = 0.000250595…, rounded up to 8 places
    assert "to restore 200.00 %: deposit 2.00 USDT, or close 0.0002506 BTC/USDT of trade 1" in warning

    cli("check", code=WARNING)  # the same state: not repeated
    assert len(webhook.messages) == 1

    binance.prices["BTC/USDT"] = D(36000)  # Em = 598: 149.5 %
    cli("check", code=ALERT)
    alert = webhook.bodies()[-1]
    # deposit 800 − 598 = 202; close 202 / (8000 − 36000 × 0.0005) = 202 / 7982 = 0.0253069406…
    assert "margin level 149.50 %: liquidation risk (was warning)" in alert
    assert "deposit 202.00 USDT, or close 0.02530695 BTC/USDT of trade 1" in alert

    binance.prices["BTC/USDT"] = D(40000)
    cli("check")
    assert webhook.bodies()[-1].endswith("margin level 249.50 %: back to ok (was liquidation risk)")
    assert len(webhook.messages) == 3
    cli("check")
    assert len(webhook.messages) == 3


def test_a_margin_state_is_sent_again_after_repeat_hours(cli, binance, webhook, ledger_path, monkeypatch):
    cli("init", "--balance", "1000")
    cli("open", "BTC/USDT", "--qty", "0.1", "--leverage", "10", "--cross")
    binance.prices["BTC/USDT"] = D(38000)
    cli("check", code=WARNING)
    cli("check", code=WARNING)
    assert len(webhook.messages) == 1
    # The state was last sent 5 hours ago (rewritten in the ledger); repeat after 4 hours.
    monkeypatch.setenv("PORTFOLIO_NOTIFY__REPEAT_HOURS", "4")
    earlier = (datetime.now(UTC) - timedelta(hours=5)).isoformat()
    with sqlite3.connect(ledger_path) as conn:
        conn.execute("update notify_state set sent_at = ?", [earlier])
    cli("check", code=WARNING)
    assert len(webhook.messages) == 2
    assert "margin level 199.50 %: warning (was warning)" in webhook.bodies()[-1]
    cli("check", code=WARNING)  # and not again until another 4 hours pass
    assert len(webhook.messages) == 2


def test_a_check_gap_is_sent_as_a_gap(cli, binance, webhook):
    stop_loss_hit(cli, binance)
    cli("value")
    binance.fail_always("500")
    cli("check", "--quiet", code=13)
    [message] = webhook.messages
    assert message["title"] == "portfolio check (main): 1 gap"
    assert "no 1m candles for BTC/USDT from" in message["message"]


def test_snapshot_sends_the_days_it_could_not_value_and_the_days_it_backfilled(cli, binance, webhook):
    cli("init", "--at", day(-3).isoformat())
    cli("open", "BTC/USDT", "--qty", "0.1", "--price", "40000", "--at", (day(-3) + timedelta(hours=1)).isoformat())
    cli("value")
    cli("snapshot", "--offline", code=13)
    [message] = webhook.bodies()
    # The snapshot of day D is its end: day −4's end is the portfolio's start, nothing open yet; days
    # −3 … −1 end with BTC open, and offline there is no daily candle to value them.
    assert f"{day(-3).date()} not valued: no price for BTC/USDT (no daily candle (offline))" in message
    assert f"{day(-2).date()} not valued" in message and f"{day(-1).date()} not valued" in message
    assert f"backfilled 1 missed day(s): {day(-4).date()}" in message

    cli("snapshot")
    assert webhook.bodies()[-1].endswith(f"backfilled 3 missed day(s): {day(-3).date()} to {day(-1).date()}")
    cli("snapshot")  # nothing missed: nothing sent
    assert len(webhook.messages) == 2


TARGETS = """
[targets.main]
weights = { BTC = 30, ETH = 30, DOGE = 10, USDT = 30 }
drift_pct = 5
"""


def test_rebalance_if_due_sends_the_plan_executed_or_why_not(cli, binance, webhook, tmp_path, monkeypatch):
    config = tmp_path / "targets.toml"
    config.write_text(TARGETS)
    monkeypatch.setenv("PORTFOLIO_CONFIG", str(config))
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.1")
    cli("open", "ETH/USDT", "--qty", "1")
    cli("rebalance", "--execute", "--yes", "--if-due")
    [executed] = webhook.messages
    assert executed["title"] == "portfolio rebalance (main): 1 rebalance"
    plan = cli.json("rebalance", "--log")[0]
    from portfolio_cli import render

    body = executed["message"]
    assert "rebalanced (threshold: BTC, DOGE, ETH, USDT outside the ±5 % band) as rebalance 1: 3 trade(s)" in body
    for t in plan["trades"]:
        assert f"{t['side']} {render.number(D(t['qty']))} {t['asset']}/USDT at {render.price(D(t['price']))}" in body
    assert f"fees {render.money(D(plan['fees']))} USDT" in body

    cli("rebalance", "--execute", "--yes", "--if-due")
    assert "not rebalanced: the last rebalance was 0.0 h ago, within min_interval_hours = 24" in webhook.bodies()[-1]
    cli("rebalance", "--execute", "--yes")  # not from cron: nothing sent
    assert len(webhook.messages) == 2


# routing


def test_each_destination_gets_only_its_events_and_portfolios_their_own(cli, binance, tmp_path, monkeypatch):
    hooks = WebhookServer(Webhook()), WebhookServer(Webhook()), WebhookServer(Webhook())
    with hooks[0] as everything, hooks[1] as margin_only, hooks[2] as alt_hook:
        config = tmp_path / "notify.toml"
        config.write_text(
            f'[notify]\nurls = ["{everything.destination()}", '
            f'{{url = "{margin_only.destination()}", events = ["margin"]}}]\n'
            f'[portfolios.alt.notify]\nurls = ["{alt_hook.destination()}"]\nevents = ["close"]\n'
        )
        config.chmod(0o600)
        monkeypatch.setenv("PORTFOLIO_CONFIG", str(config))
        stop_loss_hit(cli, binance)
        cli("init", "alt", "--at", minute(-120).isoformat())
        cli(
            "open", "BTC/USDT", "-p", "alt", "--qty", "0.1", "--price", "40000", "--stop-loss", "39000",
            "--at", minute(-60).isoformat(),
        )  # fmt: skip
        cli("check", code=CLOSED)
        [main] = everything.messages
        assert main["title"] == "portfolio check (main): 1 close"
        assert margin_only.messages == []
        [alt] = alt_hook.messages
        assert alt["title"] == "portfolio check (alt): 1 close" and "[alt] close: " in alt["message"]
        assert "notify" in cli("paths").stdout
        listed = cli("notify").stdout
        assert "margin  (default)" in listed and "close  (portfolio alt)" in listed


# never at the ledger's expense


@pytest.mark.parametrize("fault", ["refused", "500", "slow"])
def test_a_destination_down_keeps_the_booking_exits_14_and_the_next_run_sends_it(
    cli, binance, webhook, ledger_path, monkeypatch, fault
):
    stop_loss_hit(cli, binance)
    if fault == "refused":
        monkeypatch.setenv("PORTFOLIO_NOTIFY__URLS", f"json://127.0.0.1:{closed_port()}/hook?token={SECRET}")
    elif fault == "500":
        webhook.status = 500
    else:
        webhook.slow = True
        monkeypatch.setenv("PORTFOLIO_NOTIFY__TIMEOUT_SECONDS", "0.5")
    result = cli("check", "--quiet", code=NOT_NOTIFIED)
    assert "closed by stop loss" in result.stdout
    [line] = result.stderr.splitlines()
    assert line.startswith("error: 1 notification(s) to json://… not sent: ")
    assert line.endswith("the command's records are committed, the next run sends it again")
    assert SECRET not in result.stderr
    [trade] = [t for t in cli.json("trades") if t["status"] == "closed"]  # booked all the same
    assert trade["closed_by"] == "stop_loss"
    assert cli("verify").exit_code == 0
    [queued] = outbox(ledger_path)
    assert queued["settled_at"] is None and queued["attempts"] == 1

    # The destination is back: the next run sends what is waiting (and has nothing new itself).
    webhook.status, webhook.slow = 200, False
    monkeypatch.setenv("PORTFOLIO_NOTIFY__URLS", webhook.destination(f"hook?token={SECRET}"))
    monkeypatch.setenv("PORTFOLIO_NOTIFY__TIMEOUT_SECONDS", "2")
    if fault == "refused":  # another URL: the queued message's destination is gone, so it is dropped
        dropped = cli("check", "--quiet")
        assert "1 queued notification(s) dropped" in dropped.stderr
        assert webhook.messages == []
        return
    retried = cli("check", "--quiet")
    assert retried.stderr == ""
    [message] = [m for m in webhook.messages if "stop loss" in m["message"]]
    assert "net PnL -107.90 USDT" in message["message"]
    [sent] = outbox(ledger_path)
    assert sent["settled_at"] is not None and sent["attempts"] == 2


def test_notify_test_reports_each_destination(cli, tmp_path, monkeypatch):
    with WebhookServer(Webhook()) as up:
        down = f"json://user:{SECRET}@127.0.0.1:{closed_port()}/hook"
        monkeypatch.setenv("PORTFOLIO_NOTIFY__URLS", f"{up.destination()} {down}")
        result = cli("notify", "--test", code=NOT_NOTIFIED)
        lines = result.stdout.splitlines()
        assert lines[0] == "json://…  sent"
        assert lines[1].startswith("json://…  NOT sent: ")
        assert SECRET not in result.stdout + result.stderr
        [message] = up.messages
        assert message["title"] == "portfolio-cli test"
        payload = cli("notify", "--test", "--json", code=NOT_NOTIFIED).stdout
        assert '"sent": true' in payload and '"sent": false' in payload and SECRET not in payload


def test_notify_test_without_destinations_is_a_config_error(cli):
    result = cli("notify", "--test", code=3)
    assert result.stderr.startswith("error: no notification destinations")


# secrets


def test_secrets_never_appear_in_output_errors_or_the_ledger(cli, binance, tmp_path, monkeypatch, ledger_path):
    port = closed_port()
    config = tmp_path / "secret.toml"
    config.write_text(
        f'[notify]\nurls = ["json://user:{SECRET}@127.0.0.1:{port}/{SECRET}?token={SECRET}", '
        f'"tgram://123456789:{SECRET}/987654"]\n'
    )
    config.chmod(0o600)
    monkeypatch.setenv("PORTFOLIO_CONFIG", str(config))
    stop_loss_hit(cli, binance)
    outputs = [
        cli("check", code=NOT_NOTIFIED),
        cli("paths"),
        cli("paths", "--json"),
        cli("notify"),
        cli("notify", "--json"),
        cli("notify", "--test", code=NOT_NOTIFIED),
    ]
    for result in outputs:
        assert SECRET not in result.stdout and SECRET not in result.stderr, result.args
    with sqlite3.connect(ledger_path) as conn:
        assert not any(SECRET in line for line in conn.iterdump())
    # A bad destination is refused naming its field, never its value.
    monkeypatch.setenv("PORTFOLIO_NOTIFY__URLS", f"{SECRET}-not-a-url")
    refused = cli("value", "--offline", code=3)
    assert "notify.urls.0.url" in refused.stderr and SECRET not in refused.stderr


def test_a_config_holding_urls_must_be_owner_only(cli, tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text('[notify]\nurls = ["tgram://123:abc/456"]\n')
    config.chmod(0o644)
    monkeypatch.setenv("PORTFOLIO_CONFIG", str(config))
    refused = cli("paths", code=3)
    assert "holds notification URLs (secrets) but others may read it (mode 644): chmod 600" in refused.stderr
    config.chmod(0o600)
    cli("paths")
    config.write_text("[fees]\nspot_taker = 0.001\n")  # no URLs: any mode will do
    config.chmod(0o644)
    cli("paths")


# without [notify], nothing changes


def test_without_destinations_nothing_is_queued(cli, binance, ledger_path):
    stop_loss_hit(cli, binance)
    cli("check", code=CLOSED)
    assert outbox(ledger_path) == []
    assert ledger_rows(ledger_path, "notify_state") == []


@pytest.mark.parametrize("args", [["value", "--offline"], ["--help"], ["check", "--help"]])
def test_commands_that_send_nothing_never_import_apprise(args, isolated_env):
    env = {**os.environ, "PORTFOLIO_NOTIFY__URLS": "json://127.0.0.1:9/hook"}
    probe = (
        "import sys\n"
        "from portfolio_cli.cli import main\n"
        f"sys.argv = ['portfolio', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('apprise' in sys.modules, 'portfolio_cli.notifier' in sys.modules, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert done.stderr.splitlines()[-1] == "False False", done.stderr


# the rules, in-process


def _cross_valuation(mark: str, balance: str = "1000"):
    """0.1 BTC long at 40,000, 10× cross (IM 400, entry fee 2), valued at ``mark``."""
    from portfolio_cli.engine.accounting import Lot
    from portfolio_cli.engine.brackets import flat_table
    from portfolio_cli.engine.records import CashFlow, FlowKind, Kind, MarginMode, Side, Trade
    from portfolio_cli.engine.valuation import Mark, value_portfolio

    at = datetime(2026, 1, 1, tzinfo=UTC)
    trade = Trade(1, "BTC/USDT", Side.LONG, Kind.MARGIN, MarginMode.CROSS, 10, D("0.1"), D(40000), D(40000), D(2), at)
    flows = [CashFlow(1, FlowKind.DEPOSIT, D(balance), at), CashFlow(2, FlowKind.FEE, D(-2), at, trade_id=1)]
    price = D(mark)
    return value_portfolio(
        flows, [Lot(trade, ())], {"BTC/USDT": Mark("BTC/USDT", price, price, at, "test")}, lambda s: flat_table(s, D("0.005"))
    )


@pytest.mark.parametrize(
    ("mark", "deposit", "close_qty"),
    [
        ("40000", None, None),  # 998 / 400 = 249.5 %: nothing to restore
        ("38000", D(2), D("0.00025060")),  # 2 × 400 − 798; 2 / (2 × 4000 − 38000 × 0.0005) = 2 / 7981
        ("36000", D(202), D("0.02530695")),  # 800 − 598; 202 / 7982
        # Em = 1000 − 2 − 1000 = −2: deposit 802; 802 / (8000 − 15) = 0.1004… > 0.1, closing it all falls short
        ("30000", D(802), None),
    ],
)
def test_the_action_that_restores_200_pct(mark, deposit, close_qty):
    from portfolio_cli.engine.margin import restore_margin_level

    restore = restore_margin_level(_cross_valuation(mark), D("0.0005"), D(200))
    if deposit is None:
        assert restore is None
        return
    assert restore.deposit == deposit
    assert restore.close_qty == close_qty
    assert restore.trade_id == 1 and restore.symbol == "BTC/USDT"


def test_closing_the_restoring_quantity_does_reach_200_pct():
    from portfolio_cli.engine.margin import restore_margin_level

    v = _cross_valuation("36000")
    qty = restore_margin_level(v, D("0.0005"), D(200)).close_qty
    fee = qty * D(36000) * D("0.0005")
    margin_after = v.margin_used - qty * D(4000)
    assert (v.margin_equity - fee) / margin_after * 100 >= 200
    smaller = qty - D("0.00000001")  # one unit less falls short
    assert (v.margin_equity - smaller * D(18)) / (v.margin_used - smaller * D(4000)) * 100 < 200


NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
DAY = timedelta(hours=24)


@pytest.mark.parametrize(
    ("current", "last", "last_at", "due"),
    [
        ("ok", None, None, False),  # nothing sent yet and nothing wrong
        ("warning", None, None, True),
        ("warning", "ok", NOW - timedelta(minutes=5), True),
        ("warning", "warning", NOW - timedelta(hours=23), False),  # already sent, within repeat_hours
        ("warning", "warning", NOW - DAY, True),  # repeat_hours passed
        ("liquidation risk", "warning", NOW - timedelta(minutes=5), True),
        ("critical", "liquidation risk", NOW - timedelta(minutes=5), True),
        ("warning", "critical", NOW - timedelta(minutes=5), True),  # better, but not yet ok
        ("ok", "warning", NOW - timedelta(minutes=5), True),  # back to ok
        ("ok", "ok", NOW - 10 * DAY, False),  # ok is never repeated
    ],
)
def test_when_a_margin_state_is_sent(current, last, last_at, due):
    from portfolio_cli.services.notify import margin_due

    assert margin_due(current, last, last_at, NOW, DAY) is due


def test_scrub_cuts_every_part_of_the_url():
    from portfolio_cli.notifier import scrub

    url = f"tgram://123456789:{SECRET}/987654?to=me%40example.com&token={SECRET}"
    text = f"Failed to send to api.telegram.org/bot123456789:{SECRET}/sendMessage chat 987654 ({url})"
    cleaned = scrub(text, url)
    assert SECRET not in cleaned and "987654" not in cleaned and "123456789" not in cleaned


def test_the_documented_examples_are_valid_config(tmp_path):
    import re

    from portfolio_cli.config import load_settings

    page = (Path(__file__).parent.parent / "docs" / "notifications.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", page, re.S)
    assert len(blocks) == 2
    config = tmp_path / "documented.toml"
    config.write_text("\n".join(blocks))
    config.chmod(0o600)
    settings = load_settings(config, environ={})
    assert [d.scheme for d in settings.notify.urls] == ["tgram", "mailtos"]
    assert settings.notify.urls[1].events == ["liquidation", "margin"]
    [gmail] = settings.for_portfolio("scalping").notify.urls
    assert gmail.scheme == "mailto"
