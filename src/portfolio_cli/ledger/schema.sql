-- The ledger's schema as the migrations in migrations.py build it; a new ledger is created from
-- this script. Written by PORTFOLIO_WRITE_SCHEMA=1 python -m pytest tests/test_migrations.py.

-- table _sqlite_migrations
CREATE TABLE "_sqlite_migrations" (
   "id" INTEGER PRIMARY KEY,
   "migration_set" TEXT,
   "name" TEXT,
   "applied_at" TEXT
);

-- table portfolios
CREATE TABLE "portfolios" (
   "id" INTEGER PRIMARY KEY,
   "name" TEXT NOT NULL,
   "created_at" TEXT NOT NULL
) STRICT;

-- table trades
CREATE TABLE "trades" (
   "id" INTEGER PRIMARY KEY,
   "portfolio_id" INTEGER NOT NULL REFERENCES "portfolios"("id"),
   "symbol" TEXT NOT NULL,
   "side" TEXT NOT NULL,
   "kind" TEXT NOT NULL,
   "margin_mode" TEXT,
   "leverage" INTEGER NOT NULL,
   "qty" TEXT NOT NULL,
   "price" TEXT NOT NULL,
   "price_usdt" TEXT NOT NULL,
   "fee" TEXT NOT NULL,
   "opened_at" TEXT NOT NULL,
   "stop_loss" TEXT,
   "take_profit" TEXT,
   "strategy" TEXT,
   "note" TEXT,
   "forced" INTEGER NOT NULL
, "trailing_pct" TEXT) STRICT;

-- table cash_flows
CREATE TABLE "cash_flows" (
   "id" INTEGER PRIMARY KEY,
   "portfolio_id" INTEGER NOT NULL REFERENCES "portfolios"("id"),
   "kind" TEXT NOT NULL,
   "amount" TEXT NOT NULL,
   "at" TEXT NOT NULL,
   "trade_id" INTEGER REFERENCES "trades"("id"),
   "note" TEXT
) STRICT;

-- table closes
CREATE TABLE "closes" (
   "id" INTEGER PRIMARY KEY,
   "trade_id" INTEGER NOT NULL REFERENCES "trades"("id"),
   "qty" TEXT NOT NULL,
   "price" TEXT NOT NULL,
   "price_usdt" TEXT NOT NULL,
   "fee" TEXT NOT NULL,
   "realized_pnl" TEXT NOT NULL,
   "closed_at" TEXT NOT NULL,
   "note" TEXT
, "reason" TEXT NOT NULL DEFAULT 'manual') STRICT;

-- table quotes
CREATE TABLE "quotes" (
   "symbol" TEXT PRIMARY KEY,
   "price" TEXT NOT NULL,
   "at" TEXT NOT NULL,
   "fetched_at" TEXT NOT NULL,
   "source" TEXT NOT NULL
) STRICT;

-- table audit_log
CREATE TABLE "audit_log" (
   "id" INTEGER PRIMARY KEY,
   "at" TEXT NOT NULL,
   "command" TEXT NOT NULL,
   "action" TEXT NOT NULL,
   "portfolio_id" INTEGER,
   "details" TEXT NOT NULL
) STRICT;

-- table margin_changes
CREATE TABLE "margin_changes" (
   "id" INTEGER PRIMARY KEY,
   "trade_id" INTEGER NOT NULL REFERENCES "trades"("id"),
   "at" TEXT NOT NULL,
   "amount" TEXT NOT NULL,
   "mode" TEXT
) STRICT;

-- table candles
CREATE TABLE "candles" (
   "symbol" TEXT,
   "timeframe" TEXT,
   "open_time" TEXT,
   "open" TEXT NOT NULL,
   "high" TEXT NOT NULL,
   "low" TEXT NOT NULL,
   "close" TEXT NOT NULL,
   PRIMARY KEY ("symbol", "timeframe", "open_time")
) STRICT;

-- table checks
CREATE TABLE "checks" (
   "id" INTEGER PRIMARY KEY,
   "portfolio_id" INTEGER NOT NULL REFERENCES "portfolios"("id"),
   "through" TEXT NOT NULL,
   "ran_at" TEXT NOT NULL,
   "events" INTEGER NOT NULL
) STRICT;

-- table snapshots
CREATE TABLE "snapshots" (
   "id" INTEGER PRIMARY KEY,
   "portfolio_id" INTEGER NOT NULL REFERENCES "portfolios"("id"),
   "day" TEXT NOT NULL,
   "taken_at" TEXT NOT NULL,
   "written_at" TEXT NOT NULL,
   "backfilled" INTEGER NOT NULL,
   "equity" TEXT NOT NULL,
   "wallet_balance" TEXT NOT NULL,
   "free_margin" TEXT NOT NULL,
   "spot_holdings" TEXT NOT NULL,
   "margin_used" TEXT NOT NULL,
   "unrealized_pnl" TEXT NOT NULL,
   "realized_pnl" TEXT NOT NULL,
   "fees" TEXT NOT NULL,
   "liquidation_fees" TEXT NOT NULL,
   "funding" TEXT NOT NULL,
   "deposits" TEXT NOT NULL,
   "withdrawals" TEXT NOT NULL,
   "margin_level_pct" TEXT
) STRICT;

-- table snapshot_positions
CREATE TABLE "snapshot_positions" (
   "snapshot_id" INTEGER REFERENCES "snapshots"("id"),
   "trade_id" INTEGER REFERENCES "trades"("id"),
   "symbol" TEXT NOT NULL,
   "side" TEXT NOT NULL,
   "kind" TEXT NOT NULL,
   "qty" TEXT NOT NULL,
   "entry_usdt" TEXT NOT NULL,
   "mark" TEXT NOT NULL,
   "mark_usdt" TEXT NOT NULL,
   "value" TEXT NOT NULL,
   "unrealized_pnl" TEXT NOT NULL,
   "margin" TEXT NOT NULL,
   "price_at" TEXT NOT NULL,
   "price_source" TEXT NOT NULL,
   PRIMARY KEY ("snapshot_id", "trade_id")
) STRICT;

-- table rebalances
CREATE TABLE "rebalances" (
   "id" INTEGER PRIMARY KEY,
   "portfolio_id" INTEGER NOT NULL REFERENCES "portfolios"("id"),
   "at" TEXT NOT NULL,
   "strategy" TEXT NOT NULL,
   "mode" TEXT NOT NULL,
   "forced" INTEGER NOT NULL,
   "drift_before" TEXT NOT NULL,
   "drift_after" TEXT NOT NULL,
   "fees" TEXT NOT NULL,
   "before" TEXT,
   "after" TEXT,
   "trades" TEXT
) STRICT;

-- table notify_state
CREATE TABLE "notify_state" (
   "portfolio_id" INTEGER PRIMARY KEY REFERENCES "portfolios"("id"),
   "state" TEXT NOT NULL,
   "level_pct" TEXT,
   "sent_at" TEXT NOT NULL
) STRICT;

