"""The trader's terminal: one way of writing numbers and times, tables that never cut a figure at 80 or
120 columns, offline marks labelled with their source and age, and what `value` shows."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from io import StringIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from conftest import ledger_rows
from portfolio_cli.formatting import duration, json_value, moment, money, pct, price, qty, to_json
from portfolio_cli.ledger import codec
from portfolio_cli.render import fit
from portfolio_cli.render.fit import FitTable


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (D("0E-8"), "0.00"),
        (D("-0.001"), "0.00"),  # rounds to zero: no negative zero
        (D("1234567.125"), "1,234,567.13"),  # half up, not half even
        (D("-15.3056475000000000"), "-15.31"),
    ],
)
def test_money_has_two_decimals_and_no_negative_zero(value, expected):
    assert money(value) == expected


@pytest.mark.parametrize(
    ("value", "tick", "expected"),
    [
        (D("67910.12345678"), None, "67,910.12"),  # 5 integer digits: 6 significant → 2 places (the floor)
        (D("65000"), None, "65,000.00"),
        (D("3.14159265"), None, "3.14159"),  # 6 significant digits
        (D("0.00001234"), None, "0.00001234"),  # never more than the ledger's 8 places
        (D("0.05"), None, "0.05"),
        (D("0E-8"), None, "0.00"),
        (D("67910.12345678"), D("0.01"), "67,910.12"),  # to the tick
        (D("0.1"), D("0.00001"), "0.10000"),
        (D("150"), D("1"), "150"),
    ],
)
def test_price_to_the_tick_or_six_significant_digits(value, tick, expected):
    assert price(value, tick) == expected


def test_quantities_as_recorded_or_to_the_lot_step():
    assert qty(D("0.05000000")) == "0.05"
    assert qty(D("0E-8")) == "0"
    assert qty(D("12500")) == "12,500"
    assert qty(D("0.5"), step=D("0.001")) == "0.500"
    assert pct(D("194.466")) == "194.47"


def test_one_moment_format_in_tables_and_iso_utc_in_json():
    at = datetime(2026, 3, 1, 14, 30, 5, tzinfo=UTC)
    assert moment(at) == "2026-03-01 14:30 UTC"
    assert json_value(at) == "2026-03-01T14:30:05Z"
    assert json.loads(to_json({"zero": D("0E-8"), "big": D("1E+3"), "at": at})) == {
        "zero": "0.00000000",
        "big": "1000",
        "at": "2026-03-01T14:30:05Z",
    }
    assert duration(3 * 3600 + 5) == "3 h"
    assert duration(59) == "59 s"


def _render(renderable, width: int) -> str:
    console = Console(file=StringIO(), width=width, color_system=None, legacy_windows=False)
    console.print(renderable)
    return console.file.getvalue()


figures = st.decimals(min_value=D("-99999999"), max_value=D("99999999"), places=8, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(figures, figures, figures, figures, figures), min_size=1, max_size=4))
def test_a_fit_table_drops_columns_instead_of_cutting_figures(rows):
    table = FitTable(title="t", drop=("e", "d", "c"))
    table.add_column("symbol", no_wrap=True)
    for name in "abcde":
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row("BTC/USDT", *(price(v) for v in row))
    out = _render(table, 60)
    assert "…" not in out
    assert all(len(line) <= 60 for line in out.splitlines())
    for row in rows:  # the kept columns (a and b are never dropped) show every figure whole
        cells = [re.compile(rf"(?<![\d,.]){re.escape(price(v))}(?![\d,.])") for v in row[:2]]
        assert any(all(c.search(line) for c in cells) for line in out.splitlines() if "BTC/USDT" in line)


# FitTable lays out one-line cells itself; what it draws must be what Rich's Table draws.

words = st.sampled_from(
    ["BTC/USDT", "0.00", "-1,234.56", "spot", "3x", "cached mark, 9 min", "", " pad ", "Ⓢ-M", "日本", "a b c",
     "[bold]x[/]", "12:30", ":smile:", "tab\there", "two\nlines", "x" * 30, "price [1]", "€5"]
)  # fmt: skip
styles = st.sampled_from(["", "yellow", "bold red", "green on black", "dim"])


@st.composite
def cells(draw):
    text = draw(words)
    kind = draw(st.sampled_from(["str", "text", "spans"]))
    if kind == "str":
        return text
    cell = Text(text, style=draw(styles), justify=draw(st.sampled_from([None, "left", "right", "center"])))
    if kind == "spans" and text:
        cell.stylize(draw(styles) or "bold", 0, draw(st.integers(0, len(text))))
    return cell


@st.composite
def fit_tables(draw):
    ncols = draw(st.integers(1, 6))
    table = FitTable(
        title=draw(st.sampled_from([None, "Open positions", "[bold]t[/]"])),
        caption=draw(st.sampled_from([None, "value in USDT"])),
        box=draw(st.sampled_from([None, box.SIMPLE_HEAD, box.SQUARE, box.MINIMAL, box.ASCII])),
        show_header=draw(st.booleans()),
        show_edge=draw(st.booleans()),
        header_style=draw(st.sampled_from([None, "bold", "cyan"])),
        row_styles=draw(st.sampled_from([None, ["", "dim"]])),
        drop=draw(st.sampled_from([(), ("c1", "c0")])),
        width=draw(st.sampled_from([None, None, 30, 70])),
        padding=draw(st.sampled_from([(0, 1), (0, 1), (0, 2), (0, 0), (1, 1), (0, 1, 0, 0)])),
        pad_edge=draw(st.booleans()),
        collapse_padding=draw(st.booleans()),
        border_style=draw(st.sampled_from([None, "blue"])),
        style=draw(st.sampled_from([None, "on black"])),
        safe_box=draw(st.sampled_from([None, True])),
    )
    for n in range(ncols):
        table.add_column(
            draw(st.sampled_from([f"c{n}", Text(f"c{n}", style="red")])),
            justify=draw(st.sampled_from(["left", "right", "center", "full"])),
            wrap=draw(st.booleans()),
            style=draw(st.sampled_from([None, "", "magenta"])),
            min_width=draw(st.sampled_from([None, None, 3, 12])),
            max_width=draw(st.sampled_from([None, None, 6])),
            overflow=draw(st.sampled_from([None, None, "crop", "ellipsis", "ignore"])),
        )
    for _ in range(draw(st.integers(0, 5))):
        table.add_row(
            *draw(st.lists(cells(), min_size=ncols, max_size=ncols)), style=draw(st.sampled_from([None, "on blue"]))
        )
    return table


@settings(max_examples=300, deadline=None)
@given(table=fit_tables(), width=st.integers(8, 130), color=st.booleans())
def test_a_fit_table_draws_what_rich_draws(table, width, color):
    console = Console(file=StringIO(), width=width, color_system="truecolor" if color else None, force_terminal=color)
    options = console.options
    for column in table.columns:  # the widths it fits to, as Rich measures them
        assert fit._measure_column(table, console, options, column) == table._measure_column(console, options, column)
    drawn = list(table.__rich_console__(console, options))
    assert drawn == list(Table.__rich_console__(table.fitted(console, options), console, options))


def test_a_fit_table_of_one_line_cells_is_drawn_without_rich_s_cell_machinery():
    console = Console(file=StringIO(), width=80)
    table = FitTable(title="t", box=box.SIMPLE_HEAD)
    table.add_column("id", justify="right")
    table.add_column("mark", justify="right")
    table.add_row("1", Text("40,000.00*", style="yellow"))
    assert fit._drawn(table, console, console.options) is not None


CUT = re.compile(r"\S…")  # rich's mark of a cell it cut short


@pytest.fixture
def busy_ledger(cli, binance):
    """A portfolio with wide figures: spot and margin, long and short, partial closes, a snapshot."""
    binance.prices.update({"BTC/USDT": D("67910.12345678"), "ETH/USDT": D("3512.87654321")})
    cli("init", "--balance", "1000000")
    cli("open", "BTC/USDT", "--qty", "1.23456", "--leverage", "20", "--stop-loss", "60000", "--take-profit", "80000")
    cli("open", "ETH/USDT", "--qty", "12.5", "--leverage", "5", "--short", "--cross", "--strategy", "mean-revert")
    cli("open", "SOL/USDT", "--qty", "1500")
    cli("open", "DOGE/USDT", "--qty", "250000", "--strategy", "a-rather-long-strategy-name")
    cli("close", "SOL/USDT", "--pct", "40")
    cli("snapshot")
    return binance


TABLE_COMMANDS = [
    ["value"],
    ["positions"],
    ["trades"],
    ["trades", "--costs"],
    ["portfolios"],
    ["margin"],
    ["allocation"],
    ["check"],
    ["verify"],
    ["history"],
    ["report"],
    ["size", "BTC/USDT", "--stop", "65000"],
    ["value", "--offline"],
]


@pytest.mark.parametrize("width", [80, 120])
def test_every_table_fits_without_cutting_a_number(cli, busy_ledger, monkeypatch, width):
    monkeypatch.setenv("COLUMNS", str(width))
    outputs = {" ".join(args): cli(*args, code=None).stdout for args in TABLE_COMMANDS}
    outputs["open"] = cli("open", "BTC/USDT", "--qty", "0.05234", "--leverage", "3").stdout
    outputs["close"] = cli("close", "DOGE/USDT", "--pct", "50").stdout
    for command, out in outputs.items():
        assert out.strip(), command
        assert not CUT.search(out), (command, out)
        too_wide = [line for line in out.splitlines() if len(line) > width]
        assert not too_wide, (command, too_wide)
    # the figures the issue found cut: entry and mark prices, the liquidation price, the close's fill
    assert "67,910.12" in outputs["value"]
    assert "3,512.88" in outputs["positions"]
    assert "67,910.12" in outputs["close"] or "0.1" in outputs["close"]
    assert re.search(r"\d{2},\d{3}\.\d{2}", outputs["margin"])


@pytest.mark.parametrize("width", [80, 120])
def test_every_table_prints_as_rich_would_draw_it(cli, busy_ledger, monkeypatch, width):
    """Each renderable a command prints, drawn with FitTable's own layout and then with Rich's
    Table for every table, at the same moment (the tables show ages)."""
    monkeypatch.setenv("COLUMNS", str(width))
    real_print, real_drawn = Console.print, fit._drawn
    laid_out, differ = [], []

    def drawn(table, console, options):
        segments = real_drawn(table, console, options)
        laid_out.append(segments is not None)
        return segments

    def print_both_ways(console, *objects, **kwargs):
        for renderable in objects:
            ours = list(console.render(renderable, console.options))
            monkeypatch.setattr(fit, "_drawn", lambda table, console, options: None)
            theirs = list(console.render(renderable, console.options))
            monkeypatch.setattr(fit, "_drawn", drawn)
            if ours != theirs:
                differ.append(renderable)
        return real_print(console, *objects, **kwargs)

    monkeypatch.setattr(fit, "_drawn", drawn)
    monkeypatch.setattr(Console, "print", print_both_ways)
    for args in TABLE_COMMANDS:
        cli(*args, code=None)
    assert not differ
    assert sum(laid_out) > len(TABLE_COMMANDS)  # most tables take FitTable's own layout


# Offline that just works


def test_offline_trading_uses_the_last_fill_as_the_mark(cli):
    cli("init", "--offline")
    cli("open", "BTC/USDT", "--qty", "0.01", "--price", "65000", "--offline")
    # BTC/USDT has no quote anywhere, but its fill is the last price the ledger knows
    cli("open", "ETH/USDT", "--qty", "0.5", "--price", "3500", "--offline")
    cli("deposit", "500", "--offline")  # a deposit never asks for prices
    result = cli.json("value", "--offline")
    sources = {p["symbol"]: (p["price_source"], D(p["mark"])) for p in result["valuation"]["positions"]}
    assert sources == {"BTC/USDT": ("last fill", 65000), "ETH/USDT": ("last fill", 3500)}
    shown = cli("value", "--offline").stdout
    assert "last fill, " in shown


def test_a_newer_fill_beats_an_older_cached_quote(cli, binance, ledger_path):
    import sqlite3

    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.01")  # caches the live quote, 40,000
    # within a minute of the quote, the fill was made from it: the quote is the market's price
    assert cli.json("value", "--offline")["valuation"]["positions"][0]["price_source"] == "cache"
    with sqlite3.connect(ledger_path) as db:  # the quote was cached an hour before the next fill
        db.execute("update quotes set at = ?", [codec.timestamp(datetime.now(UTC) - timedelta(hours=1))])
    cli("open", "BTC/USDT", "--qty", "0.01", "--price", "41000", "--offline")
    [first, second] = cli.json("value", "--offline")["valuation"]["positions"]
    assert (D(first["mark"]), first["price_source"]) == (41000, "last fill")


def test_a_backdated_offline_open_fills_at_its_own_price(cli):
    cli("init", "--at", "2026-01-01", "--offline")
    fill = cli.json("open", "SOL/USDT", "--qty", "2", "--price", "150", "--at", "2026-02-01T12:00", "--offline")
    assert (fill["price"], fill["at"]) == ("150", "2026-02-01T12:00:00Z")


def test_binance_spelling_of_a_symbol_is_accepted(cli):
    cli("init")
    fill = cli.json("open", "BTCUSDT", "--qty", "0.01", "--price", "65000", "--offline")
    assert fill["symbol"] == "BTC/USDT"
    assert [t["symbol"] for t in cli.json("trades", "--symbol", "btcusdt", "--offline")] == ["BTC/USDT"]


def test_a_strategy_name_prints_as_typed_not_as_an_emoji(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    cli("init")
    cli("open", "ETH/USDT", "--qty", "0.1", "--price", "3000", "--offline", "--strategy", ":fire:")
    out = cli("trades", "--offline").stdout
    assert ":fire:" in out and "\N{FIRE}" not in out


def test_every_command_accepts_offline():
    import typer.main

    from portfolio_cli.cli import app

    commands = typer.main.get_command(app).commands
    lacking = [name for name, c in commands.items() if not any("--offline" in p.opts for p in c.params)]
    assert not lacking
    needing_prices = ("value", "positions", "withdraw", "open", "close", "allocation", "rebalance", "check")
    lacking = [n for n in needing_prices if not any("--price" in p.opts for p in commands[n].params)]
    assert not lacking


def test_json_has_no_exponent_zeros(cli):
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.01", "--price", "65000", "--offline")
    out = cli("value", "--offline", "--json").stdout
    assert "E-" not in out and "E+" not in out
    assert json.loads(out)["valuation"]["unrealized_pnl"] == "0.00000000"
    cli("snapshot", "--offline")
    for args in (["report", "--json"], ["report", "--csv"], ["history", "--json"], ["trades", "--json"]):
        out = cli(*args, "--offline").stdout if args[0] == "report" else cli(*args).stdout
        assert not re.search(r"\dE[-+]\d", out), (args, out)
    assert json.loads(cli("report", "--json", "--offline").stdout)["pnl"]["realized"] == "0.00000000"


# What value shows


def test_value_shows_margin_state_levels_and_pnl_against_deposits(cli, binance):
    cli("init", "--balance", "1000")
    opened = cli(
        "open", "BTC/USDT", "--qty", "0.1", "--leverage", "10", "--stop-loss", "36000", "--take-profit", "44000"
    )
    # 10x isolated long 0.1 at 40,000: notional 4,000 is in BTCUSDT's first bracket (mmr 0.4 %, cum 0), so
    # Binance's liquidation price is (WB − q·e)/(q·mmr − q) = (400 − 4000)/(0.0004 − 0.1) = 36,144.578…
    assert "Liquidation price" in opened.stdout and "36,144.6" in opened.stdout
    binance.prices["BTC/USDT"] = D("38000")
    result = cli.json("value")
    # margin equity = 1000 − fee 2 + 0.1·(38000 − 40000) = 798; margin used 400 → 199.5 %: warning
    assert result["valuation"]["margin_level_pct"] == "199.50"
    assert result["margin_state"] == "warning"
    [levels] = result["levels"]
    assert levels["liquidation_price"] == "36144.57831325"
    assert levels["stop_distance_pct"] == "-5.26"  # (36000 − 38000) / 38000
    assert levels["take_profit_distance_pct"] == "15.79"
    assert levels["crossed"] is None
    # total PnL = equity − net deposits = 798 − 1000; ROI −20.2 %
    assert result["performance"] == {"total_pnl": "-202.00000000", "net_deposits": "1000.00000000", "roi_pct": "-20.20"}
    shown = cli("value").stdout
    assert "199.50 % · warning: below the 200 % warning line" in shown
    assert "36,144.58 (-4.88%)" in shown
    assert "Total PnL" in shown and "-202.00" in shown


def test_value_hints_at_a_crossed_take_profit(cli, binance):
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.01", "--take-profit", "42000")
    binance.prices["BTC/USDT"] = D("43000")
    result = cli.json("value")
    assert result["levels"][0]["crossed"] == "take_profit"
    assert "past its take profit; `portfolio check` closes it" in cli("value").stdout


def test_at_before_the_creation_says_how_to_move_it_back_and_init_at_does(cli, ledger_path):
    cli("init", "--at", "2026-03-01")
    refused = cli("open", "SOL/USDT", "--qty", "2", "--price", "150", "--at", "2026-02-01", code=2)
    assert "portfolio init main --at 2026-02-01T00:00" in refused.stderr
    moved = cli("init", "--at", "2026-02-01")
    assert "now dated 2026-02-01 00:00 UTC" in moved.stdout
    cli("open", "SOL/USDT", "--qty", "2", "--price", "150", "--at", "2026-02-01T12:00", "--offline")
    [deposit] = [f for f in ledger_rows(ledger_path, "cash_flows") if f[2] == "deposit"]
    assert deposit[4].startswith("2026-02-01")  # the starting balance moved with the creation
    assert cli.json("verify")["ok"] is True


# value --watch


def _watch(*args: str, **kwargs):
    import subprocess
    import sys

    command = [sys.executable, "-m", "portfolio_cli", "value", "--watch", "-n", "1", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def _read_until(stream, pattern: str, limit: int = 200) -> list[str]:
    lines = []
    for _ in range(limit):
        line = stream.readline().decode()
        assert line, f"stream ended before {pattern!r}: {lines}"
        lines.append(line)
        if re.search(pattern, line):
            return lines
    raise AssertionError(f"{pattern!r} not seen in {limit} lines: {lines}")


def test_watch_on_a_pipe_writes_one_json_line_per_refresh_and_stops_on_sigterm(cli, binance):
    import signal

    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.01")
    binance.change_24h_pct["BTC/USDT"] = D("2.5")
    watcher = _watch("--json")
    try:
        first = json.loads(watcher.stdout.readline())
        binance.prices["BTC/USDT"] = D("41000")
        later = json.loads(watcher.stdout.readline())
        while D(later["valuation"]["positions"][0]["mark"]) != 41000:  # a refresh may have begun before the move
            later = json.loads(watcher.stdout.readline())
    finally:
        watcher.send_signal(signal.SIGTERM)
        try:
            _, err = watcher.communicate(timeout=20)
        finally:
            watcher.kill()
    assert watcher.returncode == 143, err  # 128 + SIGTERM, as documented
    assert D(first["valuation"]["positions"][0]["mark"]) == 40000
    assert first["valuation"]["positions"][0]["change_24h_pct"] == "2.5"
    assert later["updated_at"] > first["updated_at"]
    assert D(later["valuation"]["equity"]) - D(first["valuation"]["equity"]) == 10  # 0.01 × 1,000


def test_watch_on_a_pipe_writes_frames_with_warnings_inside(cli, binance):
    import signal

    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.01")
    binance.fail_always("500")  # every refresh falls back to the cached quote
    watcher = _watch(env={**__import__("os").environ, "COLUMNS": "120"})
    try:
        frame = _read_until(watcher.stdout, r"^warning: ")
        frame += _read_until(watcher.stdout, r"^Updated ")
    finally:
        watcher.send_signal(signal.SIGINT)
        try:
            _, err = watcher.communicate(timeout=20)
        finally:
            watcher.kill()
    assert watcher.returncode == 130, err  # Ctrl-C, as documented
    text = "".join(frame)
    assert "Updated " in text and "every 1 s" in text
    assert "stale since" in text
    assert "40,000.00*" in text  # the stale mark is marked in its row
    assert "(stale)" in text
    assert err.decode().strip() == ""  # nothing scrolls across the frames on stderr


def test_watch_in_a_terminal_redraws_the_frame_as_the_price_moves(cli, binance):
    import os
    import pty
    import select
    import signal
    import subprocess
    import sys

    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.01")
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "LINES": "60", "TERM": "xterm-256color"}
    command = [sys.executable, "-m", "portfolio_cli", "value", "--watch", "-n", "1"]
    watcher = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    screen = b""

    def read_until(needle: bytes, deadline: float = 30.0) -> bytes:
        nonlocal screen
        import time

        start = time.monotonic()
        while needle not in screen and time.monotonic() - start < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    screen += os.read(master, 65536)
                except OSError:
                    break
        assert needle in screen, screen[-2000:]
        return screen

    try:
        read_until(b"40,000.00")
        assert b"\x1b[?1049h" in screen  # the alternate (full) screen
        first = re.findall(rb"Updated (\S+ \S+) UTC", screen)[-1]
        binance.prices["BTC/USDT"] = D("41000")
        read_until(b"41,000.00")
        last = re.findall(rb"Updated (\S+ \S+) UTC", screen)[-1]
    finally:
        watcher.send_signal(signal.SIGINT)
        for _ in range(80):  # keep reading, or its last writes to the full terminal would block it
            if watcher.poll() is not None:
                break
            if select.select([master], [], [], 0.25)[0]:
                try:
                    screen += os.read(master, 65536)
                except OSError:
                    break
        try:
            watcher.wait(timeout=20)
            while select.select([master], [], [], 0.5)[0]:  # what it wrote as it left
                try:
                    screen += os.read(master, 65536)
                except OSError:
                    break
        finally:
            watcher.kill()  # never leave it running, whatever happened
            os.close(master)
    assert watcher.returncode == 130  # Ctrl-C in the terminal, as documented
    assert b"\x1b[?1049l" in screen  # the terminal's own screen is back
    assert last > first


# Small walls


def test_the_readme_quick_start_works_on_a_fresh_default_account(cli, binance, default_risk_rules):
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = readme.split("## Quick start with live prices", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].split() for line in block.strip().splitlines()]
    assert len(commands) >= 4
    for words in commands:
        assert words[0] == "portfolio"
        cli(*words[1:])


def test_close_by_symbol_chooses_the_side_and_kind(cli, binance):
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.01")  # 1: spot long
    cli("open", "BTC/USDT", "--qty", "0.01", "--short", "--leverage", "2")  # 2: margin short
    refused = cli("close", "BTC/USDT", code=2)
    assert "--side long|short" in refused.stderr
    closed = cli.json("close", "BTC/USDT", "--side", "short")
    assert [s["trade_id"] for s in closed["slices"]] == [2]
    assert cli("close", "BTC/USDT", "--margin", code=4).stderr.startswith("error: no open margin trade")
    closed = cli.json("close", "BTC/USDT", "--spot")
    assert [s["trade_id"] for s in closed["slices"]] == [1]


def test_close_all_closes_every_position_in_one_go(cli, binance, ledger_path):
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.01")
    cli("open", "ETH/USDT", "--qty", "0.5", "--short", "--leverage", "3")
    cli("open", "SOL/USDT", "--qty", "3")
    tickers_before = binance.count("/ticker/24hr")
    closed = cli.json("close", "--all", "--price", "SOL/USDT=110")
    assert sorted(s["trade_id"] for s in closed["slices"]) == [1, 2, 3]
    assert {s["symbol"]: D(s["exit"]) for s in closed["slices"]}["SOL/USDT"] == 110
    assert binance.count("/ticker/24hr") - tickers_before <= 1  # one batched request for the prices
    assert cli.json("positions") == []
    assert "no open positions" in cli("close", "--all", code=4).stderr
    assert "--all closes everything" in cli("close", "BTC/USDT", "--all", code=2).stderr


def test_margin_mode_without_a_mode_says_what_to_type(cli, binance):
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.01", "--leverage", "3")
    refused = cli("margin-mode", "1", code=2)
    assert "portfolio margin-mode 1 --isolated, or --cross" in refused.stderr
    assert "Missing option" not in refused.stderr


def test_shell_completion_can_be_shown_and_completes_commands(cli, monkeypatch):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).parent / "portfolio"  # the installed command, as a shell runs it
    # Typer finds the shell from the process tree: run it from bash, as a trader would (under make,
    # or any `sh -c`, it would find sh, which it does not support)
    shown = subprocess.run(["bash", "-c", f"'{script}' --show-completion; exit $?"], capture_output=True, text=True)
    assert "_portfolio_completion" in shown.stdout, shown.stderr
    env = {**__import__("os").environ, "_PORTFOLIO_COMPLETE": "complete_bash"}
    env |= {"COMP_WORDS": "portfolio mar", "COMP_CWORD": "1"}
    completed = subprocess.run([str(script)], env=env, capture_output=True, text=True, check=True)
    assert set(completed.stdout.split()) == {"margin", "margin-mode"}


def test_the_documented_offline_workflow_runs_as_written(cli):
    from pathlib import Path

    page = (Path(__file__).parents[1] / "docs" / "terminal.md").read_text()
    block = page.split("The offline workflow in four commands", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].split() for line in block.strip().splitlines()]
    assert len(commands) == 4
    for words in commands:
        out = cli(*words[1:]).stdout
    assert "last fill, " in out


def test_a_bad_from_names_from(cli):
    cli("init")
    assert "error: --from: not a date or time" in cli("trades", "--from", "yesterday", code=2).stderr


def test_json_writes_a_float_that_is_not_finite_as_null():
    assert json.loads(to_json({"sharpe": float("nan"), "ok": 1.5, "rows": [float("inf")]})) == {
        "sharpe": None,
        "ok": 1.5,
        "rows": [None],
    }


def test_value_at_a_past_moment_offline_uses_the_last_fill_then(cli):
    cli("init", "--at", "2026-01-01", "--offline")
    cli("open", "SOL/USDT", "--qty", "2", "--price", "150", "--at", "2026-02-01T12:00", "--offline")
    cli("close", "1", "--qty", "1", "--price", "170", "--at", "2026-02-10T12:00", "--offline")
    # no candle cached for 2026-03-01: the latest fill at or before then (the close at 170) prices it
    [position] = cli.json("value", "--at", "2026-03-01", "--offline")["valuation"]["positions"]
    assert (D(position["mark"]), position["price_source"], position["price_at"]) == (
        170,
        "last fill",
        "2026-02-10T12:00:00Z",
    )
    # and before the close, the open's price
    [position] = cli.json("value", "--at", "2026-02-05", "--offline")["valuation"]["positions"]
    assert D(position["mark"]) == 150
    assert "last fill, 18 d" in cli("value", "--at", "2026-02-28T12:00", "--offline").stdout


# Messages: figures through the one formatter, never a raw Decimal

RAW_DECIMAL = re.compile(r"\d\.\d{9,}|\dE[-+]?\d|\.\d\d\d*0{3,}(?!\d)")  # 34 digits, 0E-8, 65000.00000000


@pytest.mark.parametrize(
    "args, shown",
    [
        # 0.15 USDT at 0.0523 × 40,000 = 2,092 USDT per ETH: 0.0000717017208413001912045889101338 ETH
        (["open", "ETH/BTC", "--notional", "0.15"], "0.0000717 ETH/BTC is below the minimum of 0.0001"),
        # 0.0001 × 0.0523 = 0.00000523 BTC, under Binance's 0.0001 BTC
        (["open", "ETH/BTC", "--qty", "0.0001"], "= 0.00000523 BTC is below ETH/BTC's minimum of 0.0001 BTC"),
        # free: 10,000 − 400 − 0.4 (BTC) − 50 − 0.05 (SOL's margin and fee) = 9,549.55; less 100,000
        (["withdraw", "100000"], "at -90,450.45 USDT (free now: 9,549.55 USDT)"),
        (["close", "1", "--qty", "5"], "cannot close 5 BTC/USDT: only 0.01 is open"),
        (["add-margin", "2", "1000000"], "adding 1,000,000.00 USDT needs free margin, only 9,"),
    ],
)
def test_messages_write_figures_as_the_tables_do(cli, binance, args, shown):
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.01")  # 400 USDT, fee 0.4
    cli("open", "SOL/USDT", "--qty", "1", "--leverage", "2")  # 50 USDT of margin, fee 0.1
    binance.prices["ETH/BTC"] = D("0.0523")
    result = cli(*args, code=None)
    assert result.exit_code in (1, 2), result.stdout
    assert shown in result.stderr
    assert not RAW_DECIMAL.search(result.stderr), result.stderr


def test_check_messages_write_funding_and_closes_as_the_tables_do(cli, binance, monkeypatch):
    cli("init", "--at", (datetime.now(UTC) - timedelta(hours=30)).isoformat())
    at = (datetime.now(UTC) - timedelta(hours=20)).isoformat()
    cli("open", "ETH/USDT", "--qty", "1", "--leverage", "2", "--price", "2000", "--stop-loss", "1000", "--at", at)
    monkeypatch.setenv("PORTFOLIO_TRADING__FUNDING_RATE", "0.0003")
    report = json.loads(cli("check", "--offline", "--price", "ETH/USDT=2000", "--json", code=None).stdout)
    messages = [e["message"] for p in report["portfolios"] for e in p["events"]]
    assert any("paid 0.6 USDT funding (rate 0.0003, configured)" in m for m in messages), messages
    assert not any(RAW_DECIMAL.search(m) for m in messages), messages


def test_every_table_shows_prices_to_the_markets_tick(cli, binance, monkeypatch):
    """ETH/BTC ticks in 0.00001 BTC and BTC/USDT in 0.01 USDT (the fake's ticks are Binance's): every
    table writes a price to its market's tick, as `open` does, not by the significant-digit rule."""
    monkeypatch.setenv("COLUMNS", "200")
    cli("init", "--balance", "100000")
    cli("open", "ETH/BTC", "--qty", "1")  # at 0.05 BTC
    cli("open", "BTC/USDT", "--qty", "0.1", "--leverage", "5", "--stop-loss", "35000.5")
    binance.prices["ETH/BTC"] = D("0.0523")
    for args in (["value"], ["positions"], ["trades"], ["value", "--offline"]):
        shown = cli(*args).stdout
        assert "0.05000" in shown and "40,000.00" in shown, (args, shown)
    assert "0.05230" in cli("value").stdout  # the mark
    assert "35,000.50" in cli("value").stdout  # the stop, in the levels table
    margin = cli("margin").stdout
    liquidation = D(cli.json("margin")["account"]["positions"][0]["liquidation_price"])
    assert "40,000.00" in margin and price(liquidation, D("0.01")) in margin  # entry, liquidation to the tick
    closed = cli("close", "1").stdout
    assert "0.05000" in closed and "0.05230" in closed
    assert "0.05230" in cli("trades").stdout  # the exit


