"""Signing in to the admin page, and the guard on every admin route (real uvicorn, 127.0.0.1)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute

from sync import admins
from sync.server.admin_web import COOKIE
from sync.server.app import create_app
from tests.sync.admin_helpers import NAME, PASSWORD, Site, admin_site
from tests.sync.stream_helpers import ADMIN_TOKEN, TickingClock, centre

BEARER = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
#: Admin routes open without a session: signing in itself.
OPEN = {("POST", "/v1/admin/session")}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with admin_site(tmp_path / "central") as opened:
        yield opened


def sign_in(client: httpx.Client, password: str = PASSWORD, name: str = NAME) -> httpx.Response:
    return client.post("/v1/admin/session", json={"name": name, "password": password})


def test_a_password_is_hashed_with_scrypt_salted_and_its_parameters_kept() -> None:
    one, two = admins.hash_password("s3cret-enough"), admins.hash_password("s3cret-enough")
    assert one != two  # salted
    assert one.startswith(f"scrypt${admins.SCRYPT_N}${admins.SCRYPT_R}${admins.SCRYPT_P}$")
    assert admins.verify_password("s3cret-enough", one)
    assert not admins.verify_password("s3cret-enougH", one)
    cheap = admins.hash_password("s3cret-enough", n=2**10)
    assert cheap.startswith("scrypt$1024$") and admins.verify_password("s3cret-enough", cheap)
    assert not admins.verify_password("x", "md5$abc")
    assert not admins.verify_password("x", admins.DUMMY_HASH)


def test_sign_in_sets_a_strict_http_only_cookie_and_sign_out_ends_the_session(site: Site) -> None:
    with site.client() as client:
        reply = sign_in(client)
        assert reply.status_code == 200
        assert reply.json()["name"] == NAME
        cookie = reply.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain http on 127.0.0.1
        assert client.get("/v1/admin/gates").status_code == 200
        me = client.get("/v1/admin/session").json()
        assert me["name"] == NAME and me["csrf"] == reply.json()["csrf"]
        stolen = client.cookies[COOKIE]
        out = client.delete("/v1/admin/session", headers={"X-CSRF-Token": me["csrf"]})
        assert out.status_code == 200
    with site.client() as other:  # the old cookie opens nothing any more
        other.cookies.set(COOKIE, stolen)
        gone = other.get("/v1/admin/gates")
        assert gone.status_code == 401 and gone.json()["error"] == "session_expired"


def test_the_cookie_is_secure_when_served_over_https(site: Site) -> None:
    # Behind a TLS proxy on the same machine: uvicorn takes the scheme it forwards.
    with site.client() as client:
        reply = client.post(
            "/v1/admin/session",
            json={"name": NAME, "password": PASSWORD},
            headers={"X-Forwarded-Proto": "https"},
        )
        assert reply.status_code == 200
        assert "Secure" in reply.headers["set-cookie"]


def test_a_wrong_password_or_name_is_one_refusal(site: Site) -> None:
    with site.client() as client:
        for name, password in ((NAME, "wrong-password"), ("nobody", PASSWORD)):
            reply = sign_in(client, password, name)
            assert reply.status_code == 401
            assert reply.json()["error"] == "bad_credentials"
            assert "set-cookie" not in reply.headers
        bad = client.post("/v1/admin/session", json={"name": NAME})
        assert bad.status_code == 422 and bad.json()["error"] == "bad_input"


def test_repeated_wrong_passwords_lock_the_account_for_a_while(site: Site) -> None:
    policy = admins.Policy()
    with site.client() as client:
        for _ in range(policy.lock_after - 1):
            assert sign_in(client, "wrong-password").json()["error"] == "bad_credentials"
        locked = sign_in(client, "wrong-password")
        assert locked.status_code == 423 and locked.json()["error"] == "account_locked"
        # Locked: even the right password is refused, and says for how long.
        still = sign_in(client)
        assert still.status_code == 423
        assert 0 < int(still.headers["Retry-After"]) <= policy.lock_for.total_seconds() + 1
        site.clock.advance(seconds=policy.lock_for.total_seconds() + 1)
        assert sign_in(client).status_code == 200
        # A good sign-in starts the count again.
        assert sign_in(client, "wrong-password").json()["error"] == "bad_credentials"
        assert sign_in(client).status_code == 200


def test_sign_in_attempts_are_rate_limited_per_client(site: Site) -> None:
    per_minute = admins.Policy().attempts_per_minute
    with site.client() as client:
        codes = [sign_in(client, "wrong-password").json()["error"] for _ in range(per_minute + 1)]
    lock_after = admins.Policy().lock_after
    assert codes[: lock_after - 1] == ["bad_credentials"] * (lock_after - 1)
    assert set(codes[lock_after - 1 : per_minute]) == {"account_locked"}
    assert codes[-1] == "rate_limited"


def test_sessions_end_when_idle_at_their_absolute_end_and_when_disabled(site: Site) -> None:
    policy = admins.Policy()
    client, _ = site.signed_in()
    with closing(client):
        site.clock.advance(seconds=policy.idle.total_seconds() - 60)
        assert client.get("/v1/admin/gates").status_code == 200  # activity restarts idle
        site.clock.advance(seconds=policy.idle.total_seconds() - 60)
        assert client.get("/v1/admin/gates").status_code == 200
        site.clock.advance(seconds=policy.idle.total_seconds() + 1)
        assert client.get("/v1/admin/gates").json()["error"] == "session_expired"
    client, _ = site.signed_in()
    with closing(client):
        steps = int(policy.absolute / (policy.idle - timedelta(minutes=1))) + 1
        for _ in range(steps):
            site.clock.advance(seconds=(policy.idle - timedelta(minutes=1)).total_seconds())
            last = client.get("/v1/admin/gates")
        assert last.status_code == 401 and last.json()["error"] == "session_expired"
    client, _ = site.signed_in()
    with closing(client):
        site.centre.central.disable_admin(NAME, site.clock())
        assert client.get("/v1/admin/gates").status_code == 401
        disabled = sign_in(client)
        assert disabled.status_code == 403 and disabled.json()["error"] == "account_disabled"


def test_the_bearer_token_still_opens_the_admin_api_for_scripts(site: Site) -> None:
    with site.client() as client:
        assert client.get("/v1/admin/gates", headers=BEARER).status_code == 200
        made = client.post("/v1/admin/keys", headers=BEARER)  # no CSRF: not a browser
        assert made.status_code == 200
        wrong = client.get("/v1/admin/gates", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
        audit = client.get("/v1/admin/audit", headers=BEARER).json()["audit"]
        assert audit[0]["by"] == "admin-token" and audit[0]["action"] == "key.new"


def app_routes(tmp_path: Path) -> set[tuple[str, str]]:
    """Every (method, path) the app serves, read from the app itself: its routes, and its
    OpenAPI schema, which also lists the routes of included routers."""
    with centre(tmp_path / "routes") as opened:
        app = create_app(opened.streams, opened.issuer, ADMIN_TOKEN, TickingClock())
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, APIRoute):
            found |= {(method, route.path) for method in route.methods or ()}
        elif getattr(route, "path", None):
            found.add(("GET", str(getattr(route, "path", ""))))  # mounts: the page's assets
    for path, operations in app.openapi()["paths"].items():
        found |= {(method.upper(), path) for method in operations}
    return found


def test_nothing_but_the_page_itself_is_served_outside_the_guarded_prefix(
    tmp_path: Path,
) -> None:
    # The guard covers /v1/admin; the page's shell and assets carry no data. A data
    # route elsewhere (say /admin/export) would be unguarded: this test says so.
    paths = {path for _, path in app_routes(tmp_path)}
    assert {p for p in paths if p.startswith("/admin")} == {"/admin", "/admin/", "/admin/static"}
    # /healthz says only ok or failing; /metrics checks its own token (test_server_metrics).
    outside = {"/healthz", "/metrics"}
    assert outside <= paths
    assert all(p.startswith(("/v1/gates/", "/v1/admin", "/admin")) for p in paths - outside)


def admin_routes(tmp_path: Path) -> list[tuple[str, str]]:
    """Every (method, path) of the app under /v1/admin."""
    return sorted(r for r in app_routes(tmp_path) if r[1].startswith("/v1/admin"))


def concrete(path: str) -> str:
    # 16 hex digits fit every path parameter's pattern (pass ids, households, job ids).
    return re.sub(r"\{[^}]+\}", "0123456789abcdef", path)


def test_every_admin_route_refuses_anonymous_and_writes_without_csrf(
    site: Site, tmp_path: Path
) -> None:
    routes = admin_routes(tmp_path)
    assert len(routes) >= 30  # the table is read from the app: a new route is in it
    assert ("POST", "/v1/admin/visitors/{request_id}/approve") in routes  # included routers too
    client, csrf = site.signed_in()
    with site.client() as anonymous, closing(client):
        for method, path in routes:
            if (method, path) in OPEN:
                continue
            url = concrete(path)
            bare = anonymous.request(method, url, json={})
            assert bare.status_code == 401, (method, path, bare.text)
            assert bare.json()["error"] == "unauthorized", (method, path)
            if method in ("POST", "PUT", "PATCH", "DELETE"):
                for headers in ({}, {"X-CSRF-Token": "not-the-token"}):
                    forged = client.request(method, url, json={}, headers=headers)
                    assert forged.status_code == 403, (method, path, forged.text)
                    assert forged.json()["error"] == "bad_csrf"
            else:
                assert client.request(method, url).status_code not in (401, 403), (method, path)
        # The CSRF token of the page opens the writes (answers are the flows' own).
        assert client.post("/v1/admin/keys", headers={"X-CSRF-Token": csrf}).status_code == 200


def test_the_page_and_its_assets_are_served_and_the_page_names_only_its_own_files(
    site: Site,
) -> None:
    with site.client() as client:
        page = client.get("/admin/")
        assert page.status_code == 200
        assert "default-src 'self'" in page.headers["content-security-policy"]
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources
        for source in sources:
            assert not re.match(r"^[a-z]+:|^//", source), source  # nothing from elsewhere
            assert client.get(f"/admin/{source}").status_code == 200, source
        assert client.get("/admin", follow_redirects=False).status_code == 308