-- table notify_outbox
CREATE TABLE "notify_outbox" (
   "id" INTEGER PRIMARY KEY,
   "destination" TEXT NOT NULL,
   "scheme" TEXT NOT NULL,
   "created_at" TEXT NOT NULL,
   "command" TEXT NOT NULL,
   "title" TEXT NOT NULL,
   "body" TEXT NOT NULL,
   "attempts" INTEGER NOT NULL,
   "last_error" TEXT,
   "settled_at" TEXT
) STRICT;

-- table amendments
CREATE TABLE "amendments" (
   "id" INTEGER PRIMARY KEY,
   "trade_id" INTEGER NOT NULL REFERENCES "trades"("id"),
   "at" TEXT NOT NULL,
   "stop_loss" TEXT,
   "take_profit" TEXT,
   "trailing_pct" TEXT,
   "reference" TEXT,
   "removed" TEXT NOT NULL,
   "note" TEXT
) STRICT;

-- table orders
CREATE TABLE "orders" (
   "id" INTEGER PRIMARY KEY,
   "portfolio_id" INTEGER NOT NULL REFERENCES "portfolios"("id"),
   "symbol" TEXT NOT NULL,
   "side" TEXT NOT NULL,
   "kind" TEXT NOT NULL,
   "margin_mode" TEXT,
   "leverage" INTEGER NOT NULL,
   "order_type" TEXT NOT NULL,
   "price" TEXT NOT NULL,
   "qty" TEXT NOT NULL,
   "reserved" TEXT NOT NULL,
   "placed_at" TEXT NOT NULL,
   "expires_at" TEXT,
   "stop_loss" TEXT,
   "take_profit" TEXT,
   "trailing_pct" TEXT,
   "strategy" TEXT,
   "note" TEXT
) STRICT;

-- table order_ends
CREATE TABLE "order_ends" (
   "id" INTEGER PRIMARY KEY,
   "order_id" INTEGER NOT NULL REFERENCES "orders"("id"),
   "at" TEXT NOT NULL,
   "status" TEXT NOT NULL,
   "trade_id" INTEGER REFERENCES "trades"("id"),
   "reason" TEXT
) STRICT;

-- table voids
CREATE TABLE "voids" (
   "id" INTEGER PRIMARY KEY,
   "portfolio_id" INTEGER NOT NULL REFERENCES "portfolios"("id"),
   "at" TEXT NOT NULL,
   "record" TEXT NOT NULL,
   "record_id" INTEGER NOT NULL,
   "record_at" TEXT NOT NULL,
   "reason" TEXT NOT NULL,
   "summary" TEXT NOT NULL
) STRICT;

-- table voided_rows
CREATE TABLE "voided_rows" (
   "tbl" TEXT,
   "row_id" INTEGER,
   "void_id" INTEGER NOT NULL REFERENCES "voids"("id"),
   PRIMARY KEY ("tbl", "row_id")
) STRICT;

-- table trade_totals
CREATE TABLE trade_totals (
            trade_id integer primary key,
            portfolio_id integer not null,
            symbol text not null,
            side text not null,
            strategy text,
            opened_at text not null,
            opened_us integer,           -- opened_at in microseconds since 1970
            qty any,                     -- the trade's quantity, in 1e-8 units
            closed any,                  -- Σ its live closes' quantities, in 1e-8 units
            last_close text,             -- its latest live close: time, microseconds, id, reason
            last_close_us integer,
            last_close_id integer,
            exit_reason text,
            net any,                     -- Σ its live flows but funding (fees, realized PnL), 1e-8 units
            net_flows integer not null,  -- how many flows that is
            funding any,                 -- Σ its live funding flows, 1e-8 units
            first_flow_at text,          -- its earliest and latest live flow
            last_flow_at text
        ) strict;

-- table closed_days
CREATE TABLE closed_days (
            portfolio_id integer not null,
            day text not null,           -- the UTC day of the trades' last close, YYYY-MM-DD
            symbol text not null,
            strategy text,
            side text not null,
            exit_reason text,
            trades integer not null,
            wins any,                    -- net > 0
            losses any,                  -- net < 0
            net any,                     -- Σ net, 1e-8 units (as trade_totals)
            flowing any,                 -- how many of them booked a flow but funding
            won any,                     -- Σ net of the wins
            lost any,                    -- −Σ net of the losses
            held_us any,                 -- Σ (last close − opening), microseconds
            largest_win any,
            largest_loss any
        ) strict;

-- table closed_months
CREATE TABLE closed_months (
            portfolio_id integer not null,
            month text not null,         -- YYYY-MM: the sums of its days in closed_days
            symbol text not null,
            strategy text,
            side text not null,
            exit_reason text,
            trades integer not null,
            wins any,
            losses any,
            net any,
            flowing any,
            won any,
            lost any,
            held_us any,
            largest_win any,
            largest_loss any
        ) strict;

-- table closed_outcomes
CREATE TABLE closed_outcomes (
            portfolio_id integer not null,
            day text not null,
            outcomes text not null,      -- W, L or 0 per closed trade, in closing order
            primary key (portfolio_id, day)
        ) strict;

-- table closed_spans
CREATE TABLE closed_spans (
            portfolio_id integer not null,
            start_us integer not null,   -- microseconds since 1970
            end_us integer not null,
            primary key (portfolio_id, start_us)
        ) strict;

-- table closed_spans_redo
CREATE TABLE closed_spans_redo (portfolio_id integer, start_us integer, end_us integer) strict;

-- table flow_days
CREATE TABLE flow_days (
                portfolio_id integer not null,
                day text not null,
                tagged integer not null,     -- whether the trades have a strategy
                strategy text not null,      -- '' when not tagged
                symbol text not null,
                side text not null,
                amount any,                  -- Σ the live flows of its trades booked then, 1e-8 units
                first_flows any,             -- how many of its trades booked their first live flow then
                primary key (portfolio_id, day, tagged, strategy, symbol, side)
            ) strict;

-- table flow_months
CREATE TABLE flow_months (
                portfolio_id integer not null,
                month text not null,
                tagged integer not null,     -- whether the trades have a strategy
                strategy text not null,      -- '' when not tagged
                symbol text not null,
                side text not null,
                amount any,                  -- Σ the live flows of its trades booked then, 1e-8 units
                first_flows any,             -- how many of its trades booked their first live flow then
                primary key (portfolio_id, month, tagged, strategy, symbol, side)
            ) strict;

-- index idx__sqlite_migrations_migration_set_name
CREATE UNIQUE INDEX "idx__sqlite_migrations_migration_set_name"
    ON "_sqlite_migrations" ("migration_set", "name");

-- index idx_portfolios_name
CREATE UNIQUE INDEX "idx_portfolios_name"
    ON "portfolios" ("name");

-- index idx_cash_flows_portfolio_id
CREATE INDEX "idx_cash_flows_portfolio_id"
    ON "cash_flows" ("portfolio_id");

-- index idx_trades_portfolio_id_symbol
CREATE INDEX "idx_trades_portfolio_id_symbol"
    ON "trades" ("portfolio_id", "symbol");

-- index idx_closes_trade_id
CREATE INDEX "idx_closes_trade_id"
    ON "closes" ("trade_id");

-- index idx_margin_changes_trade_id
CREATE INDEX "idx_margin_changes_trade_id"
    ON "margin_changes" ("trade_id");

