"""Hostile input: hypothesis drives every command's arguments and options, and config files, with
numbers of every shape, dates, symbols, unicode, very long strings and SQL, shell and terminal
metacharacters; import files (tampered exports, byte-order marks, deep nesting, huge numbers and
fields, random bytes). Always a documented exit code and never a traceback; a refused command leaves
the ledger as it was. ``PORTFOLIO_FUZZ_EXAMPLES`` sets how many argument lists (the default run tries
a few hundred); ``PORTFOLIO_LONG_TESTS=1`` runs 10,000 argument lists and 1,000 files and configs."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from portfolio_cli.cli import app

LONG = os.environ.get("PORTFOLIO_LONG_TESTS") == "1"
EXAMPLES = int(os.environ.get("PORTFOLIO_FUZZ_EXAMPLES", "10000" if LONG else "300"))
FILE_EXAMPLES = 1000 if LONG else 60
DOCUMENTED = {0, 1, 2, 3, 4, 5, 6, 10, 11, 12, 13}
REFUSED = {1, 2, 3, 4, 5, 6}
SKIP = {"demo"}  # rebuilds its own ledger from bundled data: no input to fuzz
NEVER = {"--watch", "--interval", "-n", "--help"}  # --watch runs until Ctrl-C
PATHS = {"output", "html", "db", "config", "file"}

NUMBERS = [
    "0", "-0", "-1", "1e308", "-1e308", "1e-9", "NaN", "nan", "inf", "-Infinity", "0x10", "1_000", "1,5",
    "١٢٣", "５", " 5 ", "5.", ".5", "1e15", "999999999999999999999999", "0.000000001", "0.00000001", "+3",
    "1/3", "2**64", "18446744073709551616", "-9223372036854775809", "1" * 30, "0." + "1" * 60, "1e400",
    "٣.٥", "１２", "²", "1e-400", "0x1p3",
]  # fmt: skip
DATES = [
    "2026-02-30", "2026-13-01", "0001-01-01", "9999-12-31", "2026-01-01T25:00", "yesterday", "now",
    "2026-01-01T00:00+14:00", "2026-01-01T00:00-12:00", "1970-01-01", "2038-01-19T03:14:08Z", "20260101", "",
    "0001-01-01T00:00+01:00", "9999-12-31T23:00-05:00", "2009-01-02", "2009-01-03", "٢٠٢٦-٠١-٠١",
]  # fmt: skip
SYMBOLS = ["BTC/USDT", "btc/usdt", "ETH/BTC", "BTC", "/", "BTC/", "A/B/C", "ÄÖÜ/USDT", "NOPE/USDT", "BTC/USDT=1",
           "ſol/uſdt", "BTC/USDT\n", "ＢＴＣ/USDT"]  # fmt: skip
META = [
    "'; DROP TABLE trades; --", "\" OR 1=1 --", "$(rm -rf ~)", "`id`", "|| true", "; ls", "%s%s%n", "{0}",
    "../../etc/passwd", "\x1b[31mred\x1b[0m", "\x1b]52;c;aGk=\x07", "[bold]markup[/]", "[/]", "\r\n", "\x00",
    "\u202eevil", "\u200b", "-", "--", "-p", "main", "@file", "*", "\\", "NUL", "con", "main\n", "",
    "/dev/zero", "/dev/null", ".", "x" * 300,
]  # fmt: skip

hostile = st.one_of(
    st.sampled_from(NUMBERS + DATES + SYMBOLS + META),
    st.text(max_size=40),
    st.text(min_size=1000, max_size=3000),
    st.from_regex(r"-?[0-9]{1,25}(\.[0-9]{0,12})?(e-?[0-9]{1,3})?", fullmatch=True),
)


def _commands() -> dict:
    group = typer.main.get_command(app)
    return {name: cmd for name, cmd in group.commands.items() if name not in SKIP}


COMMANDS = _commands()


@st.composite
def invocations(draw, workdir: Path):
    name = draw(st.sampled_from(sorted(COMMANDS)))
    params = [p for p in COMMANDS[name].params if not (set(p.opts) & NEVER)]
    args = [name]
    for param in draw(st.lists(st.sampled_from(params), max_size=5, unique_by=lambda p: p.name)) if params else []:
        value = _value(draw, param, workdir)
        if param.param_type_name == "argument":
            args += value if isinstance(value, list) else [value]
        elif getattr(param, "is_flag", False):
            args.append(draw(st.sampled_from(param.opts)))
        else:
            args += [draw(st.sampled_from(param.opts)), value]
    return args


def _value(draw, param, workdir: Path):
    if param.name in PATHS or type(getattr(param, "type", None)).__name__ == "Path":
        # Files stay in the test's directory: the fuzzer must not write over the machine's own.
        base = draw(st.text(st.characters(blacklist_characters="/\\\x00", blacklist_categories=["Cs"]), max_size=20))
        # Or a name too long for the file system, the directory itself, or nothing at all.
        return draw(st.sampled_from([str(workdir / (base or "x"))] * 6 + [str(workdir / ("n" * 300)), str(workdir), ""]))
    if getattr(param, "multiple", False) or getattr(param, "nargs", 1) == -1:
        return draw(st.lists(hostile, min_size=1, max_size=3))
    return draw(hostile)


def ledger_dump(path: Path) -> list:
    """The schema and every row of every table (what ``iterdump`` holds, at a third of its cost)."""
    with closing(sqlite3.connect(path)) as conn:
        schema = conn.execute("select type, name, sql from sqlite_master order by type, name").fetchall()
        tables = [name for kind, name, _ in schema if kind == "table"]
        return [schema, *(conn.execute(f'select * from "{name}" order by rowid').fetchall() for name in tables)]


class LedgerFiles:
    """The ledger's bytes (its file and write-ahead log), taken before each of hundreds of commands.
    The same bytes are the same ledger; different bytes (a checkpoint moves pages without changing a
    row) are compared by ``ledger_dump``, of this copy and of the ledger."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.files = {suffix: _read(Path(f"{path}{suffix}")) for suffix in ("", "-wal")}

    def unchanged(self) -> bool:
        if self.files == LedgerFiles(self.path).files:
            return True
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "before.db"
            for suffix, data in self.files.items():
                if data is not None:
                    Path(f"{copy}{suffix}").write_bytes(data)
            return ledger_dump(copy) == ledger_dump(self.path)


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


