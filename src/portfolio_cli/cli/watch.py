"""``value --watch``: a refreshing view of the portfolio until SIGINT or SIGTERM.

On a terminal it redraws one full-screen frame (rich Live); on a pipe it writes one frame per refresh,
or with ``--json`` one JSON object per line, so a log or another program can follow it.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

from portfolio_cli import render, services
from portfolio_cli.errors import ExitCode, PortfolioError
from portfolio_cli.session import Session

# The exit code of a watch stopped by each signal: 128 + the signal's number, as a shell reports it.
STOPPED_BY = {signal.SIGINT: ExitCode.ABORTED, signal.SIGTERM: ExitCode.TERMINATED}


class _Stop(threading.Event):
    """Set by SIGINT or SIGTERM; remembers which, for the exit code."""

    code = ExitCode.ABORTED

    def by(self, signum: int, _frame: object) -> None:
        self.code = STOPPED_BY[signal.Signals(signum)]
        self.set()


@contextmanager
def _stopped_by_signals() -> Iterator[_Stop]:
    """An event set by SIGINT or SIGTERM (the previous handlers come back afterwards)."""
    stop = _Stop()
    previous = {sig: signal.signal(sig, stop.by) for sig in STOPPED_BY}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def watch(session: Session, name: str, interval: float, as_json: bool, console: Console) -> ExitCode:
    """Refresh until a signal stops it; the exit code says which (130 Ctrl-C, 143 SIGTERM)."""
    warnings: list[str] = []
    session.warn = warnings.append  # into the frame, not across it on stderr
    last: services.PortfolioValue | None = None

    def refresh() -> services.PortfolioValue | None:
        nonlocal last
        warnings.clear()
        session.forget_prices()
        try:
            last = services.value(session, name)
        except PortfolioError as exc:  # shown in the frame; the next refresh tries again
            warnings.append(f"{exc}; showing the previous refresh")
        if session.source is None and session._book is not None:
            session.source = session._book.source  # one exchange client for the whole watch
        return last

    with _stopped_by_signals() as stop:
        if console.is_terminal and not as_json:
            from rich.live import Live

            with Live(console=console, screen=True, auto_refresh=False) as live:
                while not stop.is_set():
                    result = refresh()
                    if result is not None:
                        live.update(
                            render.watch_view(result, session.clock(), interval, warnings, session.prices.ticks()),
                            refresh=True,
                        )
                    stop.wait(interval)
            return stop.code
        while not stop.is_set():
            result = refresh()
            if result is not None:
                if as_json:
                    _json_line(result, session, warnings)
                else:
                    console.print(
                        render.watch_view(result, session.clock(), interval, warnings, session.prices.ticks())
                    )
                    console.file.flush()
            stop.wait(interval)
    return stop.code


def _json_line(result: services.PortfolioValue, session: Session, warnings: list[str]) -> None:
    from pydantic import TypeAdapter

    from portfolio_cli.formatting import to_json

    payload = TypeAdapter(services.PortfolioValue).dump_python(result, mode="python")
    payload |= {"updated_at": session.clock(), "warnings": list(warnings)}
    sys.stdout.write(to_json(payload, indent=None) + "\n")
    sys.stdout.flush()
