#!/bin/bash
# tests/test_redis.sh: the Redis worker and client (tools/serve/redis_*.c,
# docs/REDIS.md) end to end: round trips, two workers, kill -9 failover, a
# restart under the same consumer name, dead letters, malformed entries, Redis
# restarted under a worker, deadlines, SIGTERM, Redis absent at start.
# Starts its own redis-server on a free loopback port with persistence off and
# stops everything it started by pid. Exits 77 (skipped) without redis-server.
# Most cases use the null model (--null: fixed, checkable results, no model
# file); the round trip against `engine classify|embed|tokenize` needs
# $ENGINE_BUILD/models/sst2-bert-mini.eng (make models).
set -u
B=${ENGINE_BUILD:-build}
E=$B/engine
. tests/serve_lib.sh
serve_test_init test_redis redis-server redis-cli python3
P=$(free_port)
URL=redis://127.0.0.1:$P
R="redis-cli -p $P --raw"
start_redis() {
    redis-server --port "$P" --bind 127.0.0.1 --save '' --appendonly no >>"$T/redis.log" 2>&1 &
    RPID=$!
    PIDS="$PIDS $RPID"
    for _ in $(seq 100); do $R ping >/dev/null 2>&1 && return 0; sleep 0.05; done
    echo "test_redis: redis-server did not start"; cat "$T/redis.log"; exit 1
}
# start_worker NAME ARGS...: a worker in the background, its pid in WPID.
start_worker() {
    local name=$1; shift
    $E worker --redis "$URL" --workers 1 --threads 1 "$@" 2>>"$T/$name.log" &
    WPID=$!
    PIDS="$PIDS $WPID"
}
metric() {   # metric PORT NAME
    python3 - "$1" "$2" <<'PY'
import sys, urllib.request
for line in urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=5).read().decode().splitlines():
    if line.startswith(sys.argv[2] + " "):
        print(line.split()[1])
PY
}
group_field() {   # group_field STREAM FIELD: of the consumer group engine (XINFO GROUPS)
    $R xinfo groups "$1" 2>/dev/null | awk -v f="$2" 'p { print; exit } $0 == f { p = 1 }'
}
# The null model's classify answer for a text (see include/engine.h).
null_expected() {
    python3 -c '
import sys
for line in sys.stdin.read().split("\n")[:-1]:
    ids = ([101] + [1000 + min(len(w.encode()), 999) for w in line.split()] + [102])[:128]
    # the tests use texts whose second logit wins by far: label 1, score 1 exactly
    assert sum(ids) % 4096 > len(ids) + 100, line
    print("{\"label\":\"1\",\"score\":1,\"logits\":[%d,%d]}" % (len(ids), sum(ids) % 4096))'
}
start_redis

# ---- Redis absent at start: a clear error after the bounded retry ----
DEAD=$(free_port)
t0=$(date +%s%N)
$E worker --null --redis redis://127.0.0.1:$DEAD --connect-timeout-ms 500 2>"$T/absent.log"
rc=$?
t1=$(date +%s%N)
check "redis absent: exit 3" test $rc -eq 3
check "redis absent: says why" grep -q "cannot reach Redis" "$T/absent.log"
check "redis absent: gives up within 3 s" test $(((t1 - t0) / 1000000)) -lt 3000

# ---- round trip, null model: classify and embed ----
start_worker w1 --null --metrics-port "$(free_port)"
W1=$WPID
seq 1 50 | sed 's/^/word /' >"$T/in.txt"
$E submit --redis "$URL" <"$T/in.txt" >"$T/out.txt"
check "classify round trip: exit 0" test $? -eq 0
null_expected <"$T/in.txt" >"$T/want.txt"
check "classify round trip: every answer right" cmp -s "$T/out.txt" "$T/want.txt"
printf 'hello world\n' | $E submit --redis "$URL" --task embed >"$T/emb.txt"
check "the worker publishes its model's metadata" test "$($R hget engine:model:null max_positions)" = 128
check "embed round trip" grep -qx '{"embedding":\[4,2213,101,102\]}' "$T/emb.txt"

# ---- malformed entries: answered with an error and acknowledged ----
RS=engine:reply:malformed
$R xadd engine:requests '*' reply_to $RS task classify input x >/dev/null
$R xadd engine:requests '*' id m2 reply_to $RS input x >/dev/null
$R xadd engine:requests '*' id m3 reply_to $RS task classify >/dev/null
$R xadd engine:requests '*' id m4 reply_to $RS task translate input x >/dev/null
$R xadd engine:requests '*' id m5 reply_to $RS task classify input x priority 9 >/dev/null
$R xadd engine:requests '*' id m6 reply_to $RS task classify input x deadline_ms soon >/dev/null
$R xadd engine:requests '*' id m7 reply_to $RS task classify input x model other >/dev/null
$R xadd engine:requests '*' id m8 reply_to $RS task classify input "$(head -c 3000 /dev/zero | tr '\0' a)" >/dev/null
$R xadd engine:requests '*' id m9 task classify input x >/dev/null
$R xadd engine:requests '*' id m11 reply_to $RS task classify input x deadline_ms 1000 >/dev/null
for _ in $(seq 100); do [ "$($R xlen $RS)" -ge 9 ] && break; sleep 0.05; done
got=$($R xrange $RS - + | paste -sd' ')
for want in "id  status invalid_arg" "id m2 status invalid_arg" "id m3 status invalid_arg" \
            "id m4 status unsupported" "id m5 status invalid_arg" "id m6 status invalid_arg" \
            "id m7 status unsupported" "id m11 status timeout"; do
    check "malformed: $want" grep -qF "$want" <<<"$got"
