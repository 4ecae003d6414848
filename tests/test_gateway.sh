#!/bin/bash
# tests/test_gateway.sh: `engine serve --backend redis://...` (the gateway,
# tools/serve/backend_redis.c) against a local `engine serve` of the same
# models (sst2-bert-mini, and the tiny CLIP of tests/golden/tiny/clip-tok on
# its own stream): every route's answer (status and body, /tokenize and
# /zero-shot too) equal byte for byte, the workers' zero-shot label-set cache
# counted as the local server's; two workers, one killed -9 under load (every
# request still answered); malformed reply entries; a dead-lettered entry
# (500 saying why); no worker left (a deadline answers 504, no deadline 503
# after --reply-timeout-ms, never a hang); no worker at start (a clear error).
# Starts its own redis-server on a free loopback port with persistence off and
# stops everything it started by pid. Exits 77 (skipped) without redis-server
# or without $ENGINE_BUILD/models/sst2-bert-mini.eng (make models).
set -u
B=${ENGINE_BUILD:-build}
E=$B/engine
MODEL=$B/models/sst2-bert-mini.eng
CLIP_DIR=tests/golden/tiny/clip-tok
. tests/serve_lib.sh
serve_test_init test_gateway redis-server redis-cli python3 curl
if [ ! -f "$MODEL" ]; then
    echo "test_gateway: SKIP: $MODEL not found (make models needs ../shared)"
    exit 77
fi
CLIP=$T/clip.eng
if ! $B/convert "$CLIP_DIR" "$CLIP" >"$T/convert.log" 2>&1; then
    echo "test_gateway: FAIL: $B/convert $CLIP_DIR:"; cat "$T/convert.log"
    exit 1
fi
wait_http() {   # wait_http PORT PID: until /health answers 200 (or the server died)
    for _ in $(seq 600); do
        python3 - "$1" <<'PY' 2>/dev/null && return 0
import sys, urllib.request
urllib.request.urlopen("http://127.0.0.1:%s/health" % sys.argv[1], timeout=1)
PY
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
metric() {   # metric PORT NAME: the value of an unlabelled series
    python3 - "$1" "$2" <<'PY'
import sys, urllib.request
for line in urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=5).read().decode().splitlines():
    if line.startswith(sys.argv[2] + " "):
        print(line.split()[1])
PY
}

RP=$(free_port)
URL=redis://127.0.0.1:$RP
R="redis-cli -p $RP --raw"
start_redis() {
    redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no >>"$T/redis.log" 2>&1 &
    RPID=$!
    PIDS="$PIDS $RPID"
    for _ in $(seq 100); do $R ping >/dev/null 2>&1 && break; sleep 0.05; done
}
start_redis

# ---- no worker has published a model: a clear error, not a wait forever ----
$E serve --backend "$URL/1" --port 0 --connect-timeout-ms 300 2>"$T/nometa.log"
check "no worker at start: exit 1" test $? -eq 1
check "no worker at start: says why" grep -q "no worker published" "$T/nometa.log"

# ---- two workers, a local server, a gateway ----
# --claim-idle-ms must exceed the longest computation (a 512-token text takes
# over a second in a sanitizer build: claimed sooner, it would be computed
# again and again, then dead-lettered); the gateway's --reply-timeout-ms must
# exceed it (a dead worker's items are answered after it).
CLAIM_MS=1000 REPLY_MS=4000
[ -n "${ENGINE_SAN_FLAGS:-}" ] && CLAIM_MS=8000 REPLY_MS=20000
start_worker() {   # start_worker NAME METRICS_PORT: a worker of the model, its pid in WPID
    $E worker "$MODEL" --redis "$URL" --consumer "$1" --workers 1 --threads 1 \
        --claim-idle-ms "$CLAIM_MS" --metrics-port "$2" 2>>"$T/$1.log" &
    WPID=$!
    PIDS="$PIDS $WPID"
}
M1=$(free_port)
start_worker w1 "$M1"
W1=$WPID
M2=$(free_port)
start_worker w2 "$M2"
W2=$WPID
MC=$(free_port)
$E worker "$CLIP" --redis "$URL" --stream engine:clip --consumer wc --workers 1 --threads 1 \
    --metrics-port "$MC" 2>>"$T/wc.log" &
