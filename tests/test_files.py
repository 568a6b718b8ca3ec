"""Every file the tool writes goes through one writer: owner-only whatever the umask, an exclusive
temporary file under a random name, never through a symlink, never over anything but a regular file
(and over one only with --force); a killed writer's leftovers are removed by the next write."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import threading
from pathlib import Path

import pytest

from portfolio_cli.config import Prices
from portfolio_cli.prices.binance import BinanceSource


@pytest.fixture
def traded(cli, binance):
    cli("init", "--at", "2026-01-01")
    cli("open", "BTC/USDT", "--qty", "0.1", "--at", "2026-01-02", "--price", "40000")
    cli("close", "1", "--at", "2026-01-03", "--price", "BTC/USDT=41000")
    return cli


# Each command that writes a file, given where to write it.
WRITERS = {
    "export": lambda path: ["export", "trades", "-o", str(path)],
    "tax": lambda path: ["export", "tax", "--year", "2026", "-o", str(path)],
    "html": lambda path: ["report", "--html", str(path), "--offline"],
    "backup": lambda path: ["backup", str(path)],
}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o277])
@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_every_file_written_is_owner_only_whatever_the_umask(traded, tmp_path, kind, umask):
    target = tmp_path / f"out-{kind}"
    old = os.umask(umask)
    try:
        traded(*WRITERS[kind](target))
    finally:
        os.umask(old)
    assert mode(target) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".out", "out"))) == [target.name]


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_a_planted_partial_symlink_is_never_followed(traded, tmp_path, kind):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    target = tmp_path / "out"
    (tmp_path / "out.partial").symlink_to(victim)
    traded(*WRITERS[kind](target))
    assert victim.read_text() == "precious" and target.is_file() and not target.is_symlink()


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_a_symlink_at_the_target_is_refused_and_its_target_untouched(traded, tmp_path, kind):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    target = tmp_path / "out"
    target.symlink_to(victim)
    force = [] if kind == "backup" else ["--force"]  # not even when asked to replace
    result = traded(*WRITERS[kind](target), *force, code=2)
    assert "symbolic link" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert victim.read_text() == "precious" and target.is_symlink()


def special_files(tmp_path: Path) -> list[Path]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    made = [fifo, tmp_path / "directory"]
    made[1].mkdir()
    if os.geteuid() == 0:  # a device node, like /dev/null, in the test's own directory
        device = tmp_path / "null"
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        made.append(device)
    return made


@pytest.mark.parametrize("kind", ["export", "html"])
def test_anything_but_a_regular_file_is_never_replaced_even_with_force(traded, tmp_path, kind):
    for special in special_files(tmp_path):
        before = os.lstat(special)
        result = traded(*WRITERS[kind](special), "--force", code=2)
        assert "not a regular file" in result.stderr, result.stderr
        after = os.lstat(special)
        assert (stat.S_IFMT(after.st_mode), after.st_ino) == (stat.S_IFMT(before.st_mode), before.st_ino)


@pytest.mark.parametrize("kind", ["export", "tax", "html"])
def test_an_existing_file_is_replaced_only_with_force(traded, tmp_path, kind):
    target = tmp_path / "out"
    target.write_text("earlier")
    os.chmod(target, 0o644)
    result = traded(*WRITERS[kind](target), code=2)
    assert "already exists; use --force" in result.stderr and target.read_text() == "earlier"
    traded(*WRITERS[kind](target), "--force")
    assert target.read_text() != "earlier" and mode(target) == 0o600


def test_backup_never_replaces_an_existing_file(traded, tmp_path):
    target = tmp_path / "copy.db"
    target.write_text("earlier")
    assert "already exists" in traded("backup", str(target), code=2).stderr
    assert target.read_text() == "earlier"


def test_what_a_killed_backup_left_does_not_block_the_next_and_is_removed(traded, tmp_path):
    target = tmp_path / "copy.db"
    # What earlier versions left when killed, and what this one leaves: a temporary copy and its
    # journal, named after a process that is gone.
    (tmp_path / "copy.db.partial").write_text("old leftover")
    leftover = tmp_path / ".copy.db.99999999-0123456789abcdef.tmp"
    leftover.write_bytes(b"half a copy")
    Path(f"{leftover}-journal").write_bytes(b"its journal")
    traded("backup", str(target))
    assert target.is_file() and not leftover.exists() and not Path(f"{leftover}-journal").exists()


def test_a_temporary_file_of_a_writer_still_at_work_is_left_alone(traded, tmp_path):
    live = tmp_path / ".copy.db.99999998-fedcba9876543210.tmp"
    live.write_bytes(b"being written")
    with live.open("rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        traded("backup", str(tmp_path / "copy.db"))
        assert live.exists()


def test_a_name_too_long_for_the_file_system_is_one_line_exit_2(traded, tmp_path):
    for args in (["backup", str(tmp_path / ("b" * 300))], ["export", "trades", "-o", str(tmp_path / ("e" * 300))]):
        result = traded(*args, code=2)
        assert result.stderr.startswith("error: ") and "too long" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert traded("report", "--html", "", "--offline", code=2).stderr.startswith("error: ")
    # A name the file system takes is written, however little room it leaves for a temporary name.
    longest = tmp_path / ("e" * 255)
    traded("export", "trades", "-o", str(longest))
    assert longest.is_file()


def test_concurrent_cold_starts_never_collide_on_the_markets_cache(tmp_path):
    """Many writers of the markets cache at once (cold starts): none fails, the file is always whole."""
    markets = {f"C{n}/USDT": {"symbol": f"C{n}/USDT", "precision": {"amount": 0.001}} for n in range(200)}
    source = BinanceSource(Prices(), tmp_path / "cache")
    warnings: list[str] = []
    errors: list[BaseException] = []

    def cold_start() -> None:
        writer = BinanceSource(Prices(), tmp_path / "cache")
        writer._warn = warnings.append
        try:
            for _ in range(40):
                writer._write_markets_cache(markets)
        except BaseException as exc:  # noqa: BLE001 - any failure is the finding
            errors.append(exc)

    threads = [threading.Thread(target=cold_start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and warnings == []
    assert json.loads(source._markets_file.read_text())["markets"] == markets
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["binance-markets.json", "binance-ticks.json"]
    assert mode(source._markets_file) == 0o600


def test_a_cache_that_cannot_be_written_is_a_warning_not_a_failure(cli, binance, isolated_env):
    cli("init")
    (isolated_env / "cache").write_text("not a directory")  # the markets cache cannot be written
    result = cli("open", "BTC/USDT", "--qty", "0.1")
    assert "warning: could not cache binance-markets.json" in result.stderr
    assert len(cli.json("trades")) == 1
