# bench/common.sh: what every benchmark script shares; sourced, not run.
# Settings (environment): ENGINE_SHARED (default ../shared), BUILD (default
# build), OUT_DIR (default $BUILD/bench), REPS (3), THREADS (2), PEERS_DIR.
SHARED=$(cd "${ENGINE_SHARED:-../shared}" && pwd)
export PEERS_DIR="${PEERS_DIR:-$HOME/.cache/engine-peers}"
BUILD=${BUILD:-build}
OUT=${OUT_DIR:-$BUILD/bench}
REPS=${REPS:-3}
THREADS=${THREADS:-2}
mkdir -p "$OUT"

# Installs the peers (ONNX Runtime, Debian's PyTorch) when they are missing.
need_peers() {
    [ -d "$PEERS_DIR/node_modules/onnxruntime-node" ] || sh "$SHARED/reference/setup-peers.sh"
}
# The median of the numbers on stdin, one per line.
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
# Field $1 of the last JSON line on stdin.
field() { python3 -c "import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])['$1'])"; }
# The machine is shared: every script prints the load average around its runs.
load_average() { echo "load average $1: $(cut -d' ' -f1-3 /proc/loadavg)"; }