WC=$!
PIDS="$PIDS $WC"
LPORT=$(free_port)
$E serve "$MODEL" "$CLIP" --port "$LPORT" --workers 1 --threads 1 2>"$T/local.log" &
LPID=$!
PIDS="$PIDS $LPID"
for m in sst2-bert-mini clip; do
    for _ in $(seq 100); do [ -n "$($R hget engine:model:$m arch)" ] && break; sleep 0.05; done
done
GPORT=$(free_port)
$E serve --backend "$URL" sst2-bert-mini clip --port "$GPORT" --reply-timeout-ms "$REPLY_MS" \
    2>"$T/gateway.log" &
GPID=$!
PIDS="$PIDS $GPID"
check "local server ready" wait_http "$LPORT" $LPID
check "gateway ready" wait_http "$GPORT" $GPID

# ---- every route: the gateway's answer equals the local server's ----
python3 - "$LPORT" "$GPORT" >"$T/compare.txt" 2>&1 <<'PY'
import base64, json, struct, sys, urllib.request, urllib.error, zlib
local, gw = sys.argv[1], sys.argv[2]
M = "sst2-bert-mini"
long_text = " ".join(["word"] * 600)
def png(w, h, seed):   # an RGB PNG of a seeded pattern, as base64
    rows = b"".join(b"\0" + bytes((x * 37 + y * 11 + c * 53 + seed) % 256
                                  for x in range(w) for c in range(3)) for y in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" +
                            chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                            chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")).decode()
A, Bimg = png(40, 30, 1), png(24, 36, 99)
ZS = "/v2/models/clip/zero-shot"
many = ["label %d" % i for i in range(300)]
cases = [
    ("GET", "/info", None, {}),
    ("GET", "/v2/models/" + M, None, {}),
    ("GET", "/v2/models/" + M + "/ready", None, {}),
    ("GET", "/v2/models/nope", None, {}),
    ("GET", "/nowhere", None, {}),
    ("POST", "/embed", {"inputs": "I loved this movie"}, {}),
    ("POST", "/embed", {"inputs": ["I loved this movie", "terrible plot", "ok"]}, {}),
    ("POST", "/embed", {"inputs": ["raw vector please"], "normalize": False}, {}),
    ("POST", "/predict", {"inputs": "a wonderful, moving film"}, {}),
    ("POST", "/predict", {"inputs": ["dull", "brilliant acting"], "raw_scores": True}, {}),
    ("POST", "/predict", {"inputs": long_text, "truncate": True}, {}),
    ("POST", "/predict", {"inputs": long_text}, {}),
    ("POST", "/predict", {"inputs": []}, {}),
    ("POST", "/predict", b"{not json", {}),
    ("POST", "/predict", b'{"inputs":"bad \xff utf8"}', {}),
    ("POST", "/predict", {"inputs": "x"}, {"X-Priority": "9"}),
    ("POST", "/predict", {"inputs": "urgent"}, {"X-Priority": "0"}),
    ("POST", "/v1/embeddings", {"input": ["one", "two"], "model": M}, {}),
    ("POST", "/v2/models/%s/infer" % M,
     {"id": "r1", "inputs": [{"name": "text", "datatype": "BYTES", "shape": [2],
                              "data": ["good film", "bad film"]}]}, {}),
    ("POST", "/v2/models/%s/infer" % M,
     {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["embed me"]}],
      "outputs": [{"name": "embedding"}]}, {}),
    ("POST", "/v2/models/%s/classify" % M, b"\x89PNG", {"Content-Type": "image/png"}),
    ("POST", "/tokenize", {"inputs": "Hello, World!"}, {}),
    ("POST", "/tokenize", {"inputs": ["one text", "and another"], "add_special_tokens": False}, {}),
    ("POST", "/tokenize", {"inputs": long_text}, {}),
    ("POST", "/tokenize", {"inputs": long_text, "truncate": True}, {}),
    ("POST", "/tokenize", b'{"inputs":["fine","bad \xff utf8"]}', {}),
    # CLIP zero-shot: prompts as ids, through the tokenizer (template or the
    # default), a label set seen before (the workers' cache), several images,
    # many labels; then what fails: an image that does not decode, an id past
    # the vocabulary, a prompt longer than the text tower, malformed bodies, a
    # model that is not CLIP.
    ("POST", ZS, {"inputs": [A], "labels": ["cat", "dog"],
                  "label_ids": [[2012, 5, 2013], [2012, 7, 9, 2013]]}, {}),
    ("POST", ZS, {"inputs": [A, Bimg], "labels": ["a cat", "a dog", "\u00e9t\u00e9 \"q\""],
                  "template": "a photo of {}, maybe"}, {}),
    ("POST", ZS, {"inputs": [Bimg], "labels": ["a cat", "a dog", "\u00e9t\u00e9 \"q\""],
                  "template": "a photo of {}, maybe"}, {}),
    ("POST", ZS, {"inputs": [Bimg, A, Bimg], "labels": ["red", "green", "blue"]}, {}),
    ("POST", ZS, {"inputs": [A], "labels": many}, {}),
    ("POST", ZS, {"inputs": [A, "bm90IGFuIGltYWdl"], "labels": ["x", "y"]}, {}),
    ("POST", ZS, {"inputs": [A], "labels": ["x", "y"], "label_ids": [[2012, 2013], [2012, 99999]]}, {}),
    ("POST", ZS, {"inputs": [A], "labels": ["x"], "label_ids": [list(range(40))]}, {}),
    ("POST", ZS, {"inputs": [A], "labels": []}, {}),
    ("POST", ZS, {"inputs": [A], "labels": ["x"], "label_ids": [[-1]]}, {}),
    ("POST", ZS, b"{not json", {}),
    ("POST", "/v2/models/%s/zero-shot" % M, {"inputs": [A], "labels": ["x"]}, {}),
]
def call(port, method, path, body, headers):
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request("http://127.0.0.1:%s%s" % (port, path), data=data,
                                 method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
bad = 0
for method, path, body, headers in cases:
    a, b = call(local, method, path, body, headers), call(gw, method, path, body, headers)
    same = a == b
    bad += not same
    shown = body[:20] if isinstance(body, bytes) else json.dumps(body)[:40]
    print("%s %s %s %s -> %d%s" % ("same" if same else "DIFF", method, path, shown, a[0],
                                   "" if same else "\n  local   %r\n  gateway %r" % (a, b)))
print("cases", len(cases), "different", bad)
PY

check "every route: gateway answer = local answer (status and body)" grep -q "different 0" "$T/compare.txt"
grep DIFF -A2 "$T/compare.txt" | head -20
check "the cases include answers computed by a worker" test "$(grep -c '^same POST.* -> 200' "$T/compare.txt")" -ge 17
check "zero-shot cases answered 200 through the gateway" \
    test "$(grep -c '^same POST /v2/models/clip/zero-shot.* -> 200' "$T/compare.txt")" -eq 5
check "zero-shot failures answered as the local server's" \
    test "$(grep -c '^same POST /v2/models/clip/zero-shot.* -> 4[02]' "$T/compare.txt")" -eq 6
# The label sets went through the library's cache on the CLIP worker as on
# the local server: the same hits and misses.
zs_counts() {   # zs_counts PORT: the hit and miss series of model clip
    curl -s "http://127.0.0.1:$1/metrics" | grep '^engine_zero_shot_label_sets_total{model="clip"'
}
zs_counts "$MC" >"$T/zs_worker.txt"
zs_counts "$LPORT" >"$T/zs_local.txt"
check "worker /metrics: zero-shot label sets counted as the local server's" \
    cmp -s "$T/zs_worker.txt" "$T/zs_local.txt"
check "zero-shot label sets: a hit among them" grep -q 'result="hit"} [1-9]' "$T/zs_worker.txt"
cat "$T/zs_worker.txt"
check "worker 1 did work" test "$(metric "$M1" engine_redis_entries_read_total)" -gt 0
check "worker 2 did work" test "$(metric "$M2" engine_redis_entries_read_total)" -gt 0
# The worker's /metrics has engine serve's per-model families (one dashboard).
same_families() {
    local fam
    for fam in engine_request_queue_duration_seconds_count engine_request_inference_duration_seconds_count \
               engine_batch_size_count engine_inputs_total engine_queue_depth; do
        curl -s "http://127.0.0.1:$1/metrics" | grep -q "^$fam{model=\"sst2-bert-mini\"} " || return 1
    done
    curl -s "http://127.0.0.1:$1/metrics" | grep -q '^engine_redis_answers_total{model="sst2-bert-mini",status="ok"} [1-9]'
}
check "worker /metrics: engine serve's model families, answers by status" same_families "$M1"

# ---- malformed reply entries: dropped and counted, the gateway goes on ----
RS=$(sed -n 's/.*gateway: replies on //p' "$T/gateway.log")
$R xadd "$RS" '*' status ok body '{}' >/dev/null           # no id
$R xadd "$RS" '*' id 1-1 body '{}' >/dev/null              # no status
$R xadd "$RS" '*' id 'not-ours' status ok >/dev/null       # an id the gateway never sent
$R xadd "$RS" '*' id 99999-7 status ok raw junk >/dev/null # a slot not waiting: dropped
for _ in $(seq 100); do
    [ "$(metric "$GPORT" engine_gateway_replies_malformed_total)" -ge 3 ] &&
        [ "$(metric "$GPORT" engine_gateway_replies_duplicate_total)" -ge 1 ] && break
    sleep 0.05
done
check "malformed replies counted" test "$(metric "$GPORT" engine_gateway_replies_malformed_total)" -ge 3
check "stale reply dropped as a duplicate" test "$(metric "$GPORT" engine_gateway_replies_duplicate_total)" -ge 1
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{"inputs":"still fine"}' "http://127.0.0.1:$GPORT/predict")
check "gateway answers after malformed replies" test "$code" = 200

# ---- Redis restarted under the gateway (data lost): the next requests are
# answered, the first one too (each HTTP thread's connection is made again) ----
kill -9 $RPID
wait $RPID 2>/dev/null
start_redis
ok_after=0
for k in 1 2 3 4; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -d "{\"inputs\":\"after restart $k\"}" \
           "http://127.0.0.1:$GPORT/predict")
    [ "$code" = 200 ] && ok_after=$((ok_after + 1))
