"""Background jobs of the admin page (bulk issuing): started by a request, polled for progress.

A job runs in a thread of the server process; the page polls ``GET /v1/admin/jobs/{id}``
for ``done``/``total`` while it runs and for the result or the refusal when it ends.
Jobs live in the process that started them (a replica behind a load balancer answers
only for its own: keep admin traffic sticky, or use one replica for the page). The
work itself is safe to repeat: a bulk run skips who holds a pass already.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

#: Finished jobs kept for polling; the oldest are forgotten beyond this.
KEEP_FINISHED = 50

Progress = Callable[[int, int], None]
Work = Callable[[Progress], dict[str, Any]]
Refusal = Callable[[Exception], tuple[int, str, str] | None]


@dataclass
class Job:
    """One job's state, as the page polls it."""

    job_id: str
    kind: str
    by: str
    state: str = "running"  # running, done, failed
    done: int = 0
    total: int = 0
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    detail: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The job as the page reads it."""
        return {
            "job_id": self.job_id,
            "kind": self.kind,
            "by": self.by,
            "state": self.state,
            "done": self.done,
            "total": self.total,
            "result": self.result,
            "error": self.error,
            "detail": self.detail,
        }


class Jobs:
    """The jobs of this server process."""

    def __init__(self, refusal: Refusal) -> None:
        """``refusal`` turns an exception into (status, code, detail), None when unexpected."""
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._refusal = refusal

    def start(self, kind: str, by: str, work: Work) -> Job:
        """Run ``work`` in a thread of its own; the job to poll."""
        job = Job(secrets.token_hex(8), kind, by)
        with self._lock:
            self._forget_old()
            self._jobs[job.job_id] = job

        def progress(done: int, total: int) -> None:
            with self._lock:
                job.done, job.total = done, total

        def run() -> None:
            try:
                result = work(progress)
            except Exception as exc:
                known = self._refusal(exc)
                if known is None:
                    logger.exception("admin job %s (%s) failed", job.job_id, kind)
                with self._lock:
                    job.state = "failed"
                    job.error, job.detail = (
                        (known[1], known[2]) if known else ("internal", "the job failed")
                    )
                return
            with self._lock:
                job.result, job.state = result, "done"

        threading.Thread(target=run, name=f"admin-job-{job.job_id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> dict[str, Any] | None:
        """A job's state, or None when this process has no such job."""
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else job.as_json()

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.state != "running"]
        for job in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job.job_id]
