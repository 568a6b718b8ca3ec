"""Nothing inside a ledger transaction reaches the network (DESIGN §2).

A request can take seconds with retries, longer than the busy timeout a concurrent command waits
for the write lock, so a command fetches every price it needs first. ``Ledger.transaction`` arms
this guard and the price book checks it before every request to a price source: a fetch inside a
transaction is a bug, raised as one, never a silent lock held for seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_writing: ContextVar[str | None] = ContextVar("ledger_transaction", default=None)


class NetworkInTransaction(RuntimeError):
    """A price source was asked for data while a ledger transaction was open."""


@contextmanager
def transaction_open(command: str) -> Iterator[None]:
    token = _writing.set(command)
    try:
        yield
    finally:
        _writing.reset(token)


def refuse_network(source: str) -> None:
    command = _writing.get()
    if command is not None:
        raise NetworkInTransaction(f"{command}: a request to {source} inside the ledger's write transaction")