-- index idx_checks_portfolio_id_through
CREATE INDEX "idx_checks_portfolio_id_through"
    ON "checks" ("portfolio_id", "through");

-- index funding_once
CREATE UNIQUE INDEX funding_once on cash_flows (trade_id, at) where kind = 'funding';

-- index idx_snapshots_portfolio_id_day
CREATE UNIQUE INDEX "idx_snapshots_portfolio_id_day"
    ON "snapshots" ("portfolio_id", "day");

-- index idx_cash_flows_portfolio_id_trade_id_kind_at_amount
CREATE INDEX "idx_cash_flows_portfolio_id_trade_id_kind_at_amount"
    ON "cash_flows" ("portfolio_id", "trade_id", "kind", "at", "amount");

-- index idx_rebalances_portfolio_id_at
CREATE INDEX "idx_rebalances_portfolio_id_at"
    ON "rebalances" ("portfolio_id", "at");

-- index notify_pending
CREATE INDEX notify_pending on notify_outbox (id) where settled_at is null;

-- index idx_amendments_trade_id_at
CREATE UNIQUE INDEX "idx_amendments_trade_id_at"
    ON "amendments" ("trade_id", "at");

-- index idx_orders_portfolio_id
CREATE INDEX "idx_orders_portfolio_id"
    ON "orders" ("portfolio_id");

-- index idx_order_ends_order_id
CREATE UNIQUE INDEX "idx_order_ends_order_id"
    ON "order_ends" ("order_id");

-- index cash_flows_at
CREATE INDEX cash_flows_at on cash_flows (portfolio_id, at);

-- index cash_flows_transfers
CREATE INDEX cash_flows_transfers on cash_flows (portfolio_id, at) where kind in ('deposit', 'withdrawal');

-- index cash_flows_odd_amounts
CREATE INDEX cash_flows_odd_amounts on cash_flows (portfolio_id, at, id) where length(ltrim(amount, '-')) > 19 or instr(amount, 'E') > 0;

-- index closes_by_trade
CREATE INDEX closes_by_trade on closes (trade_id, closed_at, qty, reason);

-- index idx_voids_portfolio_id_at
CREATE INDEX "idx_voids_portfolio_id_at"
    ON "voids" ("portfolio_id", "at");

-- index trade_totals_inexact
CREATE INDEX trade_totals_inexact on trade_totals (portfolio_id) where not (typeof(qty) = 'integer' and typeof(closed) = 'integer' and typeof(net) = 'integer' and typeof(funding) = 'integer' and opened_us is not null and (last_close is null or last_close_us is not null));

-- index trade_totals_by_close
CREATE INDEX trade_totals_by_close on trade_totals (portfolio_id, last_close);

-- index closed_days_by_day
CREATE INDEX closed_days_by_day on closed_days (portfolio_id, day);

-- index closed_months_by_month
CREATE INDEX closed_months_by_month on closed_months (portfolio_id, month);

-- index closed_spans_by_end
CREATE INDEX closed_spans_by_end on closed_spans (portfolio_id, end_us);

-- index trade_totals_by_opening
CREATE INDEX trade_totals_by_opening on trade_totals (portfolio_id, opened_us);

-- index trade_totals_not_closed
CREATE INDEX trade_totals_not_closed on trade_totals (portfolio_id, opened_at) where not (closed >= qty);

-- index trade_totals_backwards
CREATE INDEX trade_totals_backwards on trade_totals (portfolio_id) where last_close_us < opened_us;

-- index trade_totals_by_first_flow
CREATE INDEX trade_totals_by_first_flow on trade_totals (portfolio_id, first_flow_at);

-- index trade_totals_by_last_flow
CREATE INDEX trade_totals_by_last_flow on trade_totals (portfolio_id, last_flow_at);

-- view live_trades
CREATE VIEW live_trades as select * from trades where id not in (select row_id from voided_rows where tbl = 'trades');

-- view live_closes
CREATE VIEW live_closes as select * from closes where id not in (select row_id from voided_rows where tbl = 'closes');

-- view live_cash_flows
CREATE VIEW live_cash_flows as select * from cash_flows where id not in (select row_id from voided_rows where tbl = 'cash_flows');

-- view live_margin_changes
CREATE VIEW live_margin_changes as select * from margin_changes where id not in (select row_id from voided_rows where tbl = 'margin_changes');

-- view live_amendments
CREATE VIEW live_amendments as select * from amendments where id not in (select row_id from voided_rows where tbl = 'amendments');

-- trigger trade_totals_open
CREATE TRIGGER trade_totals_open after insert on trades begin
            insert into trade_totals (trade_id, portfolio_id, symbol, side, strategy, opened_at, opened_us, qty,
                                      closed, net, net_flows, funding)
            values (new.id, new.portfolio_id, new.symbol, new.side, new.strategy, new.opened_at,
                    (case when substr(new.opened_at, -6) = '+00:00' and length(new.opened_at) in (25, 32) then cast(strftime('%s', substr(new.opened_at, 1, 19)) as integer) * 1000000 + iif(length(new.opened_at) = 32, cast(substr(new.opened_at, 21, 6) as integer), 0) end), (case when instr(new.qty, 'E') or instr(new.qty, 'e') then cast(round(new.qty * 100000000) as integer) when instr(new.qty, '.') = 0 then new.qty * 100000000 when length(new.qty) - instr(new.qty, '.') > 8 or instr(new.qty, '.') > 12 then 9e999 else cast(substr(new.qty, 1, instr(new.qty, '.') - 1) || substr(substr(new.qty, instr(new.qty, '.') + 1) || '00000000', 1, 8) as integer) end), 0, 0, 0, 0);
        end;

-- trigger trade_totals_close
CREATE TRIGGER trade_totals_close after insert on closes begin
            update trade_totals set
                closed = closed + (case when instr(new.qty, 'E') or instr(new.qty, 'e') then cast(round(new.qty * 100000000) as integer) when instr(new.qty, '.') = 0 then new.qty * 100000000 when length(new.qty) - instr(new.qty, '.') > 8 or instr(new.qty, '.') > 12 then 9e999 else cast(substr(new.qty, 1, instr(new.qty, '.') - 1) || substr(substr(new.qty, instr(new.qty, '.') + 1) || '00000000', 1, 8) as integer) end),
                last_close_us = iif((last_close is null or new.closed_at > last_close or (new.closed_at = last_close and new.id > last_close_id)), (case when substr(new.closed_at, -6) = '+00:00' and length(new.closed_at) in (25, 32) then cast(strftime('%s', substr(new.closed_at, 1, 19)) as integer) * 1000000 + iif(length(new.closed_at) = 32, cast(substr(new.closed_at, 21, 6) as integer), 0) end), last_close_us),
                exit_reason = iif((last_close is null or new.closed_at > last_close or (new.closed_at = last_close and new.id > last_close_id)), new.reason, exit_reason),
                last_close_id = iif((last_close is null or new.closed_at > last_close or (new.closed_at = last_close and new.id > last_close_id)), new.id, last_close_id),
                last_close = iif((last_close is null or new.closed_at > last_close or (new.closed_at = last_close and new.id > last_close_id)), new.closed_at, last_close)
            where trade_id = new.trade_id;
        end;

