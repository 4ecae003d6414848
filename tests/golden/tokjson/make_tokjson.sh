#!/bin/sh
# make_tokjson.sh: regenerates the tokenizer.json interpreter's test
# tokenizers and goldens (see make_unigram.py and make_tokjson.mjs):
#   texts_hard.txt  the hard strings of ../tokenizer_hard.txt and a few lines with
#                   added tokens and the misc pipelines' cases, one a line
#   texts.txt       SST-2 dev sentences, then texts_hard.txt
#   */tokenizer.json, */golden.jsonl
#   sh tests/golden/tokjson/make_tokjson.sh
set -e
here=$(cd "$(dirname "$0")" && pwd)
shared=${ENGINE_SHARED:-$here/../../../../shared}
export PEERS_DIR=${PEERS_DIR:-$HOME/.cache/engine-peers}
[ -d "$PEERS_DIR/node_modules/tokenizers" ] || sh "$shared/reference/setup-peers.sh"
command -v spm_train >/dev/null || { echo "make_tokjson.sh: needs spm_train (apt-get install sentencepiece)" >&2; exit 1; }
{
  cat "$here/../tokenizer_hard.txt"
  printf '%s\n' 'a <mask> b' 'a<mask>b' '  <mask>  spaced' '<s>inside</s> <pad><unk>' \
    '<|startoftext|>clip<|endoftext|> text' 'HELLO <|ENDOFTEXT|>' 'x</s>y <s> z' \
    'Ｆｕｌｌｗｉｄｔｈ ①②③ ﬁ … soft­hyphen zero​width' 'café café CAFÉ' \
    'the film was filmic, a movie   movies; Mask MASK mask' 'phone 555-1234-5678 -- x-ray 2024' \
    'éèêë ÀÁÂ naïve ÇA' "SHOUTING Tests'S IT'LL 12345678"
} > "$here/texts_hard.txt"
{ tail -n +2 "$shared/data/sst2/dev.tsv" | cut -f1; cat "$here/texts_hard.txt"; } > "$here/texts.txt"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
{ tail -n +2 "$shared/data/sst2/dev.tsv" | cut -f1; cat "$here/../tokenizer_hard.txt"; } > "$tmp/corpus.txt"
python3 "$here/make_unigram.py" "$tmp/corpus.txt"
node "$here/make_tokjson.mjs" "$tmp/corpus.txt"