def test_offline_prices_are_shown_to_the_tick_from_the_small_ticks_file(cli, binance, isolated_env, monkeypatch):
    """Offline, the ticks come from the file written beside the markets list (Binance's spot list is a
    few MB to parse on every command); a markets list cached without it still gives them."""
    import json as json_module

    monkeypatch.setenv("COLUMNS", "200")
    cli("init")
    cli("open", "ETH/BTC", "--qty", "0.01")  # at 0.05 BTC; caches the markets list and its ticks
    cache = isolated_env / "cache"
    ticks = json_module.loads((cache / "binance-ticks.json").read_text())["markets"]
    assert ticks["ETH/BTC"] == "0.00001" and ticks["BTC/USDT"] == "0.01"
    markets = (cache / "binance-markets.json").read_text()
    (cache / "binance-markets.json").write_text("{}")  # unreadable: only the ticks file can give ticks
    assert "0.05000" in cli("value", "--offline").stdout
    (cache / "binance-markets.json").write_text(markets)
    (cache / "binance-ticks.json").unlink()  # a list cached before the ticks file existed
    assert "0.05000" in cli("value", "--offline").stdout
    (cache / "binance-markets.json").unlink()  # nothing known: the significant-digit rule, no padding
    assert "0.05000" not in cli("value", "--offline").stdout


