"""Settings: defaults < config file < environment ``PORTFOLIO_*`` < command-line options.

Defaults live in this module, so an installed wheel needs nothing from the checkout. A config file is
TOML (see ``config/portfolio.example.toml``); numbers are read as exact decimals. Any environment
variable ``PORTFOLIO_SECTION__KEY`` sets ``[section] key`` (for example ``PORTFOLIO_FEES__SPOT_TAKER``).
"""

# No ``from __future__ import annotations`` here: pydantic would compile every field's annotation
# from its string again at each start.
import json
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from portfolio_cli.engine.fees import fee_rate
from portfolio_cli.errors import ConfigInvalid
from portfolio_cli.paths import ENV_BINANCE_URL, ENV_PREFIX  # the environment's names live with the paths

if TYPE_CHECKING:
    from portfolio_cli.engine.margin import AccountRules
    from portfolio_cli.engine.rules import RiskLimits

Rate = Annotated[Decimal, Field(ge=0, lt=1)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fees(Section):
    """Fee rates, as fractions of the fill's notional: takers for market orders, makers for a
    --maker fill (an order that rested on the book)."""

    spot_taker: Rate = Decimal("0.001")
    margin_taker: Rate = Decimal("0.0005")
    spot_maker: Rate = Decimal("0.001")
    margin_maker: Rate = Decimal("0.0002")
    # Binance's USDⓈ-M VIP tier (0–6): its maker and taker rates replace the margin ones.
    vip_tier: Annotated[int, Field(ge=0, le=6)] | None = None
    # Fees paid in BNB: 25 % off on spot, 10 % off on USDⓈ-M futures.
    bnb_discount: bool = False

    def rate(self, margin: bool, maker: bool = False) -> Decimal:
        return fee_rate(
            margin,
            maker,
            (self.spot_maker, self.spot_taker),
            (self.margin_maker, self.margin_taker),
            self.vip_tier,
            self.bnb_discount,
        )


class BracketRow(Section):
    """One leverage bracket: notional up to ``cap`` (USDT), its maximum leverage, maintenance rate and
    maintenance amount (derived so MM is continuous when left out)."""

    cap: Annotated[Decimal, Field(gt=0)]
    max_leverage: Annotated[int, Field(ge=1, le=125)]
    mmr: Rate
    cum: Annotated[Decimal, Field(ge=0)] | None = None


class Trading(Section):
    # Market orders walk Binance's order book ("book"), or fill at the last price ± slippage ("last").
    fills: Literal["book", "last"] = "book"
    # The book is walked only this far from the last price; an order it cannot fill within is refused.
    book_cap_pct: Annotated[Decimal, Field(gt=0, le=50)] = Decimal(5)
    # When the book cannot be had (or with fills = "last"): last price moved against you by this much.
    slippage_bps: Annotated[Decimal, Field(ge=0, le=1000)] = Decimal(0)
    margin_mode: Literal["isolated", "cross"] = "isolated"
    # A flat maintenance rate for a symbol with no bracket data (neither bundled nor in brackets_file).
    maintenance_margin_rate: Rate = Decimal("0.005")
    # Per-symbol flat maintenance rates, e.g. {"BTC/USDT" = 0.004}: one bracket, no maintenance amount.
    maintenance_margin_rates: dict[str, Rate] = {}
    # Binance's leverageBracket answer (JSON) to use instead of the bundled snapshot.
    brackets_file: Path | None = None
    # Per-symbol brackets: [[trading.brackets."BTC/USDT"]] cap = 50000, max_leverage = 125, mmr = 0.004.
    brackets: dict[str, list[BracketRow]] = {}
    # Binance's clearance fee on a cross liquidation, for a symbol whose liquidationFee is unknown.
    liquidation_fee_rate: Rate = Decimal("0.0125")

    # Funding rate per 8 hours used when Binance's cannot be fetched (offline).
    funding_rate: Annotated[Decimal, Field(ge=-1, le=1)] = Decimal("0.0001")


Off = Literal["off"]


class MarginRules(Section):
    """This tool's protective account rules on the margin level (equity − spot) / margin used × 100,
    on top of Binance's liquidation; "off" switches one off."""

    warning_pct: Annotated[Decimal, Field(ge=0)] | Off = Decimal(200)
    alert_pct: Annotated[Decimal, Field(ge=0)] | Off = Decimal(150)
    # Below it, check closes the most losing cross position (a margin call by rule).
    margin_call_pct: Annotated[Decimal, Field(ge=0)] | Off = Decimal(110)

    def rules(self) -> "AccountRules":
        from portfolio_cli.engine.margin import AccountRules  # valuation maths: only when margin is assessed

        def level(value: Decimal | str) -> Decimal | None:
            return None if value == "off" else Decimal(value)

        return AccountRules(level(self.warning_pct), level(self.alert_pct), level(self.margin_call_pct))


Pct = Annotated[Decimal, Field(ge=0, le=100)]


class Risk(Section):
    """Pre-trade rules enforced on every open (``--force`` overrides and is audited)."""

    min_notional_usdt: Annotated[Decimal, Field(ge=0)] = Decimal(10)
    min_notional_equity_pct: Pct = Decimal("0.1")
    # Margin committed to one asset (spot: its cost), as % of equity.
    max_position_pct: Pct = Decimal(10)
    # Σ risk over open positions: qty·|entry − stop| with a stop, else the margin committed.
    max_total_risk_pct: Pct = Decimal(20)
    max_open_positions: Annotated[int, Field(ge=1)] = 10
    max_positions_per_symbol: Annotated[int, Field(ge=1)] = 5
    min_leverage: Annotated[int, Field(ge=1, le=125)] = 1
    max_leverage: Annotated[int, Field(ge=1, le=125)] = 125
    min_margin_level_pct: Annotated[Decimal, Field(ge=0)] = Decimal(200)
    # Free margin left after a trade, as % of equity.
    cash_reserve_pct: Pct = Decimal(10)
    # Assets whose daily returns correlate above the threshold count as one group.
    max_correlated_pct: Pct = Decimal(25)
    correlation_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.7
    correlation_days: Annotated[int, Field(ge=20, le=1000)] = 90
    # Default risk per trade for `portfolio size`, as % of equity.
    risk_per_trade_pct: Annotated[Decimal, Field(gt=0, le=100)] = Decimal(1)

    @model_validator(mode="after")
    def _limits_agree(self) -> Self:
        if self.min_leverage > self.max_leverage:
            raise ValueError(
                f"risk.min_leverage = {self.min_leverage} is above risk.max_leverage = {self.max_leverage}: "
                "no leverage could pass both"
            )
        return self

    def limits(self) -> "RiskLimits":
        from portfolio_cli.engine.rules import RiskLimits  # the pre-trade checks: only when a trade is checked

        return RiskLimits(
            min_notional_usdt=self.min_notional_usdt,
            min_notional_equity_pct=self.min_notional_equity_pct,
            max_position_pct=self.max_position_pct,
            max_total_risk_pct=self.max_total_risk_pct,
            max_open_positions=self.max_open_positions,
            max_positions_per_symbol=self.max_positions_per_symbol,
            min_leverage=self.min_leverage,
            max_leverage=self.max_leverage,
            min_margin_level_pct=self.min_margin_level_pct,
            cash_reserve_pct=self.cash_reserve_pct,
            max_correlated_pct=self.max_correlated_pct,
        )


class Prices(Section):
    source: Literal["binance", "file"] = "binance"
    # With source = "file": a JSON or CSV quotes file (see docs/prices.md).
    file: Path | None = None
    binance_url: str | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 10.0
    # Total time a command may spend retrying temporary exchange failures.
    retry_budget_seconds: Annotated[float, Field(ge=0, le=300)] = 20.0
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 4
    markets_ttl_hours: Annotated[float, Field(gt=0)] = 24.0
    # A market order never fills at a quote older than this (a cached one when Binance fails): exit 5.
    max_fill_age_seconds: Annotated[int, Field(ge=1, le=86400)] = 60

    @field_validator("binance_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return url.rstrip("/") if url else url


class Snapshots(Section):
    # Days of daily snapshots to keep, today included; 0 keeps every one (tax records need years).
    keep_days: Annotated[int, Field(ge=0)] = 0

    @property
    def window(self) -> int | None:
        return self.keep_days or None


class Report(Section):
    # Annual risk-free rate for Sharpe, Sortino and alpha, as a fraction (0.04 = 4 %).
    risk_free_rate: Annotated[Decimal, Field(ge=-1, le=1)] = Decimal(0)
    # Bought and held with the portfolio's cash flows, to compare against.
    benchmark: Annotated[str, Field(pattern=r"^[A-Z0-9]{2,20}/USDT$")] = "BTC/USDT"


ASSET = r"^[A-Z0-9]{2,20}$"


class Targets(Section):
    """A portfolio's target allocation for `portfolio rebalance` (percent of equity, USDT for cash)."""

    weights: dict[Annotated[str, Field(pattern=ASSET)], Annotated[Decimal, Field(ge=0, le=100)]]
    # Band either side of each target, in percentage points.
    drift_pct: Annotated[Decimal, Field(gt=0, le=50)] = Decimal(5)
    min_interval_hours: Annotated[Decimal, Field(ge=0)] = Decimal(24)
    strategy: Literal["threshold", "periodic"] = "threshold"
    period_days: Annotated[int, Field(ge=1, le=366)] = 30
    # sell: outside assets back to just inside their bands; buy-only: never sell; to-target: once
    # anything is outside its band, every asset back to its target.
    mode: Literal["sell", "buy-only", "to-target"] = "sell"
    # Never buy an asset sold at a net loss within the last 30 days (the wash-sale window after a sale).
    avoid_wash_sales: bool = False
    # Which spot lots a rebalancing sale closes: fifo oldest first, lifo newest first, hifo the highest
    # cost per unit first (the tax export's methods).
    tax_method: Literal["fifo", "lifo", "hifo"] = "fifo"

    @field_validator("weights")
    @classmethod
    def _sum_to_100(cls, weights: dict[str, Decimal]) -> dict[str, Decimal]:
        total = sum(weights.values(), Decimal(0))
        if total != 100:
            raise ValueError(f"must add up to 100 (cash as USDT), not {total}")
        if not any(asset != "USDT" and weight > 0 for asset, weight in weights.items()):
            raise ValueError("name at least one asset besides USDT")
        return weights


class Allocation(Section):
    # Asset classes beyond the built-in BTC, ETH, stablecoins and altcoins: {SOL = "layer 1"}.
    classes: dict[Annotated[str, Field(pattern=ASSET)], Annotated[str, Field(min_length=1, max_length=40)]] = {}
    # Sectors by asset: {UNI = "DeFi", SOL = "smart contracts"}; others are "unclassified".
    sectors: dict[Annotated[str, Field(pattern=ASSET)], Annotated[str, Field(min_length=1, max_length=40)]] = {}


# What a destination can be sent (issue's names; "order" is for order fills and cancellations).
NotifyEvent = Literal["close", "liquidation", "margin", "rebalance", "gap", "order"]
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = get_args(NotifyEvent)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]{0,31}://\S+$")


def _word_list(value: Any) -> Any:
    """From the environment: a JSON list, or words separated by commas or spaces."""
    if not isinstance(value, str):
        return value
    if value.strip().startswith("["):
        try:
            return json.loads(value)
        except ValueError:
            raise ValueError("is not a JSON list") from None
    return [word for word in re.split(r"[\s,]+", value) if word]


class Destination(Section):
    """One notification destination: an apprise URL (a secret: never printed, see ``shown``)."""

    url: SecretStr
    # The events it is sent; None: those of [notify] events.
    events: list[NotifyEvent] | None = None

    @field_validator("url")
    @classmethod
    def _apprise_url(cls, url: SecretStr) -> SecretStr:
        if not _URL.match(url.get_secret_value()):
            raise ValueError("must be an apprise URL, scheme://… (e.g. tgram://, mailto://, json://)")
        return url

    @field_validator("events", mode="before")
    @classmethod
    def _event_names(cls, value: Any) -> Any:
        return _word_list(value)

    @property
    def scheme(self) -> str:
        return self.url.get_secret_value().split("://", 1)[0].lower()

    @property
    def shown(self) -> str:
        """How the destination is printed: its scheme only, the rest holds tokens and passwords."""
        return f"{self.scheme}://…"


class Notify(Section):
    """Notifications from check, snapshot and rebalance --if-due (see docs/notifications.md)."""

    # Apprise URLs, or {url = "…", events = [...]} tables; the environment takes a JSON list or
    # URLs separated by spaces (PORTFOLIO_NOTIFY__URLS).
    urls: list[Destination] = []
    events: list[NotifyEvent] = list(NOTIFY_EVENTS)
    # A margin state already sent is sent again only when it changes or after this many hours.
    repeat_hours: Annotated[Decimal, Field(gt=0, le=8760)] = Decimal(24)
    # Time budget for all of a command's sends, after its transaction has committed.
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0

    @field_validator("urls", mode="before")
    @classmethod
    def _destinations(cls, value: Any) -> Any:
        if isinstance(value, str):
            # URLs may hold commas (mailto's to=a,b), so only spaces separate them here.
            value = _word_list(value) if value.strip().startswith("[") else value.split()
        if isinstance(value, list | tuple):
            return [{"url": item} if isinstance(item, str | SecretStr) else item for item in value]
        return value

    @field_validator("events", mode="before")
    @classmethod
    def _event_names(cls, value: Any) -> Any:
        return _word_list(value)

    def events_for(self, destination: Destination) -> list[NotifyEvent]:
        return destination.events if destination.events is not None else self.events


class Settings(Section):
    ledger: Path | None = None
    default_portfolio: Annotated[str, Field(min_length=1, max_length=64)] = "main"
    fees: Fees = Fees()
    trading: Trading = Trading()
    margin_rules: MarginRules = MarginRules()
    risk: Risk = Risk()
    prices: Prices = Prices()
    snapshots: Snapshots = Snapshots()
    report: Report = Report()
    allocation: Allocation = Allocation()
    notify: Notify = Notify()
    # Target allocations by portfolio name: [targets.main] weights = {BTC = 40, ETH = 30, USDT = 30}.
    targets: dict[str, Targets] = {}
    # Per-portfolio overrides of fees, trading, risk and notify: [portfolios.NAME.fees] ...
    portfolios: dict[str, dict[str, Any]] = {}

    def for_portfolio(self, name: str) -> "Settings":
        """These settings with the named portfolio's overrides applied."""
        override = self.portfolios.get(name)
        if not override:
            return self
        return _validate(_merge(self.model_dump(), override), f"portfolios.{name}")

    @field_validator("portfolios")
    @classmethod
    def _overrides_are_sections(cls, portfolios: dict[str, dict[str, Any]]) -> dict:
        allowed = {"fees", "trading", "risk", "margin_rules", "notify"}
        for name, override in portfolios.items():
            unknown = set(override) - allowed
            if unknown:
                raise ValueError(f"{name}: only {sorted(allowed)} can be overridden, not {sorted(unknown)}")
        return portfolios


def load_settings(config_file: Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the config file (if any) and the environment into validated settings."""
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    if config_file is not None:
        raw = _read_toml(config_file)
        if _holds_notify_urls(raw):
            _require_owner_only(config_file)
    raw = _merge(raw, _env_overrides(environ))
    settings = _validate(raw, str(config_file) if config_file else "environment")
    for name in settings.portfolios:
        settings.for_portfolio(name)  # surface a bad override now, not at the first trade
    for name, targets in settings.targets.items():
        conflicts = target_conflicts(name, targets, settings.for_portfolio(name).risk)
        if conflicts:
            raise ConfigInvalid(f"invalid config ({config_file or 'environment'}): {conflicts[0]}")
    return settings


def target_conflicts(name: str, targets: Targets, risk: Risk) -> list[str]:
    """The ways a portfolio's targets would break its own risk rules, naming both keys."""
    key = f"targets.{name}"
    assets = {a: w for a, w in targets.weights.items() if a != "USDT" and w > 0}
    conflicts = [
        f"{key}.weights.{a} = {w} % is above risk.max_position_pct = {risk.max_position_pct} %"
        for a, w in sorted(assets.items())
        if w > risk.max_position_pct
    ]
    invested = sum(assets.values(), Decimal(0))
    if invested > risk.max_total_risk_pct:
        conflicts.append(
            f"{key}.weights put {invested} % in assets, above risk.max_total_risk_pct = {risk.max_total_risk_pct} % "
            "(spot holdings without a stop count in full)"
        )
    cash = targets.weights.get("USDT", Decimal(0))
    if cash < risk.cash_reserve_pct:
        conflicts.append(f"{key}.weights.USDT = {cash} % is below risk.cash_reserve_pct = {risk.cash_reserve_pct} %")
    if len(assets) > risk.max_open_positions:
        conflicts.append(
            f"{key}.weights name {len(assets)} assets, above risk.max_open_positions = {risk.max_open_positions}"
        )
    return conflicts


MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_DEPTH = 16  # a config nests 3 deep ([portfolios.NAME.risk]); tomllib recurses per level


def _holds_notify_urls(raw: Mapping[str, Any]) -> bool:
    sections = [raw.get("notify")]
    portfolios = raw.get("portfolios")
    if isinstance(portfolios, Mapping):
        sections += [p.get("notify") for p in portfolios.values() if isinstance(p, Mapping)]
    return any(isinstance(s, Mapping) and s.get("urls") for s in sections)


def _require_owner_only(path: Path) -> None:
    """Notification URLs carry tokens and passwords: a file holding them must be the owner's alone."""
    if os.name != "posix":
        return
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigInvalid(f"cannot read config file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigInvalid(
            f"config file {path} holds notification URLs (secrets) but others may read it "
            f"(mode {stat.S_IMODE(mode):o}): chmod 600 {path}"
        )


def _read_toml(path: Path) -> dict[str, Any]:
    """The config file's table: UTF-8 (a byte-order mark, as Windows editors write, is allowed), at
    most 1 MiB, nesting at most 16 levels deep."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigInvalid(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigInvalid(f"cannot read config file {path}: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigInvalid(f"config file {path} is larger than 1 MiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigInvalid(f"config file {path} is not UTF-8 text") from None
    try:
        parsed = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigInvalid(f"config file {path} is not valid TOML: {exc}") from None
    except RecursionError:  # nested beyond what the parser can follow
        raise ConfigInvalid(f"config file {path} nests deeper than {MAX_CONFIG_DEPTH} levels") from None
    if _depth(parsed) > MAX_CONFIG_DEPTH:
        raise ConfigInvalid(f"config file {path} nests deeper than {MAX_CONFIG_DEPTH} levels")
    return parsed


def _depth(value: Any) -> int:
    """How deep ``value`` nests (counted without recursion: the parser may have just used most of it)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_CONFIG_DEPTH:
                break
            stack.extend((child, depth) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if url := environ.get(ENV_BINANCE_URL):
        overrides["prices"] = {"binance_url": url}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or "__" not in key:
            continue
        path = key[len(ENV_PREFIX) :].lower().split("__")
        node = overrides
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return overrides


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _validate(raw: dict[str, Any], origin: str) -> Settings:
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "config"
        raise ConfigInvalid(f"invalid config ({origin}): {field}: {error['msg']}") from None