@pytest.fixture
def seeded(cli, binance, ledger_path, tmp_path, monkeypatch):
    """A ledger with two portfolios, trades open and closed, and a day's snapshot."""
    cli("init", "--at", "2026-01-01")
    cli("init", "other")
    cli("open", "BTC/USDT", "--qty", "0.1", "--strategy", "trend")
    cli("open", "ETH/USDT", "--qty", "1", "--short", "--leverage", "3")
    cli("close", "2", "--pct", "50")
    cli("snapshot", "--all")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def test_every_command_survives_hostile_arguments(seeded, ledger_path):
    runner = CliRunner()
    seen: dict[int, int] = {}

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(invocations(seeded))
    def run(args):
        before = LedgerFiles(ledger_path)
        result = runner.invoke(app, args, catch_exceptions=True)
        output = result.stdout + result.stderr
        assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
        assert result.exit_code in DOCUMENTED, (args, result.exit_code, output[-500:])
        assert "Traceback" not in output, (args, output[-2000:])
        if result.exit_code in REFUSED:
            assert before.unchanged(), args
            assert result.stderr.strip(), args  # a refusal says why
        seen[result.exit_code] = seen.get(result.exit_code, 0) + 1

    run()
    print(f"\nargument lists fuzzed: {sum(seen.values())}, exit codes {dict(sorted(seen.items()))}")
    assert seen.get(0) and seen.get(2), seen  # both paths were exercised


