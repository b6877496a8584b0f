"""The gate's SQLite ledger: append-only entries, local lists, the single writer."""
