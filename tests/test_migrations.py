"""The schema is what the migrations build, nothing else: the migrations applied one by one build
exactly ``ledger/schema.sql``, the script a new ledger is created from; a new ledger equals one built
by the migrations; and a ledger made by the first released schema upgrades to exactly that schema with
its records intact.

A schema change is a new migration plus a new ``ledger/schema.sql``; after adding the migration, write
the file with ``PORTFOLIO_WRITE_SCHEMA=1 python -m pytest tests/test_migrations.py`` and review its diff.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from portfolio_cli.ledger import migrations, open_ledger
from portfolio_cli.ledger.connection import connect

EXPECTED = migrations.SCHEMA
# Read at import: the suite's isolated environment removes every PORTFOLIO_* variable before a test.
WRITE = os.environ.get("PORTFOLIO_WRITE_SCHEMA") == "1"
FIRST_RELEASE = migrations.MIGRATIONS[:1]  # m001_initial: what version 0.1's first ledgers hold


def schema(path: Path) -> str:
    """Every table, index and trigger, as SQLite stores its definition, in name order."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "select type, name, sql from sqlite_master where sql is not null and name not like 'sqlite_%' "
            "order by type, name"
        ).fetchall()
    return "".join(f"-- {kind} {name}\n{sql};\n\n" for kind, name, sql in rows)


def first_release_ledger(path: Path) -> None:
    """A ledger as the first release wrote it: m001's tables, a portfolio with a deposit, an open trade
    and one closed by hand, with their fee flows."""
    from sqlite_utils import Database, Migrations

    db = Database(path)
    first = Migrations(migrations.MIGRATION_SET)
    for migration in FIRST_RELEASE:
        first()(migration)
    first.apply(db)
    at = "2026-01-02T00:00:00+00:00"
    db.execute("insert into portfolios (id, name, created_at) values (1, 'main', ?)", [at])
    db.execute(
        "insert into cash_flows (portfolio_id, kind, amount, at, note) values (1, 'deposit', '10000', ?, 'initial')",
        [at],
    )
    for trade_id, symbol, qty, price in ((1, "BTC/USDT", "0.1", "40000"), (2, "ETH/USDT", "1", "2000")):
        fee = str(float(qty) * float(price) / 1000)
        db.execute(
            "insert into trades (id, portfolio_id, symbol, side, kind, margin_mode, leverage, qty, price, "
            "price_usdt, fee, opened_at, forced) values (?, 1, ?, 'long', 'spot', null, 1, ?, ?, ?, ?, ?, 0)",
            [trade_id, symbol, qty, price, price, fee, at],
        )
        db.execute(
            "insert into cash_flows (portfolio_id, kind, amount, at, trade_id, note) "
            "values (1, 'fee', ?, ?, ?, 'entry fee')",
            ["-" + fee, at, trade_id],
        )
    closed = "2026-01-03T00:00:00+00:00"
    db.execute(
        "insert into closes (id, trade_id, qty, price, price_usdt, fee, realized_pnl, closed_at) "
        "values (1, 2, '1', '2100', '2100', '2.1', '100', ?)",
        [closed],
    )
    db.execute(
        "insert into cash_flows (portfolio_id, kind, amount, at, trade_id, note) values "
        "(1, 'realized_pnl', '100', ?, 2, 'close 1'), (1, 'fee', '-2.1', ?, 2, 'exit fee')",
        [closed, closed],
    )
    db.conn.commit()
    db.close()


def migrated(path: Path) -> None:
    """A ledger built by applying every migration one by one, as an old ledger is upgraded."""
    from sqlite_utils import Database

    db = Database(connect(path))  # the ledger's own connection settings (WAL, foreign keys)
    migrations.apply(db)
    db.close()


def test_the_migrations_build_exactly_the_schema_a_new_ledger_is_created_from(tmp_path):
    migrated(tmp_path / "migrated.db")
    with sqlite3.connect(tmp_path / "migrated.db") as conn:
        built = migrations.schema_script(conn)
    if WRITE:
        EXPECTED.write_text(built)
    assert built == EXPECTED.read_text(), (
        "the migrations build a schema other than ledger/schema.sql: if that is intended, write it with "
        "PORTFOLIO_WRITE_SCHEMA=1 python -m pytest tests/test_migrations.py and review the diff"
    )


def test_a_new_ledger_is_what_the_migrations_build(tmp_path):
    new, old = tmp_path / "new.db", tmp_path / "migrated.db"
    open_ledger(new).close()
    migrated(old)
    assert schema(new) == schema(old)

    def contents(path: Path) -> list:
        with sqlite3.connect(path) as conn:
            names = [n for (n,) in conn.execute("select name from sqlite_master where type = 'table'")]
            rows = {n: conn.execute(f'select * from "{n}"').fetchall() for n in names if n != "_sqlite_migrations"}
            applied = conn.execute("select migration_set, name from _sqlite_migrations order by id").fetchall()
            return [rows, applied, conn.execute("pragma journal_mode").fetchone()]

    assert contents(new) == contents(old)
    assert contents(new)[1] == [(migrations.MIGRATION_SET, m.__name__) for m in migrations.MIGRATIONS]


def test_every_migration_is_recorded_once_in_order(tmp_path):
    open_ledger(tmp_path / "l.db").close()
    open_ledger(tmp_path / "l.db").close()  # applying again is a no-op
    with sqlite3.connect(tmp_path / "l.db") as conn:
        names = [n for (n,) in conn.execute("select name from _sqlite_migrations order by rowid")]
        assert conn.execute("pragma journal_mode").fetchone() == ("wal",)
    assert names == [m.__name__ for m in migrations.MIGRATIONS]


def test_a_first_release_ledger_upgrades_to_the_same_schema_with_its_records(tmp_path, cli):
    old, fresh = tmp_path / "old.db", tmp_path / "fresh.db"
    first_release_ledger(old)
    open_ledger(old).close()  # applies every later migration
    open_ledger(fresh).close()
    assert schema(old) == schema(fresh)

    # The records read back as the first release booked them, and every derived figure agrees.
    cli("verify", "--db", str(old))
    value = cli.json("value", "--db", str(old), "--offline", "--price", "BTC/USDT=41000")
    # Wallet: 10,000 − 4 (BTC entry fee) − 2 (ETH entry fee) + 100 − 2.1 = 10,091.9; BTC up 100.
    assert float(value["valuation"]["wallet_balance"]) == pytest.approx(10091.9, abs=1e-9)
    assert float(value["valuation"]["equity"]) == pytest.approx(10191.9, abs=1e-9)
    trades = {t["id"]: t for t in cli.json("trades", "--db", str(old))}
    assert trades[2]["status"] == "closed" and trades[1]["status"] == "open"
    with sqlite3.connect(old) as conn:
        # m002 gave the close made before closes had reasons the reason every hand close has.
        assert conn.execute("select reason from closes where id = 1").fetchone() == ("manual",)
        details = conn.execute("select details from audit_log where action = 'migrate'").fetchall()
    assert all(json.loads(d) is not None for (d,) in details)
