#!/bin/bash
# tests/test_zero_shot_serve.sh: a label set the model has not seen (its
# prompts through CLIP's text tower) does not hold up the requests behind it,
# in `engine worker` (Redis) and in `engine serve` (HTTP, one epoll thread).
# The tiny CLIP of tests/golden/tiny/clip-tok with a cold set of $COLD labels
# (about a second of text tower), then at once a warm zero-shot request (a
# cached set) and an image embed: both answered before the cold one. Also:
# two entries of the same new set embed it once (the label-set cache's misses
# grow by one) and answer the same; an entry whose set fails fails alone;
# every entry is acknowledged; SIGTERM with a cold set in flight answers it
# and exits 0. --zero-shot-threads: two new sets being embedded at once hold
# both of the default 2 threads (a warm entry waits for one of them), not all
# of 3 (worker and serve: the warm request answered before either); bad
# values refused. Fails on any sanitizer report in the servers' logs. Starts
# its own redis-server on a free loopback port (persistence off) and stops
# everything it started by pid.
# Exits 77 (skipped) without redis-server, python3 or curl.
set -u
B=${ENGINE_BUILD:-build}
E=$B/engine
# About a second of text tower here; a sanitizer build is up to 45x slower.
COLD=${COLD:-40000}
[ -n "${ENGINE_SAN_FLAGS:-}" ] && COLD=2000
. tests/serve_lib.sh
serve_test_init test_zero_shot_serve redis-server redis-cli python3 curl
CLIP=$T/clip.eng
if ! $B/convert tests/golden/tiny/clip-tok "$CLIP" >"$T/convert.log" 2>&1; then
    echo "test_zero_shot_serve: FAIL: $B/convert:"; cat "$T/convert.log"
    exit 1
fi
RP=$(free_port)
R="redis-cli -p $RP --raw"
redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no >"$T/redis.log" 2>&1 &
PIDS="$PIDS $!"
for _ in $(seq 100); do $R ping >/dev/null 2>&1 && break; sleep 0.05; done
MP=$(free_port)
$E worker "$CLIP" --redis "redis://127.0.0.1:$RP" --workers 1 --threads 1 --metrics-port "$MP" \
    --claim-idle-ms 600000 2>"$T/worker.log" &
WPID=$!
PIDS="$PIDS $WPID"
for _ in $(seq 200); do [ -n "$($R hget engine:model:clip arch)" ] && break; sleep 0.05; done

# ---- the worker: replies in the order they arrive in the reply stream ----
# (bench/zs_stall.py has the Redis client and the PNG maker)
python3 - "$RP" "$MP" "$COLD" >"$T/redis.txt" 2>&1 <<'PY'
import struct, sys, urllib.request
sys.path.insert(0, "bench")
from zs_stall import Redis, png
r, cold_n = Redis(int(sys.argv[1])), int(sys.argv[3])
def misses():
    for l in urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[2]).read().decode().splitlines():
        if l.startswith('engine_zero_shot_label_sets_total{model="clip",result="miss"}'):
            return int(l.split()[1])
feat = struct.pack("<16f", *[(i % 5) - 2.0 for i in range(16)])
labels = lambda names: b"".join(n.encode() + b"\0" for n in names)
warm = ["task", "zero_shot", "labels", labels(["cat", "dog", "car"]), "input", feat]
cold = ["task", "zero_shot", "labels", labels("w%d" % i for i in range(cold_n)), "input", feat]
bad = ["task", "zero_shot", "labels", labels(["x"]), "label_ids", struct.pack("<4i", 3, 2012, 99999, 2013),
       "input", feat]   # an id past the vocabulary: the set fails
embed = ["task", "embed", "input", png(40, 30, 1)]
def send(*entries):
    for name, fields in entries:
        r.send("XADD", "engine:requests", "*", "id", name, "reply_to", "rs", *fields)
    for _ in entries:
        r.read()
last = "0-0"
def replies(n):
    global last
    got = []
    while len(got) < n:
        for eid, kv in (r.cmd("XREAD", "BLOCK", 120000, "STREAMS", "rs", last) or [[0, "no reply in 120 s"]])[0][1]:
            last = eid.decode()
            d = dict(zip(kv[::2], kv[1::2]))
            got.append((d[b"id"].decode(), d[b"status"].decode(), d[b"body"]))
    return got
