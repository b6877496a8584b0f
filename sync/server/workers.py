"""`gate-sync serve --workers N`: each uvicorn worker process builds the app itself.

uvicorn starts workers by importing an app factory; the command line that started
the server reaches them in ``GATE_SYNC_SERVE_ARGV``, so every worker opens the same
stores with the same options. SQLite serialises the workers' commits with its file
lock (each worker's batches still commit together); PostgreSQL takes them in
parallel.
"""

from __future__ import annotations

import json
import os
from typing import Any

from sync.cli import build_app
from sync.cli_serve import WORKER_ARGV


def app() -> Any:
    """The app for this worker process."""
    argv = json.loads(os.environ[WORKER_ARGV])
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise RuntimeError(f"{WORKER_ARGV} must be a JSON list of strings")
    return build_app(argv)