-- trigger trade_totals_flow
CREATE TRIGGER trade_totals_flow after insert on cash_flows when new.trade_id is not null begin
            update trade_totals set
                net = net + iif(new.kind = 'funding', 0, (case when instr(new.amount, 'E') or instr(new.amount, 'e') then cast(round(new.amount * 100000000) as integer) when instr(new.amount, '.') = 0 then new.amount * 100000000 when length(new.amount) - instr(new.amount, '.') > 8 or instr(new.amount, '.') > 12 then 9e999 else cast(substr(new.amount, 1, instr(new.amount, '.') - 1) || substr(substr(new.amount, instr(new.amount, '.') + 1) || '00000000', 1, 8) as integer) end)),
                net_flows = net_flows + (new.kind != 'funding'),
                funding = funding + iif(new.kind = 'funding', (case when instr(new.amount, 'E') or instr(new.amount, 'e') then cast(round(new.amount * 100000000) as integer) when instr(new.amount, '.') = 0 then new.amount * 100000000 when length(new.amount) - instr(new.amount, '.') > 8 or instr(new.amount, '.') > 12 then 9e999 else cast(substr(new.amount, 1, instr(new.amount, '.') - 1) || substr(substr(new.amount, instr(new.amount, '.') + 1) || '00000000', 1, 8) as integer) end), 0),
                first_flow_at = iif(first_flow_at is null or new.at < first_flow_at, new.at, first_flow_at),
                last_flow_at = iif(last_flow_at is null or new.at > last_flow_at, new.at, last_flow_at)
            where trade_id = new.trade_id and portfolio_id = new.portfolio_id;
        end;

-- trigger trade_totals_void
CREATE TRIGGER trade_totals_void after insert on voided_rows begin
            delete from trade_totals where new.tbl = 'trades' and trade_id = new.row_id;
            update trade_totals set
                closed = closed - (select (case when instr(qty, 'E') or instr(qty, 'e') then cast(round(qty * 100000000) as integer) when instr(qty, '.') = 0 then qty * 100000000 when length(qty) - instr(qty, '.') > 8 or instr(qty, '.') > 12 then 9e999 else cast(substr(qty, 1, instr(qty, '.') - 1) || substr(substr(qty, instr(qty, '.') + 1) || '00000000', 1, 8) as integer) end) from closes where id = new.row_id),
                (last_close, last_close_us, last_close_id, exit_reason) = (
                    select closed_at, (case when substr(closed_at, -6) = '+00:00' and length(closed_at) in (25, 32) then cast(strftime('%s', substr(closed_at, 1, 19)) as integer) * 1000000 + iif(length(closed_at) = 32, cast(substr(closed_at, 21, 6) as integer), 0) end), id, reason from live_closes
                    where trade_id = trade_totals.trade_id order by closed_at desc, id desc limit 1)
            where new.tbl = 'closes' and trade_id = (select trade_id from closes where id = new.row_id);
            update trade_totals set
                net = net - (select iif(kind = 'funding', 0, (case when instr(amount, 'E') or instr(amount, 'e') then cast(round(amount * 100000000) as integer) when instr(amount, '.') = 0 then amount * 100000000 when length(amount) - instr(amount, '.') > 8 or instr(amount, '.') > 12 then 9e999 else cast(substr(amount, 1, instr(amount, '.') - 1) || substr(substr(amount, instr(amount, '.') + 1) || '00000000', 1, 8) as integer) end)) from cash_flows where id = new.row_id),
                net_flows = net_flows - (select kind != 'funding' from cash_flows where id = new.row_id),
                funding = funding - (select iif(kind = 'funding', (case when instr(amount, 'E') or instr(amount, 'e') then cast(round(amount * 100000000) as integer) when instr(amount, '.') = 0 then amount * 100000000 when length(amount) - instr(amount, '.') > 8 or instr(amount, '.') > 12 then 9e999 else cast(substr(amount, 1, instr(amount, '.') - 1) || substr(substr(amount, instr(amount, '.') + 1) || '00000000', 1, 8) as integer) end), 0) from cash_flows where id = new.row_id),
                (first_flow_at, last_flow_at) = (
                    select min(at), max(at) from live_cash_flows
                    where portfolio_id = trade_totals.portfolio_id and trade_id = trade_totals.trade_id)
            where new.tbl = 'cash_flows'
                and (trade_id, portfolio_id) = (select trade_id, portfolio_id from cash_flows where id = new.row_id);
        end;

-- trigger trade_totals_trades_update
CREATE TRIGGER trade_totals_trades_update after update on trades begin
                    update trade_totals set net = null
                    where trade_id in (old.id, new.id);
                end;

-- trigger trade_totals_trades_delete
CREATE TRIGGER trade_totals_trades_delete after delete on trades begin
                    update trade_totals set net = null
                    where trade_id in (old.id);
                end;

-- trigger trade_totals_closes_update
CREATE TRIGGER trade_totals_closes_update after update on closes begin
                    update trade_totals set net = null
                    where trade_id in (old.trade_id, new.trade_id);
                end;

-- trigger trade_totals_closes_delete
CREATE TRIGGER trade_totals_closes_delete after delete on closes begin
                    update trade_totals set net = null
                    where trade_id in (old.trade_id);
                end;

-- trigger trade_totals_cash_flows_update
CREATE TRIGGER trade_totals_cash_flows_update after update on cash_flows begin
                    update trade_totals set net = null
                    where trade_id in (old.trade_id, new.trade_id);
                end;

-- trigger trade_totals_cash_flows_delete
CREATE TRIGGER trade_totals_cash_flows_delete after delete on cash_flows begin
                    update trade_totals set net = null
                    where trade_id in (old.trade_id);
                end;

-- trigger closed_spans_open
CREATE TRIGGER closed_spans_open after insert on trade_totals
            when iif(new.closed >= new.qty and new.last_close_us >= new.opened_us, new.opened_us, null) is not null begin
            insert or replace into closed_spans (portfolio_id, start_us, end_us)
            select * from (
                select new.portfolio_id, min(iif(new.closed >= new.qty and new.last_close_us >= new.opened_us, new.opened_us, null), coalesce(min(start_us), iif(new.closed >= new.qty and new.last_close_us >= new.opened_us, new.opened_us, null))) as s,
                    max(iif(new.closed >= new.qty and new.last_close_us >= new.opened_us, new.last_close_us, null), coalesce(max(end_us), iif(new.closed >= new.qty and new.last_close_us >= new.opened_us, new.last_close_us, null))) from closed_spans where portfolio_id = new.portfolio_id and start_us <= iif(new.closed >= new.qty and new.last_close_us >= new.opened_us, new.last_close_us, null) and end_us >= iif(new.closed >= new.qty and new.last_close_us >= new.opened_us, new.opened_us, null) and 1)
            where s is not null; delete from closed_spans where portfolio_id = new.portfolio_id and start_us <= iif(new.closed >= new.qty and new.last_close_us >= new.opened_us, new.last_close_us, null) and end_us >= iif(new.closed >= new.qty and new.last_close_us >= new.opened_us, new.opened_us, null) and 1
            and start_us > (select min(start_us) from closed_spans where portfolio_id = new.portfolio_id and start_us <= iif(new.closed >= new.qty and new.last_close_us >= new.opened_us, new.last_close_us, null) and end_us >= iif(new.closed >= new.qty and new.last_close_us >= new.opened_us, new.opened_us, null));
        end;

