#!/bin/sh
# deps.sh: find what asyncrace needs on Debian; install it when root, else print
# the one apt-get line to run. --check-build stays quiet when all is there.
PKGS="build-essential pkg-config libuv1-dev libevent-dev python3 python3-pytest python3-pytest-xdist gdb rr"

missing=""
pkg-config --exists libuv libevent libevent_pthreads 2>/dev/null || missing="pkg-config libuv1-dev libevent-dev"
command -v cc >/dev/null 2>&1 || missing="$missing build-essential"
py_ok=""
for p in python3 /usr/bin/python3; do
    "$p" -c 'import pytest, xdist' >/dev/null 2>&1 && py_ok=1 && break
done
[ -n "$py_ok" ] || missing="$missing python3 python3-pytest python3-pytest-xdist"
command -v gdb >/dev/null 2>&1 || missing="$missing gdb"
command -v rr >/dev/null 2>&1 || missing="$missing rr"

[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "deps: installing $missing" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $PKGS >/dev/null || {
        echo "deps: apt-get install failed; run: apt-get install -y $PKGS" >&2; exit 1; }
    exit 0
fi
echo "deps: missing$missing; run: sudo apt-get install -y $PKGS" >&2
exit 1