TOML_VALUES = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),  # inf, -inf, nan are TOML as they are
    st.text(max_size=30).map(lambda t: '"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"'),
    st.sampled_from(["true", "false", "[]", "{}", "[1, 2]", "{ BTC = 40, USDT = 60 }", '"BTC/USDT"', "1979-05-27"]),
)
SECTIONS = ["", "fees", "trading", "risk", "prices", "snapshots", "report", "allocation", "targets.main",
            "portfolios.main.risk", "portfolios.main.nope", "nope"]  # fmt: skip
KEYS = ["spot_taker", "margin_taker", "slippage_bps", "max_position_pct", "cash_reserve_pct", "timeout_seconds",
        "keep_days", "risk_free_rate", "benchmark", "weights", "drift_pct", "mode", "ledger", "default_portfolio",
        "source", "file", "binance_url", "api_key", "classes", "max_open_positions", "zzz"]  # fmt: skip

config_files = st.one_of(
    st.lists(st.tuples(st.sampled_from(SECTIONS), st.sampled_from(KEYS), TOML_VALUES), max_size=6).map(
        lambda entries: "\n".join(f"[{s}]\n{k} = {v}" if s else f"{k} = {v}" for s, k, v in entries)
    ),
    st.text(max_size=200),
    st.integers(1, 5000).map(lambda n: "x = " + "[" * n + "]" * n),  # nested arrays
    st.integers(1, 3000).map(lambda n: "x = " + "{a = " * n + "1" + "}" * n),  # nested inline tables
    st.tuples(st.integers(1, 125), st.integers(1, 125)).map(
        lambda lo_hi: f"[risk]\nmin_leverage = {lo_hi[0]}\nmax_leverage = {lo_hi[1]}\n"
    ),
    st.text(max_size=100).map(lambda t: "\ufeff" + t),  # a byte-order mark, as Windows editors write
)


