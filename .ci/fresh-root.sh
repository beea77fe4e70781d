# shellcheck shell=bash
# fresh-root.sh: helpers for .ci/run to build, enter and safely remove a bare Debian
# bookworm root (debootstrap minbase). Sourced, not run. Everything acts on $root.
#
# Safety rule: a root is removed only once /proc/self/mountinfo shows nothing mounted at
# or below it, and then with `rm -rf --one-file-system`. /dev inside the root is a tmpfs
# with its own device nodes, never a bind of the host's /dev.

root=""            # the root's absolute path, set by new_root
ROOT_PARENT=$(realpath -m /var/tmp)
ROOT_PREFIX=asyncrace-ci.
ROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

die() { echo "ci: $*" >&2; exit 2; }

# apt_sources ETC_APT: one "URI SUITE" line per `deb` entry with component main, in the
# order apt reads them: sources.list, then sources.list.d/*.list and *.sources by name.
apt_sources() {
    local etc=$1 f
    {
        [ -f "$etc/sources.list" ] && echo "$etc/sources.list"
        for f in "$etc"/sources.list.d/*.list "$etc"/sources.list.d/*.sources; do
            [ -f "$f" ] && echo "$f"
        done | LC_ALL=C sort
    } | while read -r f; do
        case $f in
            *.sources) deb822_sources "$f" ;;
            *)         one_line_sources "$f" ;;
        esac
    done
}

# "deb [options] URI SUITE COMPONENT..." lines.
one_line_sources() {
    awk '{ sub(/#.*/, ""); gsub(/\[[^]]*\]/, " ")
           if ($1 != "deb") next
           for (i = 4; i <= NF; i++) if ($i == "main") { print $2, $3; next } }' "$1"
}

# deb822 stanzas (Types/URIs/Suites/Components/Enabled), blank-line separated.
deb822_sources() {
    awk 'function has(list, word) { return (" " list " ") ~ (" " word " ") }
         function flush(   nu, ns, u, s, i, j) {
             if (has(f["types"], "deb") && has(f["components"], "main") && f["enabled"] != "no") {
                 nu = split(f["uris"], u, " "); ns = split(f["suites"], s, " ")
                 for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) print u[i], s[j]
             }
             delete f; key = ""
         }
         /^#/ { next }
         /^[ \t]*$/ { flush(); next }
         /^[ \t]/ { if (key != "") f[key] = f[key] " " $0; next }
         { key = tolower(substr($0, 1, index($0, ":") - 1))
           f[key] = substr($0, index($0, ":") + 1)
           if (key == "enabled") { gsub(/[ \t]/, "", f[key]); f[key] = tolower(f[key]) } }
         END { flush() }' "$1"
}

# bookworm_sources ETC_APT: the host's bookworm, bookworm-updates and bookworm-security
# main entries reachable over http(s), as "URI SUITE", duplicates dropped.
bookworm_sources() {
    apt_sources "$1" | awk '$1 ~ /^https?:\/\// && $2 ~ /^bookworm(-updates|-security)?$/ {
                                sub(/\/+$/, "", $1); if (!seen[$0]++) print }'
}

# new_root: an empty folder for the root, under /var/tmp.
new_root() {
    root=$(mktemp -d "$ROOT_PARENT/${ROOT_PREFIX}XXXXXX")
    root=$(realpath "$root")
    chmod 755 "$root"     # mktemp's 0700 would lock apt's _apt user out of its own /
}

# debootstrap_root SOURCES: a minbase bookworm from the first bookworm entry's mirror; its
# apt then uses every host entry (updates, security), so versions match the host's.
debootstrap_root() {
    local sources=$1 mirror include=()
    mirror=$(awk '$2 == "bookworm" { print $1; exit }' <<<"$sources")
    [ -n "$mirror" ] || die "no 'deb <http(s) URI> bookworm main' entry in the host's apt sources"
    # An https mirror needs the CA bundle inside the root for apt to reach it.
    grep -q '^https:' <<<"$sources" && include=(--include=ca-certificates)
    echo "ci: debootstrap --variant=minbase ${include[*]} bookworm $root $mirror"
    local log
    log=$(debootstrap --variant=minbase "${include[@]}" bookworm "$root" "$mirror" 2>&1) || {
        tail -n 30 <<<"$log" >&2; return 1; }
    echo "ci: $(grep -c '^I: Unpacking' <<<"$log") packages unpacked"
    awk '{ print "deb", $1, $2, "main" }' <<<"$sources" >"$root/etc/apt/sources.list"
    echo "ci: root's /etc/apt/sources.list:"; sed 's/^/    /' "$root/etc/apt/sources.list"
}

