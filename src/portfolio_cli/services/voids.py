"""``portfolio void``: reverse a mistaken record as if it had never been booked, and list the voids.

The engine decides (engine/voids.py: what the void takes out of the fold, and which later record
would stop it), the ledger books the void in one transaction. As for a record dated at the voided
one's moment, the free margin of every later record is weighed at that record's moment's prices
(fetched before the transaction), the snapshots from that moment on are rebuilt once committed, and
the check watermark rewinds to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from portfolio_cli.engine.booking import Entry, booking
from portfolio_cli.engine.records import Portfolio, VoidKind
from portfolio_cli.engine.voids import Held, plan_void, target_of, void_refusal
from portfolio_cli.errors import InvalidInput, NotFound, RuleRefused
from portfolio_cli.ledger import Ledger
from portfolio_cli.money import ZERO
from portfolio_cli.services.common import brackets_of, check_text, later_conflicts
from portfolio_cli.services.snapshots import rebuild_stale
from portfolio_cli.session import Session

_RECORD = re.compile(r"(?:(trade|close|deposit|withdrawal|margin|amendment):)?([0-9]{1,18})")
KINDS = {
    "trade": VoidKind.TRADE,
    "close": VoidKind.CLOSE,
    "deposit": VoidKind.DEPOSIT,
    "withdrawal": VoidKind.WITHDRAWAL,
    "margin": VoidKind.MARGIN_CHANGE,
    "amendment": VoidKind.AMENDMENT,
}
NAMES = {kind: name for name, kind in KINDS.items()}
ROW_NAMES = {"cash_flow": "cash flow", "margin_change": "margin change"}


@dataclass(frozen=True)
class VoidResult:
    portfolio: str
    void_id: int | None  # None: a dry run, nothing booked
    record: str  # trade:7, close:12, deposit:3, …
    record_at: datetime  # the voided record's effective time
    at: datetime  # when the void was entered
    reason: str
    summary: str  # what is voided, in words
    undone: tuple[str, ...]  # every row taken out of the fold: "trade 7", "cash flow 31"
    cash_undone: Decimal  # the wallet moves the voided record booked, summed (the void takes them back)
    wallet_before: Decimal
    wallet_after: Decimal
    stale_days: tuple[date, ...]  # snapshots rebuilt (a dry run: that would be)
    rewound_to: datetime | None  # the check watermark rewound to (a dry run: would be)
    dry_run: bool = False


@dataclass(frozen=True)
class VoidRow:
    void_id: int
    record: str
    record_at: datetime
    voided_at: datetime
    reason: str
    summary: str
    undone: tuple[str, ...]


def parse_record(text: str) -> tuple[VoidKind, int]:
    """``KIND:ID`` (trade, close, deposit, withdrawal, margin, amendment), or a bare ``ID``: a trade."""
    match = _RECORD.fullmatch(text.strip().lower())
    if match is None or int(match.group(2)) < 1:
        raise InvalidInput(
            f"not a record: {text!r} (expected ID for a trade, or KIND:ID with KIND one of "
            f"{', '.join(KINDS)}: trade:7, close:12, deposit:3)"
        )
    return KINDS[match.group(1) or "trade"], int(match.group(2))


def held_of(ledger: Ledger, portfolio: Portfolio) -> Held:
    """The portfolio's live records, as the void rules read them."""
    return Held(
        ledger.trades(portfolio),
        ledger.closes(portfolio),
        ledger.cash_flows(portfolio),
        ledger.margin_changes(portfolio),
        ledger.amendments(portfolio),
        ledger.orders(portfolio),
        ledger.order_ends(portfolio),
    )


def void_record(session: Session, name: str, record: str, reason: str, dry_run: bool = False) -> VoidResult:
    """Void ``record`` of portfolio ``name`` for ``reason``, in one transaction (``dry_run``: say what
    it would undo and book nothing)."""
    reason = (check_text(reason, "--reason") or "").strip()
    if not reason:
        raise InvalidInput("give the reason for the void: --reason TEXT")
    kind, record_id = parse_record(record)
    label = f"{NAMES[kind]}:{record_id}"
    ledger = session.ledger
    portfolio = ledger.portfolio(name)
    version = ledger.records_version(portfolio)
    held = held_of(ledger, portfolio)
    target = target_of(held, kind, record_id)
    if target is None:
        done = ledger.void_of(portfolio, kind, record_id)
        if done is not None:
            raise RuleRefused(
                f"{NAMES[kind]} {record_id} is already voided (void {done.id}, {done.at:%Y-%m-%d %H:%M} UTC: "
                f"{done.reason})"
            )
        raise NotFound(f"no {NAMES[kind].replace('margin', 'margin change')} {record_id} in portfolio {name}")
    refusal = void_refusal(held, kind, target)
    if refusal is not None:
        raise RuleRefused(f"refused: {refusal}")
    now = session.clock()
    void = plan_void(held, kind, target, reason, now)
    brackets = brackets_of(session.settings.for_portfolio(name))
    later = later_conflicts(session, held.timeline(), held.timeline(void), void.record_at, brackets)
    if later is not None:
        raise RuleRefused(f"refused: voiding {NAMES[kind]} {record_id} breaks a later record: {later}")
    wallet = sum((f.amount for f in held.flows), ZERO)
    undone = tuple(f"{ROW_NAMES.get(what, what)} {row_id}" for what, row_id in void.rows)

    def result(void_id: int | None, stale: tuple[date, ...], rewound: datetime | None) -> VoidResult:
        return VoidResult(
            name, void_id, label, void.record_at, now, reason, void.summary, undone,
            void.cash, wallet, wallet - void.cash, stale, rewound, void_id is None,
        )  # fmt: skip

    if dry_run:
        stale = tuple(s.day for s in ledger.snapshots(portfolio) if s.taken_at >= void.record_at)
        last = ledger.last_check(portfolio)
        session.discard_fetched()  # a dry run leaves the ledger byte for byte as it was
        return result(None, stale, void.record_at if last is not None and void.record_at < last else None)
    with ledger.transaction(session.command, now):
        if ledger.records_version(portfolio) != version:
            raise RuleRefused("the portfolio changed while the void was weighed; run the command again")
        booked = ledger.book(portfolio, booking([Entry(void)]))
    rebuild_stale(session, name, booked.stale_days)
    return result(booked.ids[0], booked.stale_days, booked.rewound_to)


def list_voids(session: Session, name: str) -> list[VoidRow]:
    """The portfolio's voids, oldest first: what each voided, when that record was, when and why."""
    portfolio = session.ledger.portfolio(name)
    return [
        VoidRow(
            v.id,
            f"{NAMES[v.record]}:{v.record_id}",
            v.record_at,
            v.at,
            v.reason,
            v.summary,
            tuple(f"{ROW_NAMES.get(what, what)} {row_id}" for what, row_id in v.rows),
        )
        for v in session.ledger.voids(portfolio)
    ]
