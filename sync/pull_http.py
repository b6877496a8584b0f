"""`gate-sync pull --server URL`: the same pull over the admin HTTP API, page by page.

Pages of JSON lines are fetched by the ingest cursor (``X-Next-After``) until the
cursor stops moving, so a pull that runs while gates upload never skips or repeats a
row; the rows are then written locally in any format, exactly as a local pull would.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from sync.errors import SyncError
from sync.pull import PullFilter

LOGS_PATH = "/v1/admin/logs"
PAGE_ROWS = 1000


class RemotePullError(SyncError):
    """The server refused the pull or could not be reached; ``code`` is stable."""

    def __init__(self, code: str, detail: str) -> None:
        """A failure with its stable code."""
        super().__init__(f"{detail} ({code})")
        self.code = code


def remote_rows(
    base_url: str,
    admin_token: str,
    wanted: PullFilter,
    progress: Callable[[int], None] | None = None,
    *,
    transport: httpx.BaseTransport | None = None,
    timeout_s: float = 60.0,
) -> Iterator[dict[str, Any]]:
    """The rows the server's pull keeps, in ingest order, fetched page by page."""
    params: dict[str, str | int] = {"format": "jsonl", "limit": PAGE_ROWS}
    if wanted.since is not None:
        params["since"] = wanted.since.isoformat()
    if wanted.until is not None:
        params["until"] = wanted.until.isoformat()
    if wanted.gate_id:
        params["gate"] = wanted.gate_id
    headers = {"Authorization": f"Bearer {admin_token}"}
    after, count = 0, 0
    with httpx.Client(base_url=base_url, transport=transport, timeout=timeout_s) as client:
        while True:
            try:
                reply = client.get(LOGS_PATH, params={**params, "after": after}, headers=headers)
            except httpx.HTTPError as exc:
                raise RemotePullError("unreachable", f"{base_url}: {exc}") from exc
            if reply.status_code != httpx.codes.OK:
                raise RemotePullError(_code(reply), f"{base_url} answered {reply.status_code}")
            for line in reply.text.splitlines():
                count += 1
                yield json.loads(line)
            try:
                following = int(reply.headers["X-Next-After"])
            except (KeyError, ValueError) as exc:
                raise RemotePullError("bad_reply", "no X-Next-After cursor in the reply") from exc
            if progress is not None:
                progress(count)
            if following <= after:
                return
            after = following


def _code(reply: httpx.Response) -> str:
    try:
        body = reply.json()
    except ValueError:
        return f"http_{reply.status_code}"
    code = body.get("error") if isinstance(body, dict) else None
    return code if isinstance(code, str) else f"http_{reply.status_code}"