done
check "Redis restarted: every request after it answered 200" test $ok_after -eq 4
check "Redis restarted: the gateway's reader reconnected" \
    test "$(metric "$GPORT" engine_redis_reconnects_total)" -ge 1

# ---- kill -9 of one of two workers under load: every request answered ----
# (2,000 requests; 400 in a sanitizer build, which computes ~30x slower)
LOAD=2000
[ -n "${ENGINE_SAN_FLAGS:-}" ] && LOAD=400
python3 - "$GPORT" "$LOAD" >"$T/load.txt" 2>&1 <<'PY' &
import json, sys, threading, time, urllib.request, urllib.error
port, n = sys.argv[1], int(sys.argv[2])
t0 = time.time()
codes = {}
def run(k):
    for i in range(k, n, 8):
        req = urllib.request.Request("http://127.0.0.1:%s/predict" % port,
                                     data=json.dumps({"inputs": "text number %d" % i}).encode())
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                codes[i] = r.status
        except urllib.error.HTTPError as e:
            codes[i] = e.code
        except Exception as e:
            codes[i] = str(e)
ts = [threading.Thread(target=run, args=(k,)) for k in range(8)]
for t in ts: t.start()
for t in ts: t.join()
print("answered", len(codes), "ok", sum(1 for c in codes.values() if c == 200),
      "in %.1f s" % (time.time() - t0))
