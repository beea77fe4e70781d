#!/usr/bin/env bash
# test-fresh-root.sh: the guarantees .ci/run leans on, checked in seconds without
# debootstrap (as root): the apt sources parser, and that a root is never removed while
# something is mounted in it, however the mounts got there.
# shellcheck source-path=SCRIPTDIR disable=SC2317
set -euo pipefail
. "$(dirname "$0")/fresh-root.sh"
[ "$(id -u)" = 0 ] || die "run as root (it mounts)"

fails=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
expect() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

scratch=$(mktemp -d "$ROOT_PARENT/fresh-root-test.XXXXXX")
sleeper=""
cleanup() {
    [ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null
    unmount_root >/dev/null 2>&1 || true
    [ -n "$(mounts_under "$scratch")" ] || rm -rf --one-file-system "$scratch"
    remove_root 2>/dev/null || true
}
trap cleanup EXIT

# --- sources: both formats, order, disabled stanzas, other suites and schemes ----------
etc=$scratch/etc-apt
mkdir -p "$etc/sources.list.d"
cat >"$etc/sources.list" <<'EOF'
# a comment
deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian/ bookworm main contrib # tail
deb-src http://src.example/debian bookworm main
deb http://one.example/debian bookworm-updates contrib
deb cdrom:[Debian 12]/ bookworm main
EOF
echo 'deb http://sec.example/debian-security bookworm-security main' >"$etc/sources.list.d/a.list"
cat >"$etc/sources.list.d/b.sources" <<'EOF'
Types: deb deb-src
URIs: http://two.example/debian
 https://three.example/debian
Suites: bookworm
  bookworm-updates
Components: main non-free

Types: deb
Enabled: No
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
EOF
echo 'deb http://other.example/debian trixie main' >"$etc/sources.list.d/c.list"
echo 'deb http://ignored.example/debian bookworm main' >"$etc/sources.list.d/d.list.disabled"
want='http://one.example/debian bookworm
http://sec.example/debian-security bookworm-security
http://two.example/debian bookworm
http://two.example/debian bookworm-updates
https://three.example/debian bookworm
https://three.example/debian bookworm-updates'
got=$(bookworm_sources "$etc")
expect "bookworm_sources reads both formats in apt's order" [ "$got" = "$want" ]
[ "$got" = "$want" ] || diff <(echo "$want") <(echo "$got") || true

# --- a fake root (no debootstrap): mount what .ci/run mounts, then take it all down ----
fake_root() {
    new_root
    mkdir -p "$root"/{proc,sys,dev,tmp,etc}
}
fake_root
mount_root
expect "mount_root mounts 6 file systems" [ "$(mounts_under "$root" | wc -l)" = 6 ]
expect "the root's /dev is a tmpfs of its own" [ "$(findmnt -n -o FSTYPE "$root/dev")" = tmpfs ]
mkdir "${root}x"   # a sibling whose name starts with the root's: not "under" it
mount -t tmpfs tmpfs "${root}x"
expect "mounts_under does not match a sibling with the same prefix" \
    [ "$(mounts_under "$root" | grep -c "^${root}x")" = 0 ]
umount "${root}x"; rmdir "${root}x"
expect "unmount_root leaves nothing mounted" unmount_root
expect "remove_root removes it" remove_root
expect "the root is gone" [ ! -e "$root" ]

# --- a bind mount from the same file system: --one-file-system alone would not stop rm --
fake_root
mkdir "$scratch/host-dev"; echo precious >"$scratch/host-dev/canary"
mkdir "$root/dev/host"; mount --bind "$scratch/host-dev" "$root/dev/host"
if remove_root 2>/dev/null; then bad "remove_root refuses while a bind mount is inside"
else ok "remove_root refuses while a bind mount is inside"; fi
expect "the bound folder's file survived" [ -f "$scratch/host-dev/canary" ]
unmount_root; remove_root
gone_canary_kept() { [ ! -e "$root" ] && [ -f "$scratch/host-dev/canary" ]; }
expect "after unmount_root the root is removed and the canary survived" gone_canary_kept

# --- a busy mount: a process outside the root holds its /tmp; lazy unmount detaches it --
fake_root
mount_root
(cd "$root/tmp" && exec sleep 60) & sleeper=$!
sleep 0.2
expect "unmount_root gets past a busy mount (lazy)" unmount_root
expect "remove_root then removes the root" remove_root
kill "$sleeper"; wait "$sleeper" 2>/dev/null || true; sleeper=""

# --- a process left running inside the root is stopped so its mounts come down ---------
fake_root
mount_root
for f in /bin/sleep $(ldd /bin/sleep | grep -o '/[^ ]*'); do cp --parents -L "$f" "$root"; done
chroot "$root" /bin/sleep 60 & sleeper=$!
sleep 0.2
expect "unmount_root stops the process inside and unmounts" unmount_root
rc=0; wait "$sleeper" 2>/dev/null || rc=$?; sleeper=""
expect "the process inside was ended by SIGTERM" [ "$rc" = 143 ]
expect "remove_root removes it" remove_root

[ "$fails" = 0 ] && echo "test-fresh-root: all passed" || echo "test-fresh-root: $fails failed"
exit $((fails > 0))
