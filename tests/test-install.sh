#!/usr/bin/env bash
# test-install.sh -- installs into a temp dir and builds a program against it, as a user of libsubway would.
#
#   bash tests/test-install.sh      (make test-install runs it, passing MAKE, CC and SANITIZER)
#
# Runs make install DESTDIR=TMP PREFIX=/usr and checks: exactly the files a
# package would hold; libsubway.so.VERSION with its SONAME link and the .so
# link; only subway_* symbols exported (the codec stays internal); the one
# header, <subway/subway.h>, compiling with pkg-config's flags as C99
# -pedantic and as C++; a program linked against the .so and one linked
# against the .a, both run; make uninstall leaves nothing behind. pkg-config
# reads the staged subway.pc only (PKG_CONFIG_LIBDIR) and prefixes its paths
# with the stage (PKG_CONFIG_SYSROOT_DIR). Exits non-zero on the first
# failure, saying what failed.
set -euo pipefail
cd "$(dirname "$0")/.."

MAKE=${MAKE:-make}
CC=${CC:-cc}
CXX=${CXX:-c++}
SANITIZER=${SANITIZER:-}
SANFLAGS=()
[ -z "$SANITIZER" ] || SANFLAGS=(-fsanitize="$SANITIZER")
VERSION=$(sed -n 's/^SUBWAY_VERSION := //p' Makefile)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
stage=$tmp/stage
fail() {
    echo "test-install: FAILED: $*" >&2
    exit 1
}
# Runs a command quietly; on failure shows its output and fails with $1.
quiet() {
    local what=$1
    shift
    "$@" >"$tmp/out" 2>&1 || { cat "$tmp/out" >&2; fail "$what"; }
}

quiet "make install" $MAKE --no-print-directory install DESTDIR="$stage" PREFIX=/usr SANITIZER="$SANITIZER"

# ------------------------------------------------------------------ files
files() { (cd "$stage" && find . ! -type d | sed 's|^\./||' | LC_ALL=C sort); }
want=$(LC_ALL=C sort <<LIST
usr/bin/subway
usr/bin/subway-cli
usr/include/subway/subway.h
usr/lib/libsubway.a
usr/lib/libsubway.so
usr/lib/libsubway.so.$VERSION
usr/lib/libsubway.so.1
usr/lib/pkgconfig/subway.pc
LIST
)
got=$(files)
[ "$got" = "$want" ] || fail "installed files differ from the list:
$(diff <(echo "$want") <(echo "$got") || true)"

lib=$stage/usr/lib
[ "$(readlink "$lib/libsubway.so")" = "libsubway.so.1" ] || fail "libsubway.so -> $(readlink "$lib/libsubway.so")"
[ "$(readlink "$lib/libsubway.so.1")" = "libsubway.so.$VERSION" ] || fail "libsubway.so.1 -> $(readlink "$lib/libsubway.so.1")"
[ -f "$lib/libsubway.so.$VERSION" ] && [ ! -L "$lib/libsubway.so.$VERSION" ] || fail "libsubway.so.$VERSION is not a file"
soname=$(objdump -p "$lib/libsubway.so.$VERSION" | awk '$1 == "SONAME" { print $2 }')
[ "$soname" = "libsubway.so.1" ] || fail "SONAME is '$soname', want libsubway.so.1"

# ---------------------------------------------------------------- exports
exports=$(nm -D --defined-only "$lib/libsubway.so.$VERSION" | awk '{ print $NF }' | LC_ALL=C sort)
others=$(grep -v '^subway_' <<<"$exports" || true)
[ -z "$others" ] || fail "exported without the subway_ prefix:
$others"
grep -qx subway_client_new <<<"$exports" || fail "subway_client_new is not exported"