def test_a_margin_position_offline_is_marked_at_its_last_fill(cli):
    """A perpetual with no mark price and no quote cached falls back on its pair's last fill."""
    cli("init", "--offline")
    cli("open", "ETH/USDT", "--qty", "1", "--short", "--leverage", "5", "--price", "3000", "--offline")
    [position] = cli.json("value", "--offline")["valuation"]["positions"]
    assert (position["price_source"], D(position["mark"])) == ("last fill", 3000)
    assert cli("margin", "--offline").exit_code == 0


def test_a_recorded_fill_needs_no_exchange(cli, binance):
    """`open --price` while Binance cannot be reached and no markets list is cached: booked, saying
    what went unchecked; with a markets list cached long ago, that list checks the quantity."""
    binance.fail_always("reset")
    cli("init")
    opened = cli("open", "BTC/USDT", "--qty", "0.01", "--price", "68000")
    assert "Opened trade 1" in opened.stdout and "lot step and exchange limits not checked" in opened.stderr


def test_an_expired_markets_list_serves_when_binance_is_unreachable(cli, binance, isolated_env):
    import json as json_module

    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.01")  # caches the markets list
    [cached] = list(isolated_env.rglob("binance-markets.json"))
    payload = json_module.loads(cached.read_text())
    payload["fetched_at"] = "2026-01-01T00:00:00+00:00"  # long expired
    cached.write_text(json_module.dumps(payload))
    binance.fail_always("reset")
    refused = cli("open", "BTC/USDT", "--qty", "0.000001", "--price", "68000", code=None)
    assert refused.exit_code == 1 and "minimum" in refused.stderr.lower()  # the old list still knows the lot rules