done
check "malformed: oversized input (default limit 8 MiB lets 3000 bytes through)" grep -qF "id m8 status ok" <<<"$got"
check "malformed: no reply_to goes to the dead-letter stream" \
    grep -qF "no reply_to field" <<<"$($R xrange engine:requests:dead - + | paste -sd' ')"
for _ in $(seq 100); do [ "$($R xpending engine:requests engine | head -1)" = 0 ] && break; sleep 0.05; done
check "malformed: all acknowledged" test "$($R xpending engine:requests engine | head -1)" = 0
check "worker alive after malformed entries" kill -0 $W1
kill -TERM $W1; wait $W1
check "SIGTERM on an idle worker: exit 0" test $? -eq 0

# oversized input with a small limit
start_worker w1b --null --max-input-bytes 100
printf '%0200d\n' 0 | $E submit --redis "$URL" >"$T/big.txt"
check "oversized input: too_long" grep -q "more than --max-input-bytes 100" "$T/big.txt"
kill -TERM $WPID; wait $WPID

# ---- deadlines: a deadline passes while no worker reads ----
t0=$(date +%s%N)
echo late | $E submit --redis "$URL" --stream engine:nobody --deadline-ms 300 >"$T/dl.txt"
rc=$?
t1=$(date +%s%N)
check "deadline, nobody serving: exit 1" test $rc -eq 1
check "deadline, nobody serving: no reply reported" grep -q "no reply" "$T/dl.txt"
check "deadline, nobody serving: gives up soon after the deadline" test $(((t1 - t0) / 1000000)) -lt 5000
# A worker that reads the entries after their deadline answers timeout without computing.
start_worker w2 --null --stream engine:nobody
DLW=$WPID
for _ in $(seq 100); do
    [ "$(group_field engine:nobody lag)" = 0 ] && [ "$(group_field engine:nobody pending)" = 0 ] && break
    sleep 0.05
done
check "entries read after their deadline: answered timeout" \
    test "$($R xlen engine:nobody)" -ge 1 -a "$($R xpending engine:nobody engine | head -1)" = 0
kill -TERM $DLW; wait $DLW

# ---- two workers share one stream; kill -9 of one in the middle of 2,000 ----
MA=$(free_port) MB=$(free_port)
start_worker wa --null --consumer a --claim-idle-ms 1000 --null-batch-us 20000 --max-batch 8 --metrics-port $MA
WA=$WPID
start_worker wb --null --consumer b --claim-idle-ms 1000 --null-batch-us 20000 --max-batch 8 --metrics-port $MB
WB=$WPID
sleep 0.3
seq 1 2000 | sed 's/^/w /' >"$T/in2k.txt"
null_expected <"$T/in2k.txt" >"$T/want2k.txt"
$E submit --redis "$URL" --concurrency 200 --stats <"$T/in2k.txt" >"$T/out2k.txt" 2>"$T/submit2k.log" &
SP=$!
kill_holding $WA engine:requests a
check "kill -9 mid-run: the killed worker held entries" test $HELD -gt 0
wait $SP
rc=$?
check "kill -9 mid-run: submit exit 0" test $rc -eq 0
check "kill -9 mid-run: every request answered once, in order, right" cmp -s "$T/out2k.txt" "$T/want2k.txt"
check "kill -9 mid-run: the survivor claimed the dead worker's entries" \
    test "$(metric $MB engine_redis_entries_claimed_total)" -ge $HELD
check "kill -9 mid-run: nothing left pending" test "$($R xpending engine:requests engine | head -1)" = 0
cat "$T/submit2k.log"
# Both did work before the kill (a: read some; b: read some).
check "two workers: both read entries" \
    test "$($R xinfo consumers engine:requests engine | grep -c '^[ab]$')" = 2
kill -TERM $WB; wait $WB
check "SIGTERM after work: exit 0" test $? -eq 0

# ---- restart with the same consumer name finishes its own pending entries ----
start_worker wc1 --null --consumer c --claim-idle-ms 600000 --null-batch-us 300000 --max-batch 1
WC=$WPID
seq 1 10 | sed 's/^/r /' >"$T/in10.txt"
null_expected <"$T/in10.txt" >"$T/want10.txt"
$E submit --redis "$URL" <"$T/in10.txt" >"$T/out10.txt" &
SP=$!
kill_holding $WC engine:requests c
check "restart: the killed worker held pending entries" test $HELD -gt 0
start_worker wc2 --null --consumer c --claim-idle-ms 600000
WC=$WPID
wait $SP
check "restart: submit exit 0" test $? -eq 0
check "restart: all answered" cmp -s "$T/out10.txt" "$T/want10.txt"
kill -TERM $WC; wait $WC

