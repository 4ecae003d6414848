"""bench/http.sh's summary of one model: HTTP against in-process and ONNX
Runtime batch 1, the open-loop latencies, and the plot (gnuplot) of the HTTP
runs next to the in-process ones.  usage: http_report.py OUT MODEL WRK_RPS"""
import json
import subprocess
import sys

out, m, wrk = sys.argv[1], sys.argv[2], float(sys.argv[3])
inproc = {r["concurrency"]: r for r in json.load(open(f"{out}/{m}.inproc.json"))["runs"]
          if r["mode"] == "stream"}
http = {r["concurrency"]: r for r in json.load(open(f"{out}/{m}.http.json"))["runs"]}
ort_doc = json.load(open(f"{out}/{m}.ort.b1.json"))
ort = ort_doc["sequences_per_s"]
print(f"{m}: ONNX Runtime batch 1 ({ort_doc['threads']} threads) {ort:.0f}/s")
for c in sorted(http):
    h, i = http[c], inproc.get(c)
    l = h["latency_ms"]
    line = (f"  http c={c:>4}: {h['requests_per_s']:8.0f}/s, {h['requests_per_s'] / ort:.1f}x ORT b1; "
            f"p50 {l['p50']:.2f} p95 {l['p95']:.2f} p99 {l['p99']:.2f} ms")
    if i:
        line += (f"; {h['requests_per_s'] / i['requests_per_s']:.2f}x in-process "
                 f"({i['requests_per_s']:.0f}/s, p99 {i['latency_ms']['p99']:.2f} ms)")
    print(line)
for pct in (25, 50, 90):
    r = json.load(open(f"{out}/{m}.http.open{pct}.json"))["runs"][0]
    l = r["latency_ms"]
    print(f"  http open loop at {pct}% of capacity ({r['requests_per_s']:.0f}/s): "
          f"p50 {l['p50']:.2f} p95 {l['p95']:.2f} p99 {l['p99']:.2f} ms")
c64 = http[64]["requests_per_s"]
print(f"  wrk -t2 -c64: {wrk:.0f}/s; targets: http c=64 {c64 / inproc[64]['requests_per_s']:.2f}x "
      f"in-process (>= 0.85), {c64 / ort:.1f}x ORT batch 1 (>= 1.5)")

dat = f"{out}/{m}.http.dat"
with open(dat, "w") as f:
    for c in sorted(http):
        if c in inproc:
            f.write(f"{c} {inproc[c]['requests_per_s']} {http[c]['requests_per_s']} "
                    f"{inproc[c]['latency_ms']['p99']} {http[c]['latency_ms']['p99']}\n")
script = f"""set terminal svg size 900,540
set output '{out}/{m}.http.svg'
set title '{m}: engine serve (HTTP) next to the in-process stream'
set logscale x
set xlabel 'concurrent clients'
set ylabel 'requests/s'
set y2label 'p99 latency (ms)'
set ytics nomirror
set y2tics
set grid
set key top left
plot '{dat}' using 1:2 with linespoints title 'in-process req/s', \\
     '' using 1:3 with linespoints title 'HTTP req/s', \\
     '' using 1:4 with linespoints axes x1y2 title 'in-process p99', \\
     '' using 1:5 with linespoints axes x1y2 title 'HTTP p99'
"""
if subprocess.run(["gnuplot"], input=script, text=True).returncode:
    print("http.sh: gnuplot failed; no plot", file=sys.stderr)
