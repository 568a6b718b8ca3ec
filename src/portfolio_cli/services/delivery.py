"""Notices, messages, the outbox and the destinations: the part of notifications that runs only when
there is something to send (``services.notify`` decides that, cheaply, and imports this then).

A command's result becomes notices (one per event), each tagged with one of the routing events of
``[notify] events``. The notices for each destination are grouped into one message, queued in the
ledger's outbox with the margin states they report (one transaction, after the command's own has
committed), and every pending message is then sent within ``notify.timeout_seconds``. A message
that could not be sent stays queued and the next run sends it; the command's records are never
touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from portfolio_cli.config import Destination
from portfolio_cli.engine.margin import MarginRestore, MarginState, restore_margin_level
from portfolio_cli.errors import LedgerFailure, PortfolioError
from portfolio_cli.services.notify import (
    CLOSE_KINDS,
    EVENT_OF_KIND,
    OK,
    QUIET_STATES,
    configured,
    current_state,
    destination_key,
    destinations_of,
    margin_due,
    notify_of,
    wants,
)
from portfolio_cli.session import Session

if TYPE_CHECKING:
    from portfolio_cli.services.check import CheckResult
    from portfolio_cli.services.rebalance import Rebalance
    from portfolio_cli.services.snapshots import SnapshotRun


@dataclass(frozen=True)
class Notice:
    portfolio: str
    event: str  # one of config.NOTIFY_EVENTS
    text: str


@dataclass(frozen=True)
class MarginSent:
    """A margin state a notice reports, recorded as sent with the notice."""

    portfolio_id: int
    state: str
    level_pct: Decimal | None


@dataclass(frozen=True)
class Failure:
    destination: str  # as shown: the scheme only
    messages: int
    reason: str


@dataclass(frozen=True)
class Delivery:
    sent: int
    failures: tuple[Failure, ...] = ()
    dropped: int = 0  # pending messages whose destination is no longer configured


# a command's results → notices


def check_notices(session: Session, result: CheckResult) -> tuple[list[Notice], list[MarginSent]]:
    """Each close, liquidation, margin call and gap ``check`` booked, and each margin state to send."""
    notices = []
    for check in result.portfolios:
        for event in check.events:
            routed = EVENT_OF_KIND.get(event.kind)
            if routed is not None:
                notices.append(Notice(check.portfolio, routed, f"{event.at:%Y-%m-%d %H:%M} UTC {_event_text(event)}"))
    watched = [c for c in result.portfolios if wants(session.settings, c.portfolio, "margin")]
    margin, sent = margin_notices(session, [(c.portfolio, c.state, c.margin_level_pct) for c in watched])
    return notices + margin, sent


def _event_text(event) -> str:
    """A close with its figures in the house format; any other event as check words it."""
    from portfolio_cli import render

    if event.kind in CLOSE_KINDS and event.price is not None and event.amount is not None:
        return (
            f"trade {event.trade_id} {event.symbol} closed by {event.kind.replace('_', ' ')} at "
            f"{render.price(event.price)}, net PnL {render.money(event.amount)} USDT"
        )
    return event.message


def margin_notices(
    session: Session, states: Iterable[tuple[str, MarginState, Decimal | None]]
) -> tuple[list[Notice], list[MarginSent]]:
    """A notice for each portfolio whose margin state differs from the one last sent, or is still
    not ok after ``repeat_hours``, with the action that would restore 200 %."""
    ledger = session.ledger
    last_sent = ledger.notify_states()
    now = session.clock()
    notices, sent = [], []
    for name, state, level in states:
        portfolio = ledger.find_portfolio(name)
        if portfolio is None:
            continue
        current = current_state(state)
        last, last_at = last_sent.get(portfolio.id, (None, None))
        repeat = timedelta(hours=float(notify_of(session.settings, name).repeat_hours))
        if not margin_due(current, last, last_at, now, repeat):
            continue
        notices.append(Notice(name, "margin", _margin_text(session, name, state, level, last or OK)))
        sent.append(MarginSent(portfolio.id, current, level))
    return notices, sent


def _margin_text(session: Session, name: str, state: MarginState, level: Decimal | None, was: str) -> str:
    from portfolio_cli import render

    shown = "n/a (no margin in use)" if level is None else f"{render.pct(level)} %"
    if state.value in QUIET_STATES:
        return f"margin level {shown}: back to ok (was {was})"
    text = f"margin level {shown}: {state.value} (was {was})"
    restore = _restore(session, name)
    return text + (f"; {restore_text(restore)}" if restore else "")


def _restore(session: Session, name: str) -> MarginRestore | None:
    """Valued at the marks the command already fetched (the price book keeps them); None when a
    price is missing after all (the state is sent without the remedy rather than not at all)."""
    from portfolio_cli.services.valuation import value

    settings = session.settings.for_portfolio(name)
    rules = settings.margin_rules.rules()
    target = rules.warning_pct or rules.alert_pct or rules.margin_call_pct  # the first line that is on
    if target is None:
        return None
    try:
        valuation = value(session, name).valuation
    except PortfolioError:
        return None
    return restore_margin_level(valuation, settings.fees.margin_taker, target)


def restore_text(restore: MarginRestore) -> str:
    from portfolio_cli import render

    target = f"{render.pct(restore.target_pct)} %"
    text = f"to restore {target}: deposit {render.money(restore.deposit)} USDT"
    if restore.close_qty is not None:
        text += (
            f", or close {render.number(restore.close_qty)} {restore.symbol} of trade {restore.trade_id} "
            "(the most losing position)"
        )
    elif restore.trade_id is not None:
        text += f" (closing all of trade {restore.trade_id}, the most losing position, would not be enough)"
    return text


def snapshot_notices(run: SnapshotRun) -> list[Notice]:
    """Days a snapshot could not value, and days it backfilled."""
    notices = []
    for p in run.portfolios:
        for skipped in p.skipped:
            notices.append(
                Notice(
                    p.portfolio,
                    "gap",
                    f"{skipped.day} not valued: no price for {', '.join(skipped.unpriced)} ({skipped.reason}); "
                    "a later snapshot backfills it",
                )
            )
        if p.backfilled:
            days = sorted(p.backfilled)
            span = f"{days[0]}" if len(days) == 1 else f"{days[0]} to {days[-1]}"
            notices.append(Notice(p.portfolio, "gap", f"backfilled {len(days)} missed day(s): {span}"))
    return notices


def rebalance_notices(name: str, result: Rebalance | None, error: str | None = None) -> list[Notice]:
    """``rebalance --if-due``: the plan executed, or why it was not."""
    from portfolio_cli import render

    if result is None:
        return [Notice(name, "rebalance", f"rebalance not executed: {error}")]
    plan = result.plan
    if result.executed is not None:
        trades = "; ".join(
            f"{'buy' if t.buy else 'sell'} {render.number(t.qty)} {t.symbol} at {render.price(t.price)}"
            for t in plan.trades
        )
        return [
            Notice(
                name,
                "rebalance",
                f"rebalanced ({result.why}) as rebalance {result.executed}: {len(plan.trades)} trade(s): {trades}; "
                f"fees {render.money(plan.fees)} USDT; drift {render.pct(plan.drift_before)} → "
                f"{render.pct(plan.drift_after)} %",
            )
        ]
    if not result.due:
        return [Notice(name, "rebalance", f"not rebalanced: {result.why}")]
    why = "; ".join(f"{s.asset}: {s.reason}" for s in plan.skipped) or "no trade passes the exchange's minimums"
    return [Notice(name, "rebalance", f"rebalance due ({result.why}) but no trade to book: {why}")]


# notices → messages → the outbox → destinations


def notify(
    session: Session, command: str, notices: list[Notice], margin: list[MarginSent] | None = None
) -> Delivery | None:
    """Queue one message per destination for ``notices`` and send every pending message; None
    when no destination is configured. Call only after the command's transaction has committed."""
    settings = session.settings
    if not configured(settings):
        return None
    ledger = session.ledger
    now = session.clock()
    grouped: dict[str, tuple[Destination, list[Notice]]] = {}
    for notice in notices:
        notify_settings = notify_of(settings, notice.portfolio)
        for destination in notify_settings.urls:
            if notice.event in notify_settings.events_for(destination):
                grouped.setdefault(destination_key(destination), (destination, []))[1].append(notice)
    try:
        if grouped or margin:
            with ledger.transaction(session.command, now):
                for key, (destination, group) in grouped.items():
                    title, body = message(command, group)
                    ledger.queue_notification(key, destination.scheme, title, body, now)
                for m in margin or []:
                    ledger.set_notify_state(m.portfolio_id, m.state, m.level_pct, now)
        pending = ledger.pending_notifications()
    except LedgerFailure as exc:
        return Delivery(0, (Failure("the outbox", len(grouped), f"could not be queued: {exc}"),))
    if not pending:
        return Delivery(0)
    return _send_pending(session, pending, now)


