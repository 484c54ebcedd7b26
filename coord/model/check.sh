#!/usr/bin/env bash
# check.sh -- model-checks coord/model/subway.pml with spin: the protocol must hold, and each planted bug must be found.
#
#   bash coord/model/check.sh          (make model)
#
# Installs the Debian package spin when it is missing (as deploy/install-deps.sh
# does: dpkg-query, then apt-get with sudo when not root). Each run compiles
# its own pan in a temporary directory and prints one line. Exit status is 0
# only when every "holds" run ends with no error, no invalid end state and
# no "max search depth too small", and every "finds" run reports the
# assertion it is meant to break. Two runs go at a time (2 cores); the whole
# takes about a minute at most. README.md beside this file explains the
# bounds, the runs and what a failing one means.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
model="$here/subway.pml"

# ------------------------------------------------------------ spin itself
need_spin() {
    command -v spin >/dev/null 2>&1 && return 0
    if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
        echo "check.sh: spin is missing and this is not a Debian-based system: install spin (https://spinroot.com) by hand." >&2
        exit 1
    fi
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo=(sudo); else
            echo "check.sh: spin is missing, and not root and no sudo to install it (apt-get install spin)." >&2
            exit 1
        fi
    fi
    echo "check.sh: installing spin" >&2
    ${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    ${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends spin >/dev/null
    command -v spin >/dev/null 2>&1 || { echo "check.sh: apt-get did not give us spin" >&2; exit 1; }
}
need_spin
command -v gcc >/dev/null 2>&1 || { echo "check.sh: gcc is missing (apt-get install build-essential)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/subway-model.XXXXXX")
trap 'rm -rf "$work"' EXIT

# ------------------------------------------------------------------ runs
# One run: NAME EXPECT MODE SECONDS SPIN-FLAGS...
#   EXPECT  holds         no error anywhere (the protocol, with its fixes)
#           finds:TEXT    pan must report an assertion violation whose text has TEXT
#   MODE    full          exhaustive search (-DSAFETY, a hash table, nothing lost)
#           bfs           the same breadth first: the shortest trail to a violation
#           bits          bitstate search (-DBITSTATE, 2^32 bits): for bounds where a
#                         full search does not fit the time; it says how much it saw
run() {
    local name=$1 expect=$2 mode=$3 secs=$4; shift 4
    local d="$work/$name"
    mkdir -p "$d" && cp "$model" "$d/" && cd "$d"
    if ! spin -a "$@" subway.pml >spin.out 2>&1; then
        echo "FAIL  $name: spin -a: $(head -n 3 spin.out | tr '\n' ' ')"; return 1
    fi
    local cflags=(-Og -w -DSAFETY -DMEMLIM=6000) pflags=(-m200000)
    if [ "$mode" = bits ]; then cflags+=(-DBITSTATE); pflags+=(-w32); fi
    if [ "$mode" = bfs ]; then cflags=(-O0 "${cflags[@]:1}" -DBFS); fi   # short runs: compile fast
    if ! gcc "${cflags[@]}" -o pan pan.c >gcc.out 2>&1; then
        echo "FAIL  $name: gcc: $(head -n 3 gcc.out | tr '\n' ' ')"; return 1
    fi
    local t0=$SECONDS rc=0
    timeout "$secs" ./pan "${pflags[@]}" >pan.out 2>&1 || rc=$?
    local took=$((SECONDS - t0))
    local states errors
    states=$(awk '/states, stored/ {print $1; exit}' pan.out)
    errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.out | head -n 1)
    local what=${states:+$states states}; what=${what:-"(no summary)"}
    case $expect in
    holds)
        if [ "$rc" -eq 124 ]; then
            if [ "$mode" = bits ]; then     # a time-boxed sweep: what it covered, no error in it
                states=$(awk '/States=/ {s=$4} END {print s}' pan.out)
                if grep -q "assertion violated\|invalid end state" pan.out; then
                    echo "FAIL  $name: $(grep -m1 'assertion violated\|invalid end' pan.out)  (trail: $d)"; return 1
                fi
                echo "ok    $name: bitstate sweep, no error in ${states:-?} states, ${took}s (time box)"; return 0
            fi
            echo "FAIL  $name: exhaustive search did not finish in ${secs}s"; return 1
        fi
        if [ "${errors:-1}" != 0 ] || grep -q "max search depth too small" pan.out; then
            echo "FAIL  $name: $(grep -m1 'violated\|invalid end\|too small\|errors:' pan.out)  (trail: $d/subway.pml.trail, see README)"
            return 1
        fi
        echo "ok    $name: holds, $what, ${took}s ($mode)";;
    finds:*)
        local text=${expect#finds:}
        if grep -q "assertion violated" pan.out && grep -F -q -- "$text" pan.out; then
            echo "ok    $name: spin finds it ($(grep -m1 -o 'assertion violated.*' pan.out | cut -c1-70)...), ${took}s"
        else
            echo "FAIL  $name: spin did not find the violation it must (${what}, errors ${errors:-?}, ${took}s)"; return 1
        fi;;
    esac
}
export -f run
export model work