# mount_root: what programs inside need. /dev is a tmpfs with the usual nodes, so nothing
# under the root is a host device tree.
mount_root() {
    mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
    mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
    mount -t tmpfs -o nosuid,mode=0755,size=16m tmpfs "$root/dev"
    local name major minor
    while read -r name major minor; do
        mknod -m 666 "$root/dev/$name" c "$major" "$minor"
    done <<<$'null 1 3\nzero 1 5\nfull 1 7\nrandom 1 8\nurandom 1 9\ntty 5 0'
    ln -s /proc/self/fd "$root/dev/fd"
    ln -s /proc/self/fd/0 "$root/dev/stdin"
    ln -s /proc/self/fd/1 "$root/dev/stdout"
    ln -s /proc/self/fd/2 "$root/dev/stderr"
    mkdir "$root/dev/pts" "$root/dev/shm"
    mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,nosuid,noexec devpts "$root/dev/pts"
    ln -s pts/ptmx "$root/dev/ptmx"
    mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$root/dev/shm"
    mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$root/tmp"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
}

# root_home: the home of the root's own root user, as its /etc/passwd says.
root_home() { awk -F: '$1 == "root" { print $6; exit }' "$root/etc/passwd"; }

# in_root CMD...: run CMD in the root as root, in a clean environment (nothing of the
# CI's own environment, such as MAKEFLAGS, leaks in).
in_root() {
    chroot "$root" /usr/bin/env -i HOME="$(root_home)" PATH="$ROOT_PATH" TERM="${TERM:-dumb}" "$@"
}

# mounts_under DIR: mount points at or below DIR, in mount order.
mounts_under() {
    awk -v r="$1" '{ mp = $5; gsub(/\\040/, " ", mp)
                     if (mp == r || index(mp, r "/") == 1) print mp }' /proc/self/mountinfo
}

# stop_root_processes: anything still running inside the root (a hung test, say) would
# keep its mounts busy. These are only processes this run started.
stop_root_processes() {
    local sig p pids
    for sig in TERM KILL; do
        pids=()
        for p in /proc/[0-9]*; do
            [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && pids+=("${p#/proc/}")
        done
        [ ${#pids[@]} = 0 ] && return 0
        echo "ci: stopping processes still in the root (SIG$sig): ${pids[*]}" >&2
        kill -"$sig" "${pids[@]}" 2>/dev/null || true
        sleep 2
    done
}

# unmount_root: everything at or below the root, newest first; lazy unmount only for what
# refuses. Fails if anything is still mounted afterwards.
unmount_root() {
    [ -n "$root" ] && [ -d "$root" ] || return 0
    [ -z "$(mounts_under "$root")" ] && return 0
    stop_root_processes
    local mp
    while read -r mp; do
        umount "$mp" 2>/dev/null || { echo "ci: umount $mp failed; lazy unmount" >&2; umount -l "$mp" || true; }
    done < <(mounts_under "$root" | tac)
    if [ -n "$(mounts_under "$root")" ]; then
        echo "ci: still mounted under $root:" >&2; mounts_under "$root" >&2
        return 1
    fi
}

# remove_root: only a folder this script made, only with nothing mounted in it.
remove_root() {
    [ -n "$root" ] && [ -d "$root" ] || return 0
    case $root in "$ROOT_PARENT/$ROOT_PREFIX"??????) ;; *) die "refusing to remove $root" ;; esac
    if [ -n "$(mounts_under "$root")" ]; then
        echo "ci: NOT removing $root: something is still mounted inside it" >&2
        return 1
    fi
    rm -rf --one-file-system "$root"
}