-- trigger closed_spans_void
CREATE TRIGGER closed_spans_void after delete on trade_totals
            when iif(old.closed >= old.qty and old.last_close_us >= old.opened_us, old.opened_us, null) is not null begin
            insert into closed_spans_redo select portfolio_id, start_us, end_us from closed_spans
            where portfolio_id = old.portfolio_id and start_us <= iif(old.closed >= old.qty and old.last_close_us >= old.opened_us, old.opened_us, null) and end_us >= iif(old.closed >= old.qty and old.last_close_us >= old.opened_us, old.last_close_us, null) and 1; delete from closed_spans where (portfolio_id, start_us) in (select portfolio_id, start_us from closed_spans_redo); insert into closed_spans (portfolio_id, start_us, end_us) 
        select pid, min(a), max(b) from (
            select pid, a, b, sum(fresh) over (partition by pid order by a, b rows unbounded preceding) as island
            from (select pid, a, b, coalesce(a > max(b) over (partition by pid order by a, b
                                                          rows between unbounded preceding and 1 preceding), 0) as fresh
                  from (select t.portfolio_id as pid, t.opened_us as a, t.last_close_us as b from trade_totals t join closed_spans_redo r on t.portfolio_id = r.portfolio_id and t.opened_us >= r.start_us and t.last_close_us <= r.end_us and t.closed >= t.qty where t.last_close_us >= t.opened_us)))
        group by pid, island; delete from closed_spans_redo;
        end;

-- trigger closed_spans_change
CREATE TRIGGER closed_spans_change after update on trade_totals when ((iif(old.closed >= old.qty and old.last_close_us >= old.opened_us, old.opened_us, null) is not iif(new.closed >= new.qty and new.last_close_us >= new.opened_us, new.opened_us, null)) or (iif(old.closed >= old.qty and old.last_close_us >= old.opened_us, old.last_close_us, null) is not iif(new.closed >= new.qty and new.last_close_us >= new.opened_us, new.last_close_us, null)) or old.portfolio_id is not new.portfolio_id) begin
            insert into closed_spans_redo select portfolio_id, start_us, end_us from closed_spans
            where portfolio_id = old.portfolio_id and start_us <= iif(old.closed >= old.qty and old.last_close_us >= old.opened_us, old.opened_us, null) and end_us >= iif(old.closed >= old.qty and old.last_close_us >= old.opened_us, old.last_close_us, null) and 1; delete from closed_spans where (portfolio_id, start_us) in (select portfolio_id, start_us from closed_spans_redo); insert into closed_spans (portfolio_id, start_us, end_us) 
        select pid, min(a), max(b) from (
            select pid, a, b, sum(fresh) over (partition by pid order by a, b rows unbounded preceding) as island
            from (select pid, a, b, coalesce(a > max(b) over (partition by pid order by a, b
                                                          rows between unbounded preceding and 1 preceding), 0) as fresh
                  from (select t.portfolio_id as pid, t.opened_us as a, t.last_close_us as b from trade_totals t join closed_spans_redo r on t.portfolio_id = r.portfolio_id and t.opened_us >= r.start_us and t.last_close_us <= r.end_us and t.closed >= t.qty where t.last_close_us >= t.opened_us)))
        group by pid, island; delete from closed_spans_redo;
            insert or replace into closed_spans (portfolio_id, start_us, end_us)
            select * from (
                select new.portfolio_id, min(iif(new.closed >= new.qty and new.last_close_us >= new.opened_us, new.opened_us, null), coalesce(min(start_us), iif(new.closed >= new.qty and new.last_close_us >= new.opened_us, new.opened_us, null))) as s,
                    max(iif(new.closed >= new.qty and new.last_close_us >= new.opened_us, new.last_close_us, null), coalesce(max(end_us), iif(new.closed >= new.qty and new.last_close_us >= new.opened_us, new.last_close_us, null))) from closed_spans where portfolio_id = new.portfolio_id and start_us <= iif(new.closed >= new.qty and new.last_close_us >= new.opened_us, new.last_close_us, null) and end_us >= iif(new.closed >= new.qty and new.last_close_us >= new.opened_us, new.opened_us, null) and 1)
            where s is not null; delete from closed_spans where portfolio_id = new.portfolio_id and start_us <= iif(new.closed >= new.qty and new.last_close_us >= new.opened_us, new.last_close_us, null) and end_us >= iif(new.closed >= new.qty and new.last_close_us >= new.opened_us, new.opened_us, null) and 1
            and start_us > (select min(start_us) from closed_spans where portfolio_id = new.portfolio_id and start_us <= iif(new.closed >= new.qty and new.last_close_us >= new.opened_us, new.last_close_us, null) and end_us >= iif(new.closed >= new.qty and new.last_close_us >= new.opened_us, new.opened_us, null));
        end;

-- trigger flow_days_flow
CREATE TRIGGER flow_days_flow after insert on cash_flows when new.trade_id is not null begin
            insert into flow_days (portfolio_id, day, tagged, strategy, symbol, side, amount, first_flows)
            select new.portfolio_id, substr(new.at, 1, 10), t.strategy is not null, coalesce(t.strategy, ''), t.symbol,
                t.side, (case when instr(new.amount, 'E') or instr(new.amount, 'e') then cast(round(new.amount * 100000000) as integer) when instr(new.amount, '.') = 0 then new.amount * 100000000 when length(new.amount) - instr(new.amount, '.') > 8 or instr(new.amount, '.') > 12 then 9e999 else cast(substr(new.amount, 1, instr(new.amount, '.') - 1) || substr(substr(new.amount, instr(new.amount, '.') + 1) || '00000000', 1, 8) as integer) end), 0 from trades t where t.id = new.trade_id and t.portfolio_id = new.portfolio_id
            on conflict do update set amount = amount + excluded.amount,
                first_flows = first_flows + excluded.first_flows; insert into flow_months (portfolio_id, month, tagged, strategy, symbol, side, amount, first_flows)
            select new.portfolio_id, substr(new.at, 1, 7), t.strategy is not null, coalesce(t.strategy, ''), t.symbol,
                t.side, (case when instr(new.amount, 'E') or instr(new.amount, 'e') then cast(round(new.amount * 100000000) as integer) when instr(new.amount, '.') = 0 then new.amount * 100000000 when length(new.amount) - instr(new.amount, '.') > 8 or instr(new.amount, '.') > 12 then 9e999 else cast(substr(new.amount, 1, instr(new.amount, '.') - 1) || substr(substr(new.amount, instr(new.amount, '.') + 1) || '00000000', 1, 8) as integer) end), 0 from trades t where t.id = new.trade_id and t.portfolio_id = new.portfolio_id
            on conflict do update set amount = amount + excluded.amount,
                first_flows = first_flows + excluded.first_flows;
        end;