send(("w0", warm), ("bad", bad), ("e0", embed))
got = replies(3)
print("warm-up", " ".join("%s=%s" % (i, s) for i, s, _ in sorted(got)))
print("bad_says_why", b"error" in dict((i, b) for i, _, b in got)["bad"])
m0 = misses()
send(("cold1", cold), ("cold2", cold), ("warm", warm), ("embed", embed))
got = replies(4)
order = [i for i, _, _ in got]
print("order", " ".join(order))
st = {i: s for i, s, _ in got}
body = {i: b for i, _, b in got}
print("status", " ".join("%s=%s" % kv for kv in sorted(st.items())))
print("warm_before_cold", order.index("warm") < order.index("cold1") and order.index("warm") < order.index("cold2"))
print("embed_before_cold", order.index("embed") < order.index("cold1") and order.index("embed") < order.index("cold2"))
print("same_answer", body["cold1"] == body["cold2"] and body["cold1"].startswith(b'{"top":['))
print("misses", misses() - m0)
PY
cat "$T/redis.txt"
check "worker: a warm zero-shot entry is answered before the cold set's" grep -qx 'warm_before_cold True' "$T/redis.txt"
check "worker: an embed entry is answered before the cold set's" grep -qx 'embed_before_cold True' "$T/redis.txt"
check "worker: a set that fails fails alone" grep -qx 'warm-up bad=invalid_arg e0=ok w0=ok' "$T/redis.txt"
check "worker: the entries behind the cold set ok" \
    grep -qx 'status cold1=ok cold2=ok embed=ok warm=ok' "$T/redis.txt"
check "worker: the bad set's answer says why" grep -qx 'bad_says_why True' "$T/redis.txt"
check "worker: two entries of one new set answer the same" grep -qx 'same_answer True' "$T/redis.txt"
check "worker: two entries of one new set embed it once" grep -qx 'misses 1' "$T/redis.txt"

# ---- two new label sets at once: the zero-shot threads they leave free ----
cat >"$T/two_new_sets.py" <<'PY'
# two_new_sets.py REDIS_PORT METRICS_PORT COLD TAG: a warm set cached, then
# two new sets sent, and once both are being embedded (the label-set cache's
# misses grew by two), a warm entry; prints the order of the three replies.
import struct, sys, time, urllib.request
sys.path.insert(0, "bench")
from zs_stall import Redis
r, cold_n, tag = Redis(int(sys.argv[1])), int(sys.argv[3]), sys.argv[4]
def misses():
    for l in urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[2]).read().decode().splitlines():
        if l.startswith('engine_zero_shot_label_sets_total{model="clip",result="miss"}'):
            return int(l.split()[1])
feat = struct.pack("<16f", *[(i % 5) - 2.0 for i in range(16)])
labels = lambda names: b"".join(n.encode() + b"\0" for n in names)
zs = lambda names: ["task", "zero_shot", "labels", labels(names), "input", feat]
rs = "rs-" + tag
def send(name, fields):
    r.cmd("XADD", "engine:requests", "*", "id", name, "reply_to", rs, *fields)
last = "0-0"
def replies(n):
    global last
    got = []
    while len(got) < n:
        for eid, kv in (r.cmd("XREAD", "BLOCK", 120000, "STREAMS", rs, last) or [[0, "no reply in 120 s"]])[0][1]:
            last = eid.decode()
            d = dict(zip(kv[::2], kv[1::2]))
            got.append((d[b"id"].decode(), d[b"status"].decode()))
    return got
send("w0", zs(["cat", "dog", "car"]))
replies(1)
m0 = misses()
send("coldA", zs("%sa%d" % (tag, i) for i in range(cold_n)))
send("coldB", zs("%sb%d" % (tag, i) for i in range(cold_n)))
t_end = time.monotonic() + 120
while misses() < m0 + 2 and time.monotonic() < t_end:
    time.sleep(0.01)
print("both_new_sets_embedding", misses() == m0 + 2)
send("warm", zs(["cat", "dog", "car"]))
got = replies(3)
print("order", *(i for i, _ in got))
print("status", *sorted("%s=%s" % kv for kv in got))
PY
python3 "$T/two_new_sets.py" "$RP" "$MP" "$COLD" d2 >"$T/two2.txt" 2>&1
cat "$T/two2.txt"
check "worker, 2 zero-shot threads: two new sets embedded at once" \
    grep -qx 'both_new_sets_embedding True' "$T/two2.txt"
check "worker, 2 zero-shot threads (the default): the warm entry waits for a new set" \
    grep -Eq '^order cold[AB] ' "$T/two2.txt"
