"""Where the ledger, config and caches live.

Ledger: ``--db`` > ``PORTFOLIO_DB`` > config ``ledger`` > ``<user dir>/ledger.db``. The user dir is
``PORTFOLIO_HOME`` if set, else the platform's per-user application directory — never the
current directory, because cron runs elsewhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "portfolio-cli"
ENV_PREFIX = "PORTFOLIO_"
# Environment variables with a meaning of their own rather than a config key.
ENV_HOME = "PORTFOLIO_HOME"
ENV_DB = "PORTFOLIO_DB"
ENV_CONFIG = "PORTFOLIO_CONFIG"
ENV_PORTFOLIO = "PORTFOLIO_NAME"
ENV_BINANCE_URL = "PORTFOLIO_BINANCE_URL"


def user_dir() -> Path:
    if home := os.environ.get(ENV_HOME):
        return Path(home).expanduser()
    import typer  # its get_app_dir knows each platform's convention

    return Path(typer.get_app_dir(APP_NAME))


@dataclass(frozen=True)
class Paths:
    """The files a command uses: the ledger, the config file, the cache and the user directory."""

    ledger: Path
    config: Path | None
    cache: Path
    data: Path  # the user directory: the default ledger, demo.db, config.toml, the cache


def config_path(option: Path | None) -> Path | None:
    """The config file to read: ``--config`` > ``PORTFOLIO_CONFIG`` > ``<user dir>/config.toml`` if present."""
    if option is not None:
        return option.expanduser()
    if env := os.environ.get(ENV_CONFIG):
        return Path(env).expanduser()
    default = user_dir() / "config.toml"
    return default if default.exists() else None


def resolve_paths(db_option: Path | None, config_file: Path | None, config_ledger: Path | None) -> Paths:
    if db_option is not None:
        ledger = db_option
    elif env := os.environ.get(ENV_DB):
        ledger = Path(env)
    elif config_ledger is not None:
        ledger = config_ledger
    else:
        ledger = user_dir() / "ledger.db"
    home = user_dir()
    return Paths(ledger=ledger.expanduser().absolute(), config=config_file, cache=home / "cache", data=home)
