"""An admin site for tests: a central data folder, one admin account, the server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from sync import admins
from sync.server.app import create_app
from tests.sync.stream_helpers import ADMIN_TOKEN, NOW, Centre, TickingClock, centre, serving

NAME = "wang.fang"
PASSWORD = "correct-horse-battery"


@dataclass
class Site:
    """A running central server with one admin account."""

    centre: Centre
    url: str
    clock: TickingClock

    def client(self) -> httpx.Client:
        """A client of the site, not signed in."""
        return httpx.Client(base_url=self.url, timeout=30)

    def signed_in(self, name: str = NAME, password: str = PASSWORD) -> tuple[httpx.Client, str]:
        """A client with a session cookie, and the page's CSRF token."""
        client = self.client()
        reply = client.post("/v1/admin/session", json={"name": name, "password": password})
        assert reply.status_code == 200, reply.text
        return client, str(reply.json()["csrf"])


@contextmanager
def admin_site(
    data_dir: Path, dsn: str | None = None, clock: TickingClock | None = None
) -> Iterator[Site]:
    """The site over a fresh centre (SQLite in ``data_dir``, or PostgreSQL at ``dsn``)."""
    ticking = clock or TickingClock(NOW)
    with centre(data_dir, dsn) as opened:
        # Cheaper than the default cost (the parameters are in the hash): tests sign in often.
        opened.central.add_admin(NAME, admins.hash_password(PASSWORD, n=2**12), ticking())
        app = create_app(opened.streams, opened.issuer, ADMIN_TOKEN, ticking)
        with serving(app) as url:
            yield Site(opened, url, ticking)
