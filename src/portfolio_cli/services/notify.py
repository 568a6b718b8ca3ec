"""Notifications: what ``check``, ``snapshot`` and ``rebalance --if-due`` did, sent where the trader is.

The commands call ``after_check``, ``after_snapshot`` or ``after_rebalance`` once their transaction
has committed. Without destinations these return at once; with them, they decide cheaply whether
there is anything to send — an event a destination takes, a margin state due, a message still
queued — and only then load ``services.delivery``, which composes, queues and sends (and apprise,
when it sends). A margin state already sent is not sent again until it changes or
``notify.repeat_hours`` pass.

This module defines no types and imports nothing heavy: it runs on every ``check`` from cron.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from portfolio_cli.config import Destination, Notify, Settings
from portfolio_cli.engine.margin import MarginState

if TYPE_CHECKING:
    from portfolio_cli.services.check import CheckResult
    from portfolio_cli.services.delivery import Delivery
    from portfolio_cli.services.rebalance import Rebalance
    from portfolio_cli.services.snapshots import SnapshotRun
    from portfolio_cli.session import Session

# A check event's kind → the routing event it is sent under (funding and the per-run margin
# warnings are not sent: margin states are, once per change).
EVENT_OF_KIND = {
    "stop_loss": "close",
    "take_profit": "close",
    "trailing_stop": "close",
    "liquidation": "liquidation",
    "margin_call": "liquidation",
    "gap": "gap",
    "order_fill": "order",
    "order_filled": "order",
    "order_cancel": "order",
    "order_cancelled": "order",
}
CLOSE_KINDS = {"stop_loss", "take_profit", "trailing_stop", "liquidation", "margin_call"}
QUIET_STATES = {MarginState.OK.value, MarginState.NONE.value}
OK = MarginState.OK.value


def after_check(session: Session, result: CheckResult) -> Delivery | None:
    """Send what ``check`` booked; None when there was nothing to send or retry."""
    settings = session.settings
    if not configured(settings):
        return None
    routed = any(
        EVENT_OF_KIND.get(e.kind) is not None and wants(settings, c.portfolio, EVENT_OF_KIND[e.kind])
        for c in result.portfolios
        for e in c.events
    )
    if not routed and not _margin_states_due(session, result) and not session.ledger.has_pending_notifications():
        return None
    from portfolio_cli.services import delivery

    return delivery.notify(session, "check", *delivery.check_notices(session, result))


def after_snapshot(session: Session, run: SnapshotRun) -> Delivery | None:
    if not configured(session.settings):
        return None
    from portfolio_cli.services import delivery

    return delivery.notify(session, "snapshot", delivery.snapshot_notices(run))


def after_rebalance(session: Session, name: str, result: Rebalance | None, error: str | None = None) -> Delivery | None:
    """``rebalance --if-due``: what it executed, or why not (``error`` when it failed)."""
    if not configured(session.settings):
        return None
    from portfolio_cli.services import delivery

    return delivery.notify(session, "rebalance", delivery.rebalance_notices(name, result, error))


def _margin_states_due(session: Session, result: CheckResult) -> bool:
    last_sent = session.ledger.notify_states()
    now = session.clock()
    for check in result.portfolios:
        if not wants(session.settings, check.portfolio, "margin"):
            continue
        portfolio = session.ledger.find_portfolio(check.portfolio)
        if portfolio is None:
            continue
        state, at = last_sent.get(portfolio.id, (None, None))
        repeat = timedelta(hours=float(notify_of(session.settings, check.portfolio).repeat_hours))
        if margin_due(current_state(check.state), state, at, now, repeat):
            return True
    return False


def current_state(state: MarginState) -> str:
    """The state as sent: no margin in use counts as ok."""
    return OK if state.value in QUIET_STATES else state.value


def margin_due(current: str, last: str | None, last_at: datetime | None, now: datetime, repeat: timedelta) -> bool:
    """Whether a margin state is sent: a change from the last one sent (none counts as ok), or a
    state that is not ok and was last sent ``repeat`` or longer ago."""
    previous = last or OK
    if current != previous:
        return True
    return current != OK and last_at is not None and now - last_at >= repeat


# configuration


def configured(settings: Settings) -> bool:
    """Whether any destination is configured, globally or for a portfolio."""
    return bool(settings.notify.urls) or any(
        isinstance(o.get("notify"), dict) and o["notify"].get("urls") for o in settings.portfolios.values()
    )


def notify_of(settings: Settings, portfolio: str) -> Notify:
    """A portfolio's [notify]: its own override merged over the global section."""
    if "notify" in settings.portfolios.get(portfolio, {}):
        return settings.for_portfolio(portfolio).notify
    return settings.notify


def wants(settings: Settings, portfolio: str, event: str) -> bool:
    """Whether any of the portfolio's destinations is sent ``event``."""
    notify = notify_of(settings, portfolio)
    return any(event in notify.events_for(d) for d in notify.urls)


def destinations_of(settings: Settings, portfolio: str | None) -> tuple[Destination, ...]:
    """A portfolio's destinations; None: every configured one, each once."""
    if portfolio is not None:
        return tuple(notify_of(settings, portfolio).urls)
    found = {destination_key(d): d for d in settings.notify.urls}
    for name in settings.portfolios:
        found.update({destination_key(d): d for d in notify_of(settings, name).urls})
    return tuple(found.values())


def destination_key(destination: Destination) -> str:
    """How the outbox names a destination: a digest of its URL, which itself is a secret."""
    import hashlib  # ≈10 ms, and a check with nothing to send never needs it

    return hashlib.sha256(destination.url.get_secret_value().encode()).hexdigest()[:32]
