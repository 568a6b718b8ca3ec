"""Reading records: plain parameterised SQL, money summed only in exact integer units.

Records are read from the ``live_*`` views (``migrations.m014_voids``): a voided record is in no fold,
no figure and no export. A join to ``trades`` for a live row's trade needs no filter: a trade can be
voided only once nothing else of it is live (``engine.voids``). Reads by id (``trades_by_id``) and
the checks of which ids are taken see every row."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from portfolio_cli.engine.records import (
    Amendment,
    Order,
    OrderEnd,
    CashFlow,
    Close,
    ClosedTrade,
    FlowKind,
    MarginChange,
    MarginMode,
    Portfolio,
    RebalanceEvent,
    Snapshot,
    SnapshotPosition,
    Trade,
    TradePart,
    Void,
    VoidKind,
)
from portfolio_cli.errors import NotFound
from portfolio_cli.ledger import codec, rowmap
from portfolio_cli.ledger.connection import Connection
from portfolio_cli.ledger.migrations import FLOW_GROUP
from portfolio_cli.money import ZERO

if TYPE_CHECKING:  # the closed-trade totals: the report's, imported where it asks
    from portfolio_cli.engine.trades import ClosedTotals

ID_CHUNK = 500  # ids per IN (...) list at most
# A row of ``trade_totals`` whose figures are not all exact integers (``migrations.m016_trade_totals``).
INEXACT_TOTALS = (
    "not (typeof(qty) = 'integer' and typeof(closed) = 'integer' and typeof(net) = 'integer' and "
    "typeof(funding) = 'integer' and opened_us is not null and (last_close is null or last_close_us is not null))"
)
Span = tuple[datetime, datetime | None]  # a trade held from its opening to its last close (None: still open)


class Queries(Connection):
    """The ledger's reads."""

    # portfolios

    def find_portfolio(self, name: str) -> Portfolio | None:
        rows = self._rows("select * from portfolios where name = ?", [name])
        return rowmap.portfolio(rows[0]) if rows else None

    def portfolio(self, name: str) -> Portfolio:
        found = self.find_portfolio(name)
        if found is None:
            known = ", ".join(p.name for p in self.portfolios()) or "none yet"
            raise NotFound(f"no portfolio named {name!r} (portfolios: {known}); create it with: portfolio init {name}")
        return found

    def portfolios(self) -> list[Portfolio]:
        return [rowmap.portfolio(row) for row in self._rows("select * from portfolios order by id")]

    # records

    def cash_flows(self, portfolio: Portfolio, after_id: int = 0) -> list[CashFlow]:
        """The portfolio's cash flows in booking order; ``after_id`` reads only those booked after it."""
        rows = self._rows(
            "select * from live_cash_flows where portfolio_id = ? and id > ? order by id", [portfolio.id, after_id]
        )
        return [rowmap.cash_flow(r) for r in rows]

    def largest_id(self, table: str) -> int:
        """The largest id of ``table`` (0 when empty): about its size, at once (records are not deleted)."""
        return self.conn.execute(f"select coalesce(max(id), 0) from {table}").fetchone()[0]

    def trade_ids_taken(self, ids: list[int]) -> bool:
        """Whether any of ``ids`` is already a trade's id, in any portfolio. Asked in chunks that fit
        this SQLite build's limit on variables in one statement (999 on some)."""
        size = max(1, min(ID_CHUNK, self.conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)))
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            sql = f"select 1 from trades where id in ({','.join('?' * len(chunk))}) limit 1"
            if self.conn.execute(sql, chunk).fetchone() is not None:
                return True
        return False


    def trades_by_id(self, ids: list[int]) -> dict[int, Trade]:
        """The trades with these ids, asked in chunks like ``trade_ids_taken``."""
        size = max(1, min(ID_CHUNK, self.conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)))
        found = {}
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            for row in self._rows(f"select * from trades where id in ({','.join('?' * len(chunk))})", chunk):
                found[row["id"]] = rowmap.trade(row)
        return found

    def trades(self, portfolio: Portfolio) -> list[Trade]:
        return [
            rowmap.trade(r)
            for r in self._rows("select * from live_trades where portfolio_id = ? order by id", [portfolio.id])
        ]

    def fill_rows(self, portfolio: Portfolio, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
        """Every opening and closing fill with ``since <= time < until``, in time order, all values as
        text, as the ledger stores them: an export of 100,000 trades is read straight from SQL."""
        names = self.fill_columns()
        return [dict(zip(names, cells, strict=True)) for cells in self.fill_cells(portfolio, since, until)]

    def fill_cells(
        self, portfolio: Portfolio, since: datetime | None, until: datetime | None
    ) -> list[tuple[str | None, ...]]:
        """The same fills as ``fill_rows``, each as its values in ``fill_columns`` order (for a CSV)."""
        cursor = self.conn.cursor()
        cursor.row_factory = None  # plain tuples: a third faster than sqlite3.Row here
        cursor.execute(f"{rowmap.FILL_SQL} order by at, part, fill_id", rowmap.fill_params(portfolio, since, until))
        width = len(cursor.description) - 3  # without the flag and the ordering columns
        money = {i for i, d in enumerate(cursor.description[:width]) if d[0] in rowmap.FILL_MONEY}
        cells = []
        for values in cursor.fetchall():  # one call, not one per row through the cursor's error wrapper
            if values[width]:  # money written before its text was fixed-point (1E-8, say)
                fixed = (codec.money(codec.decimal(v)) if i in money and v else v for i, v in enumerate(values[:width]))
                cells.append(tuple(fixed))
            else:
                cells.append(values[:width])
        return cells

    def fill_columns(self) -> tuple[str, ...]:
        """The names of a fill's values, in the order ``fill_rows`` gives them."""
        cursor = self.conn.execute(f"select * from ({rowmap.FILL_SQL}) limit 0", [0, "", ""] * 4)
        return tuple(d[0] for d in cursor.description)[:-3]  # without the flag and the ordering columns

    def fill_json(self, portfolio: Portfolio, since: datetime | None, until: datetime | None) -> list[str] | None:
        """The same fills, each as canonical JSON (keys sorted, no spaces) built by SQLite itself; None
        when this SQLite does not encode exactly as Python's canonical JSON does (checked once), or when
        a row's money text must be rewritten first. Then use ``fill_rows``."""
        if not rowmap.sqlite_json_is_canonical(self.conn):
            return None
        fields = ", ".join(f"'{name}', {name}" for name in sorted(self.fill_columns()))
        sql = f"select json_object({fields}), legacy from ({rowmap.FILL_SQL}) order by at, part, fill_id"
        rows = self.conn.execute(sql, rowmap.fill_params(portfolio, since, until)).fetchall()
        if any(legacy for _, legacy in rows):
            return None
        return [encoded for encoded, _ in rows]

    def closes(self, portfolio: Portfolio) -> list[Close]:
        sql = (
            "select c.* from live_closes c join trades on trades.id = c.trade_id "
            "where trades.portfolio_id = ? order by c.id"
        )
        return [rowmap.close(r) for r in self._rows(sql, [portfolio.id])]

    @staticmethod
    def _too_large(exc: BaseException) -> bool:
        """Whether SQL summing in integer units failed because an amount (or a total) is too large:
        then the sum is taken again in Python's exact decimals."""
        return isinstance(exc, OverflowError) or (isinstance(exc, sqlite3.OperationalError) and "overflow" in str(exc))

    def closed_trades(self, portfolio: Portfolio, since: datetime, until: datetime) -> list[ClosedTrade]:
        """Trades whose closes cover their quantity, the last one in ``(since, until]``, with their net
        PnL (every flow but funding): see ``closed_and_held``."""
        return self.closed_and_held(portfolio, since, until)[0]

    def closed_and_held(
        self, portfolio: Portfolio, since: datetime, until: datetime
    ) -> tuple[list[ClosedTrade], list[Span]]:
        """Both at once, from one read of the trades and their closes (100,000 trades: each read is a
        third of a second):

        - the trades closed in the range: closes cover their quantity, the last one in ``(since, until]``,
          with their net PnL (every flow but funding) summed in SQL in exact integer units (in Python's
          decimals when an amount is too large for them);
        - the holding span of each trade opened by ``until`` and not closed by ``since``: from its
          opening to its last close once closes cover its quantity (None: still open).

        Quantities are compared as text for a single close (the same value is the same text), else as
        Decimals."""
        try:
            return self._closed_and_held(portfolio, since, until, in_sql=True)
        except (sqlite3.OperationalError, OverflowError) as exc:
            if not self._too_large(exc):
                raise
            return self._closed_and_held(portfolio, since, until, in_sql=False)

    def _closed_and_held(
        self, portfolio: Portfolio, since: datetime, until: datetime, in_sql: bool
    ) -> tuple[list[ClosedTrade], list[Span]]:
        net = f"sum({self._units_sql(portfolio)})" if in_sql else "group_concat(amount)"
        # SQLite takes a bare column (reason) from the row that holds the max(): the last close's reason
        # (the latest, and of closes at one moment the last booked).
        # A row costs by the values it carries: the quantities' texts come only where one close does not
        # match the trade's quantity, the flows are summed only for the trades closed in the range.
        sql = f"""
            select t.opened_at, c.last, c.closes = 1 and c.qtys = t.qty as matched,
                iif(c.closes = 1 and c.qtys = t.qty, null, c.qtys), iif(c.closes = 1 and c.qtys = t.qty, null, t.qty),
                t.opened_at <= ?3 and (c.last is null or c.last > ?2) as held,
                c.last > ?2 and c.last <= ?3 as ended,
                iif(c.last > ?2 and c.last <= ?3, (
                    select {net} from live_cash_flows f
                    where f.portfolio_id = t.portfolio_id and f.trade_id = t.id and f.kind != 'funding'), null),
                t.strategy, t.symbol, t.side, c.reason
            from live_trades t
            left join (select trade_id, substr(latest, 1, length(latest) - 12) as last, closes, qtys, reason
                       from (select trade_id, max(closed_at || printf('%012d', id)) as latest, count(*) as closes,
                                 group_concat(qty) as qtys, reason
                             from live_closes group by trade_id)) c on c.trade_id = t.id
            where t.portfolio_id = ?1
                and ((t.opened_at <= ?3 and (c.last is null or c.last > ?2)) or (c.last > ?2 and c.last <= ?3))
            order by t.id"""
        moment, total = codec.moment, (codec.from_units if in_sql else _decimal_sum)
        closed: list[ClosedTrade] = []
        spans: list[Span] = []
        for opened, last, matched, qtys, qty, held, ended, pnl, strategy, symbol, side, reason in self._batches(
            sql, [portfolio.id, codec.timestamp(since), codec.timestamp(until)]
        ):
            covered = last is not None and (matched or sum(map(Decimal, qtys.split(",")), ZERO) >= Decimal(qty))
            opened_at = moment(opened)
            last_at = moment(last) if covered else None
            if held:
                spans.append((opened_at, last_at))
            if ended and last_at is not None:
                closed.append(ClosedTrade(total(pnl), opened_at, last_at, strategy, symbol, side, reason))
        return closed, spans

    def closed_totals(self, portfolio: Portfolio, since: datetime, until: datetime) -> tuple[ClosedTotals, timedelta]:
        """The trades closed in ``(since, until]``, totalled (``engine.trades.ClosedTotals``), and how much
        of ``[since, until]`` a position was held (``engine.trades.held_time``), by the definitions of
        ``closed_and_held``: summed in SQL in exact integer units from each trade's totals (a row per
        trade, kept by the ledger with its records: ``migrations.m016_trade_totals``); folded from
        the records when a total the range needs is not an exact integer (an amount of 10 billion or
        more). Closing order breaks ties by trade id."""
        try:
            fast = self._totals_in_sql(portfolio, since, until)
        except (sqlite3.OperationalError, OverflowError) as exc:
            if not self._too_large(exc):
                raise
            fast = None
        if fast is not None:
            return fast
        from portfolio_cli.engine.trades import held_time, total_closed

        closed, spans = self.closed_and_held(portfolio, since, until)
        return total_closed(closed), held_time(spans, since, until)

    def _totals_in_sql(
        self, portfolio: Portfolio, since: datetime, until: datetime
    ) -> tuple[ClosedTotals, timedelta] | None:
        from portfolio_cli.engine.trades import ClosedTotals, TradeGroup

        if self._inexact_totals(portfolio):
            return None
        low, high = codec.timestamp(since), codec.timestamp(until)
        # The days and months wholly inside the range are read from their statistics
        # (``migrations.m017_closed_days``); the trades closed in the rest of it, from their totals.
        window, days, whole, parts = _covered(portfolio, since, until)
        counted = "portfolio_id = :id and closed >= qty and "
        if days != "0":
            before, after = "last_close > :low and last_close < :first", "last_close >= :last and last_close <= :high"
            edges = f"{counted}(({before}) or ({after}))"
        else:
            before, after = "last_close > :low and last_close <= :high", "0"
            edges = counted + before
        figures = "symbol, strategy, side, exit_reason, trades, wins, losses, net, flowing, won, lost, held_us, " \
            "largest_win, largest_loss"  # fmt: skip
        groups_sql = f"""
            select symbol, strategy, side, exit_reason, sum(trades), sum(wins), sum(losses), sum(net), sum(flowing),
                sum(won), sum(lost), sum(held_us), max(largest_win), min(largest_loss)
            from (select {figures} from closed_months where {whole}
                  union all
                  select {figures} from closed_days where {parts}
                  union all
                  select symbol, strategy, side, exit_reason, 1, net > 0, net < 0, net, net_flows > 0,
                      iif(net > 0, net, 0), iif(net < 0, -net, 0), last_close_us - opened_us,
                      iif(net > 0, net, null), iif(net < 0, net, null)
                  from trade_totals where {edges})
            group by symbol, strategy, side, exit_reason"""
        rows = self._tuples(groups_sql, window)
        if any(value.__class__ is float for row in rows for value in row[4:]):
            return None  # a day summed in floats: beyond 64-bit integers
        units = codec.from_units
        groups = [
            TradeGroup(symbol, strategy, side, reason, count, wins, losses, units(net) if flowing else ZERO,
                       units(won) if wins else ZERO, units(lost) if losses else ZERO, timedelta(microseconds=spent),
                       None if best is None else units(best), None if worst is None else units(worst))  # fmt: skip
            for symbol, strategy, side, reason, count, wins, losses, net, flowing, won, lost, spent, best, worst in rows
        ]
        outcomes_sql = (
            "select group_concat(outcome, '') from (select substr('0WL', 1 + (net > 0) + 2 * (net < 0), 1) as outcome "
            f"from trade_totals where {counted}{{0}} order by last_close, trade_id)"
        )
        (head,) = self.conn.execute(outcomes_sql.format(before), window).fetchone()
        (tail,) = self.conn.execute(outcomes_sql.format(after), window).fetchone()
        inside = self.conn.execute(f"select outcomes from closed_outcomes where {days} order by day", window)
        outcomes = "".join([head or "", *(text for (text,) in inside), tail or ""])
        start_us, end_us = _micros(since), _micros(until)
        covered = self._held_in_sql(portfolio, low, high, start_us, end_us)
        if covered is not None:
            return ClosedTotals(groups, outcomes), timedelta(microseconds=covered)
        # The union of the holding spans clipped to the range, as ``held_time`` adds it up: in order of
        # their starts, each adds what reaches beyond the furthest end before it.
        held = "portfolio_id = ?1 and opened_at <= ?3 and (last_close is null or last_close > ?2)"
        spans_sql = f"""
            select sum(iif(b <= reach, 0, b - max(a, reach))) from (
                select a, b, max(?4, coalesce(max(b) over (order by a, b rows between unbounded preceding
                                                             and 1 preceding), ?4)) as reach
                from (select max(opened_us, ?4) as a,
                             min(coalesce(iif(closed >= qty, last_close_us, null), ?5), ?5) as b
                      from trade_totals where {held}))"""
        (covered,) = self.conn.execute(spans_sql, [portfolio.id, low, high, start_us, end_us]).fetchone()
        return ClosedTotals(groups, outcomes), timedelta(microseconds=covered or 0)

    def _held_in_sql(self, portfolio: Portfolio, low: str, high: str, start: int, end: int) -> int | None:
        """How many microseconds of ``[start, end]`` a position was held (``held_time``): the union of
        the closed trades' spans (``migrations.m018_closed_spans``) up to the opening of the earliest
        trade still held (not closed in full, opened by ``high`` and not closed by ``low``), and all
        of the range from there on; None where a trade's last close is before its opening (then its
        span is added up as ``held_time`` does)."""
        if end <= start:
            return 0
        backwards = "select 1 from trade_totals where portfolio_id = ? and last_close_us < opened_us limit 1"
        if self.conn.execute(backwards, [portfolio.id]).fetchone() is not None:
            return None
        still_held = """
            select min(opened_us) from trade_totals where portfolio_id = ?1 and not (closed >= qty)
                and opened_at <= ?3 and (last_close is null or last_close > ?2)"""
        (opened,) = self.conn.execute(still_held, [portfolio.id, low, high]).fetchone()
        cut = end if opened is None else min(max(opened, start), end)
        closed = """
            select coalesce(sum(min(end_us, ?3) - max(start_us, ?2)), 0) from closed_spans
            where portfolio_id = ?1 and end_us > ?2 and start_us < ?3"""
        (covered,) = self.conn.execute(closed, [portfolio.id, start, cut]).fetchone()
        return covered + end - cut

    def _units_sql(self, portfolio: Portfolio) -> str:
        """SQL for a cash flow's ``amount`` in integer units (``codec.units_sql``)."""
        return codec.units_sql("amount")

    def trade_parts(self, portfolio: Portfolio, since: datetime, until: datetime, single: set[int]) -> list[TradePart]:
        """The flows booked in ``(since, until]`` by trades (fees, realized PnL, funding), summed per
        strategy, symbol and side in exact integer units (in Python's decimals when an amount is too
        large for them); the trades in ``single`` each on their own, with or without flows in the range."""
        try:
            found = self._parts_from_days(portfolio, since, until, single)
            parts = self._trade_parts(portfolio, since, until, single, in_sql=True) if found is None else found
        except (sqlite3.OperationalError, OverflowError) as exc:
            if not self._too_large(exc):
                raise
            parts = self._trade_parts(portfolio, since, until, single, in_sql=False)
        quiet = single - {part.trade_id for part in parts}
        if quiet:
            listed = ",".join(str(int(trade_id)) for trade_id in sorted(single))
            sql = f"select strategy, symbol, side, id from trades where portfolio_id = ? and id in ({listed})"
            for strategy, symbol, side, trade_id in self.conn.execute(sql, [portfolio.id]):
                if trade_id in quiet:
                    parts.append(TradePart(strategy, symbol, side, 1, ZERO, trade_id))
        return parts

    def _parts_from_days(
        self, portfolio: Portfolio, since: datetime, until: datetime, single: set[int]
    ) -> list[TradePart] | None:
        """``trade_parts`` from the flows summed per day and month (``migrations.m019_flow_days``): the
        flows of the range per strategy, symbol and side from its whole months and days and the flows
        of its partial days; its trades, those whose first flow is in the range and those whose first
        is before it with a flow in it; the trades in ``single`` then taken out of their groups. None
        when a total is not an exact integer (then fold the flows)."""
        if self._inexact_totals(portfolio):
            return None
        window, days, whole, parts = _covered(portfolio, since, until)
        # The partial days at the ends, each a range of its own (so that it is read from its index).
        ends = (
            ["{0} > :low and {0} <= :high"]
            if days == "0"
            else ["{0} > :low and {0} < :first", "{0} >= :last and {0} <= :high"]
        )
        edges = "".join(
            f"""
                union all
                select t.strategy is not null, coalesce(t.strategy, ''), t.symbol, t.side,
                    {codec.units_sql("f.amount")}, 0
                from live_cash_flows f join trades t on t.id = f.trade_id and t.portfolio_id = f.portfolio_id
                where f.portfolio_id = :id and {end.format("f.at")}
                union all
                select strategy is not null, coalesce(strategy, ''), symbol, side, 0, 1 from trade_totals
                where portfolio_id = :id and {end.format("first_flow_at")}"""
            for end in ends
        )
        figures = f"{FLOW_GROUP}, amount, first_flows"
        sql = f"""
            select {FLOW_GROUP}, sum(amount), sum(first_flows) from (
                select {figures} from flow_months where {whole}
                union all
                select {figures} from flow_days where {parts}{edges})
            group by {FLOW_GROUP}"""
        groups: dict[tuple[str | None, str, str], list] = {}
        for tagged, strategy, symbol, side, amount, first in self._tuples(sql, window):
            if amount.__class__ is not int:
                return None  # a sum beyond 64-bit integers
            groups[(strategy if tagged else None, symbol, side)] = [first, amount]
        # The trades whose first flow is before the range with a flow in it, found from the side of the
        # range start with fewer trades (the months' counts tell); a trade's flows through its own index.
        (before,) = self.conn.execute(
            "select coalesce(sum(first_flows), 0) from flow_months where portfolio_id = :id and month < :start",
            window,
        ).fetchone()
        (after,) = self.conn.execute(
            "select coalesce(sum(first_flows), 0) from flow_months where portfolio_id = :id and month >= :start",
            window,
        ).fetchone()
        side_of_start = "first_flow_at <= :low and +last_flow_at > :low" if before <= after \
            else "+first_flow_at <= :low and last_flow_at > :low"  # fmt: skip
        earlier = f"""
            select strategy, symbol, side, count(*) from trade_totals t
            where portfolio_id = :id and {side_of_start} and (last_flow_at <= :high or exists (
                select 1 from live_cash_flows f where f.portfolio_id = :id and f.trade_id = t.trade_id
                    and +f.at > :low and +f.at <= :high))
            group by strategy, symbol, side"""
        for strategy, symbol, side, count in self._tuples(earlier, window):
            groups.setdefault((strategy, symbol, side), [0, 0])[0] += count
        found = []
        if single:
            listed = ",".join(str(int(trade_id)) for trade_id in sorted(single))
            alone = f"""
                select t.id, t.strategy, t.symbol, t.side, count(f.id), sum({codec.units_sql("f.amount")})
                from trades t left join live_cash_flows f on f.portfolio_id = t.portfolio_id and f.trade_id = t.id
                    and +f.at > :low and +f.at <= :high
                where t.portfolio_id = :id and t.id in ({listed}) group by t.id"""
            for trade_id, strategy, symbol, side, flows, units in self._tuples(alone, window):
                if flows:
                    if units.__class__ is not int:
                        return None
                    entry = groups[(strategy, symbol, side)]
                    entry[0] -= 1
                    entry[1] -= units
                found.append(TradePart(strategy, symbol, side, 1, codec.from_units(units) if flows else ZERO, trade_id))
        grouped = [
            TradePart(strategy, symbol, side, count, codec.from_units(units), None)
            for (strategy, symbol, side), (count, units) in groups.items()
            if count
        ]
        return grouped + found

    def _parts_from_totals(
        self, portfolio: Portfolio, since: datetime, until: datetime, single: set[int]
    ) -> list[TradePart] | None:
        """``trade_parts`` from each trade's totals where all its flows are in the range, from its flows
        where only some are; None when a total is not an exact integer (then fold the flows)."""
        if self._inexact_totals(portfolio):
            return None
        listed = ",".join(str(int(trade_id)) for trade_id in sorted(single))
        window = [portfolio.id, codec.timestamp(since), codec.timestamp(until)]
        inside = "first_flow_at > ?2 and last_flow_at <= ?3"
        some = f"first_flow_at <= ?3 and last_flow_at > ?2 and not ({inside})"
        groups = f"group by t.strategy, t.symbol, t.side, case when t.trade_id in ({listed}) then t.trade_id end"
        whole = f"""
            select t.strategy, t.symbol, t.side, count(*), sum(t.net + t.funding), t.trade_id in ({listed}),
                max(t.trade_id)
            from trade_totals t where t.portfolio_id = ?1 and {inside} {groups}"""
        partly = f"""
            select t.strategy, t.symbol, t.side, count(*), sum(s.units), t.trade_id in ({listed}), max(t.trade_id)
            from (select trade_id, sum({self._units_sql(portfolio)}) as units from live_cash_flows
                  where portfolio_id = ?1 and at > ?2 and at <= ?3
                      and trade_id in (select trade_id from trade_totals where portfolio_id = ?1 and {some})
                  group by trade_id) s
            join trade_totals t on t.trade_id = s.trade_id {groups}"""
        parts: dict[tuple[str | None, str, str, int | None], list] = {}
        for sql in (whole, partly):
            for strategy, symbol, side, count, units, alone, trade_id in self._tuples(sql, window):
                key = (strategy, symbol, side, trade_id if alone else None)
                entry = parts.get(key)
                if entry is None:
                    parts[key] = [count, codec.from_units(units)]
                else:
                    entry[0] += count
                    entry[1] += codec.from_units(units)
        return [TradePart(*key[:3], count, flows, key[3]) for key, (count, flows) in parts.items()]

    def _inexact_totals(self, portfolio: Portfolio) -> bool:
        """Whether a trade's totals in ``trade_totals`` are not all exact integers (asked of its partial
        index of such rows)."""
        sql = f"select 1 from trade_totals where portfolio_id = ? and {INEXACT_TOTALS} limit 1"
        return self.conn.execute(sql, [portfolio.id]).fetchone() is not None

    def _trade_parts(
        self, portfolio: Portfolio, since: datetime, until: datetime, single: set[int], in_sql: bool
    ) -> list[TradePart]:
        listed = ",".join(str(int(trade_id)) for trade_id in sorted(single))
        inner, outer = (
            (f"sum({self._units_sql(portfolio)})", "sum(s.units)")
            if in_sql
            else ("group_concat(amount)", "group_concat(s.units)")
        )
        sql = f"""
            select t.strategy, t.symbol, t.side, count(*), {outer}, t.id in ({listed}) as alone,
                max(t.id) as trade_id
            from (select trade_id, {inner} as units from live_cash_flows
                  where portfolio_id = ? and trade_id is not null and at > ? and at <= ? group by trade_id) s
            join trades t on t.id = s.trade_id
            group by t.strategy, t.symbol, t.side, case when t.id in ({listed}) then t.id end"""
        total = codec.from_units if in_sql else _decimal_sum
        rows = self._tuples(sql, [portfolio.id, codec.timestamp(since), codec.timestamp(until)])
        return [
            TradePart(strategy, symbol, side, count, total(units), trade_id if alone else None)
            for strategy, symbol, side, count, units, alone, trade_id in rows
        ]

    def amounts_out_of_range(self, portfolio: Portfolio, limit: int = 5) -> list[str]:
        """The portfolio's records with an amount of 10 billion USDT or more (a mistyped price, say),
        described so that the trader can find them, with the record that voids them (a close's flows
        go with the close, an entry fee with its trade): such amounts are summed the slow exact way."""
        # The odd amounts' condition first, so that SQLite reads their partial index, not every flow.
        sql = f"""
            select f.id, f.kind, f.amount, f.at, f.trade_id,
                (select c.id from live_closes c where c.trade_id = f.trade_id and c.closed_at = f.at
                 order by c.id limit 1) as close_id
            from live_cash_flows f
            where f.portfolio_id = ? and {codec.ODD_AMOUNT_SQL} and length(ltrim(f.amount, '-')) > {codec.UNIT_DIGITS}
            order by f.at, f.id limit ?"""
        found = []
        for flow_id, kind, amount, at, trade_id, close_id in self.conn.execute(sql, [portfolio.id, limit]):
            if kind in (FlowKind.DEPOSIT, FlowKind.WITHDRAWAL):
                record: str | None = f"{kind}:{flow_id}"
            elif kind == FlowKind.FUNDING:
                record = None  # booked by check from the position: void the trade's records instead
            else:
                record = f"close:{close_id}" if close_id is not None else f"trade:{trade_id}"
            hint = f" (a mistake is undone by: portfolio void {record} --reason TEXT)" if record else ""
            found.append(
                f"cash flow {flow_id} ({kind}{f' of trade {trade_id}' if trade_id else ''}, {at[:16]} UTC) "
                f"is {amount} USDT{hint}"
            )
        return found

    def strategy_flows(
        self, portfolio: Portfolio, since: datetime, until: datetime
    ) -> list[tuple[str | None, FlowKind, datetime, Decimal]]:
        """Every flow a trade booked in ``(since, until]`` with its trade's strategy, oldest first."""
        sql = """
            select strategy, f.kind, at, amount from live_cash_flows f join trades on trades.id = trade_id
            where f.portfolio_id = ? and at > ? and at <= ? order by at, f.id"""
        rows = self.conn.execute(sql, [portfolio.id, codec.timestamp(since), codec.timestamp(until)])
        return [
            (strategy, FlowKind(kind), codec.moment(at), codec.decimal(amount)) for strategy, kind, at, amount in rows
        ]

    def trade_strategies(self, portfolio: Portfolio) -> dict[int, str | None]:
        rows = self.conn.execute("select id, strategy from live_trades where portfolio_id = ?", [portfolio.id])
        return dict(rows.fetchall())

    def rebalances(self, portfolio: Portfolio) -> list[RebalanceEvent]:
        rows = self._rows("select * from rebalances where portfolio_id = ? order by at, id", [portfolio.id])
        return [rowmap.rebalance(r) for r in rows]

    def traded(self, portfolio: Portfolio, since: datetime, until: datetime) -> bool:
        """Whether a trade was opened or closed in ``(since, until]``."""
        window = [portfolio.id, codec.timestamp(since), codec.timestamp(until)]
        sql = """
            select exists (select 1 from live_trades where portfolio_id = ?1 and opened_at > ?2 and opened_at <= ?3)
                or exists (select 1 from live_closes join trades on trades.id = trade_id
                           where portfolio_id = ?1 and closed_at > ?2 and closed_at <= ?3)"""
        return bool(self.conn.execute(sql, window).fetchone()[0])

    def records_version(self, portfolio: Portfolio) -> tuple[int | None, ...]:
        """Changes whenever the portfolio's records do: every trade, close, deposit, withdrawal, fee
        and funding books a cash flow, margin moves are margin changes, and a void takes records out
        (ids only ever grow)."""
        sql = """
            select (select max(id) from cash_flows where portfolio_id = ?1),
                   (select max(margin_changes.id) from margin_changes join trades on trades.id = trade_id
                    where portfolio_id = ?1),
                   (select max(id) from voids where portfolio_id = ?1)"""
        return tuple(self.conn.execute(sql, [portfolio.id]).fetchone())

    def last_booked_at(self, portfolio: Portfolio) -> datetime | None:
        """When the portfolio's latest cash flow was booked (every trade and close books one)."""
        (at,) = self.conn.execute("select max(at) from live_cash_flows where portfolio_id = ?", [portfolio.id]).fetchone()
        return None if at is None else codec.moment(at)

    def transfers(self, portfolio: Portfolio, since: datetime, until: datetime) -> list[CashFlow]:
        """Deposits and withdrawals booked in ``(since, until]``, oldest first."""
        sql = (
            "select * from live_cash_flows where portfolio_id = ? and kind in ('deposit', 'withdrawal') "
            "and at > ? and at <= ? order by at, id"
        )
        rows = self._rows(sql, [portfolio.id, codec.timestamp(since), codec.timestamp(until)])
        return [rowmap.cash_flow(r) for r in rows]

    def margin_changes(self, portfolio: Portfolio) -> list[MarginChange]:
        sql = (
            "select m.* from live_margin_changes m join trades on trades.id = m.trade_id "
            "where trades.portfolio_id = ? order by m.id"
        )
        return [
            MarginChange(
                r["id"],
                r["trade_id"],
                codec.moment(r["at"]),
                codec.decimal(r["amount"]),
                MarginMode(r["mode"]) if r["mode"] else None,
            )
            for r in self._rows(sql, [portfolio.id])
        ]

    def amendments(self, portfolio: Portfolio) -> list[Amendment]:
        sql = (
            "select a.* from live_amendments a join trades on trades.id = a.trade_id "
            "where trades.portfolio_id = ? order by a.at, a.id"
        )
        return [rowmap.amendment(r) for r in self._rows(sql, [portfolio.id])]

    def orders(self, portfolio: Portfolio) -> list[Order]:
        rows = self._rows("select * from orders where portfolio_id = ? order by id", [portfolio.id])
        return [rowmap.order(r) for r in rows]

    def order_ends(self, portfolio: Portfolio) -> list[OrderEnd]:
        sql = (
            "select order_ends.* from order_ends join orders on orders.id = order_ends.order_id "
            "where orders.portfolio_id = ? order by order_ends.id"
        )
        return [rowmap.order_end(r) for r in self._rows(sql, [portfolio.id])]

    def voids(self, portfolio: Portfolio) -> list[Void]:
        """The portfolio's voids, oldest first, each with the rows it took out of the fold."""
        rows = self._rows("select * from voids where portfolio_id = ? order by id", [portfolio.id])
        taken: dict[int, list[tuple[str, int]]] = {}
        sql = (
            "select v.void_id, v.tbl, v.row_id from voided_rows v join voids on voids.id = v.void_id "
            "where voids.portfolio_id = ? order by v.void_id, v.tbl, v.row_id"
        )
        names = {table: name for name, table in rowmap.VOIDED_TABLES.items()}
        for void_id, table, row_id in self.conn.execute(sql, [portfolio.id]):
            taken.setdefault(void_id, []).append((names[table], row_id))
        return [rowmap.void(r, tuple(taken.get(r["id"], ()))) for r in rows]

    def trade_totals(self, portfolio: Portfolio) -> dict[int, tuple[Any, ...]]:
        """The portfolio's rows of ``trade_totals`` as stored, by trade id: symbol, side, strategy,
        opened_at, opened_us, qty, closed, last_close, last_close_us, last_close_id, exit_reason, net,
        net_flows, funding, first_flow_at, last_flow_at (for `verify` to compare with the records)."""
        sql = """
            select trade_id, symbol, side, strategy, opened_at, opened_us, qty, closed, last_close, last_close_us,
                last_close_id, exit_reason, net, net_flows, funding, first_flow_at, last_flow_at
            from trade_totals where portfolio_id = ?"""
        return {row[0]: tuple(row[1:]) for row in self._tuples(sql, [portfolio.id])}

    def summaries_differing(self, portfolio: Portfolio) -> list[tuple[str, str]]:
        """What the ledger keeps for the report beside the trades' totals (the days' and months' closed
        trades, their outcomes, the closed spans, the flows per day and month: ``migrations.m017`` to
        ``m019``) and does not match the same figures summed again from the totals and the live flows,
        as (table, the first key that differs). A figure kept as a float (a sum beyond 64 bits, which
        the report refuses) is not compared; a sum too large to add up again leaves its table out."""
        pid = [portfolio.id]
        found: list[tuple[str, str]] = []
        counted = "portfolio_id = ? and last_close is not null and closed >= qty"

        def compare(table: str, stored: dict, fresh: dict, keep_zeros: bool = True) -> None:
            if not keep_zeros:
                stored = {k: v for k, v in stored.items() if any(v)}
                fresh = {k: v for k, v in fresh.items() if any(v)}
            for key in sorted(stored.keys() | fresh.keys(), key=repr):
                mine, again = stored.get(key), fresh.get(key)
                if mine is not None and again is not None and any(v.__class__ is float for v in mine):
                    mine, again = mine[:1], again[:1]  # summed in floats: only its count is compared
                if mine != again:
                    found.append((table, " ".join(str(part) for part in key)))
                    return

        def months_of(days: dict) -> dict:
            months: dict[tuple, list] = {}
            for (day, *group), figures in days.items():
                entry = months.get((day[:7], *group))
                if entry is None:
                    months[(day[:7], *group)] = list(figures)
                    continue
                for i, value in enumerate(figures):
                    if i >= len(figures) - 2 and len(figures) > 2:  # largest win and loss
                        pick = max if i == len(figures) - 2 else min
                        entry[i] = value if entry[i] is None else entry[i] if value is None else pick(entry[i], value)
                    elif value is None or entry[i] is None:
                        entry[i] = None
                    else:
                        entry[i] += value
            return {key: tuple(figures) for key, figures in months.items()}

        figures = "trades, wins, losses, net, flowing, won, lost, held_us, largest_win, largest_loss"
        try:
            days = {
                tuple(row[:5]): tuple(row[5:])
                for row in self.conn.execute(
                    f"""select substr(last_close, 1, 10), symbol, strategy, side, exit_reason, count(*), sum(net > 0),
                        sum(net < 0), sum(net), sum(net_flows > 0), sum(iif(net > 0, net, 0)),
                        sum(iif(net < 0, -net, 0)),
                        sum(last_close_us - opened_us), max(iif(net > 0, net, null)), min(iif(net < 0, net, null))
                        from trade_totals where {counted} group by 1, 2, 3, 4, 5""",
                    pid,
                )
            }
        except (sqlite3.OperationalError, OverflowError):
            days = None
        if days is not None:
            for table, period, fresh in (("closed_days", "day", days), ("closed_months", "month", months_of(days))):
                sql = f"select {period}, symbol, strategy, side, exit_reason, {figures} from {table} " \
                    "where portfolio_id = ?"  # fmt: skip
                compare(table, {tuple(r[:5]): tuple(r[5:]) for r in self.conn.execute(sql, pid)}, fresh)
        outcomes: dict[tuple, list] = {}
        sql = (
            "select substr(last_close, 1, 10), (net > 0) - (net < 0) from trade_totals "
            f"where {counted} order by last_close, trade_id"
        )
        for day, sign in self.conn.execute(sql, pid):
            outcomes.setdefault((day,), []).append("0WL"[sign] if sign is not None else "")
        kept = self.conn.execute("select day, outcomes from closed_outcomes where portfolio_id = ?", pid)
        fresh = {day: ("".join(marks),) for day, marks in outcomes.items() if "".join(marks)}
        compare("closed_outcomes", {(day,): (text,) for day, text in kept}, fresh)
        merged: list[list[int]] = []
        sql = (
            f"select opened_us, last_close_us from trade_totals where {counted} and last_close_us >= opened_us "
            "order by 1, 2"
        )
        for a, b in self.conn.execute(sql, pid):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        spans = self.conn.execute(
            "select start_us, end_us from closed_spans where portfolio_id = ? order by start_us", pid
        )
        compare("closed_spans", {(a,): (b,) for a, b in spans}, {(a,): (b,) for a, b in merged})
        try:
            flows = {
                tuple(row[:5]): tuple(row[5:])
                for row in self.conn.execute(
                    f"""select day, tagged, strategy, symbol, side, sum(amount), sum(first_flows) from (
                            select substr(f.at, 1, 10) as day, t.strategy is not null as tagged,
                                coalesce(t.strategy, '') as strategy, t.symbol as symbol, t.side as side,
                                {codec.units_sql("f.amount")} as amount, 0 as first_flows
                            from live_cash_flows f
                            join trades t on t.id = f.trade_id and t.portfolio_id = f.portfolio_id
                            where f.portfolio_id = ?1
                            union all
                            select substr(first_flow_at, 1, 10), strategy is not null, coalesce(strategy, ''),
                                symbol, side, 0, 1
                            from trade_totals where portfolio_id = ?1 and first_flow_at is not null)
                        group by 1, 2, 3, 4, 5""",
                    pid,
                )
            }
        except (sqlite3.OperationalError, OverflowError):
            flows = None
        if flows is not None:
            for table, period, fresh in (("flow_days", "day", flows), ("flow_months", "month", _flow_months(flows))):
                sql = f"select {period}, tagged, strategy, symbol, side, amount, first_flows from {table} " \
                    "where portfolio_id = ?"  # fmt: skip
                stored = {tuple(r[:5]): tuple(r[5:]) for r in self.conn.execute(sql, pid)}
                compare(table, stored, fresh, keep_zeros=False)
        return found

    def void_strays(self, portfolio: Portfolio) -> list[tuple[int, str, int]]:
        """The rows the portfolio's voids take out that are no record of it (void id, table, row id):
        none, unless the ledger was edited by hand."""
        owner = {
            "trades": "select portfolio_id from trades where id = v.row_id",
            "cash_flows": "select portfolio_id from cash_flows where id = v.row_id",
            "closes": "select t.portfolio_id from closes x join trades t on t.id = x.trade_id where x.id = v.row_id",
            "margin_changes": "select t.portfolio_id from margin_changes x join trades t on t.id = x.trade_id "
            "where x.id = v.row_id",
            "amendments": "select t.portfolio_id from amendments x join trades t on t.id = x.trade_id "
            "where x.id = v.row_id",
        }
        cases = " ".join(f"when '{table}' then ({sql})" for table, sql in owner.items())
        sql = f"""
            select v.void_id, v.tbl, v.row_id from voided_rows v join voids on voids.id = v.void_id
            where voids.portfolio_id = ?1 and (case v.tbl {cases} end) is not ?1 order by v.void_id, v.tbl, v.row_id"""
        return [tuple(row) for row in self.conn.execute(sql, [portfolio.id])]

    def void_of(self, portfolio: Portfolio, record: VoidKind, record_id: int) -> Void | None:
        """The void that took ``record`` ``record_id`` out of the portfolio's records, if one did."""
        rows = self._rows(
            "select * from voids where portfolio_id = ? and record = ? and record_id = ?",
            [portfolio.id, record.value, record_id],
        )
        return rowmap.void(rows[0], ()) if rows else None

    # checks

    def last_check(self, portfolio: Portfolio) -> datetime | None:
        """The check watermark: the latest check's ``through`` (a backdated record rewinds it)."""
        rows = self._rows("select through from checks where portfolio_id = ? order by id desc limit 1", [portfolio.id])
        return codec.moment(rows[0]["through"]) if rows else None

    # snapshots (derived state kept for history)

    def final_snapshot_days(self, portfolio: Portfolio) -> set[date]:
        """The days whose snapshot was valued at the day's end (00:00 UTC of the next day) or later,
        not provisionally during the day."""
        sql = "select day from snapshots where portfolio_id = ? and taken_at >= date(day, '+1 day') || 'T00:00:00'"
        return {date.fromisoformat(r["day"]) for r in self._rows(sql, [portfolio.id])}

    def snapshots(
        self,
        portfolio: Portfolio,
        since: date | None = None,
        until: date | None = None,
        positions: bool = False,
    ) -> list[Snapshot]:
        """The portfolio's snapshots with ``since <= day <= until``, oldest first; their positions
        only when asked for (history needs the totals alone)."""
        sql = "select * from snapshots where portfolio_id = ? and day >= ? and day <= ? order by day"
        low = since.isoformat() if since else ""
        high = until.isoformat() if until else "9999"
        rows = self._rows(sql, [portfolio.id, low, high])
        held: dict[int, list[SnapshotPosition]] = {}
        if positions and rows:
            sql = (
                "select snapshot_positions.* from snapshot_positions join snapshots on snapshots.id = snapshot_id "
                "where portfolio_id = ? and day >= ? and day <= ? order by snapshot_id, trade_id"
            )
            for r in self._rows(sql, [portfolio.id, low, high]):
                held.setdefault(r["snapshot_id"], []).append(rowmap.snapshot_position(r))
        return [rowmap.snapshot(r, tuple(held.get(r["id"], ()))) for r in rows]


def _covered(portfolio: Portfolio, since: datetime, until: datetime) -> tuple[dict[str, Any], str, str, str]:
    """The parameters of a range ``(since, until]`` (``:id``, ``:low``, ``:high`` …) and SQL for the
    rows of its days wholly inside it, ``first <= day < last`` ("0" when none), of its months wholly
    inside, ``months <= month < end``, and of its days outside those months."""
    low, high = codec.timestamp(since), codec.timestamp(until)
    first_day, last_day = date.fromisoformat(low[:10]) + timedelta(1), date.fromisoformat(high[:10])
    months = first_day if first_day.day == 1 else _next_month(first_day)
    end = last_day.replace(day=1)
    first, last = first_day.isoformat(), last_day.isoformat()
    window = {"id": portfolio.id, "low": low, "high": high, "first": first, "last": last, "start": low[:7],
              "months": months.isoformat()[:7], "end": end.isoformat()[:7]}  # fmt: skip
    days = "portfolio_id = :id and day >= :first and day < :last" if first < last else "0"
    if first < last and months < end:
        return window, days, "portfolio_id = :id and month >= :months and month < :end", \
            f"{days} and (day < :months or day >= :end)"  # fmt: skip
    return window, days, "0", days


def _flow_months(days: dict[tuple, tuple]) -> dict[tuple, tuple]:
    """The flows per month and group, from those per day (None where a sum is not exact)."""
    months: dict[tuple, list] = {}
    for (day, *group), (amount, first) in days.items():
        entry = months.setdefault((day[:7], *group), [0, 0])
        entry[0] = None if entry[0] is None or amount is None else entry[0] + amount
        entry[1] += first
    return {key: tuple(figures) for key, figures in months.items()}


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _decimal_sum(joined: str | None) -> Decimal:
    """The exact sum of money texts joined by commas (``group_concat``)."""
    return sum((Decimal(text) for text in joined.split(",")), ZERO) if joined else ZERO


_EPOCH, _MICRO = datetime(1970, 1, 1, tzinfo=UTC), timedelta(microseconds=1)


def _micros(moment: datetime) -> int:
    """Microseconds since 1970, as ``trade_totals`` keeps times."""
    return (moment - _EPOCH) // _MICRO
