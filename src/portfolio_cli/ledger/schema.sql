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

