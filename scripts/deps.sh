#!/bin/sh
# deps.sh: the Debian packages asyncrace needs, installed when run as root,
# else the one apt-get line to run. The backends' packages come from
# runners/backends.list; the rest are listed here, once.
#   --check-build   quiet when everything is there (the Makefile calls this)
set -u
cd "$(dirname "$0")/.."

# Build, test, debug: the compilers and sanitizers, pytest with xdist, the
# report's plots, gdb for captures, rr where the machine lets it record,
# strace for scripts/census.py.
BASE="build-essential pkg-config python3 python3-pytest python3-pytest-xdist python3-matplotlib gdb rr strace"
# The tokio original beside shutdown_order (cases/external.toml): Rust from Debian.
EXTERNAL="cargo rustc librust-tokio-dev"
BACKENDS=$(awk '!/^[[:space:]]*(#|$)/ { for (i = 3; i <= NF; i++) if ($i != "-") print $i }' runners/backends.list)
PKGS=$(echo $BASE $EXTERNAL $BACKENDS)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps: not a Debian system; install the equivalents of: $PKGS" >&2
    exit 1
fi
missing=""
for p in $PKGS; do installed "$p" || missing="$missing $p"; done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "deps: installing$missing" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null; } || {
        echo "deps: apt-get install failed; run: apt-get install -y$missing" >&2; exit 1; }
    exit 0
fi
echo "deps: missing$missing; run: sudo apt-get install -y$missing" >&2
exit 1
