#!/bin/sh
# configure.sh BUILD_DIR: what the Makefile must know about this machine, read
# only once the packages are installed (scripts/deps.sh runs first):
#   BUILD_DIR/config.mk          the backends, their compile and link flags, PYTHON
#   BUILD_DIR/gen/backends.h     AR_BACKENDS, the registry's list of runners
# One line and exit 1 when a backend cannot be built here.
set -eu
build=${1:-build}
list=runners/backends.list
mkdir -p "$build/gen"

names="" cflags="" libs=""
while read -r name link packages; do
    case "$name" in ''|'#'*) continue ;; esac
    [ -f "runners/$name.c" ] || { echo "configure: $list: $name: no runners/$name.c" >&2; exit 1; }
    case "$link" in
    -) ;;
    pkg-config:*)
        for module in $(echo "${link#pkg-config:}" | tr ',' ' '); do
            pkg-config --exists "$module" 2>/dev/null || {
                echo "configure: $list: $name needs pkg-config module '$module': install $packages (make deps)" >&2
                exit 1; }
            cflags="$cflags $(pkg-config --cflags "$module")"
            libs="$libs $(pkg-config --libs "$module")"
        done ;;
    lib:*)
        flags=${link#lib:}
        echo 'int main(void) { return 0; }' | ${CC:-cc} -x c - -o "$build/gen/.link-test" $flags 2>/dev/null || {
            echo "configure: $list: $name cannot link with '$flags': install $packages (make deps)" >&2
            exit 1; }
        rm -f "$build/gen/.link-test"
        libs="$libs $flags" ;;
    *) echo "configure: $list: $name: link '$link' is not -, pkg-config:M[,M] or lib:FLAGS" >&2; exit 1 ;;
    esac
    names="$names $name"
done < "$list"
[ -n "$names" ] || { echo "configure: $list names no backend" >&2; exit 1; }

# A Python that has pytest: python3 on PATH first, then Debian's system one.
python=""
for p in python3 /usr/bin/python3; do
    if "$p" -c 'import pytest' >/dev/null 2>&1; then python=$(command -v "$p"); break; fi
done

{
    echo "# made by scripts/configure.sh from $list; make remakes it when the list changes"
    echo "BACKENDS :=$names"
    echo "BACKEND_CFLAGS :=$cflags"
    echo "BACKEND_LIBS :=$libs"
    echo "PYTHON ?= $python"
} > "$build/config.mk.tmp"
{
    echo "/* made by scripts/configure.sh from $list */"
    printf '#define AR_BACKENDS'
    for n in $names; do printf ' AR_BACKEND(%s)' "$n"; done
    echo
} > "$build/gen/backends.h.tmp"
mv "$build/gen/backends.h.tmp" "$build/gen/backends.h"
mv "$build/config.mk.tmp" "$build/config.mk"
