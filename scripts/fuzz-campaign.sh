#!/bin/bash
# fuzz-campaign.sh: a long libFuzzer campaign over the harnesses `make fuzz`
# builds (build/fuzz/fuzz_NAME), MINUTES (default 30) each, JOBS at a time, at nice 19 so
# that it only takes idle CPU. `make fuzz-campaign` builds them and runs this.
#
#   scripts/fuzz-campaign.sh [-m MINUTES | -s SECONDS] [-j JOBS] [-b BINDIR] [-o OUT] [NAME...]
#
# NAMEs default to every fuzz_* in BINDIR (build/fuzz). The binaries are
# copied to OUT/bin first, so rebuilding during a campaign does not touch it.
# Each harness grows OUT/corpus/NAME (new inputs only: the committed seeds in
# fuzz/corpus/NAME are read, never written; a later campaign with the same OUT
# starts from what this one found). A crash, leak, timeout or out-of-memory
# input is kept as OUT/crashes/NAME-* (the crashes column counts this
# campaign's), and the harness is restarted for the
# rest of its time (at most MAX_RESTARTS times). OUT/summary.md is the table
# (harness, seconds, executions, exec/s, corpus files, crashes), rewritten
# as each harness ends; OUT/logs/NAME.log are libFuzzer's own logs.
set -u
seconds=1800 jobs=2 bindir=build/fuzz out=build/fuzz-campaign
MAX_RESTARTS=20
while getopts "m:s:j:b:o:" opt; do
    case $opt in
    m) seconds=$((OPTARG * 60)) ;;
    s) seconds=$OPTARG ;;
    j) jobs=$OPTARG ;;
    b) bindir=$OPTARG ;;
    o) out=$OPTARG ;;
    *) sed -n '5,6p' "$0" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
cd "$(dirname "$0")/.." || exit 1   # the seeds and dictionaries are relative to the root
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
    for f in "$bindir"/fuzz_*; do
        [ -x "$f" ] && names+=("${f##*/fuzz_}")
    done
fi
if [ ${#names[@]} -eq 0 ]; then
    echo "fuzz-campaign: no harnesses in $bindir (make fuzz-campaign builds them)" >&2
    exit 1
fi
mkdir -p "$out/bin" "$out/corpus" "$out/crashes" "$out/logs" "$out/rows" || exit 1
for n in "${names[@]}"; do
    cp "$bindir/fuzz_$n" "$out/bin/" || exit 1
    rm -f "$out/rows/$n"
done
started=$(date -u +%FT%TZ)

summary() {
    local done_n
    done_n=$(ls "$out/rows" | wc -l)
    {
        echo "# Fuzzing campaign"
        echo
        echo "Started $started, $seconds s per harness, $jobs at a time, nice 19, on"
        echo "$(nproc) CPUs shared with other work ($(uname -m), $(clang --version | head -n 1))."
        echo "Harnesses done: $done_n of ${#names[@]}."
        echo
        echo "| harness | seconds | executions | exec/s | corpus files | crashes |"
        echo "|---|---:|---:|---:|---:|---:|"
        cat "$out"/rows/* 2>/dev/null || true   # none yet at the start
    } > "$out/summary.md.tmp" && mv "$out/summary.md.tmp" "$out/summary.md"
}

# Runs one harness for its whole budget; writes its row.
run_one() {
    local n=$1 budget=$seconds t0 now left execs=0 runs=0 e dict=() seeds=()
    local log="$out/logs/$n.log" crashes0
    crashes0=$(find "$out/crashes" -name "$n-*" -type f | wc -l)
    [ -f "fuzz/fuzz_$n.dict" ] && dict=(-dict="fuzz/fuzz_$n.dict")
    # The seeds come second: read for the start, never written.
    [ -d "fuzz/corpus/$n" ] && seeds=("fuzz/corpus/$n")
    mkdir -p "$out/corpus/$n"
    : > "$log"
    t0=$(date +%s)
    while :; do
        now=$(date +%s)
        left=$((budget - (now - t0)))
        [ $left -ge 5 ] && [ $runs -le $MAX_RESTARTS ] || break
        echo "=== run $runs, $left s left, $(date -u +%T)" >> "$log"
        nice -n 19 "$out/bin/fuzz_$n" -max_total_time=$left -timeout=60 -rss_limit_mb=4096 \
            -print_final_stats=1 "${dict[@]}" -artifact_prefix="$out/crashes/$n-" \
            "$out/corpus/$n" "${seeds[@]}" > "$log.run" 2>&1
        e=$(grep '^stat::number_of_executed_units' "$log.run" | awk '{print $2}')
        # A run that stopped on a crash may print no final stats: its last
        # status line ("#N ...", printed at powers of two and on new
        # coverage) is then the count, an underestimate.
        [ -n "$e" ] || e=$(grep -oE '^#[0-9]+' "$log.run" | tail -n 1 | tr -d '#')
        cat "$log.run" >> "$log"
        rm -f "$log.run"
        execs=$((execs + ${e:-0}))
        runs=$((runs + 1))
    done
    local secs=$(($(date +%s) - t0))
    local files crashes
    files=$(find "$out/corpus/$n" -type f | wc -l)
    crashes=$(($(find "$out/crashes" -name "$n-*" -type f | wc -l) - crashes0))
    printf '| %s | %d | %d | %d | %d | %d |\n' "$n" "$secs" "$execs" \
        $((secs > 0 ? execs / secs : 0)) "$files" "$crashes" > "$out/rows/$n"
    summary
}

summary
echo "fuzz-campaign: ${#names[@]} harnesses x $seconds s, $jobs at a time, into $out (pid $$)"
running=0
for n in "${names[@]}"; do
    if [ $running -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
    run_one "$n" &
    running=$((running + 1))
done
wait
echo "fuzz-campaign: done, $(date -u +%FT%TZ); $out/summary.md"
cat "$out/summary.md"
