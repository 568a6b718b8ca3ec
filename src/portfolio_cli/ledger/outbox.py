"""Notification state kept in the ledger: the last margin state sent per portfolio, and the outbox of
messages waiting to be sent. Neither holds a destination's URL (a secret), only its key and scheme."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from portfolio_cli.ledger import codec
from portfolio_cli.ledger.connection import Connection


@dataclass(frozen=True)
class OutboxMessage:
    """A notification waiting to be sent (again) to one destination."""

    id: int
    destination: str  # a key derived from the URL (see services.notify.destination_key)
    scheme: str
    created_at: datetime
    command: str
    title: str
    body: str
    attempts: int
    last_error: str | None


class NotifyStore(Connection):
    """The Ledger's notification tables (writes inside ``Ledger.transaction``)."""

    def notify_states(self) -> dict[int, tuple[str, datetime]]:
        """The margin state last sent for each portfolio, and when."""
        rows = self._rows("select portfolio_id, state, sent_at from notify_state")
        return {r["portfolio_id"]: (r["state"], codec.moment(r["sent_at"])) for r in rows}

    def set_notify_state(self, portfolio_id: int, state: str, level_pct: Decimal | None, at: datetime) -> None:
        self._require_transaction()
        row = [portfolio_id, state, None if level_pct is None else str(level_pct), codec.timestamp(at)]
        self.conn.execute(
            "insert into notify_state (portfolio_id, state, level_pct, sent_at) values (?, ?, ?, ?) "
            "on conflict (portfolio_id) do update set state = excluded.state, level_pct = excluded.level_pct, "
            "sent_at = excluded.sent_at",
            row,
        )
        self.audit("notify state", portfolio_id, {"state": state, "level_pct": row[2], "sent_at": row[3]})

    def queue_notification(self, destination: str, scheme: str, title: str, body: str, at: datetime) -> int:
        row = {
            "destination": destination,
            "scheme": scheme,
            "created_at": codec.timestamp(at),
            "command": self._command or "",
            "title": title,
            "body": body,
            "attempts": 0,
        }
        return self._write("notify_outbox", row, "queue notification", None)

    def has_pending_notifications(self) -> bool:
        return self.conn.execute("select exists (select 1 from notify_outbox where settled_at is null)").fetchone()[0]

    def pending_notifications(self) -> list[OutboxMessage]:
        rows = self._rows("select * from notify_outbox where settled_at is null order by id")
        return [
            OutboxMessage(
                r["id"],
                r["destination"],
                r["scheme"],
                codec.moment(r["created_at"]),
                r["command"],
                r["title"],
                r["body"],
                r["attempts"],
                r["last_error"],
            )
            for r in rows
        ]

    def notification_tried(self, message_id: int, at: datetime, error: str | None) -> None:
        """One attempt at sending: sent (``error`` None), or failed and left for the next run."""
        self._require_transaction()
        settled = None if error else codec.timestamp(at)
        self.conn.execute(
            "update notify_outbox set attempts = attempts + 1, last_error = ?, settled_at = ? where id = ?",
            [error, settled, message_id],
        )
        self.audit("notification " + ("failed" if error else "sent"), None, {"id": message_id, "error": error})

    def notification_dropped(self, message_id: int, at: datetime, why: str) -> None:
        """Taken out of the outbox unsent (its destination is gone from the config)."""
        self._require_transaction()
        self.conn.execute(
            "update notify_outbox set last_error = ?, settled_at = ? where id = ?",
            [f"dropped: {why}", codec.timestamp(at), message_id],
        )
        self.audit("notification dropped", None, {"id": message_id, "why": why})

    def _require_transaction(self) -> None:
        if self._command is None:
            raise RuntimeError("ledger writes must happen inside Ledger.transaction()")
