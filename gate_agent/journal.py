"""Logging to the systemd journal natively, with structured fields; stderr otherwise.

Under systemd (``$JOURNAL_STREAM`` names our stderr) each record goes to journald
as one datagram in its native protocol (``systemd.journal-fields(7)``, "Native
Journal Protocol"): ``KEY=value`` lines, and for a value holding a newline the key,
a newline, the value's length as 64-bit little-endian and the value. A record too
big for a datagram goes in a sealed memfd passed over the socket, as journald
expects. Fields such as GATE_ID and ENTRY_SEQ can then be searched:
``journalctl -u gate-agent GATE_ID=LGQ-012-N ENTRY_SEQ=17``. Stdlib only: the
central server uses it too.

A log call adds fields with ``extra=fields(ENTRY_SEQ=17, OUTCOME="allow")``; a handler
adds the same fields to every record (``tag(GATE_ID=…)``). Values are ours to choose:
no names or phone numbers go in, on the journal or on stderr.
"""

from __future__ import annotations

import array
import errno
import fcntl
import logging
import os
import re
import socket
import struct
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Literal, TextIO

JOURNAL_SOCKET = Path("/run/systemd/journal/socket")
JOURNAL_STREAM = "JOURNAL_STREAM"
#: The LogRecord attribute ``fields()`` fills.
FIELDS_ATTR = "journal_fields"
STDERR_FORMAT = "%(levelname)s %(name)s: %(message)s"
LogTarget = Literal["auto", "journal", "stderr"]

_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6}
_BAD_KEY_CHARS = re.compile(r"[^A-Z0-9_]")
_TOO_BIG = {errno.EMSGSIZE, errno.ENOBUFS}


def fields(**values: object) -> dict[str, dict[str, str]]:
    """``extra=`` for a log call: journal fields (upper-case names), None values left out."""
    return {FIELDS_ATTR: {k: str(v) for k, v in values.items() if v is not None}}


def field_name(key: str) -> str | None:
    """A valid journal field name for ``key`` (upper case, A-Z 0-9 _, no leading _), or None."""
    name = _BAD_KEY_CHARS.sub("_", key.upper()).lstrip("_")[:64]
    return name if name and not name[0].isdigit() else None


def encode(entry: Mapping[str, str]) -> bytes:
    """One journal entry in the native protocol."""
    out = bytearray()
    for key, value in entry.items():
        name = field_name(key)
        if name is None:
            continue
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += name.encode() + b"=" + data + b"\n"
    return bytes(out)


def priority(levelno: int) -> int:
    """The syslog priority of a logging level (DEBUG and below: 7)."""
    for level, value in sorted(_PRIORITY.items(), reverse=True):
        if levelno >= level:
            return value
    return 7


class JournalHandler(logging.Handler):
    """Sends records to journald; a record it cannot send goes to stderr instead."""

    def __init__(
        self,
        identifier: str,
        *,
        socket_path: Path = JOURNAL_SOCKET,
        defaults: Mapping[str, str] | None = None,
        fallback: TextIO | None = None,
    ) -> None:
        super().__init__()
        self.identifier = identifier
        self.socket_path = socket_path
        #: Fields every record carries (GATE_ID once the config is read).
        self.defaults: dict[str, str] = dict(defaults or {})
        self._fallback = fallback
        self._sock: socket.socket | None = None  # opened on the first record
        self.setFormatter(logging.Formatter("%(message)s"))

    def entry(self, record: logging.LogRecord) -> dict[str, str]:
        """The journal fields of a record."""
        entry = {
            "MESSAGE": self.format(record),
            "PRIORITY": str(priority(record.levelno)),
            "SYSLOG_IDENTIFIER": self.identifier,
            "CODE_FILE": record.pathname,
            "CODE_LINE": str(record.lineno),
            "CODE_FUNC": record.funcName,
            "LOGGER": record.name,
            "THREAD_NAME": str(record.threadName),
            **self.defaults,
        }
        extra = getattr(record, FIELDS_ATTR, None)
        if isinstance(extra, Mapping):
            entry.update({str(k): str(v) for k, v in extra.items()})
        return entry

    def emit(self, record: logging.LogRecord) -> None:
        """Send one record; to stderr when journald cannot take it."""
        try:
            self.send(encode(self.entry(record)))
        except OSError as exc:
            stream = self._fallback or sys.stderr
            try:
                text = logging.Formatter(STDERR_FORMAT).format(record)
                stream.write(f"{text} (journal: {exc.strerror or exc})\n")
                stream.flush()
            except Exception:  # noqa: BLE001 - logging must never raise
                self.handleError(record)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)

    def send(self, payload: bytes) -> None:
        """One datagram, or, too big for one, a sealed memfd passed with SCM_RIGHTS."""
        sock = self._sock  # emit() runs under the handler's lock
        if sock is None:
            sock = self._sock = socket.socket(
                socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
            )
        try:
            sock.sendto(payload, str(self.socket_path))
        except OSError as exc:
            if exc.errno not in _TOO_BIG:
                raise
            self._send_memfd(sock, payload)

    def _send_memfd(self, sock: socket.socket, payload: bytes) -> None:
        fd = os.memfd_create("journal-entry", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.write(fd, payload)  # a fresh memfd takes the whole buffer at once
            seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
            sock.sendmsg([], rights, 0, str(self.socket_path))
        finally:
            os.close(fd)

    def close(self) -> None:
        """Close the socket."""
        self.acquire()
        try:
            sock, self._sock = self._sock, None
        finally:
            self.release()
        if sock is not None:
            sock.close()
        super().close()


def journal_stream_connected(
    environ: Mapping[str, str] | None = None, stream: TextIO | None = None
) -> bool:
    """Whether stderr is the journal stream systemd connected (``$JOURNAL_STREAM`` dev:inode)."""
    value = (os.environ if environ is None else environ).get(JOURNAL_STREAM, "")
    device, _, inode = value.partition(":")
    try:
        info = os.fstat((stream or sys.stderr).fileno())
        return (info.st_dev, info.st_ino) == (int(device), int(inode))
    except (OSError, ValueError):
        return False


def configure_logging(
    level: int,
    *,
    identifier: str,
    target: LogTarget = "auto",
    environ: MutableMapping[str, str] | None = None,
    socket_path: Path = JOURNAL_SOCKET,
) -> logging.Handler:
    """Log at ``level`` to the journal (under systemd, or asked) or to stderr; the handler.

    Like ``logging.basicConfig`` it leaves a root logger that already has handlers alone.
    """
    journal = target == "journal" or (target == "auto" and journal_stream_connected(environ))
    handler: logging.Handler
    if journal:
        handler = JournalHandler(identifier, socket_path=socket_path)
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(STDERR_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
    return handler


def tag(**values: object) -> None:
    """Add fields to every record the journal handlers on the root logger send."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, JournalHandler):
            handler.defaults.update(fields(**values)[FIELDS_ATTR])
