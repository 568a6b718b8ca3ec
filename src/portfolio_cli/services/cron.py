"""Crontab lines for the jobs that must run while the trader sleeps, with absolute paths: cron runs
with another working directory and almost no environment."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from portfolio_cli.session import Session

SNAPSHOT_SCHEDULE = "5 0 * * *"  # just after 00:00 UTC: the previous day's candles are complete
CHECK_SCHEDULE = "*/5 * * * *"
REBALANCE_SCHEDULE = "15 0 * * *"  # after the snapshot


def executable() -> list[str]:
    """How this program was started, as an absolute command."""
    launched = Path(sys.argv[0])
    if launched.name.startswith("portfolio") and launched.exists():
        return [str(launched.absolute())]
    return [sys.executable, "-m", "portfolio_cli"]


def cron_lines(session: Session) -> list[str]:
    command = executable() + ["--db", str(session.paths.ledger.absolute())]
    if session.paths.config is not None:
        command += ["--config", str(session.paths.config.absolute())]

    def job(schedule: str, *args: str) -> str:
        program, *options = command
        words = [program, *args, *options]
        # cron turns an unescaped % into a newline
        return f"{schedule} " + " ".join(shlex.quote(word).replace("%", "\\%") for word in words)

    rebalances = []
    for name in sorted(session.settings.targets):
        rebalances += [
            f"# Rebalance {name} back to its targets when its strategy says so",
            job(REBALANCE_SCHEDULE, "rebalance", "-p", name, "--execute", "--yes", "--if-due"),
        ]
    return [
        "# portfolio-cli: paste into `crontab -e`. Schedules are UTC (CRON_TZ); where cron ignores",
        "# CRON_TZ, run the machine on UTC or shift the hour. Cron mails whatever a job prints, and",
        "# --quiet prints only what needs attention.",
        "CRON_TZ=UTC",
        "# Daily snapshot of every portfolio, backfilling any day that was missed",
        job(SNAPSHOT_SCHEDULE, "snapshot", "--all", "--quiet"),
        "# Stops, take-profits, liquidations, margin calls and funding",
        job(CHECK_SCHEDULE, "check", "--quiet"),
        *rebalances,
    ]
