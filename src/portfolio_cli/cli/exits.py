"""The one place where a command's failure or outcome becomes the process's exit code.

Every command runs inside ``ExitCodes.main``: a ``PortfolioError`` becomes one ``error:`` line and
its code, a usage error one line and 2, a command's returned ``ExitCode`` its outcome, and anything
else a bug — one line saying so, the traceback saved to a file, exit 70 — never a traceback on the
terminal, whether or not the command remembered to catch anything itself.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from portfolio_cli.errors import ExitCode, PortfolioError
from portfolio_cli.text import printable

# Typer exports BadParameter but not the classes above it (its copy of Click is private):
# UsageError is its parent and ClickException, every error Click reports itself, its grandparent.
ClickError: type[Exception] = typer.BadParameter.__mro__[2]


class ExitCodes(TyperGroup):
    """The app's group: runs the command and exits with what it came to."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # Any: Typer types it with its private Click
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            print(ctx.get_help())
            raise typer.Exit(ExitCode.USAGE)
        return super().parse_args(ctx, args)

    def main(self, *args: Any, **kwargs: Any) -> NoReturn:
        kwargs["standalone_mode"] = False
        try:
            outcome = super().main(*args, **kwargs)
        except PortfolioError as exc:
            _error(printable(str(exc)))
            outcome = exc.exit_code
        except ClickError as exc:
            command = getattr(getattr(exc, "ctx", None), "command_path", "portfolio")
            _error(f"{usage_message(exc.format_message())} (see: {command} --help)")  # type: ignore[attr-defined]
            outcome = ExitCode.USAGE
        except typer.Abort:
            _error("aborted")
            outcome = ExitCode.ABORTED
        except Exception as exc:  # a bug: say so in one line, keep the traceback for the report
            _error(bug_line(exc))
            outcome = ExitCode.INTERNAL
        sys.exit(int(outcome or ExitCode.OK))


# Typer checks choices and paths through pydantic, whose messages begin with the error's kind.
VALIDATION_PREFIX = re.compile(r"\b(?:Value error|Assertion failed), ")


def usage_message(text: str) -> str:
    """A usage error as one line: no pydantic prefix, no full stop before the hint that follows."""
    return VALIDATION_PREFIX.sub("", " ".join(text.split())).rstrip(".")


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def bug_line(exc: BaseException) -> str:
    """One line naming the failure, saying it is a bug and where its traceback was saved."""
    what = printable(f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
    try:
        where = f"traceback saved to {save_traceback(exc)}"
    except OSError as failure:
        where = f"the traceback could not be saved ({failure.strerror or failure})"
    return f"{what} — this is a bug, please report it; {where}"


def save_traceback(exc: BaseException) -> Path:
    """The traceback, the command line and the time in a new owner-only file under the cache directory."""
    from portfolio_cli import __version__
    from portfolio_cli.paths import user_dir

    folder = user_dir() / "cache" / "tracebacks"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = datetime.now(UTC)
    path = folder / f"{now:%Y%m%dT%H%M%S}-{os.getpid()}.txt"
    text = "".join(
        [
            f"portfolio-cli {__version__} at {now.isoformat(timespec='seconds')}\n",
            "command: " + " ".join(["portfolio", *sys.argv[1:]])[:2000] + "\n\n",
            *traceback.format_exception(exc),
        ]
    )
    descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path
