"""portfolio-cli: paper-trade crypto on real Binance prices from an exact SQLite ledger."""

__version__ = "0.1.0"
