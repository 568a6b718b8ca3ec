"""Amending a trade's exit levels and trailing stops: the engine's maths by hand, then end to end
through the CLI against the fake Binance with scripted candles."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from portfolio_cli.engine.records import Amendment, Candle, CloseReason, Kind, Side, Trade
from portfolio_cli.engine.stops import Stops, best_since, follow, nearer_stop, stop_trigger, stops_at, trail_level

CLOSED = 12
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


def trade(side: Side = Side.LONG, stop: str | None = None, take: str | None = None, trail: str | None = None) -> Trade:
    return Trade(
        1, "BTC/USDT", side, Kind.SPOT, None, 1, D(1), D(40000), D(40000), D(40), T0,
        stop_loss=D(stop) if stop else None, take_profit=D(take) if take else None,
        trailing_pct=D(trail) if trail else None,
    )  # fmt: skip


def candle(minutes: int, o: str, h: str, low: str, c: str) -> Candle:
    return Candle("BTC/USDT", "1m", T0 + timedelta(minutes=minutes), D(o), D(h), D(low), D(c))


# engine: the trailing maths


@pytest.mark.parametrize(
    ("side", "best", "pct", "level"),
    [
        (Side.LONG, "44000", "5", "41800"),  # 44000 × 0.95
        (Side.SHORT, "36000", "5", "37800"),  # 36000 × 1.05
        (Side.LONG, "100", "3", "97"),
        (Side.LONG, "1", "0.00000003", "0.99999999"),  # 0.9999999997, rounded down (towards the long)
        (Side.SHORT, "1", "0.00000003", "1.00000001"),  # 1.0000000003, rounded up (towards the short)
    ],
)
def test_trail_level_is_the_best_price_less_the_percentage(side, best, pct, level):
    assert trail_level(side, D(best), D(pct)) == D(level)


def test_the_best_price_only_moves_in_the_traders_favour():
    assert follow(Side.LONG, D(100), D(105), D(90)) == D(105)
    assert follow(Side.LONG, D(110), D(105), D(90)) == D(110)
    assert follow(Side.SHORT, D(100), D(105), D(90)) == D(90)
    assert follow(Side.SHORT, D(80), D(105), D(90)) == D(80)
    candles = [candle(-1, "50000", "50000", "50000", "50000"), candle(0, "40000", "42000", "39000", "41000"),
               candle(1, "41000", "43000", "40000", "42000")]  # fmt: skip
    # the candle before the stop was set does not count
    assert best_since(Side.LONG, D(40000), candles, T0) == D(43000)
    assert best_since(Side.SHORT, D(40000), candles, T0) == D(39000)


def test_the_nearer_of_a_fixed_and_a_trailing_stop_acts():
    assert nearer_stop(Side.LONG, D(39000), D(39900)) == (D(39900), True)
    assert nearer_stop(Side.LONG, D(40000), D(39900)) == (D(40000), False)
    assert nearer_stop(Side.SHORT, D(41000), D(40500)) == (D(40500), True)
    assert nearer_stop(Side.SHORT, None, D(40500)) == (D(40500), True)
    assert nearer_stop(Side.SHORT, D(41000), None) == (D(41000), False)
    assert nearer_stop(Side.LONG, None, None) == (None, False)


def test_stops_in_force_fold_the_amendments_in_time_order():
    t = trade(stop="39000", take="45000")
    later = Amendment(2, 1, T0 + timedelta(hours=2), stop_loss=D(39500))
    earlier = Amendment(1, 1, T0 + timedelta(hours=1), trailing_pct=D(2), reference=D(41000), removed=("take_profit",))
    removed = Amendment(3, 1, T0 + timedelta(hours=3), removed=("stop_loss", "trailing_stop"))
    amendments = [removed, later, earlier]  # in any order
    assert stops_at(t, amendments, T0) == Stops(D(39000), D(45000))
    assert stops_at(t, amendments, T0 + timedelta(hours=1)) == Stops(D(39000), None, D(2), earlier.at, D(41000))
    assert stops_at(t, amendments, T0 + timedelta(minutes=150)) == Stops(D(39500), None, D(2), earlier.at, D(41000))
    assert stops_at(t, amendments) == Stops()
    # a trailing stop set at open trails from the fill
    assert stops_at(trade(trail="5"), []) == Stops(None, None, D(5), T0, D(40000))


def test_a_trailing_stop_fires_as_a_trailing_stop_and_gaps_fill_at_the_open():
    stops = Stops(D(39000), None, D(5), T0, D(40000))
    # best 44000: the trail is at 41800, above the fixed stop; a low of 41500 touches it
    touched = stop_trigger(Side.LONG, D(43000), D(43500), D(41500), stops, D(44000))
    assert (touched.reason, touched.price, touched.gapped) == (CloseReason.TRAILING_STOP, D(41800), False)
    gapped = stop_trigger(Side.LONG, D(41000), D(41200), D(40800), stops, D(44000))
    assert (gapped.reason, gapped.price, gapped.gapped) == (CloseReason.TRAILING_STOP, D(41000), True)
    # best 40000: the trail is at 38000, below the fixed stop at 39000, which acts first
    fixed = stop_trigger(Side.LONG, D(39500), D(39600), D(38500), stops, D(40000))
    assert (fixed.reason, fixed.price) == (CloseReason.STOP_LOSS, D(39000))
    short = Stops(None, None, D(5), T0, D(40000))
    hit = stop_trigger(Side.SHORT, D(37000), D(38000), D(36900), short, D(36000))  # trail 37800
    assert (hit.reason, hit.price) == (CloseReason.TRAILING_STOP, D(37800))
    assert stop_trigger(Side.SHORT, D(37000), D(37700), D(36900), short, D(36000)) is None


# end to end


def flat(fake, first: int, last: int, price: str) -> None:
    """Flat candles at ``price`` for the minutes ``first`` to ``last`` (offsets from now), unless scripted."""
    for offset in range(first, last + 1):
        fake.ohlc.setdefault(("BTC/USDT", "1m", ms(minute(offset))), (D(price),) * 4)


@pytest.fixture
def btc(binance):
    binance.prices["BTC/USDT"] = D(40000)
    return binance


def _open(cli, *extra: str, at: int = -60) -> int:
    opened = cli.json("open", "BTC/USDT", "--qty", "0.1", "--price", "40000", "--at", minute(at).isoformat(), *extra)
    return opened["trade_id"]


def _closed(cli) -> list[dict]:
    return [t for t in cli.json("trades") if t["status"] == "closed"]


def test_amend_is_checked_against_the_side_of_the_price(cli, btc):
    cli("init", "--at", minute(-120).isoformat())
    long_id = _open(cli, "--stop-loss", "39000")
    refused = cli("amend", str(long_id), "--stop-loss", "40500", code=2)
    assert "error: --stop-loss 40500 must be below the fill price 40000 for a long position" in refused.stderr
    assert cli("amend", str(long_id), "--take-profit", "39000", code=2).stderr.count("must be above") == 1
    short = cli.json("open", "BTC/USDT", "--qty", "0.1", "--short", "--leverage", "2", "--price", "40000")
    assert "must be above" in cli("amend", str(short["trade_id"]), "--stop-loss", "39500", code=2).stderr
    assert "must be below" in cli("amend", str(short["trade_id"]), "--take-profit", "41000", code=2).stderr
    done = cli.json("amend", str(short["trade_id"]), "--stop-loss", "41000", "--take-profit", "38000")
    assert (done["before"]["stop_loss"], done["after"]["stop_loss"]) == (None, "41000")
    assert done["after"]["take_profit"] == "38000"
    assert cli("amend", "99", "--stop-loss", "1", code=4).stderr.startswith("error: no trade 99")
    assert "nothing to amend" in cli("amend", str(long_id), code=2).stderr
    assert "no take-profit to remove" in cli("amend", str(long_id), "--no-take-profit", code=2).stderr


def test_an_amended_stop_is_used_from_its_moment_and_audited(cli, btc, ledger_path):
    cli("init", "--at", minute(-120).isoformat())
    trade_id = _open(cli, "--stop-loss", "39000")
    out = cli("amend", str(trade_id), "--stop-loss", "39500", "--at", minute(-30).isoformat(), "--note", "tighter")
    assert f"Amended trade {trade_id} long BTC/USDT" in out.stdout
    assert "before: stop-loss 39,000" in out.stdout and "after:  stop-loss 39,500" in out.stdout
    # before the amendment, a low of 39,400 is above the stop of 39,000: nothing happens
    btc.ohlc[("BTC/USDT", "1m", ms(minute(-40)))] = (D(40000), D(40000), D(39400), D(39800))
    # after it, the same low is through the stop of 39,500
    btc.ohlc[("BTC/USDT", "1m", ms(minute(-20)))] = (D(40000), D(40000), D(39400), D(39800))
    result = cli("check", "--json", code=CLOSED)
    [event] = [e for e in json.loads(result.stdout)["portfolios"][0]["events"] if e["kind"] == "stop_loss"]
    assert datetime.fromisoformat(event["at"]) == minute(-20)
    [closed] = _closed(cli)
    assert D(closed["exit"]) == D(39500)
    assert D(closed["realized_pnl"]) == D(-50)  # 0.1 × (39500 − 40000)
    import sqlite3

    with sqlite3.connect(ledger_path) as conn:
        [(details,)] = conn.execute("select details from audit_log where action = 'amend trade'").fetchall()
        rows = conn.execute("select trade_id, stop_loss, removed, note from amendments").fetchall()
    assert D(json.loads(details)["stop_loss"]) == D(39500)
    assert [(r[0], D(r[1]), r[2], r[3]) for r in rows] == [(trade_id, D(39500), "", "tighter")]
    # a closed trade cannot be amended
    assert "is closed" in cli("amend", str(trade_id), "--stop-loss", "30000", code=1).stderr


def test_a_removed_stop_and_take_profit_no_longer_act(cli, btc):
    cli("init", "--at", minute(-120).isoformat())
    trade_id = _open(cli, "--stop-loss", "39000", "--take-profit", "41000")
    cli("amend", str(trade_id), "--no-stop-loss", "--no-take-profit", "--at", minute(-50).isoformat())
    btc.ohlc[("BTC/USDT", "1m", ms(minute(-40)))] = (D(40000), D(41500), D(38000), D(40000))
    cli("check")  # exit 0: nothing closed
    assert _closed(cli) == []
    [level] = cli.json("value")["levels"]
    assert (level["stop_loss"], level["take_profit"]) == (None, None)


def test_a_backdated_amendment_before_a_later_close_is_refused(cli, btc):
    cli("init", "--at", minute(-120).isoformat())
    trade_id = _open(cli, "--stop-loss", "39000")
    btc.ohlc[("BTC/USDT", "1m", ms(minute(-20)))] = (D(40000), D(40000), D(38900), D(39000))
    cli("check", code=CLOSED)
    refused = cli("amend", str(trade_id), "--no-stop-loss", "--at", minute(-30).isoformat(), code=1)
    assert "is closed" in refused.stderr


def test_a_trailing_stop_follows_the_candles_and_fills_at_the_open_of_a_gap(cli, btc):
    cli("init", "--at", minute(-120).isoformat())
    trade_id = _open(cli, "--trailing-stop", "5")
    script = {
        -50: ("40000", "42000", "40000", "42000"),  # best 42,000: the trail moves to 39,900
        -40: ("42000", "42000", "40000", "40500"),  # a low of 40,000 stays above 39,900
        -30: ("43000", "44000", "43000", "43500"),  # best 44,000: 41,800
        -20: ("41000", "41200", "40800", "41100"),  # opens below 41,800: filled at its open
    }
    for offset, prices in script.items():
        btc.ohlc[("BTC/USDT", "1m", ms(minute(offset)))] = tuple(D(p) for p in prices)
    flat(btc, -49, -41, "41000")
    flat(btc, -39, -31, "40500")
    flat(btc, -29, -21, "43500")
    result = cli("check", "--json", code=CLOSED)
    [event] = [e for e in json.loads(result.stdout)["portfolios"][0]["events"] if e["kind"] == "trailing_stop"]
    assert datetime.fromisoformat(event["at"]) == minute(-20)
    assert "gapped through, filled at the open" in event["message"]
    [closed] = _closed(cli)
    assert closed["id"] == trade_id
    assert closed["closed_by"] == "trailing_stop"
    assert D(closed["exit"]) == D(41000)
    assert D(closed["realized_pnl"]) == D(100)  # 0.1 × (41000 − 40000)


def test_value_and_positions_show_the_trailing_level_and_a_later_check_goes_on_from_it(cli, btc):
    cli("init", "--at", minute(-120).isoformat())
    trade_id = _open(cli, "--trailing-stop", "5")
    btc.ohlc[("BTC/USDT", "1m", ms(minute(-30)))] = (D(43000), D(44000), D(43000), D(43500))
    flat(btc, -29, 0, "43500")
    btc.prices["BTC/USDT"] = D(43500)
    cli("check")  # nothing closes: the low never reached the trail
    [level] = cli.json("value")["levels"]
    assert (D(level["trailing_pct"]), D(level["trailing_stop"])) == (D(5), D(41800))  # 44,000 × 0.95
    assert "41,800" in cli("value").stdout
    positions = cli("positions").stdout
    assert f"trade {trade_id} BTC/USDT: trailing stop 41,800" in positions
    # the next check starts after the 44,000 candle: the price now, 41,000, is below the trail
    btc.prices["BTC/USDT"] = D(41000)
    cli("check", code=CLOSED)
    [closed] = _closed(cli)
    assert closed["closed_by"] == "trailing_stop"
    assert D(closed["exit"]) == D(41000)


def test_amend_sets_a_trailing_stop_from_the_price_then(cli, btc):
    cli("init", "--at", minute(-120).isoformat())
    trade_id = _open(cli)
    btc.candles[("BTC/USDT", ms(minute(-30)))] = D(42000)  # the price at the amendment
    done = cli.json("amend", str(trade_id), "--trailing-stop", "2", "--at", minute(-30).isoformat())
    assert D(done["price"]) == D(42000)
    assert D(done["after"]["trailing_pct"]) == D(2)
    # before the amendment a low of 39,000 closes nothing; after it the trail is at 41,160 (42,000 × 0.98)
    btc.ohlc[("BTC/USDT", "1m", ms(minute(-40)))] = (D(40000), D(40000), D(39000), D(40000))
    btc.ohlc[("BTC/USDT", "1m", ms(minute(-10)))] = (D(42000), D(42000), D(41100), D(41500))
    flat(btc, -30, -1, "42000")
    cli("check", code=CLOSED)
    [closed] = _closed(cli)
    assert (closed["closed_by"], D(closed["exit"])) == ("trailing_stop", D(41160))
    assert "--trailing-stop is a percentage" in cli("amend", str(trade_id), "--trailing-stop", "100", code=2).stderr
