"""Pure accounting: Decimal in, frozen dataclasses out. No I/O, no imports from cli, ledger or prices."""
