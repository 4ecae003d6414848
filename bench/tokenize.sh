#!/bin/sh
# bench/tokenize.sh: tokenization speed of the tokenizer.json interpreter
# against Hugging Face's tokenizers library (Rust, npm binding) in one run, on
# SST-2 dev (872 sentences), one thread each; then the share of tokenization
# in a MiniLM-L6-shaped batch (synthetic weights, batch 32, THREADS threads).
#   sh bench/tokenize.sh            (REPS runs of SECONDS s each; medians)
. "$(dirname "$0")/common.sh"
SECONDS_EACH=${SECONDS_EACH:-1}
make -s "$BUILD/tokjson-bench" "$BUILD/convert" >/dev/null
need_peers
texts=$OUT/sst2-dev.txt
tail -n +2 "$SHARED/data/sst2/dev.tsv" | cut -f1 > "$texts"
g=tests/golden/tokjson
toks="$g/roberta-like/tokenizer.json $g/clip-like/tokenizer.json $g/xlmr-like/tokenizer.json"
[ -f "$OUT/minilm-l6.eng" ] || "$BUILD/convert" --synthetic minilm-l6 "$OUT/minilm-l6.eng" >/dev/null
load_average before
"$BUILD/tokjson-bench" "$texts" $toks --seconds "$SECONDS_EACH" --reps "$REPS" \
  --model "$OUT/minilm-l6.eng" --batch 32 --threads "$THREADS" > "$OUT/tokjson.jsonl"
node bench/tokenize_peer.mjs "$texts" $toks --seconds "$SECONDS_EACH" --reps "$REPS" > "$OUT/tokjson-peer.jsonl"
load_average after
python3 - "$OUT/tokjson.jsonl" "$OUT/tokjson-peer.jsonl" <<'PY'
import json, sys
ours = [json.loads(l) for l in open(sys.argv[1])]
peer = {p['tokenizer']: p for p in map(json.loads, open(sys.argv[2]))}
print('| tokenizer | ours texts/s | HF encode() texts/s | ratio | HF encodeBatch() texts/s | ratio |')
print('|---|---|---|---|---|---|')
for o in ours:
    if 'tokenizer' not in o:
        continue
    p = peer[o['tokenizer']]
    name = o['tokenizer'].split('/')[-2]
    print('| %s | %d | %d | %.1fx | %d | %.1fx |' % (name, o['texts_per_s'], p['encode_texts_per_s'],
          o['texts_per_s'] / p['encode_texts_per_s'], p['encode_batch_texts_per_s'],
          o['texts_per_s'] / p['encode_batch_texts_per_s']))
for o in ours:
    if 'model' in o:
        print('MiniLM-L6 batch %d (%d threads): %.2f ms, of which tokenizing (roberta-like, 1 thread) %.3f ms = %.1f%%'
              % (o['batch'], o['threads'], o['batch_ms'], o['tokenize_ms'], 100 * o['tokenize_share']))
PY
