# tests/serve_lib.sh: what the server tests (test_redis, test_gateway,
# test_zero_shot_serve) share, sourced by them (bash).
# serve_test_init NAME TOOL...: exits 77 (skipped) when a tool is missing;
# makes the scratch folder $T and $PIDS, whose processes are killed, and $T
# removed, on exit. Also: free_port, check, kill_holding.
serve_test_init() {
    local name=$1 tool
    shift
    for tool in "$@"; do
        if ! command -v "$tool" >/dev/null; then
            echo "$name: SKIP: $tool not installed"
            exit 77
        fi
    done
    T=$(mktemp -d)
    PIDS=""
    trap serve_test_cleanup EXIT
}
serve_test_cleanup() {
    for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$T"
}
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
fails=0
check() {   # check DESCRIPTION COMMAND...: one assertion
    if "${@:2}"; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi
}
# kill_holding PID STREAM CONSUMER: kill -9 a worker (reading STREAM as
# CONSUMER of the group engine, through redis-cli $R) while it holds entries
# (read, not acknowledged); their number in HELD, 0 when it held none for 500
# looks. It is stopped to look, so that what it holds is what it dies with:
# running, it could acknowledge its last entry between the look and the kill,
# leaving nothing to claim. A connection made after the stop is served after
# what the worker had written before it.
kill_holding() {
    HELD=0
    for _ in $(seq 500); do
        kill -STOP "$1"
        HELD=$(($($R xpending "$2" engine - + 1000 "$3" | wc -l) / 4))
        [ $HELD -gt 0 ] && break
        kill -CONT "$1"
        sleep 0.01
    done
    kill -9 "$1"
}
