"""Central storage: SQLite by default (one file, nothing to set up)."""

from sync.store.sqlite import CentralStore, KeyRow, PassRow

__all__ = ["CentralStore", "KeyRow", "PassRow"]