-- trigger flow_days_void
CREATE TRIGGER flow_days_void after insert on voided_rows when new.tbl = 'cash_flows' begin
            insert into flow_days (portfolio_id, day, tagged, strategy, symbol, side, amount, first_flows)
            select f.portfolio_id, substr(f.at, 1, 10), t.strategy is not null, coalesce(t.strategy, ''), t.symbol,
                t.side, -(case when instr(f.amount, 'E') or instr(f.amount, 'e') then cast(round(f.amount * 100000000) as integer) when instr(f.amount, '.') = 0 then f.amount * 100000000 when length(f.amount) - instr(f.amount, '.') > 8 or instr(f.amount, '.') > 12 then 9e999 else cast(substr(f.amount, 1, instr(f.amount, '.') - 1) || substr(substr(f.amount, instr(f.amount, '.') + 1) || '00000000', 1, 8) as integer) end), 0 from cash_flows f join trades t on t.id = f.trade_id and t.portfolio_id = f.portfolio_id where f.id = new.row_id
            on conflict do update set amount = amount + excluded.amount,
                first_flows = first_flows + excluded.first_flows; insert into flow_months (portfolio_id, month, tagged, strategy, symbol, side, amount, first_flows)
            select f.portfolio_id, substr(f.at, 1, 7), t.strategy is not null, coalesce(t.strategy, ''), t.symbol,
                t.side, -(case when instr(f.amount, 'E') or instr(f.amount, 'e') then cast(round(f.amount * 100000000) as integer) when instr(f.amount, '.') = 0 then f.amount * 100000000 when length(f.amount) - instr(f.amount, '.') > 8 or instr(f.amount, '.') > 12 then 9e999 else cast(substr(f.amount, 1, instr(f.amount, '.') - 1) || substr(substr(f.amount, instr(f.amount, '.') + 1) || '00000000', 1, 8) as integer) end), 0 from cash_flows f join trades t on t.id = f.trade_id and t.portfolio_id = f.portfolio_id where f.id = new.row_id
            on conflict do update set amount = amount + excluded.amount,
                first_flows = first_flows + excluded.first_flows;
        end;

-- trigger flow_days_first
CREATE TRIGGER flow_days_first after insert on trade_totals when new.first_flow_at is not null begin
            insert into flow_days (portfolio_id, day, tagged, strategy, symbol, side, amount, first_flows)
            select new.portfolio_id, substr(new.first_flow_at, 1, 10), new.strategy is not null, coalesce(new.strategy, ''), new.symbol,
                new.side, 0, 1 where new.first_flow_at is not null
            on conflict do update set amount = amount + excluded.amount,
                first_flows = first_flows + excluded.first_flows; insert into flow_months (portfolio_id, month, tagged, strategy, symbol, side, amount, first_flows)
            select new.portfolio_id, substr(new.first_flow_at, 1, 7), new.strategy is not null, coalesce(new.strategy, ''), new.symbol,
                new.side, 0, 1 where new.first_flow_at is not null
            on conflict do update set amount = amount + excluded.amount,
                first_flows = first_flows + excluded.first_flows;
        end;

-- trigger flow_days_gone
CREATE TRIGGER flow_days_gone after delete on trade_totals when old.first_flow_at is not null begin
            insert into flow_days (portfolio_id, day, tagged, strategy, symbol, side, amount, first_flows)
            select old.portfolio_id, substr(old.first_flow_at, 1, 10), old.strategy is not null, coalesce(old.strategy, ''), old.symbol,
                old.side, 0, -1 where old.first_flow_at is not null
            on conflict do update set amount = amount + excluded.amount,
                first_flows = first_flows + excluded.first_flows; insert into flow_months (portfolio_id, month, tagged, strategy, symbol, side, amount, first_flows)
            select old.portfolio_id, substr(old.first_flow_at, 1, 7), old.strategy is not null, coalesce(old.strategy, ''), old.symbol,
                old.side, 0, -1 where old.first_flow_at is not null
            on conflict do update set amount = amount + excluded.amount,
                first_flows = first_flows + excluded.first_flows;
        end;

-- trigger flow_days_first_moved
CREATE TRIGGER flow_days_first_moved after update on trade_totals
            when old.first_flow_at is not new.first_flow_at begin
            insert into flow_days (portfolio_id, day, tagged, strategy, symbol, side, amount, first_flows)
            select old.portfolio_id, substr(old.first_flow_at, 1, 10), old.strategy is not null, coalesce(old.strategy, ''), old.symbol,
                old.side, 0, -1 where old.first_flow_at is not null
            on conflict do update set amount = amount + excluded.amount,
                first_flows = first_flows + excluded.first_flows; insert into flow_months (portfolio_id, month, tagged, strategy, symbol, side, amount, first_flows)
            select old.portfolio_id, substr(old.first_flow_at, 1, 7), old.strategy is not null, coalesce(old.strategy, ''), old.symbol,
                old.side, 0, -1 where old.first_flow_at is not null
            on conflict do update set amount = amount + excluded.amount,
                first_flows = first_flows + excluded.first_flows;
            insert into flow_days (portfolio_id, day, tagged, strategy, symbol, side, amount, first_flows)
            select new.portfolio_id, substr(new.first_flow_at, 1, 10), new.strategy is not null, coalesce(new.strategy, ''), new.symbol,
                new.side, 0, 1 where new.first_flow_at is not null
            on conflict do update set amount = amount + excluded.amount,
                first_flows = first_flows + excluded.first_flows; insert into flow_months (portfolio_id, month, tagged, strategy, symbol, side, amount, first_flows)
            select new.portfolio_id, substr(new.first_flow_at, 1, 7), new.strategy is not null, coalesce(new.strategy, ''), new.symbol,
                new.side, 0, 1 where new.first_flow_at is not null
            on conflict do update set amount = amount + excluded.amount,
                first_flows = first_flows + excluded.first_flows;
        end;