print("not 200:", sorted(set(str(c) for c in codes.values() if c != 200))[:5])
PY
LOADPID=$!
# Killed while it holds entries, which the other must claim.
kill_holding $W1 engine:requests w1
check "kill -9 under load: the killed worker held entries" test $HELD -gt 0
wait $LOADPID
check "kill -9 under load: all $LOAD requests answered 200" grep -q "answered $LOAD ok $LOAD" "$T/load.txt"
cat "$T/load.txt"
check "kill -9 under load: the dead worker's entries claimed by the other" \
    test "$(metric "$M2" engine_redis_entries_claimed_total)" -ge $HELD
check "kill -9 under load: none left pending on the dead worker" \
    test -z "$($R xpending engine:requests engine - + 1 w1)"

# ---- a dead-lettered entry: answered 500 with the workers' reason ----
# A second gateway (finding its model on the stream) in front of a stream
# whose first worker left; its entry is read by a consumer that never
# answers, then claimed by a worker allowing one delivery.
PS=engine:poison
poison_worker() {   # poison_worker CONSUMER [OPTION...]: its pid in WPID
    $E worker "$MODEL" --redis "$URL" --stream $PS --model-name poison --consumer "$1" \
        --workers 1 --threads 1 "${@:2}" 2>>"$T/$1.log" &
    WPID=$!
    PIDS="$PIDS $WPID"
}
poison_worker p1
for _ in $(seq 100); do [ -n "$($R hget engine:model:poison arch)" ] && break; sleep 0.05; done
kill -TERM $WPID; wait $WPID
G2PORT=$(free_port)
$E serve --backend "$URL" --stream $PS --port "$G2PORT" --reply-timeout-ms "$REPLY_MS" \
    2>"$T/gateway2.log" &
