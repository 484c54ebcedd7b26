# proc.sh -- process bookkeeping shared by the deploy scripts (sourced): pid files that survive pid reuse.
# shellcheck shell=bash
# The sourcing script sets PIDDIR, the folder of its NAME.pid files.

abspath() {  # abspath PATH: PATH made absolute against the caller's directory
    case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac
}

# PIDDIR/NAME.pid holds "PID STARTTIME": the start time (field 22 of
# /proc/PID/stat) tells our process apart from an unrelated one that got
# the same pid after ours died, so a stop never signals a stranger.

start_time() {  # start_time PID: its start time in clock ticks since boot, or nothing if it is gone
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    local fields
    read -r -a fields <<<"${stat##*) }"   # the fields after "(comm) "; comm may hold spaces
    case "${fields[0]}" in Z|X) return 0 ;; esac   # exited, not yet reaped by its new parent
    echo "${fields[19]}"
}

pid_of() {  # pid_of NAME: the pid of our NAME while it runs, else nothing
    local f="$PIDDIR/$1.pid" pid st
    [ -f "$f" ] || return 0
    read -r pid st <"$f" || return 0
    [ -n "$pid" ] && [ -n "$st" ] || return 0
    [ "$(start_time "$pid")" = "$st" ] && echo "$pid"
    return 0
}

port_busy() {  # port_busy PORT: true when something accepts connections on it
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
