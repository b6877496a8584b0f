#!/usr/bin/env bash
# The kiosk: the guard console full-screen on the Pi's own screen, in chromium under
# the cage Wayland compositor. Run by systemd/gate-kiosk.service on tty1:
#
#   kiosk.sh PYTHON CONFIG
#
# PYTHON is the gate's venv python (its config loader reads CONFIG, gate.toml, so the
# address follows [console] at every start); the script waits until the console
# answers (the browser would otherwise show an error page at boot), then becomes
# `cage -s -- chromium --kiosk … URL`. cage and chromium are found through PATH, so
# tests put recording ones first. Exit status 78 (EX_CONFIG): the console is off or
# the config unreadable, or cage or chromium is missing; the unit does not restart then.
# Exit status 75 (EX_TEMPFAIL): the console did not answer within
# GATE_KIOSK_WAIT_SECONDS (120 by default); systemd starts the kiosk again.
set -euo pipefail

[ $# = 2 ] || { echo "usage: kiosk.sh PYTHON CONFIG" >&2; exit 2; }
python=$1 config=$2

# One line, "host port", from the real config loader; "off" when the console is off.
address=$("$python" - "$config" <<'PY'
import sys
from pathlib import Path
from gate_agent.config import load_config
from gate_agent.errors import ConfigError
try:
    console = load_config(Path(sys.argv[1])).console
except ConfigError as exc:
    sys.exit(f"kiosk: {exc}")
if not console.enabled:
    print("off")
else:
    # The console listens on every address or on a given one: reach it where it listens.
    host = console.host if console.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    print(f"[{host}]" if ":" in host else host, console.port)
PY
) || { echo "kiosk: error: config: cannot read $config" >&2; exit 78; }
if [ "$address" = off ]; then
  echo "kiosk: error: console_off: [console] enabled = false in the config" >&2; exit 78
fi
host=${address% *} port=${address#* }
url="http://$host:$port/"

browser=$(command -v chromium || command -v chromium-browser || true)
compositor=$(command -v cage || true)
[ -n "$browser" ] || { echo "kiosk: error: no_browser: install chromium" >&2; exit 78; }
[ -n "$compositor" ] || { echo "kiosk: error: no_cage: install cage" >&2; exit 78; }

# Wait for the console to accept connections (bash's /dev/tcp: no curl needed).
tcp_host=${host#[}; tcp_host=${tcp_host%]}
waited=0
until (exec 3<>"/dev/tcp/$tcp_host/$port") 2>/dev/null; do
  if [ "$waited" = 0 ] && { : >/dev/tty; } 2>/dev/null; then
    echo "Waiting for the gate console at $url …" >/dev/tty  # on the Pi's screen
  fi
  if [ "$waited" -ge "${GATE_KIOSK_WAIT_SECONDS:-120}" ]; then
    echo "kiosk: error: console_down: nothing answers at $url" >&2; exit 75
  fi
  sleep 1; waited=$((waited + 1))
done

echo "kiosk: showing $url"
# Chromium's profile lives in the unit's StateDirectory ($HOME). No first-run pages,
# crash bubbles, translation offers or update checks on a screen nobody can click
# away; sound plays with no tap first (the console beeps on a refusal).
exec "$compositor" -s -- "$browser" \
  --kiosk --noerrdialogs --disable-infobars --no-first-run \
  --disable-session-crashed-bubble --disable-features=Translate \
  --disable-background-networking --disable-component-update --disable-sync \
  --check-for-update-interval=31536000 --password-store=basic \
  --autoplay-policy=no-user-gesture-required --ozone-platform=wayland \
  --user-data-dir="${HOME:-/var/lib/gate-kiosk}/chromium" \
  "$url"