def test_hostile_config_files_are_exit_3_or_accepted(seeded, ledger_path):
    runner = CliRunner()
    config = seeded / "config.toml"
    seen: dict[int, int] = {}

    @settings(
        max_examples=1000 if LONG else max(50, EXAMPLES // 3),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(config_files, st.sampled_from([["value", "--offline"], ["report"], ["allocation", "--offline"], ["paths"]]))
    def run(text, command):
        config.write_text(text, encoding="utf-8", errors="surrogatepass")
        before = LedgerFiles(ledger_path)
        result = runner.invoke(app, [*command, "--config", str(config)], catch_exceptions=True)
        output = result.stdout + result.stderr
        assert result.exception is None or isinstance(result.exception, SystemExit), (text, result.exception)
        assert result.exit_code in {0, 3, 4, 5}, (text, result.exit_code, output[-500:])
        assert "Traceback" not in output
        if result.exit_code == 3:
            assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
            assert before.unchanged()
        seen[result.exit_code] = seen.get(result.exit_code, 0) + 1

    run()
    print(f"\nconfig files fuzzed: {sum(seen.values())}, exit codes {dict(sorted(seen.items()))}")


def test_a_secret_in_the_config_is_never_printed(seeded):
    config = seeded / "secret.toml"
    config.write_text('[prices]\napi_key = "s3cr3t-KEY"\napi_secret = "s3cr3t-SECRET"\n')
    result = CliRunner().invoke(app, ["value", "--config", str(config)])
    assert result.exit_code == 3
    assert "s3cr3t" not in result.stdout + result.stderr
    env = {"PORTFOLIO_PRICES__API_SECRET": "s3cr3t-ENV"}
    result = CliRunner().invoke(app, ["value"], env=env)
    assert result.exit_code == 3 and "s3cr3t" not in result.stdout + result.stderr


def test_user_text_reaches_sql_only_as_parameters_and_the_terminal_only_escaped(cli, binance, ledger_path):
    cli("init")
    sql = "'); DROP TABLE trades; --"
    cli("open", "BTC/USDT", "--qty", "0.1", "--strategy", "[red]x[/]", "--note", sql)
    with sqlite3.connect(ledger_path) as conn:
        stored = conn.execute("select strategy, note from trades").fetchone()
        tables = {name for (name,) in conn.execute("select name from sqlite_master where type = 'table'")}
    assert stored == ("[red]x[/]", sql) and "trades" in tables
    listed = cli("trades").stdout
    assert "[red]x[/]" in listed  # shown as typed, not taken as markup
    escape_code = cli("open", "BTC/USDT", "--qty", "0.1", "--note", "\x1b]52;c;aGk=\x07", code=2)
    assert escape_code.stderr.startswith("error: --note contains a control or invisible character (\\x1b)")
    # Text already in a ledger (written before this check) is shown escaped, never sent raw.
    with sqlite3.connect(ledger_path) as conn:
        conn.execute("update trades set strategy = ? where id = 1", ["\x1b[2J\u202egone"])
    shown = cli("trades").stdout
    assert "\x1b" not in shown and "\u202e" not in shown and "\\x1b[2J" in shown


def test_the_ledger_its_wal_and_backups_are_owner_only_whatever_the_umask(cli, binance, ledger_path, tmp_path):
    import stat

    old = os.umask(0o022)
    try:
        cli("init")
        cli("open", "BTC/USDT", "--qty", "0.1")
        backup = tmp_path / "copy.db"
        cli("backup", str(backup))
        files = [ledger_path, backup] + [p for p in ledger_path.parent.glob("ledger.db-*")]
        assert len(files) >= 2
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finally:
        os.umask(old)


def _tamper(draw, text: str) -> str:
    """An export changed as a hostile or careless hand would change it."""
    lines = text.splitlines()
    kind = draw(st.sampled_from(["cell", "bytes", "bom", "truncate", "duplicate", "field", "json"]))
    if kind == "cell" and len(lines) > 1:
        row = draw(st.integers(1, len(lines) - 1))
        cells = lines[row].split(",")
        cells[draw(st.integers(0, len(cells) - 1))] = draw(hostile).replace("\n", " ").replace(",", ";")
        lines[row] = ",".join(cells)
        return "\n".join(lines) + "\n"
    if kind == "bytes":
        return draw(st.text(max_size=300))
    if kind == "bom":
        return "\ufeff" + text
    if kind == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    if kind == "duplicate":
        return text + "\n".join(lines[1:]) + "\n"
    if kind == "field":
        return text.rstrip("\n") + ',"' + "x" * draw(st.integers(100_000, 200_000)) + '"\n'
    depth = draw(st.integers(1, 100_000))
    return draw(
        st.sampled_from(
            [
                "[" * depth + "]" * depth,
                '{"kind": "trades", "records": [{"trade_id": ' + "9" * min(depth, 6000) + "}]}",
                '{"kind": "trades", "records": ' + "[" * min(depth, 5000) + "]" * min(depth, 5000) + "}",
            ]
        )
    )


def test_hostile_import_files_are_refused_cleanly_or_imported(seeded, ledger_path, tmp_path):
    runner = CliRunner()
    exported = tmp_path / "exported.csv"
    result = runner.invoke(app, ["export", "trades", "-o", str(exported)])
    assert result.exit_code == 0, result.stderr
    original = exported.read_text()
    target = seeded / "import.csv"
    seen: dict[int, int] = {}

    @settings(max_examples=FILE_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.data(), st.sampled_from([".csv", ".json"]))
    def run(data, suffix):
        path = target.with_suffix(suffix)
        path.write_text(_tamper(data.draw, original), encoding="utf-8", errors="surrogatepass")
        before = LedgerFiles(ledger_path)
        result = runner.invoke(app, ["import", str(path), "-p", "other"], catch_exceptions=True)
        output = result.stdout + result.stderr
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert result.exit_code in {0, 2, 4, 5}, (result.exit_code, output[-500:])
        assert "Traceback" not in output
        if result.exit_code:
            assert before.unchanged()
            assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
        seen[result.exit_code] = seen.get(result.exit_code, 0) + 1

    run()
    print(f"\nimport files fuzzed: {sum(seen.values())}, exit codes {dict(sorted(seen.items()))}")
    assert seen.get(2)
