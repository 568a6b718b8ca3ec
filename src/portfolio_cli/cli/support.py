"""What every command shares: its options, the session it runs in, error and output handling."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO, overload

import typer
from rich.console import Console

from portfolio_cli.errors import ExitCode, InvalidInput
from portfolio_cli.money import parse_positive
from portfolio_cli.paths import ENV_PORTFOLIO
from portfolio_cli.text import printable, safe

if TYPE_CHECKING:
    from portfolio_cli.services.delivery import Delivery
    from portfolio_cli.session import Session

# No emoji codes: a note or strategy reading :rocket: prints as the trader typed it.
stdout = Console(emoji=False)
stderr = Console(stderr=True, emoji=False)

PortfolioOpt = Annotated[
    str | None,
    typer.Option(
        "--portfolio",
        "-p",
        envvar=ENV_PORTFOLIO,
        help="Portfolio name (default: from config, 'main').",
        show_envvar=True,
    ),
]
DbOpt = Annotated[Path | None, typer.Option("--db", help="Ledger file (env PORTFOLIO_DB).", dir_okay=False)]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="Config file (env PORTFOLIO_CONFIG).", dir_okay=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (decimals as strings) instead of tables.")]
OfflineOpt = Annotated[
    bool,
    typer.Option(
        "--offline", help="Never touch the network: the cached quote or the last fill, labelled with its age."
    ),
]
QuietOfflineOpt = Annotated[
    bool, typer.Option("--offline", help="Accepted everywhere; this command never uses the network.")
]
PricesOpt = Annotated[
    list[str] | None,
    typer.Option("--price", help="Override a price: SYMBOL=VALUE (repeatable).", metavar="SYMBOL=VALUE"),
]
AtOpt = Annotated[
    str | None, typer.Option("--at", help="Backdate: a UTC date or time, e.g. 2026-03-01 or 2026-03-01T14:30.")
]
AsOfOpt = Annotated[
    str | None,
    typer.Option("--at", help="As it stood at a past UTC date or time (a date means 00:00), from the ledger."),
]


def warn(message: str) -> None:
    stderr.print(f"[yellow]warning:[/] {safe(message)}", highlight=False, soft_wrap=True)


def warn_note(message: str) -> None:
    stderr.print(f"[yellow]note:[/] {safe(message)}", highlight=False, soft_wrap=True)


@contextmanager
def running(
    command: str,
    db: Path | None = None,
    config: Path | None = None,
    offline: bool = False,
    creates_ledger: bool = False,
) -> Iterator[Session]:
    """A session for one command, closed however the command ends; the quotes and candles it fetched
    are cached only when it succeeds. (A failure becomes its exit code in ``cli.exits``.) Only a
    command that ``creates_ledger`` may make a new ledger file (removed again if the command fails);
    the others exit 4 when it is missing."""
    from portfolio_cli.session import Session  # the config, the ledger: not needed for --help

    session = Session.create(command, db=db, config=config, offline=offline, warn=warn, creates_ledger=creates_ledger)
    if not gc.isenabled():  # start-up is over (``cli.main`` held collection off through it):
        gc.freeze()  # what it built lives as long as the process, so no collection need walk it
        gc.enable()
    try:
        try:
            yield session
            session.keep_fetched_quotes()
        except BaseException:
            session.discard_new_ledger()  # a failed init or import leaves no empty ledger behind
            raise
        if session.incomplete:  # committed, but something could not be processed: named, exit 13
            for message in session.incomplete:
                stderr.print(f"incomplete: {printable(message)}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(ExitCode.INCOMPLETE)
    finally:
        session.close()


def notified(delivery: Delivery | None) -> bool:
    """Each destination a notification could not reach, as one stderr line; False when there was one
    (the command then exits 14: its records are committed, the message stays queued for the next run)."""
    if delivery is None:
        return True
    if delivery.dropped:
        warn_note(f"{delivery.dropped} queued notification(s) dropped: their destination is no longer configured")
    for failure in delivery.failures:
        stderr.print(
            f"error: {failure.messages} notification(s) to {failure.destination} not sent: "
            f"{printable(failure.reason)}; the command's records are committed, the next run sends it again",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    return not delivery.failures


def command_line() -> str:
    """The command as typed, for the audit log."""
    return " ".join(["portfolio", *sys.argv[1:]])[:500]


def portfolio_name(session: Session, option: str | None) -> str:
    return option or session.settings.default_portfolio


@overload
def amount(text: str, what: str) -> Decimal: ...


@overload
def amount(text: str | None, what: str) -> Decimal | None: ...


def amount(text: str | None, what: str) -> Decimal | None:
    return None if text is None else parse_positive(text, what)


# No record can be older than Bitcoin's first block; a time beyond the year 9000 is a typo (and
# near year 1 or 9999 an offset cannot even be converted to UTC).
EARLIEST = datetime(2009, 1, 3, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def parse_at(text: str | None, option: str = "--at") -> datetime | None:
    """A UTC moment from ``2026-03-01``, ``2026-03-01T14:30``, ``2026-03-01 14:30:00Z`` or with an
    offset, from 2009-01-03 (Bitcoin's first block) on. Whether a future moment makes sense is the
    command's to say."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidInput(f"{option}: not a date or time: {text!r} (use e.g. 2026-03-01 or 2026-03-01T14:30)") from None
    return within_bounds(moment, option, text)


def within_bounds(moment: datetime, option: str, text: str) -> datetime:
    if moment < EARLIEST:
        raise InvalidInput(f"{option}: {text!r} is before 2009-01-03, when Bitcoin began")
    if moment >= LATEST:
        raise InvalidInput(f"{option}: {text!r} is too far in the future")
    return moment


def parse_day(text: str | None, option: str) -> date | None:
    """A UTC day from ``2026-03-01`` (a time, if given, is ignored), from 2009-01-03 on."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{option}: not a date: {text!r} (use e.g. 2026-03-01)") from None
    return within_bounds(moment.replace(tzinfo=UTC), option, text).date()


@contextmanager
def progress_bar() -> Iterator[Callable[[str, int, int], None] | None]:
    """A progress callback drawing a bar on a terminal's stderr; None on a pipe (nothing is drawn)."""
    if not stderr.is_terminal:
        yield None
        return
    from rich.progress import Progress

    with Progress(console=stderr, transient=True) as bar:
        task = bar.add_task("", total=None)
        yield lambda what, done, total: bar.update(task, description=what, completed=done, total=total)


def split_prices(values: list[str] | None, allow_bare: bool) -> tuple[Decimal | None, dict[str, Decimal]]:
    """``--price`` values: ``SYMBOL=VALUE`` overrides, and (where allowed) one bare fill price."""
    from portfolio_cli.services import parse_symbol

    bare: Decimal | None = None
    overrides: dict[str, Decimal] = {}
    for value in values or []:
        if "=" in value:
            symbol, _, number = value.partition("=")
            overrides[parse_symbol(symbol)] = parse_positive(number, f"--price {symbol}")
        elif allow_bare and bare is None:
            bare = parse_positive(value, "--price")
        else:
            raise InvalidInput(f"--price takes SYMBOL=VALUE here, got {value!r}")
    return bare, overrides


def print_json(obj: Any, shape: Any = None) -> None:
    """``obj`` (of type ``shape``, default its own) as JSON: decimals as strings, times ISO-8601."""
    from pydantic import TypeAdapter

    from portfolio_cli.formatting import to_json

    payload = TypeAdapter(shape or type(obj)).dump_python(obj, mode="python")
    sys.stdout.write(to_json(payload) + "\n")


def write_file(path: Path, write: Callable[[TextIO], None], force: bool = False) -> None:
    """All of the file or none of it, owner-only, through the one file writer (``files.write_text``)."""
    from portfolio_cli.files import write_text

    write_text(path, write, force)
