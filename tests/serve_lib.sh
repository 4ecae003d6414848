# tests/serve_lib.sh: what the server tests (test_redis, test_gateway,
# test_zero_shot_serve) share, sourced by them (bash).
# serve_test_init NAME TOOL...: exits 77 (skipped) when a tool is missing;
# makes the scratch folder $T and $PIDS, whose processes are killed, and $T
# removed, on exit.
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
