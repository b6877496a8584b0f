"""The gate's SQLite ledger: append-only entries, local lists, the single writer."""

from gate_agent.ledger.entries import Ledger
from gate_agent.ledger.items import DIRECTORY
from gate_agent.ledger.records import EntryDraft, StoredEntry
from gate_agent.ledger.state import LIST_NAMES, DirectoryStatus, GateState
from gate_agent.ledger.summary import DaySummary
from gate_agent.ledger.verify import LedgerReport, verify_ledger_file

__all__ = [
    "DIRECTORY",
    "LIST_NAMES",
    "DaySummary",
    "DirectoryStatus",
    "EntryDraft",
    "GateState",
    "Ledger",
    "LedgerReport",
    "StoredEntry",
    "verify_ledger_file",
]
