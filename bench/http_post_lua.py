"""Writes wrk's Lua script for bench/http.sh: POST the SST-2 dev sentences in
turn as {"inputs": text}.  usage: http_post_lua.py DEV.tsv OUT.lua"""
import json
import sys

texts = [l.split("\t")[0] for l in open(sys.argv[1], encoding="utf-8").read().splitlines()[1:]]
with open(sys.argv[2], "w", encoding="utf-8") as f:
    f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nlocal bodies = {\n')
    for t in texts:
        f.write("  [==[" + json.dumps({"inputs": t}) + "]==],\n")
    f.write("}\nlocal i = 0\nrequest = function()\n  i = i % #bodies + 1\n"
            "  return wrk.format(nil, nil, nil, bodies[i])\nend\n")