check "worker, 2 zero-shot threads: all ok" grep -qx 'status coldA=ok coldB=ok warm=ok' "$T/two2.txt"
for _ in $(seq 50); do [ "$($R xpending engine:requests engine | head -1)" = 0 ] && break; sleep 0.1; done
check "worker: every entry acknowledged" test "$($R xpending engine:requests engine | head -1)" = 0

# SIGTERM with a new set being embedded: answered, acknowledged, exit 0.
python3 - "$RP" "$COLD" <<'PY'
import struct, sys
sys.path.insert(0, "bench")
from zs_stall import Redis
r = Redis(int(sys.argv[1]))
names = b"".join(b"t%d\0" % i for i in range(int(sys.argv[2])))
r.cmd("XADD", "engine:requests", "*", "id", "term", "reply_to", "rs3", "task", "zero_shot", "labels", names,
      "input", struct.pack("<16f", *range(16)))
PY
for _ in $(seq 100); do [ "$($R xpending engine:requests engine | head -1)" = 1 ] && break; sleep 0.05; done
kill -TERM $WPID
wait $WPID
check "worker: SIGTERM with a cold set in flight: exit 0" test $? -eq 0
check "worker: ... and it was answered" grep -qF "id term status ok" <<<"$($R xrange rs3 - + | paste -sd' ')"
check "worker: ... and acknowledged" test "$($R xpending engine:requests engine | head -1)" = 0

# --zero-shot-threads 3: the two new sets leave a thread to the warm entry.
MP3=$(free_port)
$E worker "$CLIP" --redis "redis://127.0.0.1:$RP" --workers 1 --threads 1 --metrics-port "$MP3" \
    --claim-idle-ms 600000 --zero-shot-threads 3 2>"$T/worker3.log" &
WPID=$!
PIDS="$PIDS $WPID"
python3 "$T/two_new_sets.py" "$RP" "$MP3" "$COLD" d3 >"$T/two3.txt" 2>&1
cat "$T/two3.txt"
check "worker, 3 zero-shot threads: two new sets embedded at once" \
    grep -qx 'both_new_sets_embedding True' "$T/two3.txt"
check "worker, 3 zero-shot threads: the warm entry answered before both new sets" \
    grep -Eqx 'order warm cold[AB] cold[AB]' "$T/two3.txt"
check "worker, 3 zero-shot threads: all ok" grep -qx 'status coldA=ok coldB=ok warm=ok' "$T/two3.txt"
kill -TERM $WPID
wait $WPID
check "worker, 3 zero-shot threads: SIGTERM: exit 0" test $? -eq 0
bad_threads() {   # bad_threads VALUE COMMAND...: exit 2 saying the range (not serving)
    timeout 60 "${@:2}" --zero-shot-threads "$1" >/dev/null 2>"$T/bad.log"
    [ $? -eq 2 ] && grep -q -- "--zero-shot-threads must be 1 to 64, not $1" "$T/bad.log"
}
check "worker: --zero-shot-threads 0 refused" bad_threads 0 $E worker "$CLIP" --redis "redis://127.0.0.1:$RP"
check "worker: --zero-shot-threads 65 refused" bad_threads 65 $E worker "$CLIP" --redis "redis://127.0.0.1:$RP"
check "worker: --zero-shot-threads x refused" bad_threads x $E worker "$CLIP" --redis "redis://127.0.0.1:$RP"
check "serve: --zero-shot-threads 0 refused" bad_threads 0 $E serve "$CLIP" --port 0
check "serve: --zero-shot-threads 65 refused" bad_threads 65 $E serve "$CLIP" --port 0
ENGINE_ZERO_SHOT_THREADS=x timeout 60 $E serve "$CLIP" --port 0 2>"$T/bad.log"
check "serve: ENGINE_ZERO_SHOT_THREADS=x refused" \
    bash -c "[ $? -eq 2 ] && grep -q 'bad value ENGINE_ZERO_SHOT_THREADS=x' '$T/bad.log'"

