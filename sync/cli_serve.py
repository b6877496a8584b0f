"""`gate-sync serve` and `gate-sync purge`: the central server's process, its
retention purge, and the tokens it reads."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gate_agent.service import Notifier
from sync import retention
from sync.errors import IssuerKeyError
from sync.issuer import CENTRE_KEY_FILE, Issuer
from sync.store import StreamStore

#: The environment variable carrying `serve`'s command line to its worker processes.
WORKER_ARGV = "GATE_SYNC_SERVE_ARGV"

OpenStreams = Callable[[argparse.Namespace], StreamStore]


#: Seconds an idle connection is kept open. Longer than a gate's lists poll (60 s), so a
#: gate's next request never meets the server closing its connection at the same moment
#: (uvicorn's default, 5 s, equals the upload poll: found by the 500-gate soak, a lists
#: poll answered by a dropped connection).
KEEP_ALIVE_S = 75


def register(
    commands: Any,
    dsn_option: Callable[[argparse.ArgumentParser], None],
    open_streams: OpenStreams,
) -> None:
    """Add `purge` and `serve` to the command parsers."""
    purge_ = commands.add_parser(
        "purge", help="blank personal data older than the retention period now (serve: hourly)"
    )
    purge_.add_argument(
        "--days",
        type=int,
        help=f"the period in days (env {retention.ENV_DAYS}, default {retention.DEFAULT_DAYS})",
    )
    purge_.add_argument("--dry-run", action="store_true", help="count only, change nothing")
    purge_.add_argument("--json", action="store_true", help="print the counts as JSON")
    dsn_option(purge_)
    purge_.set_defaults(handler=lambda args, issuer: _purge(args, issuer, open_streams))

    serve = commands.add_parser("serve", help="run the central sync server")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8600, help="port to listen on")
    serve.add_argument(
        "--admin-token-file",
        type=Path,
        required=True,
        help="file holding the admin bearer token (mode 0600, at least 16 characters)",
    )
    serve.add_argument(
        "--access-log", action="store_true", help="log every request (off: the sync log has them)"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes sharing the port (1); more use more cores",
    )
    serve.add_argument(
        "--retention-days",
        type=int,
        help="purge personal data older than this, at start and hourly; 0 keeps it"
        f" (env {retention.ENV_DAYS}, default {retention.DEFAULT_DAYS})",
    )
    serve.add_argument(
        "--metrics-token-file",
        type=Path,
        help="a token /metrics accepts besides the admin token, for Prometheus (mode 0600)",
    )
    serve.add_argument(
        "--stale-hours",
        type=float,
        default=24.0,
        help="/metrics counts a gate silent for this long as stale (24)",
    )
    dsn_option(serve)
    serve.set_defaults(handler=lambda args, issuer: _serve(args, issuer, open_streams))


def retention_days(given: int | None, *, keep_allowed: bool) -> int:
    """The retention period: the option, else the environment, else the default."""
    if given is None:
        text = os.environ.get(retention.ENV_DAYS, "").strip()
        try:
            given = int(text) if text else retention.DEFAULT_DAYS
        except ValueError:
            raise ValueError(f"{retention.ENV_DAYS} must be a whole number of days") from None
    return retention.check_days(given, keep_allowed=keep_allowed)


def _purge(args: argparse.Namespace, issuer: Issuer, open_streams: OpenStreams) -> int:
    days = retention_days(args.days, keep_allowed=False)
    with closing(open_streams(args)) as streams:
        done = retention.purge(
            streams, issuer.store, now=datetime.now(UTC), days=days,
            by=f"gate-sync purge ({_login()})", dry_run=args.dry_run,
        )  # fmt: skip
    if args.json:
        print(json.dumps(done.as_dict()))
        return 0
    verb = "would blank" if args.dry_run else "blanked"
    print(
        f"{verb} the personal data of {done.entries} entries and {done.visitor_requests}"
        f" visitor requests older than {days} days (before {done.before:%Y-%m-%d %H:%M} UTC)"
    )
    return 0


def _login() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "?"


@contextmanager
def _purging(args: argparse.Namespace, issuer: Issuer, open_streams: OpenStreams) -> Iterator[None]:
    """The retention purge thread for the life of the server (none when days is 0)."""
    days = retention_days(args.retention_days, keep_allowed=True)
    if days == 0:
        logging.getLogger(__name__).warning("retention purge off: personal data is kept")
        yield
        return
    with closing(open_streams(args)) as streams:
        purger = retention.Purger(streams, issuer.store, days=days)
        purger.start()
        try:
            yield
        finally:
            purger.stop()


def _serve(args: argparse.Namespace, issuer: Issuer, open_streams: OpenStreams) -> int:
    import uvicorn  # noqa: PLC0415 - only `serve` needs the server stack

    from sync.server.app import create_app  # noqa: PLC0415
    from sync.server.metrics import MULTIPROC_ENV  # noqa: PLC0415
    from sync.server.supervise import NotifyingServer, serve_watchdog  # noqa: PLC0415

    if not 1 <= args.workers <= 64:
        raise ValueError("--workers must be between 1 and 64")
    admin_token = read_admin_token(args.admin_token_file)
    if args.dsn and not (issuer.keys_dir / CENTRE_KEY_FILE).exists():
        # Over a shared database this may be one replica of several: a key of its own
        # would sign lists that every gate refuses. The key is made once, on purpose.
        raise IssuerKeyError(
            f"no centre key in {issuer.keys_dir}: copy keys/{CENTRE_KEY_FILE} from the machine"
            " that made it, or make it there first with `gate-sync --dsn ... keys centre`"
        )
    # Made before any worker starts, so workers never race to create it.
    issuer.centre_key()
    # Every batch is in the sync log already; a line per request would flood the
    # journal when hundreds of gates upload (--access-log turns it on).
    options: dict[str, Any] = {
        "host": args.host, "port": args.port, "log_level": "info",
        "access_log": args.access_log, "timeout_keep_alive": KEEP_ALIVE_S,
    }  # fmt: skip
    # Read before any worker starts, and taken out of the environment they inherit:
    # systemd hears the main process only (NotifyAccess=main).
    notifier = Notifier.from_environ(unset=True)
    status = (
        f"serving on {args.host}:{args.port}, {args.workers} worker(s),"
        f" store {'postgresql' if args.dsn else 'sqlite'}"
    )
    if args.workers > 1:
        # Each worker process builds the app again from the same command line (see
        # sync/server/workers.py): its own store connections, one shared socket. The
        # purge runs here, in the parent, once for them all.
        os.environ[WORKER_ARGV] = json.dumps(sys.argv[1:] if args.argv is None else args.argv)
        with (
            _purging(args, issuer, open_streams),
            tempfile.TemporaryDirectory(prefix="gate-sync-metrics-") as folder,
            serve_watchdog(notifier, args.host, args.port, lambda: status),
        ):
            # Each worker counts its own requests into files here; /metrics sums them all.
            # A fresh folder each start: counts left by an earlier run would be summed too.
            os.environ[MULTIPROC_ENV] = folder
            uvicorn.run("sync.server.workers:app", factory=True, workers=args.workers, **options)
        notifier.stopping()
        return 0
    with closing(open_streams(args)) as streams, _purging(args, issuer, open_streams):
        # uvicorn.run's own steps for one process, keeping the server at hand: the
        # watchdog must tell a shutdown on SIGTERM from a server that stopped answering.
        app = create_app(streams, issuer, admin_token, **metrics_options(args))
        server = NotifyingServer(uvicorn.Config(app, **options), notifier)
        with serve_watchdog(
            notifier, args.host, args.port, lambda: status, lambda: server.should_exit
        ):
            server.run()
    if not server.started:
        raise OSError(f"the server did not start on {args.host}:{args.port}")
    return 0


def metrics_options(args: argparse.Namespace) -> dict[str, Any]:
    """``create_app``'s metrics token and stale-gate horizon from the serve command line."""
    if not 0 < args.stale_hours <= 24 * 365:
        raise ValueError("--stale-hours must be above 0 and at most a year")
    token_file = args.metrics_token_file
    return {
        "metrics_token": None if token_file is None else read_admin_token(token_file),
        "stale_after": timedelta(hours=args.stale_hours),
    }


def read_admin_token(path: Path) -> str:
    """The admin token from its file, refused when others may read it or it is too short."""
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f"{path} is readable by others: chmod 600 it")
    token = path.read_text(encoding="utf-8").strip()
    if len(token) < 16 or not token.isprintable():
        raise ValueError(f"{path}: the admin token must be at least 16 printable characters")
    return token