def message(command: str, notices: list[Notice]) -> tuple[str, str]:
    """One message for a command run: a title counting its events, a line per notice."""
    counts: dict[str, int] = {}
    for n in notices:
        counts[n.event] = counts.get(n.event, 0) + 1
    summary = ", ".join(f"{count} {event}" for event, count in counts.items())
    portfolios = sorted({n.portfolio for n in notices})
    title = f"portfolio {command} ({', '.join(portfolios)}): {summary}"
    body = "\n".join(f"[{n.portfolio}] {n.event}: {n.text}" for n in notices)
    return title, body


def _send_pending(session: Session, pending, now: datetime) -> Delivery:
    from portfolio_cli.notifier import send_all

    by_key = {destination_key(d): d for d in destinations_of(session.settings, None)}
    deliverable = [m for m in pending if m.destination in by_key]
    orphans = [m for m in pending if m.destination not in by_key]
    budget = session.settings.notify.timeout_seconds
    errors = send_all([(by_key[m.destination].url, m.title, m.body) for m in deliverable], budget)
    failed: dict[str, list[str]] = {}
    try:
        with session.ledger.transaction(session.command, session.clock()):
            for m, error in zip(deliverable, errors, strict=True):
                session.ledger.notification_tried(m.id, now, error)
                if error:
                    failed.setdefault(by_key[m.destination].shown, []).append(error)
            for m in orphans:
                session.ledger.notification_dropped(m.id, now, "the destination is no longer configured")
    except LedgerFailure as exc:
        failed.setdefault("the outbox", []).append(f"sent, but not marked as sent: {exc}")
    failures = tuple(Failure(shown, len(reasons), reasons[-1]) for shown, reasons in failed.items())
    return Delivery(sum(1 for e in errors if e is None), failures, len(orphans))