# engine serve on one HTTP thread (start_serve LOG EXTRA-ARGS...: sets HP and
# SPID), and the Python client its checks share: post() records each
# answer's arrival (its head: the server's order, whatever its size), status
# and body; misses() reads the label-set cache's miss counter from /metrics.
start_serve() {
    log=$1
    shift
    HP=$(free_port)
    $E serve "$CLIP" --port "$HP" --workers 1 --threads 1 --http-threads 1 "$@" 2>"$T/$log" &
    SPID=$!
    PIDS="$PIDS $SPID"
    for _ in $(seq 600); do curl -sf "http://127.0.0.1:$HP/health" >/dev/null && break; sleep 0.1; done
}
cat >"$T/zs_http.py" <<'PY'
import base64, json, sys, time, urllib.request
sys.path.insert(0, "bench")
from zs_stall import png
url = "http://127.0.0.1:%s/v2/models/clip/zero-shot" % sys.argv[1]
image = base64.b64encode(png(40, 30, 1)).decode()
done = {}
def post(key, labels):
    req = urllib.request.Request(url, json.dumps({"inputs": [image], "labels": labels}).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as resp:
        t = time.monotonic()
        done[key] = (t, resp.status, json.loads(resp.read()))
def misses():   # (on the one epoll thread too: it answers once that thread is free)
    for l in urllib.request.urlopen(url.split("/v2")[0] + "/metrics", timeout=300).read().decode().splitlines():
        if l.startswith('engine_zero_shot_label_sets_total{model="clip",result="miss"}'):
            return int(l.split()[1])
PY

# ---- engine serve, one HTTP thread: a warm /zero-shot while a cold one runs ----
start_serve serve.log
python3 - "$HP" "$COLD" "$T" >"$T/http.txt" 2>&1 <<'PY'
import sys, threading, time
sys.path.insert(0, sys.argv[3])
from zs_http import done, misses, post
post("w0", ["cat", "dog", "car"])
m0 = misses()
th = threading.Thread(target=post, args=("cold", ["h%d" % i for i in range(int(sys.argv[2]))]))
th.start()
while misses() == m0:   # the cold set is being embedded now
    time.sleep(0.01)
post("warm", ["cat", "dog", "car"])
th.join()
print("statuses", done["w0"][1], done["warm"][1], done["cold"][1])
print("warm_before_cold", done["warm"][0] < done["cold"][0])
print("warm_same_answer", done["warm"][2] == done["w0"][2])
print("cold_answer", len(done["cold"][2][0]["probs"]) == int(sys.argv[2]))
PY
cat "$T/http.txt"
check "serve: statuses 200" grep -qx 'statuses 200 200 200' "$T/http.txt"
check "serve: a warm /zero-shot is answered before the cold one" grep -qx 'warm_before_cold True' "$T/http.txt"
check "serve: the warm answer as before the cold set" grep -qx 'warm_same_answer True' "$T/http.txt"
check "serve: the cold answer has its labels' probabilities" grep -qx 'cold_answer True' "$T/http.txt"
kill -TERM $SPID
wait $SPID
check "serve: SIGTERM: exit 0" test $? -eq 0

# engine serve --zero-shot-threads 3: two new sets being embedded, a warm
# /zero-shot answered before either.
start_serve serve3.log --zero-shot-threads 3
python3 - "$HP" "$COLD" "$T" >"$T/http3.txt" 2>&1 <<'PY'
import sys, threading, time
sys.path.insert(0, sys.argv[3])
from zs_http import done, misses, post
post("w0", ["cat", "dog", "car"])
m0 = misses()
ths = [threading.Thread(target=post, args=(k, ["%s%d" % (k, i) for i in range(int(sys.argv[2]))]))
       for k in ("coldA", "coldB")]
for th in ths:
    th.start()
t_end = time.monotonic() + 120
while misses() < m0 + 2 and time.monotonic() < t_end:
    time.sleep(0.01)
print("both_new_sets_embedding", misses() == m0 + 2)
post("warm", ["cat", "dog", "car"])
for th in ths:
    th.join()
print("statuses", done["warm"][1], done["coldA"][1], done["coldB"][1])
print("warm_before_both", done["warm"][0] < min(done["coldA"][0], done["coldB"][0]))
PY
cat "$T/http3.txt"
check "serve, 3 zero-shot threads: two new sets embedded at once" \
    grep -qx 'both_new_sets_embedding True' "$T/http3.txt"
check "serve, 3 zero-shot threads: a warm /zero-shot answered before both new sets" \
    grep -qx 'warm_before_both True' "$T/http3.txt"
check "serve, 3 zero-shot threads: statuses 200" grep -qx 'statuses 200 200 200' "$T/http3.txt"
kill -TERM $SPID
wait $SPID
check "serve, 3 zero-shot threads: SIGTERM: exit 0" test $? -eq 0

if [ -n "${ENGINE_SAN_FLAGS:-}" ]; then
    check "no sanitizer report in the logs" \
        bash -c "! grep -l 'Sanitizer\|runtime error' '$T'/worker*.log '$T'/serve*.log"
fi
[ $fails -eq 0 ] || { echo "--- worker log"; tail -20 "$T/worker.log"; echo "--- serve log"; tail -20 "$T/serve.log"; }
exit $((fails > 0))
