"""Portfolios and cash: create, list, deposit, withdraw."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from portfolio_cli import formatting as fmt
from portfolio_cli.engine.booking import booking, transfer_entry
from portfolio_cli.engine.records import CashFlow, FlowKind
from portfolio_cli.engine.rules import Refusal
from portfolio_cli.engine.valuation import Valuation, value_portfolio
from portfolio_cli.errors import InvalidInput, RuleRefused
from portfolio_cli.money import ZERO, pct_of
from portfolio_cli.services.common import (
    MAX_BALANCE,
    MIN_BALANCE,
    brackets_of,
    check_name,
    check_places,
    check_text,
    later_conflicts,
    lots_of,
    moment_or_now,
    open_symbols,
    timeline_of,
    valuation_of,
)
from portfolio_cli.services.snapshots import rebuild_stale
from portfolio_cli.session import Session


@dataclass(frozen=True)
class PortfolioSummary:
    name: str
    created_at: datetime
    wallet_balance: Decimal
    open_trades: int
    is_default: bool
    moved_back: bool = False  # init --at dated an existing portfolio's creation earlier


def init_portfolio(session: Session, name: str, balance: Decimal, at: datetime | None = None) -> PortfolioSummary:
    check_name(name)
    if not MIN_BALANCE <= balance <= MAX_BALANCE:
        raise InvalidInput(f"starting balance must be between {MIN_BALANCE} and {MAX_BALANCE} USDT, got {balance}")
    check_places(balance, "--balance")
    created = at or session.clock()
    if created > session.clock():
        raise InvalidInput(f"--at {created:%Y-%m-%d %H:%M} UTC is in the future")
    ledger = session.ledger
    with ledger.transaction(session.command, session.clock()):
        existing = ledger.find_portfolio(name)
        if existing is not None and at is not None and at < existing.created_at:
            moved = ledger.move_creation_back(existing, at)
            wallet = sum((f.amount for f in ledger.cash_flows(moved)), ZERO)
            open_trades = sum(1 for lot in lots_of(session, moved) if lot.is_open)
            is_default = name == session.settings.default_portfolio
            return PortfolioSummary(name, at, wallet, open_trades, is_default, moved_back=True)
        if existing is not None:
            hint = " (init --at an earlier time moves its creation back)" if at is not None else ""
            raise RuleRefused(f"portfolio {name!r} already exists{hint}")
        portfolio = ledger.create_portfolio(name, created)
        ledger.book(portfolio, booking([transfer_entry(FlowKind.DEPOSIT, balance, created, "starting balance")]))
    return PortfolioSummary(name, created, balance, 0, name == session.settings.default_portfolio)


def list_portfolios(session: Session) -> list[PortfolioSummary]:
    ledger = session.ledger
    result = []
    for p in ledger.portfolios():
        lots = lots_of(session, p)
        wallet = sum((f.amount for f in ledger.cash_flows(p)), ZERO)
        result.append(
            PortfolioSummary(
                p.name,
                p.created_at,
                wallet,
                sum(1 for lot in lots if lot.is_open),
                p.name == session.settings.default_portfolio,
            )
        )
    return result


@dataclass(frozen=True)
class CashMovement:
    portfolio: str
    kind: FlowKind
    amount: Decimal
    at: datetime
    wallet_balance: Decimal
    free_margin: Decimal
    id: int = 0  # the cash flow's id (what `portfolio void deposit:ID` takes)


def deposit(
    session: Session, name: str, amount: Decimal, at: datetime | None = None, note: str | None = None
) -> CashMovement:
    return _move_cash(session, name, FlowKind.DEPOSIT, amount, at, note)


def withdraw(
    session: Session,
    name: str,
    amount: Decimal,
    at: datetime | None = None,
    note: str | None = None,
    force: bool = False,
) -> CashMovement:
    return _move_cash(session, name, FlowKind.WITHDRAWAL, amount, at, note, force)


def withdrawal_refusals(
    amount: Decimal, before: Valuation, margin_call_pct: Decimal | None, min_level_pct: Decimal, when: str = "now"
) -> list[Refusal]:
    """What a withdrawal of ``amount`` breaks, valued ``before`` it: solvency — more than the free margin
    ``F``, or a margin level ``(Em − amount) / M × 100`` below the account's auto-close line
    (``margin_rules.margin_call_pct``), where ``check`` would margin-call a position at once — and the
    preference ``risk.min_margin_level_pct``, which ``--force`` overrides."""
    refusals = []
    if amount > before.free_margin:
        refusals.append(
            Refusal(
                "free margin",
                f"withdrawing {fmt.money(amount)} USDT would leave free margin at "
                f"{fmt.money(before.free_margin - amount)} USDT (free {when}: {fmt.money(before.free_margin)} USDT)",
                solvency=True,
            )
        )
    level = pct_of(before.margin_equity - amount, before.margin_used)
    if level is None:
        return refusals
    if margin_call_pct is not None and level < margin_call_pct:
        refusals.append(
            Refusal(
                "margin call line",
                f"the margin level would fall to {level}%, below the {margin_call_pct.normalize():f}% at which "
                "check closes a position",
                "margin_rules.margin_call_pct",
                solvency=True,
            )
        )
    elif level < min_level_pct:
        refusals.append(
            Refusal(
                "minimum margin level",
                f"the margin level would fall to {level}%, below {min_level_pct.normalize():f}%",
                "risk.min_margin_level_pct",
            )
        )
    return refusals


def _move_cash(
    session: Session,
    name: str,
    kind: FlowKind,
    amount: Decimal,
    at: datetime | None,
    note: str | None,
    force: bool = False,
) -> CashMovement:
    check_places(amount, "amount")
    check_text(note, "--note")
    ledger = session.ledger
    portfolio = ledger.portfolio(name)
    moment = moment_or_now(session, at, portfolio.created_at, "the portfolio was created", portfolio.name)
    withdrawal = kind is FlowKind.WITHDRAWAL
    entry = transfer_entry(kind, amount, moment, note)
    flow = entry.record
    assert isinstance(flow, CashFlow)  # a transfer books one cash flow
    settings = session.settings.for_portfolio(name)
    brackets = brackets_of(settings)
    history, version, later, then = timeline_of(ledger, portfolio), ledger.records_version(portfolio), None, None
    if at is not None and withdrawal:  # the account then, at the prices then, and every later record
        held_then = history.open_symbols_at(moment)
        then_marks = session.prices.marks_at(held_then, moment) if held_then else {}
        lots_then, flows_then = history.at(moment)
        then = value_portfolio(flows_then, lots_then, then_marks, brackets, reserved=history.reserved_at(moment))
        later = later_conflicts(session, history, history.plus(flows=[flow]), moment, brackets)
    held = open_symbols(session, portfolio)
    # The marks for the figures shown after the move (and a withdrawal's free margin), fetched first.
    if withdrawal:
        marks = session.prices.marks(held)
    else:  # the cache, as ever; a position opened backdated may have no quote cached yet
        marks, missing, _ = session.prices.marks_found(held, live=False)
        if missing:
            marks.update(session.prices.marks_found(missing)[0])
    with ledger.transaction(session.command, session.clock()):
        if then is not None and ledger.records_version(portfolio) != version:
            raise RuleRefused("the portfolio changed while the withdrawal was priced; run the command again")
        if withdrawal:
            before = then if then is not None else valuation_of(session, portfolio, marks, live=False)
            call = settings.margin_rules.margin_call_pct
            refusals = withdrawal_refusals(
                amount,
                before,
                None if call == "off" else Decimal(call),
                settings.risk.min_margin_level_pct,
                f"at {moment:%Y-%m-%d %H:%M} UTC" if then is not None else "now",
            )
            when = f" at {moment:%Y-%m-%d %H:%M} UTC" if then is not None else ""
            binding = [r for r in refusals if r.solvency]
            if binding or (refusals and not force):
                hint = "--force cannot override solvency" if binding else "--force overrides"
                raise RuleRefused("; ".join(f"{r}{when}" for r in (binding or refusals)) + f"; {hint}")
            for refusal in refusals:
                session.warn(f"{refusal}{when}: overridden by --force (recorded)")
            entry = replace(entry, overridden=tuple(str(r) for r in refusals))
        if later is not None:
            raise RuleRefused(f"refused: a withdrawal at {moment:%Y-%m-%d %H:%M} UTC breaks a later record: {later}")
        booked = ledger.book(portfolio, booking([entry]))
        after = valuation_of(session, portfolio, marks, live=False)
    rebuild_stale(session, name, booked.stale_days)
    return CashMovement(name, kind, amount, moment, after.wallet_balance, after.free_margin, booked.ids[0])
