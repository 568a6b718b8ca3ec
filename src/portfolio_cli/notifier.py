"""The one place apprise is used: send messages to apprise URLs within a time budget.

apprise is imported only here, inside ``send_all``, so a command that sends nothing never loads it
(≈0.3 s). Each message goes out on its own thread; what has not answered when the budget is spent
counts as failed. apprise's own log lines are captured (they would go to stderr) and become the
failure's reason, with every part of the URL — tokens, passwords, hosts — cut out.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import SecretStr

_LOGGER = "apprise"


def send_all(messages: list[tuple[SecretStr, str, str]], budget_seconds: float) -> list[str | None]:
    """Send each ``(url, title, body)``; for each, None when sent, else why not (no secret in it)."""
    if not messages:
        return []
    import apprise

    capture = _Capture()
    logger = logging.getLogger(_LOGGER)
    saved = logger.handlers[:], logger.propagate, logger.level
    logger.handlers, logger.propagate = [capture], False
    logger.setLevel(logging.WARNING)
    try:
        plugins = [_plugin(apprise, url, budget_seconds) for url, _, _ in messages]
        deadline = time.monotonic() + budget_seconds
        late = f"no answer within {budget_seconds:g} s"
        results: list[str | None] = [late] * len(messages)
        threads = []
        for index, ((url, title, body), plugin) in enumerate(zip(messages, plugins, strict=True)):
            if plugin is None:
                results[index] = "apprise does not understand this URL"
                continue

            def send(index=index, url=url, title=title, body=body, plugin=plugin) -> None:
                results[index] = _send_one(plugin, url, title, body, capture)

            thread = threading.Thread(target=send, name=f"notify-{index}", daemon=True)
            thread.start()
            threads.append((index, thread))
        for _, thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for index, thread in threads:
            if thread.is_alive():
                results[index] = late
        return results
    finally:
        logger.handlers, logger.propagate = saved[0], saved[1]
        logger.setLevel(saved[2])


def _plugin(apprise, url: SecretStr, budget: float):
    """apprise's sender for ``url`` (None if it does not know the URL), its timeouts within the budget."""
    plugin = apprise.Apprise.instantiate(url.get_secret_value(), suppress_exceptions=True)
    if plugin is not None:
        # apprise's default is 4 s to connect and 4 s to read; never more than the budget.
        plugin.socket_connect_timeout = min(plugin.socket_connect_timeout or budget, budget)
        plugin.socket_read_timeout = min(plugin.socket_read_timeout or budget, budget)
    return plugin


def _send_one(plugin, url: SecretStr, title: str, body: str, capture: _Capture) -> str | None:
    try:
        if plugin.notify(body=body, title=title):
            return None
        reason = capture.last(threading.get_ident()) or "the destination refused the message"
    except Exception as exc:  # a plugin's bug must not cost the trader the command's result
        reason = f"{type(exc).__name__}: {exc}"
    return scrub(reason, url.get_secret_value())


def scrub(text: str, url: str) -> str:
    """``text`` with every part of ``url`` that could be a secret replaced by ``…``."""
    parts = {url}
    try:
        split = urlsplit(url)
        parts |= set(re.split(r"[:@]", split.netloc))
        parts |= {unquote(p) for p in split.path.split("/")}
        parts |= {p for p in split.path.split("/")}
        for key, value in parse_qsl(split.query):
            parts |= {value, key + "=" + value}
    except ValueError:
        pass
    for part in sorted((p for p in parts if len(p) >= 3), key=len, reverse=True):
        text = text.replace(part, "…")
    return " ".join(text.split())[:300]


class _Capture(logging.Handler):
    """apprise's warnings and errors, by the thread that logged them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._by_thread: dict[int, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # a malformed log call is not worth a failure of its own
            self._by_thread[record.thread or 0] = record.getMessage()

    def last(self, thread: int) -> str | None:
        return self._by_thread.get(thread)