-- trigger closed_days_open
CREATE TRIGGER closed_days_open after insert on trade_totals when new.last_close is not null and new.closed >= new.qty begin
            delete from closed_days where portfolio_id = new.portfolio_id and day = substr(new.last_close, 1, 10) and 1; delete from closed_outcomes where portfolio_id = new.portfolio_id and day = substr(new.last_close, 1, 10) and 1; insert into closed_days (portfolio_id, day, symbol, strategy, side, exit_reason, trades, wins, losses,
                net, flowing, won, lost, held_us, largest_win, largest_loss)
            select portfolio_id, substr(new.last_close, 1, 10), symbol, strategy, side, exit_reason, count(*), sum(net > 0), sum(net < 0),
                sum(iif(r.risky, net * 1.0, net)), sum(net_flows > 0), sum(iif(net > 0, iif(r.risky, net * 1.0, net), 0)),
                sum(iif(net < 0, iif(r.risky, -net * 1.0, -net), 0)), sum(iif(r.risky, (last_close_us - opened_us) * 1.0, (last_close_us - opened_us))),
                max(iif(net > 0, net, null)), min(iif(net < 0, net, null))
            from (select (select max(total(abs(net)), total(abs(last_close_us - opened_us))) >= 4e18 from trade_totals where portfolio_id = new.portfolio_id and last_close > substr(new.last_close, 1, 10) and last_close < substr(new.last_close, 1, 10) || 'U' and closed >= qty and 1) as risky) r, trade_totals
            where portfolio_id = new.portfolio_id and last_close > substr(new.last_close, 1, 10) and last_close < substr(new.last_close, 1, 10) || 'U' and closed >= qty
                and 1
            group by symbol, strategy, side, exit_reason; delete from closed_months where portfolio_id = new.portfolio_id and month = substr(substr(new.last_close, 1, 10), 1, 7) and 1; insert into closed_months (portfolio_id, month, symbol, strategy, side, exit_reason, trades, wins, losses,
                net, flowing, won, lost, held_us, largest_win, largest_loss)
            select portfolio_id, substr(substr(new.last_close, 1, 10), 1, 7), symbol, strategy, side, exit_reason, sum(trades), sum(wins),
                sum(losses), sum(iif(r.risky, net * 1.0, net)), sum(flowing), sum(iif(r.risky, won * 1.0, won)), sum(iif(r.risky, lost * 1.0, lost)),
                sum(iif(r.risky, held_us * 1.0, held_us)), max(largest_win), min(largest_loss)
            from (select (select max(total(abs(net)), total(abs(won)), total(abs(lost)), total(abs(held_us))) >= 4e18 from closed_days where portfolio_id = new.portfolio_id and day >= substr(substr(new.last_close, 1, 10), 1, 7) || '-01' and day <= substr(substr(new.last_close, 1, 10), 1, 7) || '-31') as risky) r, closed_days
            where portfolio_id = new.portfolio_id and day >= substr(substr(new.last_close, 1, 10), 1, 7) || '-01' and day <= substr(substr(new.last_close, 1, 10), 1, 7) || '-31' and 1
            group by symbol, strategy, side, exit_reason; insert into closed_outcomes (portfolio_id, day, outcomes)
            select new.portfolio_id, substr(new.last_close, 1, 10), outcomes from (
                select group_concat(outcome, '') as outcomes from (
                    select substr('0WL', 1 + (net > 0) + 2 * (net < 0), 1) as outcome from trade_totals where portfolio_id = new.portfolio_id and last_close > substr(new.last_close, 1, 10) and last_close < substr(new.last_close, 1, 10) || 'U' and closed >= qty and 1
                    order by last_close, trade_id))
            where outcomes is not null;
        end;

-- trigger closed_days_void
CREATE TRIGGER closed_days_void after delete on trade_totals when old.last_close is not null and old.closed >= old.qty begin
            delete from closed_days where portfolio_id = old.portfolio_id and day = substr(old.last_close, 1, 10) and 1; delete from closed_outcomes where portfolio_id = old.portfolio_id and day = substr(old.last_close, 1, 10) and 1; insert into closed_days (portfolio_id, day, symbol, strategy, side, exit_reason, trades, wins, losses,
                net, flowing, won, lost, held_us, largest_win, largest_loss)
            select portfolio_id, substr(old.last_close, 1, 10), symbol, strategy, side, exit_reason, count(*), sum(net > 0), sum(net < 0),
                sum(iif(r.risky, net * 1.0, net)), sum(net_flows > 0), sum(iif(net > 0, iif(r.risky, net * 1.0, net), 0)),
                sum(iif(net < 0, iif(r.risky, -net * 1.0, -net), 0)), sum(iif(r.risky, (last_close_us - opened_us) * 1.0, (last_close_us - opened_us))),
                max(iif(net > 0, net, null)), min(iif(net < 0, net, null))
            from (select (select max(total(abs(net)), total(abs(last_close_us - opened_us))) >= 4e18 from trade_totals where portfolio_id = old.portfolio_id and last_close > substr(old.last_close, 1, 10) and last_close < substr(old.last_close, 1, 10) || 'U' and closed >= qty and 1) as risky) r, trade_totals
            where portfolio_id = old.portfolio_id and last_close > substr(old.last_close, 1, 10) and last_close < substr(old.last_close, 1, 10) || 'U' and closed >= qty
                and 1
            group by symbol, strategy, side, exit_reason; delete from closed_months where portfolio_id = old.portfolio_id and month = substr(substr(old.last_close, 1, 10), 1, 7) and 1; insert into closed_months (portfolio_id, month, symbol, strategy, side, exit_reason, trades, wins, losses,
                net, flowing, won, lost, held_us, largest_win, largest_loss)
            select portfolio_id, substr(substr(old.last_close, 1, 10), 1, 7), symbol, strategy, side, exit_reason, sum(trades), sum(wins),
                sum(losses), sum(iif(r.risky, net * 1.0, net)), sum(flowing), sum(iif(r.risky, won * 1.0, won)), sum(iif(r.risky, lost * 1.0, lost)),
                sum(iif(r.risky, held_us * 1.0, held_us)), max(largest_win), min(largest_loss)
            from (select (select max(total(abs(net)), total(abs(won)), total(abs(lost)), total(abs(held_us))) >= 4e18 from closed_days where portfolio_id = old.portfolio_id and day >= substr(substr(old.last_close, 1, 10), 1, 7) || '-01' and day <= substr(substr(old.last_close, 1, 10), 1, 7) || '-31') as risky) r, closed_days
            where portfolio_id = old.portfolio_id and day >= substr(substr(old.last_close, 1, 10), 1, 7) || '-01' and day <= substr(substr(old.last_close, 1, 10), 1, 7) || '-31' and 1
            group by symbol, strategy, side, exit_reason; insert into closed_outcomes (portfolio_id, day, outcomes)
            select old.portfolio_id, substr(old.last_close, 1, 10), outcomes from (
                select group_concat(outcome, '') as outcomes from (
                    select substr('0WL', 1 + (net > 0) + 2 * (net < 0), 1) as outcome from trade_totals where portfolio_id = old.portfolio_id and last_close > substr(old.last_close, 1, 10) and last_close < substr(old.last_close, 1, 10) || 'U' and closed >= qty and 1
                    order by last_close, trade_id))
            where outcomes is not null;
        end;

