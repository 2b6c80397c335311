#!/bin/sh
# Install or upgrade the Rayon gateway, and its store console, on Raspberry Pi OS Bookworm (or
# Debian 12), as root.
#
#   sudo deploy/install.sh                 # from a clone or an unpacked release of Rayon
#   sudo deploy/install.sh --wheel rayon_gateway-1.0-py3-none-any.whl
#   sudo deploy/install.sh --compiled      # also compile the per-advert modules (mypyc)
#   deploy/install.sh --dry-run            # print every command, change nothing
#
# Idempotent: run it again to upgrade. It never overwrites /etc/rayon/config.yaml nor the rules
# in /etc/rayon/rules, and starts the service only once the config differs from the example. The
# console (rayon-console.service) is installed, not enabled: deploy/README.md, "The console".
# RAYON_ROOT=/some/dir prefixes every path it looks at or would write (with --dry-run only: the
# tests use it to check the plan against a fake tree).  The guide is deploy/README.md.
set -eu

usage() {
    cat <<'EOF'
usage: install.sh [--dry-run] [--wheel FILE] [--no-apt] [--compiled | --pure]

  --dry-run     print every command instead of running it (needs no root)
  --wheel FILE  install this wheel instead of the source tree around this script
  --no-apt      skip `apt-get install` (the packages are already there)
  --compiled    also compile the per-advert modules with mypyc into /opt/rayon/compiled and
                run the service on them (about 1.8x the adverts per second; a minute or more
                and ~500 MB of memory to build); later runs rebuild it, so an upgrade never
                leaves the service on an old copy
  --pure        remove the compiled build: the service runs pure Python again
EOF
}

DRY_RUN=0
WHEEL=""
APT=1
COMPILED=""  # "", yes (--compiled) or no (--pure)
BUILD_FAILED=0
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --wheel)
            [ $# -ge 2 ] || { echo "install.sh: --wheel needs a file" >&2; exit 2; }
            WHEEL="$2"
            shift
            ;;
        --no-apt) APT=0 ;;
        --compiled) COMPILED=yes ;;
        --pure) COMPILED=no ;;
        -h | --help) usage; exit 0 ;;
        *) echo "install.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

ROOT="${RAYON_ROOT:-}"
SRC="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX=/opt/rayon
ETC=/etc/rayon
STATE=/var/lib/rayon
CONSOLE_STATE=/var/lib/rayon-console
UNIT=rayon-gateway.service
CONSOLE_UNIT=rayon-console.service
DROPIN=/etc/systemd/system/$UNIT.d/compiled.conf

if [ -n "$ROOT" ] && [ "$DRY_RUN" = 0 ]; then
    echo "install.sh: RAYON_ROOT is for --dry-run only (it is how the tests check the plan)" >&2
    exit 2
fi
if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
    echo "install.sh: run me as root (sudo $0), or with --dry-run to see what I would do" >&2
    exit 2
fi
if [ -n "$WHEEL" ] && [ ! -f "$WHEEL" ]; then
    echo "install.sh: no such wheel: $WHEEL" >&2
    exit 2
fi
for f in config.example.yaml rules deploy/$UNIT deploy/$CONSOLE_UNIT deploy/rayon-gateway.compiled.conf \
    deploy/bluetooth/rayon-bluez.conf; do
    if [ ! -e "$SRC/$f" ]; then
        echo "install.sh: $SRC/$f is missing: run me from a full copy of the Rayon sources" >&2
        exit 2
    fi
done

# Run a command, or print it under --dry-run (arguments with spaces quoted).
run() {
    if [ "$DRY_RUN" = 1 ]; then
        line="+"
        for arg in "$@"; do
            case "$arg" in
                "" | *[!A-Za-z0-9_./:=@%+,-]*) line="$line '$arg'" ;;
                *) line="$line $arg" ;;
            esac
        done
        printf '%s\n' "$line"
    else
        "$@"
    fi
}

say() {
    printf '%s\n' "$*"
}

# An earlier --compiled install is kept, and rebuilt, unless --pure says otherwise.
if [ -z "$COMPILED" ]; then
    if [ -e "$ROOT$DROPIN" ]; then COMPILED=yes; else COMPILED=no; fi
fi

# 1. System packages: the venv module, bluetoothd, the broker (and a C toolchain to compile).
if [ "$APT" = 1 ]; then
    run apt-get update
    if [ "$COMPILED" = yes ]; then
        run env DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv bluez mosquitto \
            build-essential python3-dev
    else
        run env DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv bluez mosquitto
    fi
fi

# 2. The service account: a system user `rayon`, in the `bluetooth` group (made by bluez).
if id rayon >/dev/null 2>&1; then
    run usermod --append --groups bluetooth rayon
else
    run useradd --system --user-group --groups bluetooth --home-dir "$STATE" --no-create-home \
        --shell /usr/sbin/nologin --comment "Rayon gateway" rayon
fi
# The console's own account, `rayon-console`: in group rayon, to read the gateway's database.
if id rayon-console >/dev/null 2>&1; then
    run usermod --append --groups rayon rayon-console
else
    run useradd --system --user-group --groups rayon --home-dir "$CONSOLE_STATE" \
        --no-create-home --shell /usr/sbin/nologin --comment "Rayon store console" rayon-console
