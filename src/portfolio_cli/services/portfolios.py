"""Portfolios and cash: create, list, deposit, withdraw."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from portfolio_cli import formatting as fmt
from portfolio_cli.engine.booking import booking, transfer_entry
from portfolio_cli.engine.records import CashFlow, FlowKind
from portfolio_cli.engine.timeline import free_margin_at
from portfolio_cli.errors import InvalidInput, RuleRefused
from portfolio_cli.money import ZERO
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


def deposit(
    session: Session, name: str, amount: Decimal, at: datetime | None = None, note: str | None = None
) -> CashMovement:
    return _move_cash(session, name, FlowKind.DEPOSIT, amount, at, note)


def withdraw(
    session: Session, name: str, amount: Decimal, at: datetime | None = None, note: str | None = None
) -> CashMovement:
    return _move_cash(session, name, FlowKind.WITHDRAWAL, amount, at, note)


def _move_cash(
    session: Session, name: str, kind: FlowKind, amount: Decimal, at: datetime | None, note: str | None
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
    brackets = brackets_of(session.settings.for_portfolio(name))
    history, version, later, then = timeline_of(ledger, portfolio), ledger.records_version(portfolio), None, None
    if at is not None and withdrawal:  # free margin then, at the prices then, and for every later record
        held_then = history.open_symbols_at(moment)
        then_marks = session.prices.marks_at(held_then, moment) if held_then else {}
        then = free_margin_at(history, moment, then_marks, brackets)
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
        free = then
        if free is None and withdrawal:
            free = valuation_of(session, portfolio, marks, live=False).free_margin
        when = f"at {moment:%Y-%m-%d %H:%M} UTC" if then is not None else "now"
        if free is not None and amount > free:
            raise RuleRefused(
                f"refused by free margin: withdrawing {fmt.money(amount)} USDT would leave free margin at "
                f"{fmt.money(free - amount)} USDT (free {when}: {fmt.money(free)} USDT)"
            )
        if later is not None:
            raise RuleRefused(f"refused: a withdrawal at {moment:%Y-%m-%d %H:%M} UTC breaks a later record: {later}")
        booked = ledger.book(portfolio, booking([entry]))
        after = valuation_of(session, portfolio, marks, live=False)
    rebuild_stale(session, name, booked.stale_days)
    return CashMovement(name, kind, amount, moment, after.wallet_balance, after.free_margin)