# ---- poison: delivered more than --max-deliveries times -> dead letter ----
$R xgroup create engine:poison engine 0 mkstream >/dev/null
PID_=$($R xadd engine:poison '*' id p1 reply_to engine:reply:poison task classify input boom)
$R xreadgroup group engine ghost count 1 streams engine:poison '>' >/dev/null
$R xclaim engine:poison engine ghost 0 "$PID_" retrycount 3 >/dev/null
start_worker wp --null --stream engine:poison --claim-idle-ms 50 --max-deliveries 3
WP=$WPID
for _ in $(seq 100); do [ "$($R xlen engine:poison:dead)" -ge 1 ] && break; sleep 0.05; done
dead=$($R xrange engine:poison:dead - + | paste -sd' ')
check "poison: in the dead-letter stream with the reason" grep -qF "more than --max-deliveries 3" <<<"$dead"
check "poison: the original fields kept" grep -qF "input boom" <<<"$dead"
check "poison: answered dead_letter" grep -qF "status dead_letter" <<<"$($R xrange engine:reply:poison - + | paste -sd' ')"
check "poison: acknowledged" test "$($R xpending engine:poison engine | head -1)" = 0
kill -TERM $WP; wait $WP

# ---- SIGTERM with entries in hand: finishes, acknowledges, exits 0 ----
start_worker wt --null --null-batch-us 200000 --max-batch 4
WT=$WPID
seq 1 8 | sed 's/^/t /' >"$T/in8.txt"
null_expected <"$T/in8.txt" >"$T/want8.txt"
read0=$(group_field engine:requests entries-read)
$E submit --redis "$URL" <"$T/in8.txt" >"$T/out8.txt" &
SP=$!
# The signal once all 8 are read (two batches of 200 ms: some still held): an
# entry unread then would have no worker left to answer it.
for _ in $(seq 200); do
    [ "$(group_field engine:requests entries-read)" -ge $((read0 + 8)) ] 2>/dev/null && break
    sleep 0.01
done
kill -TERM $WT; wait $WT
check "SIGTERM with work in hand: exit 0" test $? -eq 0
check "SIGTERM: nothing left pending" test "$($R xpending engine:requests engine | head -1)" = 0
wait $SP
check "SIGTERM: every held entry answered" cmp -s "$T/out8.txt" "$T/want8.txt"

# ---- Redis killed and restarted under a worker ----
MR=$(free_port)
start_worker wr --null --metrics-port $MR
WR=$WPID
# Connected first (its /metrics starts after): Redis killed under it.
for _ in $(seq 100); do metric $MR engine_redis_inflight >/dev/null 2>&1 && break; sleep 0.05; done
kill -9 $RPID; wait $RPID 2>/dev/null
sleep 1
start_redis
seq 1 100 | sed 's/^/again /' >"$T/in100.txt"
null_expected <"$T/in100.txt" >"$T/want100.txt"
$E submit --redis "$URL" <"$T/in100.txt" >"$T/out100.txt"
check "redis restarted: submit exit 0" test $? -eq 0
check "redis restarted: nothing accepted after the restart lost" cmp -s "$T/out100.txt" "$T/want100.txt"
check "redis restarted: the worker reconnected" test "$(metric $MR engine_redis_reconnects_total)" -gt 0
kill -TERM $WR; wait $WR
check "redis restarted: worker exits 0 on SIGTERM" test $? -eq 0

# ---- round trip against the command line, every task, a real model ----
M=$B/models/sst2-bert-mini.eng
if [ -f "$M" ]; then
    start_worker wm "$M" --stream engine:bert
    WM=$WPID
    printf 'a charming and moving film\nbleak , desperate and dull\n\xff bad\n' >"$T/texts.txt"
    for task in classify embed tokenize; do
        $E $task "$M" <"$T/texts.txt" >"$T/cli-$task.txt" 2>/dev/null
        $E submit --redis "$URL" --stream engine:bert --task $task <"$T/texts.txt" >"$T/redis-$task.txt"
        check "$task through Redis = engine $task (first two lines)" \
            cmp -s <(head -2 "$T/cli-$task.txt") <(head -2 "$T/redis-$task.txt")
        check "$task through Redis: invalid UTF-8 fails alone" grep -q '"error"' <(sed -n 3p "$T/redis-$task.txt")
    done
    check "model metadata: labels" test -n "$($R hget engine:model:sst2-bert-mini labels | grep -v '^\[\]$')"
    kill -TERM $WM; wait $WM
else
    echo "note: $M missing (make models): the real-model round trip is not run"
fi
for f in "$T"/*.log; do
    if grep -q "ERROR: AddressSanitizer\|runtime error" "$f"; then
        echo "FAIL sanitizer report in $f"; cat "$f"; fails=$((fails + 1))
    fi
done
echo "test_redis: $fails failed"
[ $fails -eq 0 ]