fi

# 3. The program: a venv in /opt/rayon, upgraded in place by a new run.
if [ ! -x "$ROOT$PREFIX/bin/python" ]; then
    run python3 -m venv "$ROOT$PREFIX"
fi
# With the `console` extra (Starlette, uvicorn, Jinja2: `rayon console`), and with `compiled`
# (mypy and the stubs it needs) for --compiled.
if [ "$COMPILED" = yes ]; then
    run "$ROOT$PREFIX/bin/pip" install --quiet --upgrade "${WHEEL:-$SRC}[compiled,console]"
else
    run "$ROOT$PREFIX/bin/pip" install --quiet --upgrade "${WHEEL:-$SRC}[console]"
fi
run install -D -m 644 "$SRC/deploy/README.md" "$ROOT$PREFIX/share/deploy/README.md"
# The compiled copy of the installed package (rebuilt only when its sources changed); -P: of
# the package just installed, never of a `gateway` folder in the current directory.  A build
# that fails leaves the service on pure Python (step 5 removes the drop-in), never half done.
if [ "$COMPILED" = yes ]; then
    if ! run "$ROOT$PREFIX/bin/python" -P -m rayon_tooling.benchmarks.compiled --build-only \
        --dest "$ROOT$PREFIX/compiled"; then
        say "warning: the compiled build failed (see $PREFIX/compiled/rayon-mypyc-build.log);"
        say "         the service runs pure Python. Fix the cause, then: sudo $0 --compiled"
        COMPILED=no
        BUILD_FAILED=1
    fi
fi

# 4. Configuration and rules: the ops team's and the marketers' files, never overwritten.
run install -d -m 755 "$ROOT$ETC"
if [ -e "$ROOT$ETC/config.yaml" ]; then
    say "keeping $ETC/config.yaml"
else
    run install -m 644 "$SRC/config.example.yaml" "$ROOT$ETC/config.yaml"
fi
if [ -e "$ROOT$ETC/rules" ]; then
    say "keeping $ETC/rules/"
else
    run cp -R "$SRC/rules" "$ROOT$ETC/rules"
fi
# The database's folder, owned by rayon so that `sudo -u rayon rayon doctor` may create it too.
run install -d -o rayon -g rayon -m 750 "$ROOT$STATE"
# The console's folder: its users file, session secret and audit log, its user's alone (made
# now, so that `sudo -u rayon-console rayon console user add` works before its first start).
run install -d -o rayon-console -g rayon-console -m 700 "$ROOT$CONSOLE_STATE"

# 5. The unit and the D-Bus policy; enabled at boot.
run install -m 644 "$SRC/deploy/$UNIT" "$ROOT/etc/systemd/system/$UNIT"
# The console's unit: installed, enabled by the ops team once a console user exists.
run install -m 644 "$SRC/deploy/$CONSOLE_UNIT" "$ROOT/etc/systemd/system/$CONSOLE_UNIT"
if [ "$COMPILED" = yes ]; then
    run install -D -m 644 "$SRC/deploy/rayon-gateway.compiled.conf" "$ROOT$DROPIN"
elif [ -e "$ROOT$DROPIN" ] || [ -e "$ROOT$PREFIX/compiled" ]; then
    run rm -f "$ROOT$DROPIN"
    if [ "$BUILD_FAILED" = 0 ]; then  # else keep its log
        run rm -rf "$ROOT$PREFIX/compiled"
    fi
fi
run install -m 644 "$SRC/deploy/bluetooth/rayon-bluez.conf" \
    "$ROOT/etc/dbus-1/system.d/rayon-bluez.conf"
run systemctl reload dbus.service || say "warning: could not reload dbus: reboot to apply the policy"
run systemctl daemon-reload
run systemctl enable "$UNIT"

# 6. Start (or restart after an upgrade) only once the config is this store's.
if cmp -s "$SRC/config.example.yaml" "$ROOT$ETC/config.yaml" 2>/dev/null ||
    [ ! -e "$ROOT$ETC/config.yaml" ]; then
    cat <<EOF

Installed and enabled, NOT started: $ETC/config.yaml is still the reference store.
Edit it (deploy/README.md, "Configure"):
  store        id, name, timezone (and origin for GPS geofences)
  mqtt         host, port, username, password_file ($ETC/mqtt.secret, readable by rayon)
  identity     proximity_uuids: your app's iBeacon UUID
  sources.ble  adapter (\`bluetoothctl list\`), or \`ble: false\` without a radio
  anchors      your scanners and beacons; zones: your aisles (floor-plan metres)
then check and start:
  sudo -u rayon $PREFIX/bin/rayon doctor -c $ETC/config.yaml
  sudo systemctl start $UNIT
The store console ($CONSOLE_UNIT) is installed, not enabled: deploy/README.md, "The console".
EOF
else
    run systemctl restart "$UNIT"
    run systemctl try-restart "$CONSOLE_UNIT"  # the upgraded console, if it runs
    say "started: journalctl -u $UNIT -f to follow it"
fi
if [ "$BUILD_FAILED" = 1 ]; then
    exit 1  # installed and running, but not compiled as asked: say so to a calling script
fi