G2PID=$!
PIDS="$PIDS $G2PID"
check "second gateway ready" wait_http "$G2PORT" $G2PID
curl -s -o "$T/dead.json" -w '%{http_code}' -X POST -d '{"inputs":"poison"}' \
    "http://127.0.0.1:$G2PORT/predict" >"$T/dead.code" &
CURLPID=$!
for _ in $(seq 200); do [ "$($R xlen $PS)" = 1 ] && break; sleep 0.05; done
$R xreadgroup group engine ghost count 1 streams $PS '>' >/dev/null   # delivery 1
poison_worker p2 --max-deliveries 1 --claim-idle-ms 100
wait $CURLPID
check "dead letter through the gateway: 500" test "$(cat "$T/dead.code")" = 500
check "dead letter through the gateway: says why" grep -qF \
    '"Input 0: the workers gave up on it: delivered 2 times, more than --max-deliveries 1"' \
    "$T/dead.json"
check "dead letter: in the dead-letter stream" test "$($R xlen $PS:dead)" = 1
kill -TERM $WPID $G2PID; wait $WPID $G2PID

# ---- no worker left: deadlines answer, nothing hangs ----
kill -9 $W2
t0=$(date +%s%N)
code=$(curl -s -o "$T/dl.json" -w '%{http_code}' -H 'X-Request-Timeout-Ms: 300' -X POST \
       -d '{"inputs":"anyone?"}' "http://127.0.0.1:$GPORT/predict")
t1=$(date +%s%N)
check "no worker, a deadline: 504" test "$code" = 504
check "no worker, a deadline: the local server's timeout answer" \
    grep -qF '"error_type":"timeout"' "$T/dl.json"
check "no worker, a deadline: within 3 s" test $(((t1 - t0) / 1000000)) -lt 3000
code=$(curl -s -o "$T/nd.json" -w '%{http_code}' -X POST -d '{"inputs":"anyone?"}' \
       "http://127.0.0.1:$GPORT/predict")
t2=$(date +%s%N)
check "no worker, no deadline: 503 after --reply-timeout-ms" test "$code" = 503
check "no worker, no deadline: says so" grep -q "no worker answered" "$T/nd.json"
check "no worker, no deadline: within --reply-timeout-ms + 2 s" \
    test $(((t2 - t1) / 1000000)) -lt $((REPLY_MS + 2000))

kill -TERM $GPID; wait $GPID
check "gateway: SIGTERM exits 0" test $? -eq 0
check "gateway deletes its reply stream" test "$($R exists "$RS")" = 0
kill -TERM $LPID; wait $LPID
check "local server: SIGTERM exits 0" test $? -eq 0
clean_logs() { ! grep -l "Sanitizer\|runtime error" "$T"/*.log; }
check "no sanitizer report in any log" clean_logs

echo "test_gateway: $fails failed"
[ $fails -eq 0 ]