-- trigger closed_days_change
CREATE TRIGGER closed_days_change after update on trade_totals
            when (old.last_close is not null and old.closed >= old.qty) or (new.last_close is not null and new.closed >= new.qty) begin
            delete from closed_days where portfolio_id = old.portfolio_id and day = substr(old.last_close, 1, 10) and 1; delete from closed_outcomes where portfolio_id = old.portfolio_id and day = substr(old.last_close, 1, 10) and 1; insert into closed_days (portfolio_id, day, symbol, strategy, side, exit_reason, trades, wins, losses,
                net, flowing, won, lost, held_us, largest_win, largest_loss)
            select portfolio_id, substr(old.last_close, 1, 10), symbol, strategy, side, exit_reason, count(*), sum(net > 0), sum(net < 0),
                sum(iif(r.risky, net * 1.0, net)), sum(net_flows > 0), sum(iif(net > 0, iif(r.risky, net * 1.0, net), 0)),
                sum(iif(net < 0, iif(r.risky, -net * 1.0, -net), 0)), sum(iif(r.risky, (last_close_us - opened_us) * 1.0, (last_close_us - opened_us))),
                max(iif(net > 0, net, null)), min(iif(net < 0, net, null))
            from (select (select max(total(abs(net)), total(abs(last_close_us - opened_us))) >= 4e18 from trade_totals where portfolio_id = old.portfolio_id and last_close > substr(old.last_close, 1, 10) and last_close < substr(old.last_close, 1, 10) || 'U' and closed >= qty and 1) as risky) r, trade_totals
            where portfolio_id = old.portfolio_id and last_close > substr(old.last_close, 1, 10) and last_close < substr(old.last_close, 1, 10) || 'U' and closed >= qty
                and 1
            group by symbol, strategy, side, exit_reason; delete from closed_months where portfolio_id = old.portfolio_id and month = substr(substr(old.last_close, 1, 10), 1, 7) and 1; insert into closed_months (portfolio_id, month, symbol, strategy, side, exit_reason, trades, wins, losses,
                net, flowing, won, lost, held_us, largest_win, largest_loss)
            select portfolio_id, substr(substr(old.last_close, 1, 10), 1, 7), symbol, strategy, side, exit_reason, sum(trades), sum(wins),
                sum(losses), sum(iif(r.risky, net * 1.0, net)), sum(flowing), sum(iif(r.risky, won * 1.0, won)), sum(iif(r.risky, lost * 1.0, lost)),
                sum(iif(r.risky, held_us * 1.0, held_us)), max(largest_win), min(largest_loss)
            from (select (select max(total(abs(net)), total(abs(won)), total(abs(lost)), total(abs(held_us))) >= 4e18 from closed_days where portfolio_id = old.portfolio_id and day >= substr(substr(old.last_close, 1, 10), 1, 7) || '-01' and day <= substr(substr(old.last_close, 1, 10), 1, 7) || '-31') as risky) r, closed_days
            where portfolio_id = old.portfolio_id and day >= substr(substr(old.last_close, 1, 10), 1, 7) || '-01' and day <= substr(substr(old.last_close, 1, 10), 1, 7) || '-31' and 1
            group by symbol, strategy, side, exit_reason; insert into closed_outcomes (portfolio_id, day, outcomes)
            select old.portfolio_id, substr(old.last_close, 1, 10), outcomes from (
                select group_concat(outcome, '') as outcomes from (
                    select substr('0WL', 1 + (net > 0) + 2 * (net < 0), 1) as outcome from trade_totals where portfolio_id = old.portfolio_id and last_close > substr(old.last_close, 1, 10) and last_close < substr(old.last_close, 1, 10) || 'U' and closed >= qty and 1
                    order by last_close, trade_id))
            where outcomes is not null;
            delete from closed_days where portfolio_id = new.portfolio_id and day = substr(new.last_close, 1, 10) and (new.portfolio_id is not old.portfolio_id or substr(new.last_close, 1, 10) is not substr(old.last_close, 1, 10)); delete from closed_outcomes where portfolio_id = new.portfolio_id and day = substr(new.last_close, 1, 10) and (new.portfolio_id is not old.portfolio_id or substr(new.last_close, 1, 10) is not substr(old.last_close, 1, 10)); insert into closed_days (portfolio_id, day, symbol, strategy, side, exit_reason, trades, wins, losses,
                net, flowing, won, lost, held_us, largest_win, largest_loss)
            select portfolio_id, substr(new.last_close, 1, 10), symbol, strategy, side, exit_reason, count(*), sum(net > 0), sum(net < 0),
                sum(iif(r.risky, net * 1.0, net)), sum(net_flows > 0), sum(iif(net > 0, iif(r.risky, net * 1.0, net), 0)),
                sum(iif(net < 0, iif(r.risky, -net * 1.0, -net), 0)), sum(iif(r.risky, (last_close_us - opened_us) * 1.0, (last_close_us - opened_us))),
                max(iif(net > 0, net, null)), min(iif(net < 0, net, null))
            from (select (select max(total(abs(net)), total(abs(last_close_us - opened_us))) >= 4e18 from trade_totals where portfolio_id = new.portfolio_id and last_close > substr(new.last_close, 1, 10) and last_close < substr(new.last_close, 1, 10) || 'U' and closed >= qty and (new.portfolio_id is not old.portfolio_id or substr(new.last_close, 1, 10) is not substr(old.last_close, 1, 10))) as risky) r, trade_totals
            where portfolio_id = new.portfolio_id and last_close > substr(new.last_close, 1, 10) and last_close < substr(new.last_close, 1, 10) || 'U' and closed >= qty
                and (new.portfolio_id is not old.portfolio_id or substr(new.last_close, 1, 10) is not substr(old.last_close, 1, 10))
            group by symbol, strategy, side, exit_reason; delete from closed_months where portfolio_id = new.portfolio_id and month = substr(substr(new.last_close, 1, 10), 1, 7) and (new.portfolio_id is not old.portfolio_id or substr(new.last_close, 1, 10) is not substr(old.last_close, 1, 10)); insert into closed_months (portfolio_id, month, symbol, strategy, side, exit_reason, trades, wins, losses,
                net, flowing, won, lost, held_us, largest_win, largest_loss)
            select portfolio_id, substr(substr(new.last_close, 1, 10), 1, 7), symbol, strategy, side, exit_reason, sum(trades), sum(wins),
                sum(losses), sum(iif(r.risky, net * 1.0, net)), sum(flowing), sum(iif(r.risky, won * 1.0, won)), sum(iif(r.risky, lost * 1.0, lost)),
                sum(iif(r.risky, held_us * 1.0, held_us)), max(largest_win), min(largest_loss)
            from (select (select max(total(abs(net)), total(abs(won)), total(abs(lost)), total(abs(held_us))) >= 4e18 from closed_days where portfolio_id = new.portfolio_id and day >= substr(substr(new.last_close, 1, 10), 1, 7) || '-01' and day <= substr(substr(new.last_close, 1, 10), 1, 7) || '-31') as risky) r, closed_days
            where portfolio_id = new.portfolio_id and day >= substr(substr(new.last_close, 1, 10), 1, 7) || '-01' and day <= substr(substr(new.last_close, 1, 10), 1, 7) || '-31' and (new.portfolio_id is not old.portfolio_id or substr(new.last_close, 1, 10) is not substr(old.last_close, 1, 10))
            group by symbol, strategy, side, exit_reason; insert into closed_outcomes (portfolio_id, day, outcomes)
            select new.portfolio_id, substr(new.last_close, 1, 10), outcomes from (
                select group_concat(outcome, '') as outcomes from (
                    select substr('0WL', 1 + (net > 0) + 2 * (net < 0), 1) as outcome from trade_totals where portfolio_id = new.portfolio_id and last_close > substr(new.last_close, 1, 10) and last_close < substr(new.last_close, 1, 10) || 'U' and closed >= qty and (new.portfolio_id is not old.portfolio_id or substr(new.last_close, 1, 10) is not substr(old.last_close, 1, 10))
                    order by last_close, trade_id))
            where outcomes is not null;
        end;

