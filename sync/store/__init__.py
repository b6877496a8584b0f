"""Central storage: SQLite by default (one file, nothing to set up)."""

from sync.store.sqlite import CentralStore, DirectoryRow, KeyRow, PassRow

__all__ = ["CentralStore", "DirectoryRow", "KeyRow", "PassRow"]
