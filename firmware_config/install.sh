#!/usr/bin/env bash
# Install, upgrade, uninstall or report a gate station on a fresh Raspberry Pi OS
# (bookworm or later, 64-bit), or the central sync server (--role central) on Debian.
#
#   install.sh [--role gate|central] [--profile NAME] [--kiosk] [--root DIR]
#              [--prefix DIR] [--source DIR] install|upgrade|uninstall|status
#
# install    apt packages, groups, a no-login service user, the source copied to
#            PREFIX/src, a virtual environment at PREFIX/venv, the config (only when
#            absent: never overwritten), on a gate the config.txt lines (once, between
#            markers), i2c-dev loaded at boot and the udev rules, the units enabled and
#            started. Running it again changes nothing that is already right.
# upgrade    the same from a new source, then the services restarted; the ledger
#            (/var/lib/gate-agent), the config and the tokens are never touched.
# uninstall  units stopped, disabled and removed; PREFIX (source and venv), the udev
#            rules and the module list removed. KEPT: /etc/gate-agent or /etc/gate-sync
#            (config, tokens), /var/lib/... (the ledger, the central data), the service
#            users and groups (so kept files keep their owners), the config.txt lines.
# status     what is installed, one "key: value" a line; exit 0 installed, 3 not.
#
# --root DIR puts every path under DIR (a scratch root for tests or an image being
# built). apt-get, dpkg-query, groupadd, useradd, usermod, systemctl and udevadm are
# always found through PATH, so tests put recording shims first on PATH; with --root
# the user and group tools get "--root DIR". Errors end with exit status 2 (usage),
# 3 (not_installed), 4 (no_source), 5 (not_root) or 6 (failed), after a line
# "install.sh: error: CODE: message" on stderr.
# GATE_STATION_PIP_ARGS adds arguments to the pip install of the project (tests only).
set -euo pipefail
umask 022

ROLE=gate
ROLE_GIVEN=0
PROFILE=""
KIOSK=0
ROOT=/
PREFIX=/opt/gate-station
SOURCE=""
ACTION=""
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MARK_BEGIN="# >>> gate-station: firmware_config/install.sh manages these lines >>>"
MARK_END="# <<< gate-station <<<"
REBOOT_NEEDED=0

die() {  # die CODE STATUS MESSAGE
  echo "install.sh: error: $1: $3" >&2
  exit "$2"
}
say() { echo "install.sh: $*"; }

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
  die usage 2 "$1"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --role) ROLE=${2:-}; ROLE_GIVEN=1; shift 2 || usage "--role needs gate or central" ;;
    --profile) PROFILE=${2:-}; shift 2 || usage "--profile needs a name" ;;
    --kiosk) KIOSK=1; shift ;;
    --root) ROOT=${2:-}; shift 2 || usage "--root needs a directory" ;;
    --prefix) PREFIX=${2:-}; shift 2 || usage "--prefix needs a directory" ;;
    --source) SOURCE=${2:-}; shift 2 || usage "--source needs a directory" ;;
    -h|--help) usage "help asked for" ;;
    install|upgrade|uninstall|status)
      [ -z "$ACTION" ] || usage "one action only"; ACTION=$1; shift ;;
    *) usage "unknown argument: $1" ;;
  esac
