#!/usr/bin/env python3
"""bench/zs_stall.py: does a cold zero-shot label set hold up the requests
behind it? bench/zs_stall.sh runs it against `engine worker` (through Redis)
and `engine serve` (HTTP) of a CLIP model.

Each trial sends a zero_shot request with a label set never seen (LABELS
prompts of random ids, so the worker embeds them through the text tower) and,
right after it, a warm request; it prints one JSON line per trial with the
warm request's latency in ms ("after_cold"), and the same request's latency
alone ("alone", no cold set before it), alternating.

  zs_stall.py redis PORT STREAM TRIALS  (warm: an image embed entry, and a
                                         zero_shot entry of a cached set)
  zs_stall.py http PORT MODEL TRIALS    (warm: a /zero-shot of a cached set)
Options (environment): LABELS (80), BOS, EOS, VOCAB (CLIP's 49406, 49407,
49408), DIM (embed_size, 512), GAP_MS (http: the warm request leaves this long
after the cold one, 30)."""
import base64, json, os, random, socket, struct, sys, threading, time, urllib.request, zlib

LABELS = int(os.environ.get("LABELS", 80))
BOS, EOS, VOCAB = (int(os.environ.get(k, d)) for k, d in (("BOS", 49406), ("EOS", 49407), ("VOCAB", 49408)))
DIM = int(os.environ.get("DIM", 512))
GAP = int(os.environ.get("GAP_MS", 30)) / 1000
rng = random.Random(17)


def png(w, h, seed):
    rows = b"".join(b"\0" + bytes((x * 37 + y * 11 + c * 53 + seed) % 256
                                  for x in range(w) for c in range(3)) for y in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def label_set(tag):
    """LABELS labels named pid-tag-i (new to a server that served earlier
    runs), each prompt BOS, 6 random ids, EOS."""
    names = ["%d-%s-%d" % (os.getpid(), tag, i) for i in range(LABELS)]
    ids = [[BOS] + [rng.randrange(VOCAB - 2) for _ in range(6)] + [EOS] for _ in names]
    return names, ids


class Redis:
    """Just enough RESP for XADD and XREAD."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")

    def send(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)

    def read(self):
        line = self.f.readline()
        t, rest = line[:1], line[1:-2]
        if t in (b"+", b":"):
            return rest
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        n = int(rest)
        return None if n < 0 else [self.read() for _ in range(n)]

    def cmd(self, *args):
        self.send(*args)
        return self.read()


def zs_fields(names, ids, features):
    lab = b"".join(n.encode() + b"\0" for n in names)
    lid = b"".join(struct.pack("<I", len(r)) + struct.pack("<%di" % len(r), *r) for r in ids)
    return ["task", "zero_shot", "labels", lab, "label_ids", lid, "input", features]


def redis_mode(port, stream, trials):
    r = Redis(port)
    reply = "zs-stall:%d" % os.getpid()
    feat = struct.pack("<%df" % DIM, *[rng.uniform(-1, 1) for _ in range(DIM)])
    image = png(64, 48, 3)
    warm_names, warm_ids = label_set("warm")
    last = "0-0"

    def run(entries):
        """XADDs the (name, fields) entries in one pipeline; the ms from the
        send to each one's reply, by name."""
        nonlocal last
        t0 = time.perf_counter()
        for name, fields in entries:
            r.send("XADD", stream, "*", "id", name, "reply_to", reply, *fields)
        for _ in entries:
            r.read()
        got = {}
        while len(got) < len(entries):
            res = r.cmd("XREAD", "BLOCK", 120000, "STREAMS", reply, last)
            if res is None:
                raise RuntimeError("no reply in 120 s")
            for eid, kv in res[0][1]:
                last = eid.decode()
                d = dict(zip(kv[::2], kv[1::2]))
                if d[b"status"] != b"ok":
                    raise RuntimeError(d[b"body"].decode())
                got[d[b"id"].decode()] = (time.perf_counter() - t0) * 1000
        return got

    warm_zs = ("warm_zs", zs_fields(warm_names, warm_ids, feat))
    embed = ("embed", ["task", "embed", "input", image])
    run([warm_zs, embed])   # the warm set cached, the image path warmed up
    for t in range(trials):
        names, ids = label_set("cold%d" % t)
        for what in (embed, warm_zs):
            alone = run([what])[what[0]]
            got = run([("cold", zs_fields(names, ids, feat)), what])
            names, ids = label_set("cold%d-%s" % (t, what[0]))
            print(json.dumps({"mode": "redis", "warm": what[0], "alone": round(alone, 2),
                              "after_cold": round(got[what[0]], 2), "cold": round(got["cold"], 2)}),
                  flush=True)


def http_mode(port, model, trials):
    url = "http://127.0.0.1:%d/v2/models/%s/zero-shot" % (port, model)
    image = base64.b64encode(png(64, 48, 3)).decode()

    def post(names, ids, out, key):
        body = json.dumps({"inputs": [image], "labels": names, "label_ids": ids}).encode()
        t0 = time.perf_counter()
        req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=120).read()
        out[key] = (time.perf_counter() - t0) * 1000

    warm = label_set("warm")
    post(*warm, {}, "w")   # cached, and the image's embedding too
    for t in range(trials):
        res = {}
        post(*warm, res, "alone")
        th = threading.Thread(target=post, args=(*label_set("cold%d" % t), res, "cold"))
        th.start()
        time.sleep(GAP)
        post(*warm, res, "after_cold")
        th.join()
        print(json.dumps({"mode": "http", "warm": "warm_zs", "alone": round(res["alone"], 2),
                          "after_cold": round(res["after_cold"], 2), "cold": round(res["cold"], 2)}),
              flush=True)


if __name__ == "__main__":
    mode, port, name, trials = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    (redis_mode if mode == "redis" else http_mode)(port, name, trials)