# -------------------------------------------------------------- pkg-config
export PKG_CONFIG_LIBDIR=$lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$stage
unset PKG_CONFIG_PATH
# Some pkg-config versions drop -I/usr/include and -L/usr/lib as default
# paths before adding the sysroot; for the staged tree they must stay.
export PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1
[ "$(pkg-config --modversion subway)" = "$VERSION" ] || fail "pkg-config --modversion subway"
read -r -a cflags <<<"$(pkg-config --cflags subway)"
read -r -a libs <<<"$(pkg-config --libs subway)"
read -r -a static_libs <<<"$(pkg-config --static --libs subway)"
[ "${cflags[*]}" = "-I$stage/usr/include" ] || fail "pkg-config --cflags subway: '${cflags[*]}'"
# libsubway speaks TLS with OpenSSL: the .so needs it, and a static link
# is told to add it.
for l in libssl libcrypto libmsgpackc; do
    objdump -p "$lib/libsubway.so.$VERSION" | grep -q "NEEDED *$l\.so" || fail "libsubway.so does not need $l"
done
[ "${static_libs[*]}" = "-L$stage/usr/lib -lsubway -lmsgpackc -lssl -lcrypto" ] ||
    fail "pkg-config --static --libs subway: '${static_libs[*]}'"

# ----------------------------------------------------------------- programs
cat >"$tmp/prog.c" <<'PROG'
#include <subway/subway.h>

#include <stdio.h>

int main(void) {
    subway_client *c = subway_client_new(NULL);
    if (c == NULL) return 1;
    /* Refused by the library's (internal) address parser. */
    int rc = subway_client_connect(c, "[::1]7700");
    printf("libsubway %s: %d %s %s\n", subway_version(), rc, subway_err_name(subway_err(c)), subway_errstr(c));
    subway_client_free(c);
    return 0;
}
PROG
expect="libsubway $VERSION: -1 ARG bad address: '[::1]7700': want [IPV6]:PORT"

quiet "the header as C99 -pedantic" "$CC" -std=c99 -pedantic -Wall -Wextra -Werror "${cflags[@]}" \
    -c -o "$tmp/prog.o" "$tmp/prog.c"
quiet "the header as C++" "$CXX" -x c++ -std=c++11 -Wall -Wextra -Werror "${cflags[@]}" -fsyntax-only "$tmp/prog.c"

# Against the shared library: needs libsubway.so.1, finds it in the stage.
quiet "linking against the .so" "$CC" "${SANFLAGS[@]}" -o "$tmp/prog-so" "$tmp/prog.o" "${libs[@]}"
objdump -p "$tmp/prog-so" | grep -q 'NEEDED *libsubway\.so\.1$' || fail "prog-so does not need libsubway.so.1"
out=$(LD_LIBRARY_PATH=$lib "$tmp/prog-so") || fail "prog-so exited $?"
[ "$out" = "$expect" ] || fail "prog-so printed '$out', want '$expect'"

# Against the static library, with its private libraries: no libsubway.so.
quiet "linking against the .a" "$CC" "${SANFLAGS[@]}" -o "$tmp/prog-a" "$tmp/prog.o" \
    "${static_libs[@]/#-lsubway/-l:libsubway.a}"
if objdump -p "$tmp/prog-a" | grep -q 'NEEDED *libsubway'; then fail "prog-a needs libsubway.so"; fi
out=$("$tmp/prog-a") || fail "prog-a exited $?"
[ "$out" = "$expect" ] || fail "prog-a printed '$out', want '$expect'"

# The codec is not part of the interface: a program cannot link to it.
cat >"$tmp/internal.c" <<'PROG'
#include <stddef.h>
int proto_addr_split(const char *addr, char *host, size_t hostlen, int *port, char *err, size_t errlen);
int main(void) {
    char host[8], err[8];
    int port;
    return proto_addr_split("h:1", host, sizeof(host), &port, err, sizeof(err));
}
PROG
if "$CC" "${SANFLAGS[@]}" -o "$tmp/internal" "$tmp/internal.c" "${libs[@]}" >"$tmp/out" 2>&1; then
    fail "a program linked proto_addr_split from libsubway.so"
fi
grep -q "undefined reference to .proto_addr_split" "$tmp/out" || { cat "$tmp/out" >&2; fail "linking proto_addr_split"; }

# --------------------------------------------------------------- uninstall
quiet "make uninstall" $MAKE --no-print-directory uninstall DESTDIR="$stage" PREFIX=/usr SANITIZER="$SANITIZER"
left=$(files)
[ -z "$left" ] || fail "make uninstall left:
$left"

echo "test-install: ok (libsubway $VERSION, $(wc -l <<<"$exports") symbols exported, all subway_*)"