@dataclass(frozen=True)
class DestinationView:
    destination: str  # the scheme only
    events: tuple[str, ...]
    portfolios: tuple[str, ...]  # the portfolios whose own [portfolios.NAME.notify] names it


@dataclass(frozen=True)
class Overview:
    destinations: tuple[DestinationView, ...]
    pending: int


def destinations_overview(session: Session) -> Overview:
    settings = session.settings
    views = [DestinationView(d.shown, tuple(settings.notify.events_for(d)), ()) for d in settings.notify.urls]
    for name in sorted(settings.portfolios):
        if "notify" in settings.portfolios[name]:
            own = notify_of(settings, name)
            views += [DestinationView(d.shown, tuple(own.events_for(d)), (name,)) for d in own.urls]
    pending = len(session.ledger.pending_notifications()) if configured(settings) else 0
    return Overview(tuple(views), pending)


@dataclass(frozen=True)
class TestResult:
    destination: str  # the scheme only
    portfolios: tuple[str, ...]  # the portfolios it serves; empty: [notify] itself
    sent: bool
    error: str | None


def send_test(session: Session) -> list[TestResult]:
    """A test message to every configured destination, each result reported (nothing is queued)."""
    from portfolio_cli.errors import ConfigInvalid
    from portfolio_cli.notifier import send_all

    settings = session.settings
    destinations = destinations_of(settings, None)
    if not destinations:
        raise ConfigInvalid('no notification destinations: add [notify] urls = ["tgram://…"] to the config')
    serves: dict[str, list[str]] = {destination_key(d): [] for d in destinations}
    for name in settings.portfolios:
        for d in notify_of(settings, name).urls:
            serves[destination_key(d)].append(name)
    body = f"A test message from portfolio-cli at {session.clock():%Y-%m-%d %H:%M:%S} UTC."
    errors = send_all([(d.url, "portfolio-cli test", body) for d in destinations], settings.notify.timeout_seconds)
    return [
        TestResult(d.shown, tuple(serves[destination_key(d)]), error is None, error)
        for d, error in zip(destinations, errors, strict=True)
    ]