done
[ -n "$ACTION" ] || usage "no action given"
case "$ROLE" in gate|central) ;; *) usage "--role is gate or central, not '$ROLE'" ;; esac
case "$PREFIX" in /*) ;; *) usage "--prefix must be absolute" ;; esac
[ "$ROLE" = gate ] || [ "$KIOSK" = 0 ] || usage "--kiosk goes with --role gate"
ROOT=$(cd "$ROOT" 2>/dev/null && pwd) || usage "--root: no such directory"
R=${ROOT%/}  # "" for the real root, so "$R/etc" is /etc
SOURCE=${SOURCE:-$(cd "$HERE/.." && pwd)}
# Past the first install, what is installed says the role and whether there is a kiosk.
if [ "$ACTION" != install ]; then
  if [ "$ROLE_GIVEN" = 0 ] && [ -e "$R/etc/systemd/system/gate-sync.service" ] \
    && [ ! -e "$R/etc/systemd/system/gate-agent.service" ]; then ROLE=central; fi
  if [ "$ROLE" = gate ] && [ -e "$R/etc/systemd/system/gate-kiosk.service" ]; then KIOSK=1; fi
fi

if [ "$ROLE" = gate ]; then
  USER_NAME=gate-agent; UNITS=(gate-agent.service); EXTRAS="gate"
  GROUPS_NEEDED=(gpio i2c video)
  [ "$KIOSK" = 0 ] || UNITS+=(gate-kiosk.service)
else
  USER_NAME=gate-sync; UNITS=(gate-sync.service); EXTRAS="central,postgres"
  GROUPS_NEEDED=()
fi
DATA_DIR=/var/lib/$USER_NAME
KIOSK_USER=gate-kiosk
KIOSK_GROUPS=(video render input)
UNIT_DIR=/etc/systemd/system
UDEV_RULES=/etc/udev/rules.d/99-gate-station.rules
MODULES_FILE=/etc/modules-load.d/gate-station.conf
STAMP=$PREFIX/venv/.gate-station-installed

# ---------------------------------------------------------------- helpers

user_tool() {  # user_tool COMMAND ARGS...: groupadd, useradd, usermod on $ROOT
  local tool=$1; shift
  if [ -n "$R" ]; then "$tool" --root "$ROOT" "$@"; else "$tool" "$@"; fi
}

have_group() { grep -q "^$1:" "$R/etc/group" 2>/dev/null; }
have_user() { grep -q "^$1:" "$R/etc/passwd" 2>/dev/null; }
group_id() { awk -F: -v n="$1" '$1 == n { print $3 }' "$R/etc/group"; }
user_id() { awk -F: -v n="$1" '$1 == n { print $3 }' "$R/etc/passwd"; }
in_group() {  # in_group USER GROUP: USER is a listed member of GROUP
  awk -F: -v g="$2" -v u="$1" '$1 == g { n = split($4, m, ","); for (i = 1; i <= n; i++) if (m[i] == u) f = 1 } END { exit !f }' "$R/etc/group"
}

# Ownership by number, read from $ROOT's own files, so a scratch root needs none of
# its names on the machine running the script.
own() {  # own GROUP PATH...: root:GROUP
  local gid; gid=$(group_id "$1"); shift
  [ -n "$gid" ] || die failed 6 "no group $1 in $R/etc/group"
  chown "0:$gid" "$@"
}

# Write a file only when its content differs, so a second run changes nothing.
# A secret the service reads, which it refuses when its group or others could read it
# (mode 0600): owned by the service user itself.
own_secret() {  # own_secret USER PATH
  local uid gid; uid=$(user_id "$1"); gid=$(group_id "$1")
  if [ -z "$uid" ] || [ -z "$gid" ]; then die failed 6 "no user $1 in $R/etc/passwd"; fi
  chown "$uid:$gid" "$2"
}

put() {  # put MODE DEST < content
  local mode=$1 dest=$2 tmp
  tmp=$(mktemp "$(dirname "$dest")/.gate-station.XXXXXX")
  cat > "$tmp"
  chmod "$mode" "$tmp"
  if [ -f "$dest" ] && cmp -s "$tmp" "$dest"; then
    rm -f "$tmp"; chmod "$mode" "$dest"; return 1
  fi
  mv -f "$tmp" "$dest"
  return 0
}

tree_hash() {  # a hash of every file's path and content under a directory
  (cd "$1" && find . -type f ! -name '.gate-station-*' -print0 | LC_ALL=C sort -z \
    | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

random_token() { head -c 32 /dev/urandom | base64 | tr -d '+/=\n' | cut -c1-32; }

# ---------------------------------------------------------------- install steps

apt_packages() {
  local wanted=(python3-venv libzbar0 i2c-tools) missing=() pkg
  [ "$ROLE" = gate ] || wanted=(python3-venv)
  [ "$KIOSK" = 0 ] || wanted+=(cage chromium fonts-noto-cjk)
  # A camera module is read through rpicam-vid (Raspberry Pi OS's own package).
  if [ "$ROLE" = gate ] && grep -q '^source = "rpicam:' "$SOURCE/firmware_config/profiles/$(chosen_profile).toml"; then
    wanted+=(rpicam-apps-lite)
  fi
  for pkg in "${wanted[@]}"; do
    # libzbar0 is libzbar0t64 on trixie-based images; either one will do.
    if [ "$pkg" = libzbar0 ] && installed libzbar0t64; then continue; fi
    if [ "$pkg" = rpicam-apps-lite ] && installed rpicam-apps; then continue; fi
    installed "$pkg" || missing+=("$pkg")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  say "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
}

installed() {
  # shellcheck disable=SC2016 # ${db:Status-Abbrev} is dpkg-query's, not the shell's
  [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null | cut -c1-2)" = ii ]
}

groups_and_users() {
  local g
  for g in "${GROUPS_NEEDED[@]}"; do
    have_group "$g" || { say "adding group $g"; user_tool groupadd --system "$g"; }
  done
  service_user "$USER_NAME" "$DATA_DIR" "${GROUPS_NEEDED[@]}"
  if [ "$KIOSK" = 1 ]; then
    for g in "${KIOSK_GROUPS[@]}"; do
      have_group "$g" || { say "adding group $g"; user_tool groupadd --system "$g"; }
    done
    service_user "$KIOSK_USER" "/var/lib/$KIOSK_USER" "${KIOSK_GROUPS[@]}"
  fi
}

service_user() {  # service_user NAME HOME GROUP...: a system user, no login, in GROUPs
  local name=$1 home=$2 g missing=(); shift 2
  if ! have_user "$name"; then
    say "adding system user $name"
    user_tool useradd --system --user-group --no-create-home --home-dir "$home" \
      --shell /usr/sbin/nologin --comment "gate station ($name)" "$name"
  fi
  for g in "$@"; do in_group "$name" "$g" || missing+=("$g"); done
  if [ ${#missing[@]} -gt 0 ]; then
    local joined; joined=$(IFS=,; echo "${missing[*]}")
    say "adding $name to groups $joined"
    user_tool usermod --append --groups "$joined" "$name"
  fi
}

source_and_venv() {  # copy the source, build the venv; both only when the source changed
  local src="$R$PREFIX/src" venv="$R$PREFIX/venv" stage hash
  mkdir -p "$R$PREFIX"
  stage=$(mktemp -d "$R$PREFIX/.src.XXXXXX")
  # Only what is needed to build and to read: no VCS, venvs, caches, build leftovers or
  # what runs write (benchmark and fuzz output, test screenshots: a tree whose tests are
  # running changes under tar, and a copy of them would change the source hash too).
  tar -C "$SOURCE" --exclude-vcs --exclude=./.venv --exclude='./*.egg-info' \
    --exclude=./build --exclude=./dist --exclude=./demo-data --exclude=./bench/out \
    --exclude=./fuzz/out --exclude=./test-artifacts \
    --exclude=__pycache__ --exclude=.pytest_cache --exclude=.mypy_cache \
    --exclude=.ruff_cache --exclude=.hypothesis --exclude=node_modules -cf - . \
    | tar -C "$stage" --no-same-owner --no-same-permissions -xf -  # root's, 0755/0644
  chmod 0755 "$stage"
  hash="$(tree_hash "$stage") $EXTRAS"
  if [ -f "$R$STAMP" ] && [ "$(cat "$R$STAMP")" = "$hash" ] && [ -d "$src" ]; then
    rm -rf "$stage"; return 0
  fi
  rm -rf "$src"; mv "$stage" "$src"
  # A venv whose python no longer runs (the OS moved to a newer Python) is made anew.
  if [ -e "$venv" ] && ! "$venv/bin/python" -c '' 2>/dev/null; then rm -rf "$venv"; fi
  if [ ! -x "$venv/bin/python" ]; then
    say "creating the virtual environment $PREFIX/venv"
    python3 -m venv "$venv"
  fi
  rm -f "$venv/.gate-station-installed"
  say "installing the project into $PREFIX/venv (pip; deps already there are kept)"
  "$venv/bin/python" -m pip uninstall -q -y gate-station >/dev/null 2>&1 || true
  # shellcheck disable=SC2086 # GATE_STATION_PIP_ARGS is a word list on purpose
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    ${GATE_STATION_PIP_ARGS:-} "${src}[$EXTRAS]"
  echo "$hash" > "$R$STAMP"
  RESTART_NEEDED=1
}

gate_config() {
  local conf="$R/etc/gate-agent/gate.toml" profile
  mkdir -p "$R/etc/gate-agent"; chmod 0750 "$R/etc/gate-agent"; own gate-agent "$R/etc/gate-agent"
  if [ ! -e "$conf" ]; then
    profile=$(chosen_profile)
    say "writing /etc/gate-agent/gate.toml from gate.example.toml and profile $profile: edit it"
    {
      sed -n '/^# One table per camera lane/q;p' "$SOURCE/firmware_config/gate.example.toml"
      echo "# Hardware: firmware_config/profiles/$profile.toml, chosen by install.sh."
      cat "$SOURCE/firmware_config/profiles/$profile.toml"
      echo
      sed -n '/^\[scanner\]/,/^$/p' "$SOURCE/firmware_config/gate.example.toml"
      sed -n '/^\[console\]/,$p' "$SOURCE/firmware_config/gate.example.toml"
    } | put 0640 "$conf" || true
    own gate-agent "$conf"
  fi
  if [ ! -e "$R/etc/gate-agent/admin.token" ]; then
    say "writing a new console admin token in /etc/gate-agent/admin.token"
    random_token | put 0600 "$R/etc/gate-agent/admin.token" || true
    own_secret gate-agent "$R/etc/gate-agent/admin.token"
  fi
}

central_config() {
  mkdir -p "$R/etc/gate-sync"; chmod 0750 "$R/etc/gate-sync"; own gate-sync "$R/etc/gate-sync"
  if [ ! -e "$R/etc/gate-sync/gate-sync.env" ]; then
    say "writing /etc/gate-sync/gate-sync.env: edit it"
    put 0640 "$R/etc/gate-sync/gate-sync.env" <<'EOF' || true
# Settings of gate-sync.service (systemd EnvironmentFile: NAME=value, no quotes needed).
# GATE_SYNC_DATA=/var/lib/gate-sync
# GATE_SYNC_HOST=0.0.0.0
# GATE_SYNC_PORT=8600
# GATE_SYNC_WORKERS=1
# With a DSN the data lives in PostgreSQL instead of SQLite under GATE_SYNC_DATA:
# GATE_SYNC_DSN=postgresql://gate_sync@localhost/gate_sync
# Days personal data is kept in the stored entries (0 keeps it):
# GATE_SYNC_RETENTION_DAYS=28
EOF
    own gate-sync "$R/etc/gate-sync/gate-sync.env"
  fi
  if [ ! -e "$R/etc/gate-sync/admin.token" ]; then
    say "writing a new admin token in /etc/gate-sync/admin.token"
    random_token | put 0600 "$R/etc/gate-sync/admin.token" || true
    own_secret gate-sync "$R/etc/gate-sync/admin.token"
  fi
}

chosen_profile() {  # --profile, or the one that fits the board's model, or the Pi 4's
  local model=""
  if [ -n "$PROFILE" ]; then echo "$PROFILE"; return; fi
  [ -r "$R/proc/device-tree/model" ] && model=$(tr -d '\0' < "$R/proc/device-tree/model")
  case "$model" in
    *"Pi 5"*) echo pi5-camera3-mlx90614 ;;
    *"Zero 2"*) echo pi-zero-2w ;;
    *) echo pi4-usb-mlx90614 ;;
  esac
}

firmware_lines() {  # the config.txt block between markers, replaced when it differs
  local boot fragment profile new
  if [ -f "$R/boot/firmware/config.txt" ]; then boot="$R/boot/firmware/config.txt"
  elif [ -f "$R/boot/config.txt" ]; then boot="$R/boot/config.txt"
  else say "no /boot/firmware/config.txt: not a Raspberry Pi image, firmware lines skipped"; return 0
  fi
  profile=$(chosen_profile)
  fragment="$SOURCE/firmware_config/profiles/$profile.config.txt"
  [ -f "$fragment" ] || fragment="$SOURCE/firmware_config/config.txt"
  new=$(mktemp)
  # Everything but our old block, then the block again at the end. [all] first: an
  # earlier [pi4] or [cm5] filter must not swallow our lines.
  awk -v b="$MARK_BEGIN" -v e="$MARK_END" '$0 == b { skip = 1 } !skip { print } $0 == e { skip = 0 }' \
    "$boot" > "$new"
  { echo "$MARK_BEGIN"; echo "[all]"; cat "$fragment"; echo "$MARK_END"; } >> "$new"
  if cmp -s "$new" "$boot"; then rm -f "$new"; return 0; fi
  say "writing the gate's lines into ${boot#"$R"} (profile $profile): reboot afterwards"
  cat "$new" > "$boot"; rm -f "$new"
  REBOOT_NEEDED=1
}

udev_and_modules() {
  mkdir -p "$R/etc/udev/rules.d" "$R/etc/modules-load.d"
  if put 0644 "$R$UDEV_RULES" < "$SOURCE/firmware_config/udev/99-gate-station.rules"; then
    say "udev rules in $UDEV_RULES"
    udevadm control --reload
    udevadm trigger --action=change --subsystem-match=i2c-dev --subsystem-match=gpio \
      --subsystem-match=video4linux --subsystem-match=media
  fi
  # /dev/i2c-1 appears only with i2c-dev loaded (raspi-config puts it in /etc/modules).
  if printf '# The MLX90614 is read through /dev/i2c-1.\ni2c-dev\n' | put 0644 "$R$MODULES_FILE"; then
    REBOOT_NEEDED=1
  fi
}

units() {  # copy the units, the prefix substituted; reload, enable, start
  local unit changed=0
  mkdir -p "$R$UNIT_DIR"
  for unit in "${UNITS[@]}"; do
    if sed "s|/opt/gate-station|$PREFIX|g" "$SOURCE/systemd/$unit" | put 0644 "$R$UNIT_DIR/$unit"; then
      say "unit $UNIT_DIR/$unit"; changed=1
    fi
  done
  if [ "$changed" = 1 ]; then systemctl daemon-reload; RESTART_NEEDED=1; fi
  # New code or units: the services already running restart onto them (try-restart
  # leaves stopped ones alone); then every unit is enabled and started (both no-ops
  # for a unit that already is).
  if [ "$RESTART_NEEDED" = 1 ]; then systemctl try-restart "${UNITS[@]}"; fi
  systemctl enable --now "${UNITS[@]}"
}

do_install() {
  RESTART_NEEDED=0
  apt_packages
  groups_and_users
  source_and_venv
  if [ "$ROLE" = gate ]; then
    gate_config; firmware_lines; udev_and_modules
  else
    central_config
  fi
  units
}

do_upgrade() {
  [ -x "$R$PREFIX/venv/bin/python" ] || die not_installed 3 "nothing installed at $PREFIX: use install"
  do_install
}

do_uninstall() {
  local unit all=(gate-agent.service gate-kiosk.service gate-sync.service)
  for unit in "${all[@]}"; do
    [ -e "$R$UNIT_DIR/$unit" ] || continue
    say "stopping and removing $unit"
    systemctl disable --now "$unit" || true
    rm -f "$R$UNIT_DIR/$unit"
  done
  systemctl daemon-reload
  if [ -e "$R$UDEV_RULES" ]; then rm -f "$R$UDEV_RULES"; udevadm control --reload; fi
  rm -f "$R$MODULES_FILE"
  rm -rf "$R$PREFIX"
  say "removed $PREFIX; kept /etc/gate-agent, /etc/gate-sync, /var/lib/gate-*, the users"
}

do_status() {
  local unit state=3
  echo "role: $ROLE"
  echo "prefix: $PREFIX"
  if [ -f "$R$STAMP" ]; then
    state=0; echo "installed: yes"
    echo "source: $(cut -d' ' -f1 "$R$STAMP")"
  else
    echo "installed: no"
  fi
  for unit in gate-agent.service gate-kiosk.service gate-sync.service; do
    [ -e "$R$UNIT_DIR/$unit" ] || continue
    echo "$unit: $(systemctl is-enabled "$unit" 2>/dev/null || true) $(systemctl is-active "$unit" 2>/dev/null || true)"
  done
  for f in /etc/gate-agent/gate.toml /etc/gate-sync/gate-sync.env "$DATA_DIR"; do
    [ -e "$R$f" ] && echo "kept: $f"
  done
  return "$state"
}

if [ "$ACTION" != status ] && [ "$(id -u)" != 0 ]; then
  die not_root 5 "run as root (sudo $0 ...)"
fi
case "$ACTION" in install|upgrade)
  if [ ! -f "$SOURCE/pyproject.toml" ] || [ ! -f "$SOURCE/firmware_config/install.sh" ]; then
    die no_source 4 "$SOURCE is not a gate-station source tree"
  fi
  if [ -n "$PROFILE" ] && [ ! -f "$SOURCE/firmware_config/profiles/$PROFILE.toml" ]; then
    usage "no profile '$PROFILE' in firmware_config/profiles/"
  fi
esac
case "$ACTION" in
  install) do_install ;;
  upgrade) do_upgrade ;;
  uninstall) do_uninstall ;;
  status) do_status; exit $? ;;
esac
if [ "$REBOOT_NEEDED" = 1 ]; then say "done; reboot so the firmware lines and i2c-dev take effect"; else say "done"; fi
