// make_tokenizer_spans.mjs: writes tokenizer_hard.spans.jsonl, the source span
// of every token of tokenizer_hard.txt as Hugging Face's tokenizers library
// gives it (the Rust crate TEI runs, through its npm binding), for
// test_tokenizer's check of eng_token_span.
//
//   node tests/golden/make_tokenizer_spans.mjs [MODEL_DIR] \
//       < tests/golden/tokenizer_hard.txt > tests/golden/tokenizer_hard.spans.jsonl
//
// One JSON list of [start, stop] pairs per text, in BYTES of the UTF-8 text,
// as TEI's /tokenize reports them (Rust's Tokenizer::encode gives byte
// offsets; the npm binding converts them to code points, converted back
// here). Tokens in the special tokens mask (the [CLS] and [SEP] the template
// adds) are [-1, -1], as the engine writes them. MODEL_DIR defaults to
// $ENGINE_SHARED/models/sst2-bert-mini; the binding comes from $PEERS_DIR
// (installed by $ENGINE_SHARED/reference/setup-peers.sh).
import fs from 'fs';
import { createRequire } from 'module';
const peers = process.env.PEERS_DIR || (process.env.HOME + '/.cache/engine-peers');
const shared = process.env.ENGINE_SHARED || new URL('../../../shared', import.meta.url).pathname;
const dir = process.argv[2] || shared + '/models/sst2-bert-mini';
const { Tokenizer } = createRequire(peers + '/package.json')('tokenizers');
const tok = Tokenizer.fromFile(dir + '/tokenizer.json');
const lines = fs.readFileSync(0, 'utf8').split('\n');
if (lines.length && lines[lines.length - 1] === '') lines.pop();
for (const line of lines) {
  const byteAt = [0];   // byte offset of each code point, and of the end
  for (const ch of line) byteAt.push(byteAt[byteAt.length - 1] + Buffer.byteLength(ch));
  const e = await tok.encode(line);
  const mask = e.getSpecialTokensMask();
  const spans = e.getOffsets().map(([s, t], i) => mask[i] ? [-1, -1] : [byteAt[s], byteAt[t]]);
  process.stdout.write(JSON.stringify(spans) + '\n');
}