# NAME EXPECT MODE SECONDS FLAGS   (S = the small bounds of the exhaustive runs; longest first)
S="-DQCAP=2 -DL=2 -DFENCE=1 -DGQ=1 -DSUBOPS=1 -DRELAYS=1"
NOI="-DNO_CHECK_I2 -DNO_CHECK_I3"
cat >"$work/runs" <<EOF
pause           holds              full 60 $S -DNO_CRASH -DNO_STOP -DNO_LOSS -DNO_DISOWN
loss            holds              full 60 $S -DNO_CRASH -DNO_PAUSE -DNO_STOP -DNO_DISOWN
crash           holds              full 60 $S -DNO_PAUSE -DNO_STOP -DNO_LOSS
no-fix-order    finds:count==      bfs  40 -DNO_FIX_ORDER -DNO_PAUSE -DNO_STOP -DNO_LOSS -DRELAYS=0 -DNO_CHECK_I1 -DNO_CHECK_I2
no-fix-heed     finds:owning[0]    bfs  40 -DNO_FIX_HEED -DFAULTS=0 -DRELAYS=0 -DNO_LAPSE $NOI
stop            holds              full 30 $S -DNO_CRASH -DNO_PAUSE -DNO_LOSS
no-fix-grace    finds:owning[0]    bfs  40 -DNO_FIX_GRACE -DREDIS_RESTART -DNO_CRASH -DNO_PAUSE -DNO_STOP -DNO_LOSS -DSUBOPS=1 -DRELAYS=0 -DNO_LAPSE -DNO_DISOWN $NOI
restart         holds              full 30 $S -DRELAYS=0 -DREDIS_RESTART -DNO_CRASH -DNO_PAUSE -DNO_STOP -DNO_LOSS
bug-notoken     finds:owner==      bfs  40 -DBUG_NOTOKEN -DFAULTS=0 -DSUBOPS=1 -DNO_CHECK_I1 -DNO_CHECK_I3
bug-nofence     finds:owning[0]    bfs  40 -DBUG_NOFENCE -DFAULTS=0 -DSUBOPS=1 -DRELAYS=0 -DNO_LAPSE -DNO_DISOWN $NOI
no-fix-reaplease finds:owning[0]   bfs  40 -DNO_FIX_REAPLEASE -DFAULTS=0 -DSUBOPS=1 -DRELAYS=0 $NOI
no-fix-live     finds:count==      bfs  40 -DNO_FIX_LIVE -DNO_PAUSE -DNO_STOP -DNO_LOSS -DRELAYS=0 -DNO_CHECK_I1 -DNO_CHECK_I2
as-written      finds:count==      bfs  40 -DAS_WRITTEN -DNO_PAUSE -DNO_STOP -DNO_LOSS -DRELAYS=0 -DNO_CHECK_I1 -DNO_CHECK_I2
EOF

status=0
while read -r name expect mode secs flags; do
    echo "run $name $expect $mode $secs $flags"
done <"$work/runs" | xargs -P 2 -I{} bash -c '{}' >"$work/results" 2>&1 || status=1
sort -k2 "$work/results"
grep -q '^FAIL' "$work/results" && status=1
if [ "$status" -eq 0 ]; then echo "model: all runs as expected"; else echo "model: FAILED"; fi
exit "$status"
